"""The training loop: a :class:`Trainer` that owns the step, the optimiser and every RNG.

Data live on the training device as one uint8 storage tensor; each step gathers a batch by
index from the training rows and decodes it there; evaluation draws from the held-out rows
when the dataset has them. Logged values are accumulated on the device and read back only
every ``log_every`` steps, so the loop never waits on the device in between. The capacity
target is ``capacity(step)``: a restored run continues C where it stopped, and evaluation never
advances it.
"""

from __future__ import annotations

import contextlib
import platform
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from betavae.config import TrainConfig
from betavae.data import ImageDataset
from betavae.models import VAE, build_model
from betavae.objectives import (
    bernoulli_nll,
    beta_objective,
    capacity,
    capacity_objective,
    gaussian_nll,
    kl_per_dim,
)

Metrics = dict[str, Any]
Callback = Callable[[Metrics], None]


def resolve_device(config: TrainConfig) -> torch.device:
    if config.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if config.device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' was asked for but torch sees no CUDA device")
    return torch.device(config.device)


def resolve_autocast_dtype(config: TrainConfig, device: torch.device) -> torch.dtype | None:
    """The autocast dtype, or None for plain fp32.

    ``auto`` picks what measured fastest (bench/RESULTS.md): bf16 on CPUs with bf16 arithmetic
    in hardware (~1.4× over fp32 on 2 cores), fp32 on other CPUs and on CUDA. On an AVX-512 CPU
    without AVX512-BF16 or AMX, oneDNN still accepts bf16 but emulates it: 0.28× fp32 (348
    against 1,227 img/s on 2 cores). On CUDA these small convolutions are bound by kernel
    launches and autocast's casts only add launches (bf16 was 0.68× fp32 at batch 64 on an
    H100).
    """
    if config.precision == "fp32":
        return None
    if config.precision == "bf16":
        return torch.bfloat16
    if device.type == "cuda":
        return None
    return torch.bfloat16 if native_cpu_bf16() else None


def native_cpu_bf16() -> bool:
    """Whether this CPU computes in bf16 in hardware, not only through oneDNN's emulation.

    x86: AVX512-BF16 or AMX; ``torch.ops.mkldnn._is_mkldnn_bf16_supported`` alone is true on
    any AVX-512 CPU. Elsewhere (aarch64) oneDNN's own check requires the bf16 extension.
    """
    if not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        return False
    if platform.machine().lower() not in ("x86_64", "amd64", "i386", "i686"):
        return True
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in probes)


