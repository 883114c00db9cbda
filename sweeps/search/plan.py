"""How a sweep searches: its space, its starting points, its sampler, and the searcher built
from them.

A ``SearchPlan`` names every choice that decides which settings a sweep tries (the sampler and
its start-up trials, the starting points, the seeds per setting) and is stored in the sweep's
Optuna study (``study.user_attrs["search_plan"]``), so a finished sweep says how it searched.
``bench/search_efficiency.py`` replays searchers on a recorded landscape through
``build_searcher`` itself, with the default plan and with alternatives.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from analysis.schema import PARENT_RUN_ATTR, SEARCH_PLAN_ATTR, SETTINGS_ATTR, SWEEP_DIR_ATTR
from sweeps.config.settings import SweepSettings
from sweeps.search.space import SearchSpace

#: ``SearchPlan.sampler`` → the Optuna sampler it builds.
SAMPLER_CLASSES = {"tpe": "TPESampler", "random": "RandomSampler", "gp": "GPSampler"}
SAMPLERS = tuple(SAMPLER_CLASSES)


@dataclass(frozen=True)
class SearchPlan:
    """The choices that decide which settings a sweep tries, JSON-ready.

    sampler: ``tpe`` (Optuna's TPESampler), ``random`` or ``gp`` (GPSampler).
    n_startup_trials: trials sampled at random before TPE or GP takes over (random: unused).
    multivariate: TPE's joint density over the parameters (None: Optuna's default, on for one
        objective, off for the Pareto search).
    group: multivariate TPE split by the conditional family (``beta`` or ``capacity``) the
        define-by-run space asks for.
    seed: the sampler's seed.
    replicates: seeds per sampled setting (each setting is queued again for the others).
    reseed, reseed_margin: when a setting's other seeds run: ``always``, right behind its
        first; ``near-best``, only when the first ended within budget and within the margin
        of the best setting's median so far (``sweeps.search.ConstrainedOptunaSearch``).
    initial_points: settings run first, each with its replicates.
    """

    sampler: str = "tpe"
    n_startup_trials: int = 10
    multivariate: bool | None = None
    group: bool = False
    seed: int = 0
    replicates: int = 1
    reseed: str = "always"
    reseed_margin: float = 0.0
    initial_points: tuple[dict[str, Any], ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["initial_points"] = [dict(p) for p in self.initial_points]
        return out

    def but(self, **changes: Any) -> SearchPlan:
        """This plan with some choices changed (the replay's alternatives)."""
        return replace(self, **changes)

    def sampler_instance(self):
        import optuna

        if self.sampler == "random":
            return optuna.samplers.RandomSampler(seed=self.seed)
        if self.sampler == "gp":
            return optuna.samplers.GPSampler(
                seed=self.seed, n_startup_trials=self.n_startup_trials,
            )  # fmt: skip
        if self.sampler == "tpe":
            return optuna.samplers.TPESampler(
                seed=self.seed,
                n_startup_trials=self.n_startup_trials,
                multivariate=self.multivariate,
                group=self.group,
            )
        raise ValueError(f"sampler: got {self.sampler!r}; allowed: {', '.join(SAMPLERS)}")


def search_space(settings: SweepSettings) -> SearchSpace:
    return SearchSpace(
        steps=settings.steps,
        latent_dim_range=tuple(settings.latent_dim_range),
        seed=settings.seed,
        beta_range=tuple(settings.beta_range),
        capacity_max_range=tuple(settings.capacity_max_range),
        anneal_fraction_range=tuple(settings.anneal_fraction_range),
        gamma_range=tuple(settings.gamma_range),
        families=tuple(settings.families),
    )


def initial_points(settings: SweepSettings, space) -> list[dict[str, Any]]:
    """The preset's starting points that lie in ``space`` (a narrowed range drops the rest)."""
    return [dict(p) for p in settings.initial_points if space.contains(p)]


def search_plan(settings: SweepSettings) -> SearchPlan:
    """The sweep's own plan: Optuna's RandomSampler after the preset's starting points,
    ``--replicates`` seeds per setting, each right behind the first. Replayed on the recorded
    landscape (``bench/search_efficiency.py``, docs/SWEEPS.md), random sampling with one seed
    found the best setting within budget in a median of 78 trials where TPE needed more than
    the whole 184-trial table."""
    return SearchPlan(
        sampler="random",
        seed=settings.seed,
        replicates=settings.replicates,
        initial_points=tuple(initial_points(settings, search_space(settings))),
    )


def build_searcher(
    settings: SweepSettings,
    storage: Any,
    *,
    parent_run_id: str | None = None,
    sweep_dir: str | None = None,
    plan: SearchPlan | None = None,
):
    """The sweep's Tune searcher. ``storage``: the Optuna storage, or where the sweep's journal
    is (``SweepFolder.study_location``: a local file or a remote URI); ``sweep_dir``: the sweep
    folder as shown (recorded in the study); ``plan``: how to search (default:
    ``search_plan``)."""
    from sweeps.search.searcher import ConstrainedOptunaSearch

    if isinstance(storage, str | Path):
        from sweeps.search.study import open_journal

        storage = open_journal(storage)
    plan = plan or search_plan(settings)
    pareto = settings.objective == "pareto"
    udr = None
    if settings.metric == "udr":
        from sweeps.search.udr import SettingUDR

        if sweep_dir is None:
            raise ValueError("a UDR sweep's searcher needs sweep_dir (where the codes are)")
        udr = SettingUDR(sweep_dir)
    return ConstrainedOptunaSearch(
        space=search_space(settings),
        metric=[settings.metric_key, "recon_nll"] if pareto else settings.metric_key,
        mode=["max", "min"] if pareto else "max",
        sampler=plan.sampler_instance(),
        study_name=settings.name,
        storage=storage,
        points_to_evaluate=list(plan.initial_points) or None,
        recon_budget=settings.recon_budget,
        replicates=plan.replicates,
        reseed=plan.reseed,
        reseed_margin=plan.reseed_margin,
        max_trials=settings.num_samples,
        study_attrs={
            SETTINGS_ATTR: settings.to_dict(),
            SEARCH_PLAN_ATTR: plan.to_dict(),
            PARENT_RUN_ATTR: parent_run_id,
            SWEEP_DIR_ATTR: sweep_dir,
        },
        udr=udr,
    )
