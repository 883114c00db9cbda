from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from betavae import training
from betavae.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from betavae.config import TrainConfig
from betavae.data import DSprites
from betavae.training import Trainer


@pytest.fixture(scope="module")
def dsprites() -> DSprites:
    return DSprites()


def _config(**kw) -> TrainConfig:
    base = dict(steps=40, batch_size=32, latent_dim=4, device="cpu", lr=1e-3)
    return TrainConfig(**{**base, **kw})


def _weights(trainer: Trainer) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}


def test_a_short_run_lowers_the_loss(dsprites):
    logs = []
    Trainer(_config(steps=150), dsprites).fit(log_every=50, callback=logs.append)
    assert [m["step"] for m in logs] == [50, 100, 150]
    assert logs[-1]["loss"] < 0.6 * logs[0]["loss"]
    # No "capacity": C is the capacity objective's, and a β run's history (and the KL picture
    # drawn from it) carried a default anneal the run never used.
    assert set(logs[0]) == {"step", "loss", "recon_nll", "kl", "kl_per_dim", "images_per_s"}
    assert len(logs[0]["kl_per_dim"]) == 4 and logs[0]["images_per_s"] > 0
    assert logs[0]["kl"] == pytest.approx(sum(logs[0]["kl_per_dim"]), rel=1e-5)


@pytest.mark.parametrize("objective", ["beta", "capacity"])
def test_resume_reproduces_the_uninterrupted_run_exactly(dsprites, tmp_path, objective):
    config = _config(objective=objective, capacity_max=20.0, capacity_anneal_steps=30, gamma=50.0)
    straight_logs, resumed_logs = [], []
    straight = Trainer(config, dsprites)
    straight.fit(log_every=10, callback=straight_logs.append)

    first = Trainer(config, dsprites)
    first.fit(until=20, log_every=10, callback=resumed_logs.append)
    save_checkpoint(first, tmp_path / "ckpt")
    del first
    resumed = load_checkpoint(tmp_path / "ckpt", dsprites)
    assert resumed.step == 20
    resumed.fit(log_every=10, callback=resumed_logs.append)

    assert resumed_logs == [
        dict(m, images_per_s=r["images_per_s"])
        for m, r in zip(straight_logs, resumed_logs, strict=True)
    ]
    for name, value in _weights(straight).items():
        assert torch.equal(value, _weights(resumed)[name]), name


def test_capacity_continues_where_it_stopped(dsprites, tmp_path):
    config = _config(objective="capacity", capacity_max=30.0, capacity_anneal_steps=40, steps=40)
    first = Trainer(config, dsprites)
    logs = []
    first.fit(until=20, log_every=10, callback=logs.append)
    save_checkpoint(first, tmp_path / "c")
    load_checkpoint(tmp_path / "c", dsprites).fit(log_every=10, callback=logs.append)
    assert [m["capacity"] for m in logs] == [7.5, 15.0, 22.5, 30.0]


def test_evaluation_changes_neither_the_step_nor_the_training_stream(dsprites):
    a, b = Trainer(_config(), dsprites), Trainer(_config(), dsprites)
    a.fit(until=10, log_every=10)
    b.fit(until=10, log_every=10)
    result = a.evaluate(num_images=500)
    a.encode(np.zeros((3, 1, 64, 64), np.float32))
    assert a.step == 10 and set(result) == {"recon_nll", "kl", "kl_per_dim"}
    assert result["recon_nll"] > 0 and len(result["kl_per_dim"]) == 4
    assert a.evaluate(num_images=500) == result  # deterministic
    a.fit(log_every=30)
    b.fit(log_every=30)
    for name, value in _weights(a).items():
        assert torch.equal(value, _weights(b)[name])


def test_encode_returns_posterior_means(dsprites):
    trainer = Trainer(_config(), dsprites)
    images = dsprites.images(np.array([[0, 1, 2, 3, 4, 5], [0, 2, 5, 0, 31, 0]]))
    codes = trainer.encode(images)
    assert codes.shape == (2, 4) and codes.dtype == np.float32
    np.testing.assert_allclose(codes, trainer.encode(images))


def test_a_non_finite_loss_stops_training(dsprites):
    trainer = Trainer(_config(), dsprites)
    with torch.no_grad():
        next(trainer.model.parameters()).fill_(float("nan"))
    with pytest.raises(FloatingPointError, match="not finite at step 5"):
        trainer.fit(log_every=5)


@pytest.mark.parametrize("model", ["burgess", "mlp"])
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_models_and_precisions_train(dsprites, model, precision):
    logs = []
    Trainer(_config(model=model, precision=precision, steps=6), dsprites).fit(
        log_every=3, callback=logs.append
    )
    assert len(logs) == 2 and all(np.isfinite(m["loss"]) for m in logs)


