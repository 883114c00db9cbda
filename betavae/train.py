"""``python -m betavae.train``: train one β-VAE or capacity-controlled β-VAE from the shell.

Writes ``OUT/metrics.json`` (final ELBO terms in nats per image, throughput, the full config,
library versions), ``OUT/history.jsonl`` (one line per log point) and ``OUT/checkpoint/``.
``--resume`` continues from ``OUT/checkpoint`` exactly where it stopped.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

import torch

from betavae.checkpoint import CheckpointError, load_checkpoint, read_config, save_checkpoint
from betavae.command import program_name
from betavae.config import ConfigError, TrainConfig
from betavae.data import DATASET_SPECS, DatasetFileError, load_dataset
from betavae.training import Trainer
from betavae.versions import library_versions

PROG = program_name("python -m betavae.train")
_DEFAULTS = TrainConfig()
#: Fields a --resume may change: how long and where to train, not what is trained.
_RESUMABLE_CHANGES = {"steps", "device", "precision", "compile", "channels_last"}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def _flag(field: str) -> str:
    return "--" + field.replace("_", "-")


def _fail(message: str) -> NoReturn:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog=PROG, description=__doc__.split("\n")[0].split(": ", 1)[1])
    d, S = _DEFAULTS, argparse.SUPPRESS

    def opt(field: str, type_: Any, help_: str, **kw: Any) -> None:
        default = getattr(d, field)
        p.add_argument(_flag(field), dest=field, type=type_, default=S, **kw,
                       help=f"{help_} (default: {default})")  # fmt: skip

    opt("objective", str, "beta: recon + β·KL; capacity: recon + γ·|KL − C|",
        choices=["beta", "capacity"])  # fmt: skip
    opt("beta", float, "KL weight β of the beta objective, > 0 (1 = plain VAE)")
    opt("gamma", float, "weight γ of |KL − C| in the capacity objective, > 0")
    opt("capacity_min", float, "capacity C at step 0, nats, >= 0")
    opt("capacity_max", float, "capacity C after the anneal, nats, >= --capacity-min")
    opt("capacity_anneal_steps", int, "steps over which C rises linearly, >= 0")
    opt("latent_dim", int, "number of latents, 1..1024")
    opt("model", str, "encoder/decoder", choices=["burgess", "mlp"])
    opt("recon", str, "reconstruction likelihood", choices=["bernoulli", "gaussian"])
    opt("recon_sigma", float, "pixel std of the gaussian likelihood, > 0")
    opt("steps", int, "optimiser steps in total, >= 1")
    opt("batch_size", int, "images per step, >= 1")
    opt("lr", float, "Adam learning rate, in (0, 1]")
    opt("seed", int, "seed for weights, batches and noise, >= 0")
    opt("dataset", str, "one of " + ", ".join(DATASET_SPECS))
    opt("precision", str, "autocast dtype; auto = bf16 on CPUs with native bf16, else fp32",
        choices=["auto", "fp32", "bf16"])  # fmt: skip
    opt("device", str, "training device", choices=["auto", "cpu", "cuda"])
    p.add_argument("--no-channels-last", dest="channels_last", action="store_false", default=S,
                   help="use the default memory format instead of channels_last")  # fmt: skip
    p.add_argument("--compile", dest="compile", action="store_true", default=S,
                   help="wrap the model in torch.compile")  # fmt: skip
    p.add_argument("--out", type=Path, required=True, help="output directory")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint")
    p.add_argument("--log-every", type=int, default=100, help="steps per log line (default: 100)")
    p.add_argument("--checkpoint-every", type=int, default=1000,
                   help="steps between checkpoints (default: 1000)")  # fmt: skip
    p.add_argument("--eval-images", type=int, default=10_000,
                   help="images in the final ELBO evaluation, from the held-out ones of a "
                   "dataset that has them (default: 10000)")  # fmt: skip
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: torch's choice)")  # fmt: skip
    return p


_RUN_FLAGS = ("out", "resume", "log_every", "checkpoint_every", "eval_images", "threads")


def _config_from_args(args: argparse.Namespace, base: TrainConfig | None) -> TrainConfig:
    given = {k: v for k, v in vars(args).items() if k not in _RUN_FLAGS}
    try:
        if base is None:
            return TrainConfig(**given)
        for field, value in given.items():
            if field not in _RESUMABLE_CHANGES and value != getattr(base, field):
                _fail(
                    f"{_flag(field)}: got {value!r} but the checkpoint in {args.out} was "
                    f"trained with {getattr(base, field)!r}; drop the flag or use a new --out"
                )
        return dataclasses.replace(base, **given)
    except ConfigError as err:
        _fail(f"{_flag(err.field)}: got {err.value!r}; allowed: {err.allowed}")


def _check_run_flags(args: argparse.Namespace) -> None:
    for name, low in (("log_every", 1), ("checkpoint_every", 1), ("eval_images", 1)):
        if getattr(args, name) < low:
            _fail(f"{_flag(name)}: got {getattr(args, name)}; allowed: an integer >= {low}")
    if args.threads is not None and args.threads < 1:
        _fail(f"--threads: got {args.threads}; allowed: an integer >= 1")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _check_run_flags(args)
    ckpt_dir = args.out / "checkpoint"
    if args.resume and not ckpt_dir.is_dir():
        _fail(f"--resume: no checkpoint in {ckpt_dir}; run once without --resume first")
    if not args.resume and ckpt_dir.exists():
        _fail(f"--out: {args.out} already holds a run; pass --resume or choose a new --out")
    try:
        base = read_config(ckpt_dir) if args.resume else None
        config = _config_from_args(args, base)
        dataset = load_dataset(config.dataset)
        if args.threads is not None:
            torch.set_num_threads(args.threads)
        if args.resume:
            trainer = load_checkpoint(ckpt_dir, dataset, config=config)
        else:
            trainer = Trainer(config, dataset)
    except (DatasetFileError, CheckpointError) as err:
        _fail(str(err))
    args.out.mkdir(parents=True, exist_ok=True)
    return _run(trainer, args, ckpt_dir)


def _run(trainer: Trainer, args: argparse.Namespace, ckpt_dir: Path) -> int:
    from tqdm import tqdm

    config = trainer.config
    history = args.out / "history.jsonl"
    kept = []
    if args.resume and history.exists():  # drop lines logged after the checkpoint
        kept = [
            ln for ln in history.read_text().splitlines() if json.loads(ln)["step"] <= trainer.step
        ]
    history.write_text("".join(ln + "\n" for ln in kept))
    bar = tqdm(total=config.steps, initial=trainer.step, unit="step", dynamic_ncols=True)
    train_seconds, images = 0.0, 0

    with history.open("a") as log:

        def on_log(m: dict[str, Any]) -> None:
            log.write(json.dumps(m) + "\n")
            log.flush()
            bar.update(m["step"] - bar.n)
            shown = {"loss": f"{m['loss']:.1f}", "recon": f"{m['recon_nll']:.1f}",
                     "kl": f"{m['kl']:.2f}"}  # fmt: skip
            if config.objective == "capacity":  # C means nothing to the β objective
                shown["C"] = f"{m['capacity']:.1f}"
            bar.set_postfix(shown)

        try:
            while trainer.step < config.steps:
                target = min(
                    config.steps,
                    (trainer.step // args.checkpoint_every + 1) * args.checkpoint_every,
                )
                start_step, start = trainer.step, time.perf_counter()
                trainer.fit(target, log_every=args.log_every, callback=on_log)
                train_seconds += time.perf_counter() - start
                images += (trainer.step - start_step) * config.batch_size
                save_checkpoint(trainer, ckpt_dir)
        except FloatingPointError as err:
            bar.close()
            _fail(f"training diverged: {err}; try a lower --lr")
    bar.close()
    final = trainer.evaluate(args.eval_images)
    result = {
        "recon_nll": final["recon_nll"],
        "kl": final["kl"],
        "kl_per_dim": final["kl_per_dim"],
        "step": trainer.step,
        "images_per_s": images / train_seconds if train_seconds else None,
        "eval_images": min(args.eval_images, len(trainer.eval_rows)),
        "device": str(trainer.device),
        "autocast_dtype": str(trainer.autocast_dtype) if trainer.autocast_dtype else "fp32",
        "config": config.to_dict(),
        "versions": library_versions(),
    }
    (args.out / "metrics.json").write_text(json.dumps(result, indent=2) + "\n")
    active = sum(k > 0.01 for k in final["kl_per_dim"])
    print(
        f"step {trainer.step}: recon_nll {final['recon_nll']:.2f} nats, kl {final['kl']:.2f} nats "
        f"({active} active latents), {result['images_per_s'] or 0:.0f} images/s "
        f"→ {args.out / 'metrics.json'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