def _as_tensor(array: np.ndarray) -> torch.Tensor:
    """Share a read-only array's memory; the trainer only ever reads the storage."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(np.ascontiguousarray(array))


class Trainer:
    """Trains one VAE on one dataset according to a :class:`TrainConfig`.

    Training batches come from the dataset's rows ``[0, train_rows)``; :meth:`evaluate` scores
    the held-out rows ``[train_rows, N)`` when there are any, else all rows.
    """

    def __init__(
        self, config: TrainConfig, dataset: ImageDataset, device: torch.device | None = None
    ) -> None:
        self.config = config
        self.dataset = dataset
        self.device = device or resolve_device(config)
        self.autocast_dtype = resolve_autocast_dtype(config, self.device)
        self.step = 0

        torch.manual_seed(config.seed)  # weight initialisation only
        model = build_model(config.model, config.latent_dim, dataset.num_channels)
        self.memory_format = (
            torch.channels_last if config.channels_last else torch.contiguous_format
        )
        self.model: VAE = model.to(self.device, memory_format=self.memory_format)
        self.optimizer = torch.optim.Adam(
            self.model.parameters(), lr=config.lr, fused=self._fused_adam_supported()
        )
        self._forward = torch.compile(self.model) if config.compile else self.model
        self.storage = _as_tensor(dataset.storage()).to(self.device)
        rows = self.storage.shape[0]
        if not 1 <= dataset.train_rows <= rows:
            raise ValueError(f"dataset.train_rows must be in [1, {rows}], got {dataset.train_rows}")
        self.train_rows = dataset.train_rows
        #: The rows :meth:`evaluate` draws from: the held-out ones, or all when there are none.
        self.eval_rows = range(self.train_rows, rows) if self.train_rows < rows else range(rows)
        self.batch_rng = torch.Generator(self.device).manual_seed(config.seed)
        self.noise_rng = torch.Generator(self.device).manual_seed(config.seed + 1)

    def _fused_adam_supported(self) -> bool:
        return self.device.type in ("cpu", "cuda")

    # -- the objective -------------------------------------------------------------------
    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def _recon_nll(self, logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        if self.config.recon == "bernoulli":
            return bernoulli_nll(logits, x)
        return gaussian_nll(logits, x, self.config.recon_sigma)

    def _batch(self, index: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
        x = self.dataset.decode(self.storage[index], rng)
        return x.contiguous(memory_format=self.memory_format)

    def capacity_at(self, step: int) -> float:
        c = self.config
        return capacity(step, c.capacity_min, c.capacity_max, c.capacity_anneal_steps)

    def _loss(
        self, x: torch.Tensor, noise: torch.Tensor, step: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Returns ``(loss, recon_nll, kl_per_dim)`` for a batch at a given step."""
        with self._autocast():
            out = self._forward(x, noise)
        recon = self._recon_nll(out.logits, x)
        kl_dims = kl_per_dim(out.mu, out.logvar)
        kl = kl_dims.sum()
        if self.config.objective == "beta":
            loss = beta_objective(recon, kl, self.config.beta)
        else:
            loss = capacity_objective(recon, kl, self.config.gamma, self.capacity_at(step))
        return loss, recon, kl_dims

    # -- training ------------------------------------------------------------------------
    def fit(
        self,
        until: int | None = None,
        *,
        log_every: int = 100,
        callback: Callback | None = None,
    ) -> Metrics | None:
        """Train from the current step up to ``until`` (default ``config.steps``).

        Every ``log_every`` steps (and at the last step) ``callback`` receives the metrics
        averaged over the steps since the previous call: ``step``, ``loss``, ``recon_nll``,
        ``kl``, ``kl_per_dim`` (list), ``images_per_s`` and, for the capacity objective,
        ``capacity`` (C at the last step).
        A non-finite loss raises :class:`FloatingPointError` at the next log point. Returns the
        last metrics dict (None if there was nothing to do).
        """
        until = self.config.steps if until is None else until
        if log_every < 1:
            raise ValueError(f"log_every must be >= 1, got {log_every}")
        self.model.train()
        batch_size, n = self.config.batch_size, self.train_rows
        sums = torch.zeros(3, device=self.device)  # loss, recon, kl
        kl_sums = torch.zeros(self.config.latent_dim, device=self.device)
        window_start, window_steps, last = time.perf_counter(), 0, None
        while self.step < until:
            index = torch.randint(n, (batch_size,), generator=self.batch_rng, device=self.device)
            x = self._batch(index, self.noise_rng)
            noise = torch.randn(
                batch_size, self.config.latent_dim, generator=self.noise_rng, device=self.device
            )
            loss, recon, kl_dims = self._loss(x, noise, self.step)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            self.step += 1
            window_steps += 1
            sums += torch.stack([loss.detach(), recon.detach(), kl_dims.detach().sum()])
            kl_sums += kl_dims.detach()
            if self.step % log_every == 0 or self.step == until:
                means = (sums / window_steps).tolist()
                if not all(np.isfinite(means)):
                    raise FloatingPointError(
                        f"loss is not finite at step {self.step} (loss, recon_nll, kl = {means})"
                    )
                elapsed = time.perf_counter() - window_start
                last = {
                    "step": self.step,
                    "loss": means[0],
                    "recon_nll": means[1],
                    "kl": means[2],
                    "kl_per_dim": (kl_sums / window_steps).tolist(),
                    "images_per_s": window_steps * batch_size / elapsed,
                }
                if self.config.objective == "capacity":  # the β objective has no C
                    last["capacity"] = self.capacity_at(self.step)
                if callback is not None:
                    callback(last)
                sums.zero_()
                kl_sums.zero_()
                window_start, window_steps = time.perf_counter(), 0
        return last

    # -- evaluation ----------------------------------------------------------------------
    @torch.inference_mode()
    def evaluate(self, num_images: int = 10_000, seed: int = 0, batch_size: int = 1024) -> Metrics:
        """ELBO terms on a fixed random subset of :attr:`eval_rows` (the held-out rows, or all
        rows of a dataset without a split): ``recon_nll``, ``kl``, ``kl_per_dim``.

        Uses its own generator: the training RNGs and the step are untouched.
        """
        self.model.eval()
        rng = torch.Generator(self.device).manual_seed(seed)
        pool = self.eval_rows
        n = min(num_images, len(pool))
        index = pool.start + torch.randperm(len(pool), generator=rng, device=self.device)[:n]
        recon_sum, kl_sum = 0.0, torch.zeros(self.config.latent_dim, device=self.device)
        for chunk in index.split(batch_size):
            x = self._batch(chunk, rng)
            noise = torch.randn(
                len(chunk), self.config.latent_dim, generator=rng, device=self.device
            )
            with self._autocast():
                out = self.model(x, noise)
            recon_sum += float(self._recon_nll(out.logits, x)) * len(chunk)
            kl_sum += kl_per_dim(out.mu, out.logvar) * len(chunk)
        self.model.train()
        kl = (kl_sum / n).tolist()
        return {"recon_nll": recon_sum / n, "kl": float(sum(kl)), "kl_per_dim": kl}

    def encode(self, images: np.ndarray | torch.Tensor, batch_size: int = 1024) -> np.ndarray:
        """Posterior means ``[n, d]`` (float32) of float images ``[n, C, 64, 64]``."""
        return self.posterior(images, batch_size)[0]

    @torch.inference_mode()
    def posterior(
        self, images: np.ndarray | torch.Tensor, batch_size: int = 1024
    ) -> tuple[np.ndarray, np.ndarray]:
        """Posterior ``(mu, logvar)``, each ``[n, d]`` float32, of images ``[n, C, 64, 64]``."""
        self.model.eval()
        images = torch.as_tensor(images)
        mus, logvars = [], []
        for chunk in images.split(batch_size):
            x = chunk.to(self.device).float().contiguous(memory_format=self.memory_format)
            with self._autocast():
                mu, logvar = self.model.encode(x)
            mus.append(mu.float().cpu())
            logvars.append(logvar.float().cpu())
        self.model.train()
        return torch.cat(mus).numpy(), torch.cat(logvars).numpy()

    def training_state(self) -> dict[str, Any]:
        """Everything but the weights needed to continue exactly: step, optimiser, RNGs."""
        return {
            "step": self.step,
            "optimizer": self.optimizer.state_dict(),
            "batch_rng": self.batch_rng.get_state(),
            "noise_rng": self.noise_rng.get_state(),
        }

    def load_training_state(self, state: dict[str, Any]) -> None:
        self.step = int(state["step"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.batch_rng.set_state(state["batch_rng"])
        self.noise_rng.set_state(state["noise_rng"])
