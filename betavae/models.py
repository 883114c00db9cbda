"""Encoders/decoders for 64×64 images: the Burgess et al. (2017) conv net and Higgins' MLP.

Both map images ``[B, C, 64, 64]`` to a diagonal Gaussian posterior and latents back to
per-pixel logits; :class:`VAEOutput` carries ``mu``, ``logvar`` and ``logits`` together.

Weights start as He et al. (2015) normal draws with the gain of the activation that follows
each layer, biases at zero (:func:`initialise`). PyTorch's default layer initialisation
(uniform, variance 1/(3·fan_in)) shrinks the signal about 2.4× per ReLU layer: at step 0 the
Burgess encoder's posterior means then vary by 3e-4 across images while σ ≈ 1, so a capacity
objective meets its KL target by narrowing σ around a constant code, which carries nothing
and which the decoder cannot read (recon stayed at the ignore-the-input level). With this
initialisation they vary by 0.15 from the start.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

MODEL_NAMES = ("burgess", "mlp")


class VAEOutput(NamedTuple):
    mu: torch.Tensor  # (B, d) posterior means
    logvar: torch.Tensor  # (B, d) posterior log-variances
    logits: torch.Tensor  # (B, C, 64, 64) reconstruction logits


class VAE(nn.Module):
    """Shared reparameterised forward pass; subclasses define ``encoder`` and ``decoder``."""

    latent_dim: int
    encoder: nn.Module
    decoder: nn.Module

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Images ``[B, C, 64, 64]`` → ``(mu, logvar)``, each ``[B, d]``."""
        mu, logvar = self.encoder(x).chunk(2, dim=1)
        return mu, logvar

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Latents ``[B, d]`` → logits ``[B, C, 64, 64]``."""
        return self.decoder(z)

    def forward(self, x: torch.Tensor, noise: torch.Tensor) -> VAEOutput:
        """``noise`` ~ N(0, I) of shape ``[B, d]``: passed in so the caller owns the RNG."""
        mu, logvar = self.encode(x)
        z = mu + torch.exp(0.5 * logvar) * noise
        return VAEOutput(mu, logvar, self.decode(z))


def _fan_in(layer: nn.Module) -> float:
    """Inputs that feed each output unit (a transposed conv's kernel taps split over its stride)."""
    if isinstance(layer, nn.Linear):
        return layer.in_features
    kh, kw = layer.kernel_size
    if isinstance(layer, nn.ConvTranspose2d):
        return layer.in_channels * kh * kw / (layer.stride[0] * layer.stride[1])
    return layer.in_channels * kh * kw


def initialise(model: nn.Module) -> nn.Module:
    """He et al. (2015) normal weights, std = gain / √fan_in with the gain of the activation
    that follows (√2 for ReLU, 5/3 for tanh, 1 for none), and zero biases, for every conv and
    linear layer in ``model``'s ``nn.Sequential`` blocks. Returns ``model``."""
    gains = {nn.ReLU: nn.init.calculate_gain("relu"), nn.Tanh: nn.init.calculate_gain("tanh")}
    skip = nn.Flatten | nn.Unflatten
    for block in model.modules():
        if not isinstance(block, nn.Sequential):
            continue
        layers = list(block)
        for i, layer in enumerate(layers):
            if not isinstance(layer, nn.Conv2d | nn.ConvTranspose2d | nn.Linear):
                continue
            after = next((type(m) for m in layers[i + 1 :] if not isinstance(m, skip)), None)
            with torch.no_grad():
                layer.weight.normal_(0.0, gains.get(after, 1.0) / _fan_in(layer) ** 0.5)
                layer.bias.zero_()
    return model


class BurgessVAE(VAE):
    """Burgess et al. 2017, appendix A.1: 4× [conv 32, 4×4, stride 2] → FC 256 → FC 256.

    The decoder mirrors it with transposed convolutions.
    """

    def __init__(self, latent_dim: int = 10, channels: int = 1, width: int = 32) -> None:
        super().__init__()
        self.latent_dim = latent_dim

        def down(c_in: int) -> list[nn.Module]:
            return [nn.Conv2d(c_in, width, 4, stride=2, padding=1), nn.ReLU(inplace=True)]

        def up(c_out: int, last: bool = False) -> list[nn.Module]:
            conv = nn.ConvTranspose2d(width, c_out, 4, stride=2, padding=1)
            return [conv] if last else [conv, nn.ReLU(inplace=True)]

        self.encoder = nn.Sequential(
            *down(channels), *down(width), *down(width), *down(width),  # 64 → 32 → 16 → 8 → 4
            nn.Flatten(),
            nn.Linear(width * 16, 256), nn.ReLU(inplace=True),
            nn.Linear(256, 256), nn.ReLU(inplace=True),
            nn.Linear(256, 2 * latent_dim),
        )  # fmt: skip
        self.decoder = nn.Sequential(
            nn.Linear(latent_dim, 256), nn.ReLU(inplace=True),
            nn.Linear(256, 256), nn.ReLU(inplace=True),
            nn.Linear(256, width * 16), nn.ReLU(inplace=True),
            nn.Unflatten(1, (width, 4, 4)),
            *up(width), *up(width), *up(width), *up(channels, last=True),  # 4 → … → 64
        )  # fmt: skip
        initialise(self)


class MLPVAE(VAE):
    """Higgins et al. 2017 (dSprites): 4096 → 1200 → 1200 → d; d → 1200 ×3 → 4096 (tanh)."""

    def __init__(self, latent_dim: int = 10, channels: int = 1, hidden: int = 1200) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        pixels = channels * 64 * 64
        self.encoder = nn.Sequential(
            nn.Flatten(),
            nn.Linear(pixels, hidden), nn.ReLU(inplace=True),
            nn.Linear(hidden, hidden), nn.ReLU(inplace=True),
            nn.Linear(hidden, 2 * latent_dim),
        )  # fmt: skip
        self.decoder = nn.Sequential(
            nn.Linear(latent_dim, hidden), nn.Tanh(),
            nn.Linear(hidden, hidden), nn.Tanh(),
            nn.Linear(hidden, hidden), nn.Tanh(),
            nn.Linear(hidden, pixels),
            nn.Unflatten(1, (channels, 64, 64)),
        )  # fmt: skip
        initialise(self)


def build_model(name: str, latent_dim: int, channels: int) -> VAE:
    """The model a config names (``"burgess"`` or ``"mlp"``)."""
    if name == "burgess":
        return BurgessVAE(latent_dim, channels)
    if name == "mlp":
        return MLPVAE(latent_dim, channels)
    raise ValueError(f"model must be one of {MODEL_NAMES}, got {name!r}")
