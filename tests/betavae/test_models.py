from __future__ import annotations

import pytest
import torch

from betavae.models import MLPVAE, BurgessVAE, VAEOutput, build_model


@pytest.mark.parametrize("name", ["burgess", "mlp"])
@pytest.mark.parametrize(("latent_dim", "channels"), [(10, 1), (4, 3)])
def test_forward_shapes(name, latent_dim, channels):
    model = build_model(name, latent_dim, channels)
    x = torch.rand(5, channels, 64, 64)
    out = model(x, torch.randn(5, latent_dim))
    assert isinstance(out, VAEOutput)
    assert out.mu.shape == out.logvar.shape == (5, latent_dim)
    assert out.logits.shape == (5, channels, 64, 64)


@pytest.mark.parametrize("model", [BurgessVAE(6), MLPVAE(6)])
def test_gradients_reach_the_first_encoder_layer(model):
    x = (torch.rand(4, 1, 64, 64) > 0.5).float()
    out = model(x, torch.randn(4, 6))
    (out.logits.mean() + out.mu.pow(2).mean()).backward()
    first = next(model.encoder.parameters())
    assert first.grad is not None and first.grad.abs().sum() > 0


def test_the_burgess_architecture():
    model = BurgessVAE(10, 1)
    convs = [m for m in model.encoder if isinstance(m, torch.nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size, c.stride) for c in convs] == [(32, (4, 4), (2, 2))] * 4
    linears = [m.out_features for m in model.encoder if isinstance(m, torch.nn.Linear)]
    assert linears == [256, 256, 20]


def test_noise_is_the_callers():
    model = BurgessVAE(3)
    x = torch.rand(2, 1, 64, 64)
    a = model(x, torch.zeros(2, 3))
    b = model(x, torch.zeros(2, 3))
    torch.testing.assert_close(a.logits, b.logits)
    torch.testing.assert_close(a.logits, model.decode(model.encode(x)[0]))


def test_unknown_model_is_rejected():
    with pytest.raises(ValueError, match="model must be one of"):
        build_model("resnet", 10, 1)
