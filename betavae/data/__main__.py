"""``python -m betavae.data dsprites --out FILE.npz``: write dSprites in the official format."""

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
    args = parser.parse_args(argv)
    if not args.out.parent.is_dir():
        print(f"error: --out: directory {args.out.parent} does not exist", file=sys.stderr)
        return 2
    start = time.perf_counter()
    write_npz(args.out)
    size_mb = args.out.stat().st_size / 1e6
    print(f"wrote {args.out} ({size_mb:.1f} MB) in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
