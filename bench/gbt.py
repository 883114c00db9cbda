"""DCI's classifier: scikit-learn's ``GradientBoostingClassifier()`` against ``HistGBTClassifier``.

The problem is shaped like DCI on dSprites (Eastwood & Williams 2018, as in disentanglement_lib):
10 code features (noisy monotone functions of the 5 factors, a mixture of two, a noisy copy of
one, 3 pure-noise features), factors with 3, 6, 40, 32 and 32 classes, 10,000 training and
5,000 test points, one default classifier per factor. For each factor and in total it prints the
seconds to fit and predict on train and test, the ratio, the largest difference between the two
importance vectors and the train/test accuracies.

    python bench/gbt.py [--n-train 10000] [--n-test 5000] [--factors 3 6 40 32 32]
                        [--skip-sklearn] [--threads 2] [--seed 0]

``--threads 2`` also times ours fitting the factors on 2 threads, largest first, as
``betavae.metrics.dci`` can. scikit-learn takes ~4 minutes on 2 cores at the full size;
``--n-train 2000 --factors 3 6`` runs in seconds.
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from betavae.metrics.gbt import HistGBTClassifier


def make_codes(factors: np.ndarray, sizes: list[int], rng: np.random.Generator) -> np.ndarray:
    """``[n, 10]`` float codes from ``[n, k]`` factor classes, like a partly disentangled VAE."""
    n, k = factors.shape
    u = (factors + 0.5) / np.asarray(sizes)  # each factor in (0, 1)
    shapes = [np.tanh, np.square, np.exp, np.sqrt, np.log1p]  # increasing on (0, 2)
    codes = [shapes[j % len(shapes)](2.0 * u[:, j]) for j in range(k)]
    codes = [c + 0.05 * rng.standard_normal(n) for c in codes]
    codes.append(u[:, -1] + u[:, -2] + 0.1 * rng.standard_normal(n))  # two factors mixed
    codes.append(u[:, k // 2] + 0.3 * rng.standard_normal(n))  # a noisier copy of one
    codes += [rng.standard_normal(n) for _ in range(10 - len(codes))]  # noise latents
    return np.stack(codes[:10], axis=1)


@dataclass
class Result:
    seconds: float
    importances: np.ndarray
    train_acc: float
    test_acc: float


def run(
    model: Any, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray
) -> Result:
    """Fit ``model`` (either classifier), predict train and test; time all of it."""
    start = time.perf_counter()
    model.fit(x_train, y_train)
    train_acc = float(np.mean(model.predict(x_train) == y_train))
    test_acc = float(np.mean(model.predict(x_test) == y_test))
    seconds = time.perf_counter() - start
    return Result(seconds, np.abs(model.feature_importances_), train_acc, test_acc)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-train", type=int, default=10_000)
    parser.add_argument("--n-test", type=int, default=5_000)
    parser.add_argument("--factors", type=int, nargs="+", default=[3, 6, 40, 32, 32])
    parser.add_argument("--skip-sklearn", action="store_true", help="time ours only")
    parser.add_argument("--threads", type=int, default=1, help="also time ours on N threads")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    rng = np.random.default_rng(args.seed)
    n = args.n_train + args.n_test
    factors = np.stack([rng.integers(0, k, n) for k in args.factors], axis=1)
    codes = make_codes(factors, args.factors, rng)
    x_train, x_test = codes[: args.n_train], codes[args.n_train :]
    print(
        f"n_train={args.n_train} n_test={args.n_test} features={codes.shape[1]} "
        f"factors={args.factors}"
    )

    total_ours = total_sk = 0.0
    for j, size in enumerate(args.factors):
        y_train, y_test = factors[: args.n_train, j], factors[args.n_train :, j]
        ours = run(HistGBTClassifier(), x_train, y_train, x_test, y_test)
        total_ours += ours.seconds
        line = (
            f"factor {j} ({size:2d} classes): ours {ours.seconds:6.2f} s "
            f"acc {ours.train_acc:.3f}/{ours.test_acc:.3f}"
        )
        if not args.skip_sklearn:
            from sklearn.ensemble import GradientBoostingClassifier

            sk = run(GradientBoostingClassifier(), x_train, y_train, x_test, y_test)
            total_sk += sk.seconds
            diff = np.abs(sk.importances - ours.importances).max()
            line += (
                f" | sklearn {sk.seconds:7.2f} s acc {sk.train_acc:.3f}/{sk.test_acc:.3f}"
                f" | {sk.seconds / ours.seconds:5.1f}x, importance max|diff| {diff:.4f}"
                f" (top: sklearn {np.argmax(sk.importances)}, ours "
                f"{np.argmax(ours.importances)})"
            )
        print(line, flush=True)
    summary = f"total: ours {total_ours:.2f} s"
    if not args.skip_sklearn:
        summary += f", sklearn {total_sk:.2f} s, {total_sk / total_ours:.1f}x"
    print(summary + " (fit + predict on train and test, one thread)")
    if args.threads > 1:
        largest_first = sorted(range(len(args.factors)), key=lambda j: -args.factors[j])

        def fit_one(j: int) -> Result:
            y_train, y_test = factors[: args.n_train, j], factors[args.n_train :, j]
            return run(HistGBTClassifier(), x_train, y_train, x_test, y_test)

        start = time.perf_counter()
        with ThreadPoolExecutor(args.threads) as pool:
            list(pool.map(fit_one, largest_first))
        print(
            f"ours on {args.threads} threads, largest factor first: "
            f"{time.perf_counter() - start:.2f} s"
        )


if __name__ == "__main__":
    main()
