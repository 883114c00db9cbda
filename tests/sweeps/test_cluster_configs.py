"""The cluster configs: Ray's own validation, and the security properties they promise."""

from __future__ import annotations

import copy
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
    """The config (for a multi-document file, its first document)."""
    return next(yaml.safe_load_all((CLUSTER / name).read_text()))


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


CIDR = "203.0.113.0/24"


def test_gpu_cluster_bootstrapped_on_aws_opens_only_ssh_from_the_chosen_cidr(tmp_path, monkeypatch):
    """Ray's own AWS bootstrap (what ``ray up`` runs first) against moto's mocked EC2, with the
    group cluster/security_group.py creates: every node gets it, Ray creates no group of its
    own, and the only way in from outside is SSH from the chosen network."""
    import sys

    import boto3
    from moto import mock_aws
    from ray.autoscaler._private.aws.config import bootstrap_aws
    from ray.autoscaler._private.util import prepare_config

    sys.path.insert(0, str(CLUSTER))
    from security_group import ensure_group

    monkeypatch.setenv("HOME", str(tmp_path))  # Ray writes the key pair it creates there
    for key, value in (("AWS_ACCESS_KEY_ID", "test"), ("AWS_SECRET_ACCESS_KEY", "test")):
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-west-2")
    text = (CLUSTER / "gpu.yaml").read_text()
    assert "0.0.0.0/0" not in text.replace("SSH from 0.0.0.0/0 (Ray", "")
    with mock_aws():
        ec2 = boto3.client("ec2", region_name="us-west-2")
        group_id = ensure_group(ec2, CIDR)
        assert ensure_group(ec2, CIDR) == group_id  # run twice: the same group
        cfg = yaml.safe_load(text.replace("sg-REPLACE_ME", group_id))
        booted = bootstrap_aws(prepare_config(cfg))
        groups = ec2.describe_security_groups()["SecurityGroups"]
    for node_type in booted["available_node_types"].values():
        assert node_type["node_config"]["SecurityGroupIds"] == [group_id]
    assert {g["GroupName"] for g in groups} == {"default", "betavae-frontier-ssh-only"}
    (ours,) = [g for g in groups if g["GroupId"] == group_id]
    outside = [
        (rule.get("IpProtocol"), rule.get("FromPort"), rule.get("ToPort"), r["CidrIp"])
        for rule in ours["IpPermissions"]
        for r in rule.get("IpRanges", [])
    ] + [(rule.get("IpProtocol"), r["CidrIpv6"]) for rule in ours["IpPermissions"]
         for r in rule.get("Ipv6Ranges", [])]  # fmt: skip
    assert outside == [("tcp", 22, 22, CIDR)]
    inside = [p["GroupId"] for rule in ours["IpPermissions"] for p in rule["UserIdGroupPairs"]]
    assert inside == [group_id]  # the nodes reach each other, on every port


def test_the_security_group_script_refuses_the_whole_internet():
    import argparse
    import sys

    sys.path.insert(0, str(CLUSTER))
    from security_group import ssh_cidr

    assert ssh_cidr("198.51.100.7/32") == "198.51.100.7/32"
    for everyone in ("0.0.0.0/0", "::/0"):
        with pytest.raises(argparse.ArgumentTypeError, match="whole internet"):
            ssh_cidr(everyone)
    text = (CLUSTER / "gpu.yaml").read_text()
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


def test_every_cluster_config_keeps_the_mlflow_store_beyond_the_head():
    """The sqlite store is backed up to the sweeps' bucket as trials end and restored before
    the server starts on a new head; KubeRay keeps it on a volume that outlives the job."""
    for name in ("gpu.yaml", "local.yaml"):
        text = (CLUSTER / name).read_text()
        cfg = load(name)
        setup = " ".join(str(c) for c in cfg["head_setup_commands"])
        restore = setup.index(
            "sweeps.tracking.backup restore s3://REPLACE_ME-bucket/betavae/sweeps"
        )
        assert restore < setup.index("mlflow server"), name  # restored before the server opens it
        assert "BETAVAE_MLFLOW_BACKUP=" in text and "mlflow/mlflow.db" in text, name
    docs = list(yaml.safe_load_all((CLUSTER / "kuberay-rayjob.yaml").read_text()))
    job, claim = docs[0], docs[1]
    volumes = job["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]["volumes"]
    (db,) = [v for v in volumes if v["name"] == "mlflow-db"]
    assert (
        "emptyDir" not in db
        and db["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    )
    assert claim["kind"] == "PersistentVolumeClaim"
    assert job["spec"]["entrypoint"].endswith("--resume auto")  # a restarted job continues


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
