"""One trial: its typed config (read once from Tune's dict), the Tune trainable that trains,
checkpoints and scores it, and the pictures of the trained model.

Names are imported on first use: torch and Ray load only when they are needed.
"""

from sweeps._lazy import lazy_exports

_WHERE = {
    "TrialConfig": "config",
    "train_trial": "trainable",
    "score": "trainable",
    "curve_row": "trainable",
    "dataset_of": "trainable",
    "save_grid": "pictures",
}
__all__ = sorted(_WHERE)
__getattr__ = lazy_exports(__name__, _WHERE)
