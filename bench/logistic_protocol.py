"""The β-VAE metric and explicitness under both logistic-regression protocols, same codes.

    python bench/logistic_protocol.py CHECKPOINT [CHECKPOINT ...]

disentanglement_lib's published numbers came from scikit-learn versions whose
``LogisticRegression`` default was liblinear, one-vs-rest; today's default is lbfgs,
multinomial. For each trained model this scores the β-VAE metric and explicitness in
reference mode with each protocol, on the same sampled points (same seed, one code cache),
and prints the scores and their differences.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from betavae.checkpoint import load_checkpoint
from betavae.metrics import REFERENCE, beta_vae_score, modularity_explicitness, sample_codes
from betavae.metrics.sampling import CodeCache

PROTOCOLS = ("lbfgs", "liblinear")


def scores(trainer, cache: CodeCache, protocol: str) -> dict[str, float]:
    dataset, s = trainer.dataset, REFERENCE
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    beta = beta_vae_score(
        dataset,
        cache,
        rng,
        batch_size=s.batch_size,
        num_train=s.sampling_train,
        num_eval=s.sampling_eval,
        logistic=protocol,
    )
    train = sample_codes(dataset, cache, s.num_train, rng)
    test = sample_codes(dataset, cache, s.num_test, rng)
    explicit = modularity_explicitness(*train, *test, num_bins=s.num_bins, logistic=protocol)
    return {
        "beta_vae": beta["eval_accuracy"],
        "beta_vae.train": beta["train_accuracy"],
        "explicitness.train": explicit["explicitness_train"],
        "explicitness.test": explicit["explicitness_test"],
        "seconds": time.perf_counter() - start,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checkpoints", nargs="+", help="betavae checkpoint directories")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    worst = 0.0
    keys = ("beta_vae", "beta_vae.train", "explicitness.train", "explicitness.test")
    print(f"| model | score | {' | '.join(PROTOCOLS)} | Δ |")
    print("|---|---|---|---|---|")
    for path in args.checkpoints:
        trainer = load_checkpoint(path, device=torch.device("cpu"))
        cache = CodeCache(trainer.dataset, trainer.encode)  # the second protocol reuses codes
        by = {p: scores(trainer, cache, p) for p in PROTOCOLS}
        c = trainer.config
        label = f"{c.objective} β={c.beta:g} seed {c.seed}, {trainer.step:,} steps"
        for key in keys:
            a, b = by["lbfgs"][key], by["liblinear"][key]
            worst = max(worst, abs(a - b))
            print(f"| {label} | {key} | {a:.4f} | {b:.4f} | {b - a:+.4f} |")
        secs = [f"{by[p]['seconds']:.0f} s" for p in PROTOCOLS]
        print(f"| {label} | seconds | {' | '.join(secs)} | |")
    print(f"largest |Δ|: {worst:.4f}")


if __name__ == "__main__":
    main()
