"""The cluster configs: Ray's own validation, and the security properties they promise."""

from __future__ import annotations

import copy
import ipaddress
import re
from pathlib import Path

import pytest
import yaml

CLUSTER = Path(__file__).resolve().parents[2] / "cluster"
RAY_VERSION = next(
    line.split("==")[1].strip()
    for line in (CLUSTER.parent / "constraints.txt").read_text().splitlines()
    if line.startswith("ray==")
)


def load(name: str) -> dict:
    return yaml.safe_load((CLUSTER / name).read_text())


def commands(cfg: dict) -> str:
    keys = (
        "setup_commands",
        "head_setup_commands",
        "head_start_ray_commands",
        "worker_start_ray_commands",
    )
    return "\n".join(str(c) for k in keys for c in cfg.get(k, []))


@pytest.mark.parametrize("name", ["gpu.yaml", "local.yaml"])
def test_ray_prepares_and_validates_the_launcher_config(name):
    from ray.autoscaler._private.util import prepare_config, validate_config

    prepared = prepare_config(copy.deepcopy(load(name)))
    validate_config(prepared)  # raises on a schema error; needs no cloud credentials
    assert prepared["cluster_name"].startswith("betavae-frontier")


def test_gpu_cluster_opens_only_ssh_from_a_chosen_cidr():
    cfg = load("gpu.yaml")
    rules = cfg["provider"]["security_group"]["IpPermissions"]
    assert len(rules) == 1
    (rule,) = rules
    assert (rule["IpProtocol"], rule["FromPort"], rule["ToPort"]) == ("tcp", 22, 22)
    for cidr in rule["IpRanges"]:
        network = ipaddress.ip_network(cidr["CidrIp"])
        assert network.prefixlen >= 8 and str(network) != "0.0.0.0/0"
    text = (CLUSTER / "gpu.yaml").read_text()
    for port in ("6379", "8265", "10001", "5000"):  # never opened to the outside
        assert not any(str(r.get("FromPort")) == port for r in rules)
    assert "--dashboard-host=0.0.0.0" not in text


def test_gpu_cluster_pins_ray_turns_on_token_auth_and_shares_storage():
    cfg = load("gpu.yaml")
    assert cfg["docker"]["image"] == f"rayproject/ray:{RAY_VERSION}-py311-gpu"
    env = " ".join(cfg["docker"]["run_options"])
    assert "RAY_AUTH_MODE=token" in env and "RAY_AUTH_TOKEN_PATH=" in env
    assert re.search(r"BETAVAE_STORAGE_PATH=s3://", env)
    assert "MLFLOW_TRACKING_URI=http://127.0.0.1:5000" in env
    assert cfg["file_mounts"]["/home/ray/.ray/auth_token"] == "~/.ray/auth_token"
    worker = cfg["available_node_types"]["ray.worker.gpu"]
    assert worker["resources"]["GPU"] == 1 and worker["min_workers"] == 0
    assert worker["max_workers"] >= 1
    head = cfg["available_node_types"][cfg["head_node_type"]]
    assert "GPU" not in head["resources"]
    text = commands(cfg)
    assert "--dashboard-host=127.0.0.1" in text
    assert re.search(r"mlflow server --host 127\.0\.0\.1 ", text)
    assert "--backend-store-uri sqlite:" in text and "--artifacts-destination s3://" in text
    assert "-c /home/ray/betavae-frontier/constraints.txt" in text
    assert "MarketType: spot" in (CLUSTER / "gpu.yaml").read_text()  # documented option


def test_local_cluster_uses_token_auth_and_loopback_services():
    cfg = load("local.yaml")
    assert cfg["provider"]["type"] == "local"
    text = commands(cfg)
    assert "RAY_AUTH_MODE=token" in text and "BETAVAE_STORAGE_PATH=s3://" in text
    assert "--dashboard-host=127.0.0.1" in text
    assert re.search(r"mlflow server\s+--host 127\.0\.0\.1 ", text)
    assert cfg["file_mounts"]["~/.ray/auth_token"] == "~/.ray/auth_token"


def test_kuberay_job_has_token_auth_gpu_workers_and_no_exposed_service():
    job = load("kuberay-rayjob.yaml")
    assert (job["apiVersion"], job["kind"]) == ("ray.io/v1", "RayJob")
    spec = job["spec"]["rayClusterSpec"]
    assert spec["rayVersion"] == RAY_VERSION and spec["authOptions"]["mode"] == "token"
    head = spec["headGroupSpec"]
    assert head["rayStartParams"]["dashboard-host"] == "127.0.0.1"
    assert "serviceType" not in head  # no LoadBalancer/NodePort for the head
    containers = {c["name"]: c for c in head["template"]["spec"]["containers"]}
    mlflow = containers["mlflow"]["command"]
    assert mlflow[mlflow.index("--host") + 1] == "127.0.0.1"
    env = {e["name"]: e["value"] for e in containers["ray-head"]["env"]}
    assert env["BETAVAE_STORAGE_PATH"].startswith("s3://")
    (gpu,) = spec["workerGroupSpecs"]
    limits = gpu["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert limits["nvidia.com/gpu"] == "1" and gpu["minReplicas"] == 0
    assert job["spec"]["entrypoint"].split()[0] == "betavae-sweep"  # the installed command
    dockerfile = (CLUSTER / "Dockerfile").read_text()
    assert f"FROM rayproject/ray:{RAY_VERSION}-py311-gpu" in dockerfile


def test_every_install_brings_boto3_for_mlflows_s3_artifact_store():
    """The head's MLflow server keeps artifacts in S3, which needs boto3: not a dependency of
    MLflow or of the sweep itself, so every cluster install takes the ``cluster`` extra."""
    import tomllib

    project = tomllib.loads((CLUSTER.parent / "pyproject.toml").read_text())["project"]
    assert any(r.startswith("boto3") for r in project["optional-dependencies"]["cluster"])
    for name in ("gpu.yaml", "local.yaml", "Dockerfile"):
        installs = [
            line for line in (CLUSTER / name).read_text().splitlines() if "pip install" in line
        ]
        assert installs and all("[cluster]" in line for line in installs), name
