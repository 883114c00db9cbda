"""What each latent carries, measured on held-out images: during a reproduction run (every
probe) and on a saved model afterwards, the same way.

    python -m analysis.reproduce.probes CHECKPOINT [--images N]

labels the latents of a saved model (``config.json`` and ``model.safetensors``; the training
state is not needed): for each latent its KL, split into the spread of its means and the
narrowness of its posterior, and the information its posterior samples hold about each
factor (``betavae.metrics.latents``), the factor it carries most of named.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

#: Held-out images that probe which factor each latent carries.
PROBE_IMAGES = 10_000
PROBE_SEED = 12_345


class ProbeSet:
    """``n`` images drawn with the probe seed, their varying factors' classes and names."""

    def __init__(self, dataset: Any, n: int = PROBE_IMAGES) -> None:
        factors = dataset.sample_factors(n, np.random.default_rng(PROBE_SEED))
        self.images = dataset.images(factors)
        varying = list(dataset.varying_factors)
        self.factors = factors[:, varying]
        self.factor_names = [dataset.factor_names[j] for j in varying]

    def probe(self, posterior: Any) -> dict[str, Any]:
        """The latents' information about each factor (``[latent][factor]``), and where each
        latent's KL comes from: the spread of its means (``0.5·E[μ²]``, what can carry
        information) or the narrowness of its posterior (``0.5·E[σ² − 1 − log σ²]``).
        ``posterior``: images → ``(mu, logvar)``, as ``Trainer.posterior``."""
        from betavae.metrics.latents import factor_information, sampled_codes

        mu, logvar = posterior(self.images)
        codes = sampled_codes(mu, logvar, np.random.default_rng(PROBE_SEED))
        mu, logvar = np.asarray(mu, dtype=np.float64), np.asarray(logvar, dtype=np.float64)
        return {
            "information": factor_information(codes, self.factors).tolist(),
            "kl_mean_term": (0.5 * np.mean(mu**2, axis=0)).tolist(),
            "kl_variance_term": (0.5 * np.mean(np.exp(logvar) - 1 - logvar, axis=0)).tolist(),
        }


def label_checkpoint(folder: str | Path, images: int = PROBE_IMAGES) -> dict[str, Any]:
    """Probe a saved model (``folder``: its ``config.json`` and ``model.safetensors``) on
    ``images`` held-out images of its dataset: :meth:`ProbeSet.probe`'s record, with each
    latent's KL (``kl_per_dim``, the two terms' sum) and ``factor_names``."""
    import safetensors.torch

    from betavae.checkpoint import WEIGHTS, CheckpointError, read_config
    from betavae.data import load_dataset
    from betavae.training import Trainer

    folder = Path(folder)
    if not (folder / WEIGHTS).is_file():
        raise CheckpointError(f"{folder}: not a saved model (no {WEIGHTS})")
    config = read_config(folder)
    dataset = load_dataset(config.dataset)
    trainer = Trainer(config, dataset)
    trainer.model.load_state_dict(safetensors.torch.load_file(str(folder / WEIGHTS)))
    probes = ProbeSet(dataset, images)
    record = probes.probe(trainer.posterior)
    record["kl_per_dim"] = [
        m + v for m, v in zip(record["kl_mean_term"], record["kl_variance_term"], strict=True)
    ]
    record["factor_names"] = probes.factor_names
    return record


def table(record: dict[str, Any], threshold: float = 0.0) -> str:
    """Markdown: one row per latent whose KL exceeds ``threshold`` nats."""
    names = record["factor_names"]
    head = "| latent | KL (nats) | means' term | variance term | carries most | " + " | ".join(
        names
    )
    lines = [head + " |", "|---" * (5 + len(names)) + "|"]
    for j, kl in enumerate(record["kl_per_dim"]):
        if kl <= threshold:
            continue
        info = record["information"][j]
        best = max(range(len(names)), key=info.__getitem__)
        cells = [
            f"z{j}",
            f"{kl:.2f}",
            f"{record['kl_mean_term'][j]:.2f}",
            f"{record['kl_variance_term'][j]:.2f}",
            f"{names[best]} ({info[best]:.2f})",
            *(f"{x:.2f}" for x in info),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    from betavae.metrics.latents import SWITCH_ON_NATS

    p = argparse.ArgumentParser(
        prog="python -m analysis.reproduce.probes",
        description="Label a saved model's latents by the factors they carry.",
    )
    p.add_argument("checkpoint", type=Path, help="folder with config.json and model.safetensors")
    p.add_argument("--images", type=int, default=PROBE_IMAGES, help="held-out images to probe")
    p.add_argument("--all", action="store_true", help="every latent, not only the open ones")
    p.add_argument("--json", action="store_true", help="print the whole record as JSON")
    args = p.parse_args(argv)
    if args.images < 2:
        p.error(f"--images must be at least 2, got {args.images}")
    from betavae.checkpoint import CheckpointError

    try:
        record = label_checkpoint(args.checkpoint, args.images)
    except CheckpointError as err:
        p.exit(2, f"{p.prog}: error: {err}\n")
    if args.json:
        print(json.dumps(record, indent=2))
    else:
        threshold = -1.0 if args.all else SWITCH_ON_NATS
        print(table(record, threshold), end="")
        print(
            f"\n{args.images:,} held-out images; information: mutual information of each "
            "latent's posterior samples with the factor, over the factor's entropy"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
