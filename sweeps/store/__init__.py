"""Where a sweep lives: its folder (local or remote, atomic writes) and the lease that lets one
driver at a time run it. pyarrow is imported on first use."""

from sweeps.store.folder import SweepFolder, open_uri
from sweeps.store.lease import DriverLease, SweepBusy

__all__ = ["DriverLease", "SweepBusy", "SweepFolder", "open_uri"]
