from __future__ import annotations

import pytest

from betavae.config import ConfigError, TrainConfig


def test_defaults_are_the_papers():
    c = TrainConfig()
    assert (c.objective, c.beta, c.gamma, c.capacity_max) == ("beta", 4.0, 1000.0, 25.0)
    assert (c.latent_dim, c.batch_size, c.model, c.dataset) == (10, 64, "burgess", "dsprites")


@pytest.mark.parametrize(
    ("field", "value", "allowed"),
    [
        ("objective", "betatc", "one of beta, capacity"),
        ("beta", -1.0, "> 0"),
        ("beta", 0.0, "> 0"),
        ("beta", float("nan"), "finite"),
        ("beta", "4", "a finite number"),
        ("gamma", 0, "> 0"),
        ("capacity_min", -0.5, ">= 0"),
        ("capacity_anneal_steps", -1, "integer >= 0"),
        ("capacity_anneal_steps", 10.5, "integer"),
        ("latent_dim", 0, "integer >= 1"),
        ("steps", 0, "integer >= 1"),
        ("batch_size", True, "integer"),
        ("lr", 2.0, "<= 1"),
        ("seed", -3, "integer >= 0"),
        ("model", "vit", "one of burgess, mlp"),
        ("recon", "l1", "one of bernoulli, gaussian"),
        ("precision", "fp16", "one of auto, fp32, bf16"),
        ("device", "tpu", "one of auto, cpu, cuda"),
        ("dataset", "mnist", "one of dsprites"),
        ("compile", "yes", "true or false"),
    ],
)
def test_bad_values_name_the_field_the_value_and_the_range(field, value, allowed):
    with pytest.raises(ConfigError, match=f"^{field}: got") as err:
        TrainConfig(**{field: value})
    assert err.value.field == field and allowed in err.value.allowed


def test_capacity_max_must_not_be_below_capacity_min():
    with pytest.raises(ConfigError, match=r"capacity_max: got 1\.0; allowed: .*capacity_min"):
        TrainConfig(capacity_min=5.0, capacity_max=1.0)


def test_from_dict_round_trips_and_rejects_unknown_keys():
    c = TrainConfig(objective="capacity", capacity_max=12.0, latent_dim=6)
    assert TrainConfig.from_dict(c.to_dict()) == c
    with pytest.raises(ConfigError, match=r"^betta: got"):
        TrainConfig.from_dict({"betta": 4.0})


def test_config_is_frozen():
    with pytest.raises(AttributeError):
        TrainConfig().beta = 2.0  # type: ignore[misc]
