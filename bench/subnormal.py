"""Training speed of a trained model on the CPU with fp32 subnormals kept or flushed to zero.

    python bench/subnormal.py CHECKPOINT [--threads 1] [--steps 150] [--rounds 2]

A freshly initialised model trains at full speed; over a long run some weights, gradients and
Adam moments drift below fp32's smallest normal number (1.2e-38), and on x86 every operation
on such a subnormal takes a slow path. This loads a checkpoint (a resume checkpoint of
``python -m analysis.reproduce`` or a finished one) and times the same steps both ways,
alternating, each from the checkpoint's own state; the ratio is the figure to compare.
"""

from __future__ import annotations

import argparse
import time

import torch

from betavae.checkpoint import load_checkpoint, read_config
from betavae.data import ImageDataset, load_dataset


def steps_per_second(checkpoint: str, dataset: ImageDataset, steps: int, flush: bool) -> float:
    torch.set_flush_denormal(flush)
    trainer = load_checkpoint(checkpoint, dataset)
    trainer.fit(trainer.step + 20, log_every=20)  # warm-up
    start = time.perf_counter()
    trainer.fit(trainer.step + steps, log_every=steps)
    return steps / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    dataset = load_dataset(read_config(args.checkpoint).dataset)
    kept, flushed = [], []
    for _ in range(args.rounds):
        kept.append(steps_per_second(args.checkpoint, dataset, args.steps, flush=False))
        flushed.append(steps_per_second(args.checkpoint, dataset, args.steps, flush=True))
    k, f = max(kept), max(flushed)
    print(f"{args.checkpoint}: {args.threads} thread(s), {args.steps} steps, best of {args.rounds}")
    print(f"subnormals kept    {k:6.1f} steps/s")
    print(f"flushed to zero    {f:6.1f} steps/s   ratio {f / k:.2f}x")


if __name__ == "__main__":
    main()
