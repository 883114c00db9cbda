"""Where a sweep lives: its folder (local or remote, atomic writes), the Optuna journal's
mirror in remote storage, and the lease that lets one driver at a time run it. pyarrow is
imported on first use."""

from sweeps.store.folder import SweepFolder
from sweeps.store.journal import JournalMirror, mirror_for
from sweeps.store.lease import DriverLease, SweepBusy
from sweeps.store.uri import open_uri

__all__ = ["DriverLease", "JournalMirror", "SweepBusy", "SweepFolder", "mirror_for", "open_uri"]
