"""``python -m betavae.data``: write dSprites in the official format, or summarise a dataset.

python -m betavae.data dsprites --out FILE.npz     # the procedural set as the official npz
python -m betavae.data stats dsprites-npz:FILE.npz  # mean pixel, ignore-the-input NLL
python -m betavae.data stats images:FOLDER          # the same for your own images
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from betavae.data.dsprites_npz import write_npz


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m betavae.data",
        description="Write a procedurally generated dataset in its official file format.",
    )
    sub = parser.add_subparsers(dest="dataset", required=True)
    dsprites = sub.add_parser(
        "dsprites", help="all 737,280 dSprites images as the official npz layout"
    )
    dsprites.add_argument("--out", required=True, type=Path, help="output .npz path")
    stats = sub.add_parser(
        "stats", help="a dataset's mean pixel and the NLL of a model that ignores its input"
    )
    stats.add_argument(
        "spec", help="a dataset spec, e.g. dsprites, dsprites-npz:FILE.npz or images:FOLDER"
    )
    args = parser.parse_args(argv)
    if args.dataset == "stats":
        return _stats(args.spec)
    if not args.out.parent.is_dir():
        print(f"error: --out: directory {args.out.parent} does not exist", file=sys.stderr)
        return 2
    start = time.perf_counter()
    write_npz(args.out)
    size_mb = args.out.stat().st_size / 1e6
    print(f"wrote {args.out} ({size_mb:.1f} MB) in {time.perf_counter() - start:.1f} s")
    return 0


def _stats(spec: str) -> int:
    from betavae.data import DatasetFileError, load_dataset
    from betavae.data.stats import bernoulli_floor_nll, ignore_input_nll, mean_image

    try:
        dataset = load_dataset(spec)
    except (ValueError, DatasetFileError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{spec}: {len(dataset):,} images, mean pixel {mean_image(dataset).mean():.4f}")
    held_out = len(dataset) - dataset.train_rows
    if held_out:
        print(f"{dataset.train_rows:,} for training, {held_out:,} held out for scoring")
    if dataset.likelihood == "bernoulli" and dataset.deterministic:
        print(f"ignore-the-input reconstruction NLL: {ignore_input_nll(dataset):.1f} nats")
        if not dataset.has_factors:  # grey levels: even a perfect reconstruction costs nats
            floor = bernoulli_floor_nll(dataset)
            print(f"perfect-reconstruction NLL (the Bernoulli floor): {floor:.1f} nats")
    return 0


if __name__ == "__main__":
    sys.exit(main())