@pytest.mark.parametrize(
    ("avx512_bf16", "amx", "expected"),
    [(False, False, None), (True, False, torch.bfloat16), (False, True, torch.bfloat16)],
    ids=["avx512-only", "avx512-bf16", "amx"],
)
def test_auto_precision_trains_in_bf16_only_where_the_cpu_has_it_in_hardware(
    monkeypatch, avx512_bf16, amx, expected
):
    # oneDNN accepts bf16 on any AVX-512 CPU and emulates it where the CPU lacks AVX512-BF16
    # and AMX: there it trained at 0.28x fp32's speed (bench/RESULTS.md).
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: True)
    monkeypatch.setattr(training.platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    dtype = training.resolve_autocast_dtype(_config(), torch.device("cpu"))
    assert dtype == expected
    assert training.resolve_autocast_dtype(_config(precision="bf16"), torch.device("cpu")) == (
        torch.bfloat16
    )


@pytest.mark.parametrize("writer", ["torch.save", "pickle"])
def test_a_malicious_pickle_in_a_checkpoint_runs_no_code(dsprites, tmp_path, writer):
    trainer = Trainer(_config(), dsprites)
    save_checkpoint(trainer, tmp_path / "c")
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    state = tmp_path / "c" / "trainer_state.pt"
    if writer == "torch.save":
        torch.save({"step": Exploit()}, state)
    else:
        state.write_bytes(pickle.dumps({"step": Exploit()}, protocol=2))
    with pytest.raises(CheckpointError, match="refused to load"):
        load_checkpoint(tmp_path / "c", dsprites)
    assert not marker.exists()


def test_incomplete_checkpoint_is_reported(dsprites, tmp_path):
    save_checkpoint(Trainer(_config(), dsprites), tmp_path / "c")
    (tmp_path / "c" / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match=r"missing model\.safetensors"):
        load_checkpoint(tmp_path / "c", dsprites)


@pytest.mark.parametrize(
    ("name", "damage"),
    [
        ("model.safetensors", lambda b: b[: len(b) // 2]),  # truncated: a copy cut short
        ("model.safetensors", lambda b: b""),
        ("trainer_state.pt", lambda b: b""),  # empty: a disk that filled
        ("trainer_state.pt", lambda b: b[: len(b) // 2]),
    ],
)
def test_a_damaged_checkpoint_file_is_named(dsprites, tmp_path, name, damage):
    save_checkpoint(Trainer(_config(), dsprites), tmp_path / "c")
    path = tmp_path / "c" / name
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(CheckpointError, match=rf"{path}: unreadable"):
        load_checkpoint(tmp_path / "c", dsprites)


# -- the trainer optimises the objective its config names --------------------------------
def _per_step_logs(trainer: Trainer) -> list[dict]:
    logs: list[dict] = []
    trainer.fit(log_every=1, callback=logs.append)
    return logs


def test_each_step_minimises_recon_plus_beta_times_kl(dsprites):
    """With β = 4 and γ = 30 (distinct), every step's loss is recon + β·KL: a trainer that
    ignored β, or took γ for it, fails here."""
    logs = _per_step_logs(Trainer(_config(steps=5, beta=4.0, gamma=30.0), dsprites))
    for m in logs:
        assert m["loss"] == pytest.approx(m["recon_nll"] + 4.0 * m["kl"], rel=1e-4)


def test_each_step_minimises_recon_plus_gamma_times_the_distance_to_c(dsprites):
    """Step s trains with C at s - 1 on the schedule (0 → 20 nats over 10 steps), weighted by
    γ = 30 (β = 4 must not enter): a frozen C, a swapped γ and β, fail here."""
    from betavae.objectives import capacity

    config = _config(
        steps=8, objective="capacity", beta=4.0, gamma=30.0, capacity_max=20.0,
        capacity_anneal_steps=10,
    )  # fmt: skip
    logs = _per_step_logs(Trainer(config, dsprites))
    for m in logs:
        c = capacity(m["step"] - 1, config.capacity_min, 20.0, 10)
        assert m["loss"] == pytest.approx(m["recon_nll"] + 30.0 * abs(m["kl"] - c), rel=1e-4)
        assert m["capacity"] == pytest.approx(capacity(m["step"], config.capacity_min, 20.0, 10))
    assert logs[-1]["capacity"] > logs[0]["capacity"] > config.capacity_min  # C rises


def test_a_large_beta_squeezes_the_kl_and_capacity_makes_the_kl_follow_c(dsprites):
    """Behaviour, not bookkeeping: after 200 steps β = 32 holds far less KL than β = 1, and the
    capacity objective holds the KL near its target C."""
    kl = {}
    for beta in (1.0, 32.0):
        trainer = Trainer(_config(steps=200, beta=beta), dsprites)
        kl[beta] = trainer.fit(log_every=200)["kl"]
    assert kl[32.0] < 0.25 * kl[1.0], kl
    config = _config(
        steps=200, objective="capacity", gamma=100.0, capacity_max=8.0, capacity_anneal_steps=100
    )
    last = Trainer(config, dsprites).fit(log_every=50)
    assert last["capacity"] == 8.0
    assert last["kl"] == pytest.approx(8.0, abs=2.0), last["kl"]
