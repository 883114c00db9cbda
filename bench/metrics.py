"""Metric-suite timings: reference mode vs fast mode on one trained model's codes.

    python bench/metrics.py [--checkpoint DIR] [--train-steps 3000] [--sklearn]

Without ``--checkpoint`` it first trains a β-VAE (β = 4) for ``--train-steps`` steps. Prints
seconds per metric for both modes (encoding separately: it depends on the model and device,
not on the metric code), every score in both modes and their difference. ``--sklearn`` also
times DCI with scikit-learn's GradientBoostingClassifier, disentanglement_lib's predictor, on
the same codes (~4 minutes on 2 cores) and prints the ratio.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from betavae.checkpoint import load_checkpoint
from betavae.config import TrainConfig
from betavae.data import DSprites
from betavae.metrics import FAST, REFERENCE, dci, evaluate, sample_codes
from betavae.metrics.sampling import CodeCache
from betavae.training import Trainer


def _trainer(args: argparse.Namespace) -> Trainer:
    if args.checkpoint:
        return load_checkpoint(args.checkpoint, device=torch.device(args.device))
    config = TrainConfig(steps=args.train_steps, beta=4.0, device=args.device)
    trainer = Trainer(config, DSprites())
    start = time.perf_counter()
    trainer.fit(log_every=args.train_steps)
    print(f"trained {args.train_steps} steps in {time.perf_counter() - start:.0f} s")
    return trainer


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", help="a betavae checkpoint directory")
    parser.add_argument("--train-steps", type=int, default=3000)
    parser.add_argument("--sklearn", action="store_true", help="also time sklearn's GBT DCI")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    trainer = _trainer(args)
    dataset = trainer.dataset

    # Encode every image once up front so the metric timings below exclude encoding.
    cache = CodeCache(dataset, trainer.encode)
    start = time.perf_counter()
    cache.codes(dataset.index_to_classes(np.arange(len(dataset))), np.random.default_rng(0))
    encode_s = time.perf_counter() - start
    print(
        f"encoded {len(dataset)} images in {encode_s:.1f} s ({len(dataset) / encode_s:.0f} img/s)"
    )

    kl = trainer.evaluate()["kl_per_dim"]
    results = {}
    for name, settings in (("reference", REFERENCE), ("fast", FAST)):
        start = time.perf_counter()
        results[name] = evaluate(dataset, cache, mode=settings, seed=0, kl_per_dim=kl)
        results[name].seconds["total"] = time.perf_counter() - start
    ref, fast = results["reference"], results["fast"]
    print(f"\n{'seconds':<14} {'reference':>10} {'fast':>8}")
    for key in ref.seconds:
        print(f"{key:<14} {ref.seconds[key]:>10.2f} {fast.seconds.get(key, 0):>8.2f}")
    print(f"\n{'score':<55} {'reference':>10} {'fast':>8} {'|diff|':>7}")
    for key, value in ref.scores.items():
        other = fast.scores[key]
        print(f"{key:<55} {value:>10.4f} {other:>8.4f} {abs(value - other):>7.4f}")

    if args.sklearn:
        rng = np.random.default_rng(0)
        train = sample_codes(dataset, cache, REFERENCE.num_train, rng)
        test = sample_codes(dataset, cache, REFERENCE.num_test, rng)
        timings = {}
        for predictor in ("gbt", "sklearn-gbt"):
            start = time.perf_counter()
            out = dci(*train, *test, predictor=predictor)
            timings[predictor] = time.perf_counter() - start
            print(f"DCI {predictor:<12} {timings[predictor]:7.1f} s  {out}")
        print(f"sklearn / ours: {timings['sklearn-gbt'] / timings['gbt']:.1f}x")


if __name__ == "__main__":
    main()
