"""How a sweep searches: the space (define-by-run), the plan (sampler, starting points, seeds
per setting), the Tune searcher over Optuna's ask/tell, and the study reached from outside it.

Names are imported on first use: Optuna and Ray load only when a searcher is built.
"""

from sweeps._lazy import lazy_exports

_WHERE = {
    "SearchSpace": "space",
    "SearchPlan": "plan",
    "SAMPLER_CLASSES": "plan",
    "build_searcher": "plan",
    "initial_points": "plan",
    "search_plan": "plan",
    "search_space": "plan",
    "ConstrainedOptunaSearch": "searcher",
    "CONSTRAINT": "searcher",
    "tell_result": "searcher",
    "StudyLink": "study",
    "note_errored_trials": "study",
    "tell_unreported": "study",
}
__all__ = sorted(_WHERE)
__getattr__ = lazy_exports(__name__, _WHERE)
