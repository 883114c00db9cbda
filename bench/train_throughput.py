"""Training throughput: our loop against a typical repository loop, measured in one run.

The baseline is what most public β-VAE repositories do: a ``Dataset`` whose ``__getitem__``
returns one float image, a shuffling ``DataLoader`` with batch 64, a plain fp32 model in the
default memory format and ``torch.optim.Adam``. Ours is :class:`betavae.training.Trainer` with
its defaults (bf16 autocast where native, channels_last, fused Adam, uint8 storage gathered by
index). Same model (Burgess conv VAE), same objective, same batch size.

    python bench/train_throughput.py [--threads 1 2] [--steps 300] [--device cpu]

Prints images/s for both and the ratio, per thread count.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from betavae.config import TrainConfig
from betavae.data import DSprites
from betavae.models import BurgessVAE
from betavae.objectives import bernoulli_nll, beta_objective, kl_per_dim
from betavae.training import Trainer


class TypicalDSprites(Dataset):
    """One image per ``__getitem__``, as float, as in most public repositories."""

    def __init__(self, imgs: np.ndarray) -> None:
        self.imgs = imgs

    def __len__(self) -> int:
        return len(self.imgs)

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.from_numpy(self.imgs[i]).float().unsqueeze(0)


def typical_loop(imgs: np.ndarray, steps: int, warmup: int, batch_size: int, device: str) -> float:
    torch.manual_seed(0)
    model = BurgessVAE(10, 1).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=5e-4)
    loader = DataLoader(TypicalDSprites(imgs), batch_size=batch_size, shuffle=True, drop_last=True)
    it = iter(loader)
    start = None
    for step in range(warmup + steps):
        if step == warmup:
            if device == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
        x = next(it).to(device)
        out = model(x, torch.randn(x.shape[0], 10, device=device))
        loss = beta_objective(
            bernoulli_nll(out.logits, x), kl_per_dim(out.mu, out.logvar).sum(), 4.0
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
    loss.item()
    return steps * batch_size / (time.perf_counter() - start)


def our_loop(dataset: DSprites, steps: int, warmup: int, **overrides) -> float:
    config = TrainConfig(steps=warmup + steps, **overrides)
    trainer = Trainer(config, dataset)
    trainer.fit(until=warmup, log_every=warmup)  # includes any compile
    rates = []
    trainer.fit(log_every=steps, callback=lambda m: rates.append(m["images_per_s"]))
    return rates[-1]


VARIANTS = {
    "default": {},
    "fp32": {"precision": "fp32"},
    "bf16": {"precision": "bf16"},
    "bf16+compile": {"precision": "bf16", "compile": True},
    "fp32+compile": {"precision": "fp32", "compile": True},
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[2, 1])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[64])
    parser.add_argument("--variants", nargs="+", default=["default"], choices=sorted(VARIANTS))
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    args = parser.parse_args(argv)
    dataset = DSprites()
    imgs = np.unpackbits(dataset.storage(), axis=-1)  # the baseline gets plain uint8 images
    name = torch.cuda.get_device_name() if args.device == "cuda" else f"{args.device}"
    print(f"device={name} steps={args.steps} (+{args.warmup} warm-up), torch {torch.__version__}")
    header = (
        ("threads", 7),
        ("batch", 5),
        ("variant", 13),
        ("typical img/s", 14),
        ("ours img/s", 11),
    )
    print(" ".join(f"{h:>{w}}" for h, w in header), f"{'ratio':>6}")
    for threads in args.threads:
        torch.set_num_threads(threads)
        for batch in args.batch_sizes:
            base = typical_loop(imgs, args.steps, args.warmup, batch, args.device)
            for variant in args.variants:
                ours = our_loop(
                    dataset, args.steps, args.warmup,
                    batch_size=batch, device=args.device, **VARIANTS[variant],
                )  # fmt: skip
                print(
                    f"{threads:>7} {batch:>5} {variant:>13} {base:>14.0f} {ours:>11.0f} "
                    f"{ours / base:>5.2f}x",
                    flush=True,
                )


if __name__ == "__main__":
    main()
