"""``--dry-run``: the sweep as it would start, its space and its size, as JSON; starts nothing."""

from __future__ import annotations

from typing import Any

from sweeps.config.presets import BUDGET_BASIS, GAMMA_BASIS
from sweeps.config.settings import SweepSettings, given, settings_warnings, sweep_record
from sweeps.search.plan import initial_points, search_plan, search_space


def dry_run(settings: SweepSettings) -> dict[str, Any]:
    """What ``--dry-run`` prints."""
    space = search_space(settings)
    record = sweep_record(settings)
    record["settings"].pop("dry_run", None)
    return {
        "sweep": record,
        "search_space": space.describe(),
        "initial_points": initial_points(settings, space),
        "search_plan": search_plan(settings).to_dict(),
        "trials": settings.num_samples,
        "settings_sampled": -(-settings.num_samples // settings.replicates),
        "seeds_per_setting": settings.replicates,
        "training_images": settings.num_samples * settings.steps * settings.batch_size,
        "recon_budget": {
            "nats": settings.recon_budget,
            "basis": "given by --recon-budget"
            if given(settings, "recon_budget")
            else BUDGET_BASIS[settings.preset],
        },
        "gamma": {"range": list(settings.gamma_range), "basis": _gamma_basis(settings)},
        "warnings": settings_warnings(settings),
    }


def _gamma_basis(settings: SweepSettings) -> str:
    """Where the capacity family's γ range comes from."""
    if "capacity" not in settings.families:
        return "not searched: --families leaves out the capacity family"
    if given(settings, "gamma_range"):
        return "given by --gamma-range"
    return GAMMA_BASIS[settings.preset]
