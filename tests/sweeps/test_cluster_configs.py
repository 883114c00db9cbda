"""The cluster configs: Ray's own validation, and the security properties they promise."""

from __future__ import annotations

import copy
import json
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

CLUSTER = Path(__file__).resolve().parents[2] / "cluster"
KUBERAY = CLUSTER.parent / "tests" / "fixtures" / "kuberay"  # the RayJob CRD (its README)
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
    """The sqlite store is backed up to the sweep's folder in the bucket as trials end and
    restored before the server starts on a new head: the backup of the sweep the cluster runs,
    named once (BETAVAE_SWEEP_NAME, also the sweep's default --name); KubeRay keeps it on a
    volume that outlives the job."""
    from sweeps.config import ENV_DEFAULTS

    assert ENV_DEFAULTS["name"] == "BETAVAE_SWEEP_NAME"
    for name in ("gpu.yaml", "local.yaml"):
        text = (CLUSTER / name).read_text()
        cfg = load(name)
        setup = " ".join(str(c) for c in cfg["head_setup_commands"])
        restore = setup.index(
            "sweeps.tracking.backup restore s3://REPLACE_ME-bucket/betavae/sweeps "
            '"$BETAVAE_SWEEP_NAME" '
        )
        assert restore < setup.index("mlflow server"), name  # restored before the server opens it
        assert "BETAVAE_MLFLOW_BACKUP=" in text and "mlflow/mlflow.db" in text, name
        assert len(re.findall(r"BETAVAE_SWEEP_NAME=paper\b", text)) == 1, name  # set once
        assert "--name" not in commands(cfg), name  # no command names another sweep
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


# The KubeRay RayJob against the CRD of the KubeRay release it targets.


def rayjob_crd() -> tuple[dict, dict]:
    """``(source, schema)``: where the fixture came from (with the operator's submission modes
    at that tag) and the RayJob CRD's openAPIV3Schema of its served version ``v1``."""
    source = json.loads((KUBERAY / "source.json").read_text())
    schema = json.loads((KUBERAY / "rayjob-v1-openapi-schema.json").read_text())
    return source, schema


def schema_walk(value, schema: dict | None, path: str = "$"):
    """Every ``(path, value, schema node)`` of a manifest walked together with its schema. The
    node is None for a key the schema does not declare: a structural CRD schema never says
    ``additionalProperties: false``, so jsonschema lets such a key through, and the API server
    prunes it silently (or, under kubectl's strict field validation, refuses the object)."""
    yield path, value, schema
    if schema is None or schema.get("x-kubernetes-preserve-unknown-fields"):
        return
    if isinstance(value, dict):
        declared, extra = schema.get("properties", {}), schema.get("additionalProperties")
        for key, item in value.items():
            if key not in declared and extra is True:
                continue
            node = declared.get(key, extra if isinstance(extra, dict) else None)
            yield from schema_walk(item, node, f"{path}.{key}")
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            yield from schema_walk(item, schema["items"], f"{path}[{i}]")


def crd_problems(job: dict) -> list[str]:
    """What the API server (and the operator, for the submission mode) would refuse or drop."""
    import jsonschema

    source, schema = rayjob_crd()
    # k8s keywords (x-kubernetes-*, nullable) mean nothing to jsonschema; int-or-string fields
    # are declared anyOf integer/string, which it checks as they are.
    validator = jsonschema.Draft7Validator(schema)
    problems = [
        f"{e.json_path}: {e.message}"
        for e in sorted(validator.iter_errors(job), key=lambda e: e.json_path)
    ]
    # The API server validates metadata as ObjectMeta itself; the schema leaves it open.
    body = {k: v for k, v in job.items() if k != "metadata"}
    for path, _, node in schema_walk(body, schema):
        if node is None:
            problems.append(f"{path}: not in the RayJob CRD (the API server would drop it)")
        elif "x-kubernetes-validations" in node:  # CEL rules: jsonschema cannot run them
            problems.append(f"{path}: has CEL rules this test does not evaluate")
    problems += [
        f"$.metadata.{k}: not checked here" for k in job.get("metadata", {}) if k != "name"
    ]
    # The CRD takes any string; the operator knows only its JobSubmissionMode constants (an
    # unknown mode is accepted and then never submits).
    mode = job.get("spec", {}).get("submissionMode", "K8sJobMode")
    if mode not in source["submission_modes"]:
        problems.append(f"$.spec.submissionMode: {mode!r} not in {source['submission_modes']}")
    return problems


def test_the_rayjob_crd_fixture_is_from_a_kuberay_that_has_sidecar_mode():
    source, schema = rayjob_crd()
    major, minor, _ = (int(n) for n in source["tag"].removeprefix("v").split("."))
    assert (major, minor) >= (1, 5), source["tag"]
    assert re.fullmatch(r"[0-9a-f]{40}", source["commit"])
    assert schema["properties"]["apiVersion"]["type"] == "string"
    spec = schema["properties"]["spec"]["properties"]
    assert spec["submissionMode"]["type"] == "string"  # the schema knows the field
    # KubeRay's CRD declares no enum for it (as of 1.5.2); the modes the operator knows come
    # from the same tag's rayjob_types.go. Should a later CRD declare one, it must agree.
    assert "SidecarMode" in source["submission_modes"]
    assert "SidecarMode" in spec["submissionMode"].get("enum", ["SidecarMode"])
    pod = spec["rayClusterSpec"]["properties"]["headGroupSpec"]["properties"]["template"]
    assert "initContainers" in pod["properties"]["spec"]["properties"]


def test_kuberay_job_validates_against_the_rayjob_crd():
    docs = list(yaml.safe_load_all((CLUSTER / "kuberay-rayjob.yaml").read_text()))
    assert [(d["apiVersion"], d["kind"]) for d in docs] == [
        ("ray.io/v1", "RayJob"),
        ("v1", "PersistentVolumeClaim"),
        ("networking.k8s.io/v1", "NetworkPolicy"),
    ]
    assert crd_problems(docs[0]) == []
    assert networkpolicy_problems(docs[2]) == []


@pytest.mark.parametrize(
    ("plant", "expected"),
    [
        (lambda job: job["spec"].update(submisionMode="SidecarMode"), "$.spec.submisionMode"),
        (lambda job: job["spec"].update(submissionMode="Sidecar"), "'Sidecar' not in"),
        (lambda job: head_pod(job).update(initContainer=[]), ".spec.initContainer:"),
        (lambda job: head_pod(job)["containers"][1].update(volumeMount=[]), ".volumeMount:"),
        (lambda job: job["spec"].update(ttlSecondsAfterFinished="1d"), "is not of type"),
        (lambda job: head_pod(job)["containers"][0].pop("name"), "'name' is a required"),
        (lambda job: job["spec"].update(managedBy="someone"), "CEL rules"),
    ],
    ids=["misspelled-field", "unknown-mode", "pod-field", "container-field", "type", "required",
         "cel"],
)  # fmt: skip
def test_the_crd_check_catches_a_planted_defect(plant, expected):
    job = load("kuberay-rayjob.yaml")
    plant(job)
    problems = crd_problems(job)
    assert any(expected in p for p in problems), problems


def head_pod(job: dict) -> dict:
    return job["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]


def test_kuberay_job_submits_from_a_sidecar_in_the_head_pod():
    """The submitter runs in the head pod (SidecarMode: no submitter pod needs a way in); what
    KubeRay 1.5's validation refuses in that mode is absent."""
    job = load("kuberay-rayjob.yaml")
    spec = job["spec"]
    assert spec["submissionMode"] == "SidecarMode"
    for refused in ("submitterPodTemplate", "submitterConfig", "clusterSelector"):
        assert refused not in spec, refused
    pod = head_pod(job)
    assert pod.get("restartPolicy", "Never") == "Never"
    names = [c["name"] for c in pod["containers"]]
    assert names[0] == "ray-head"  # KubeRay takes the first container for Ray's
    assert "ray-job-submitter" not in names  # the name of the container KubeRay adds
    header = (CLUSTER / "kuberay-rayjob.yaml").read_text().split("apiVersion:")[0]
    assert "-c ray-job-submitter" in header and "job/betavae-frontier" not in header


def test_kuberay_head_restores_the_mlflow_database_before_its_server_starts(tmp_path):
    job = load("kuberay-rayjob.yaml")
    pod = head_pod(job)
    containers = {c["name"]: c for c in pod["containers"]}
    mlflow = containers["mlflow"]
    server = mlflow["command"]
    database = server[server.index("--backend-store-uri") + 1].removeprefix("sqlite:///")
    env = {e["name"]: e["value"] for e in containers["ray-head"]["env"]}
    assert env["BETAVAE_MLFLOW_BACKUP"] == database  # the file the driver backs up
    (restore,) = [
        c
        for c in pod.get("initContainers", [])
        if "sweeps.tracking.backup restore" in " ".join(c["command"] + c.get("args", []))
    ]
    # An init container runs to completion before any container starts; one with
    # restartPolicy: Always would be a native sidecar, running beside the server instead.
    assert "restartPolicy" not in restore
    # Kubernetes expands $(NAME) in a container's command from that container's env.
    own = {e["name"]: e["value"] for e in restore.get("env", [])}
    argv = [
        re.sub(r"\$\((\w+)\)", lambda m: own[m.group(1)], a)
        for a in restore["command"] + restore.get("args", [])
    ]
    assert argv[:2] == ["python", "-m"]
    sweep = env["BETAVAE_SWEEP_NAME"]  # the driver's --name: the entrypoint gives none
    assert "--name" not in job["spec"]["entrypoint"]
    assert argv[argv.index("restore") + 1 :] == [env["BETAVAE_STORAGE_PATH"], sweep, database]
    assert restore["image"] == mlflow["image"] == containers["ray-head"]["image"]
    (mount,) = [m for m in mlflow["volumeMounts"] if database.startswith(m["mountPath"] + "/")]
    assert mount in restore["volumeMounts"]  # the same volume, at the same place
    assert pod["serviceAccountName"].endswith("-s3-access")  # the pod's: init containers too

    # The container's command as it is, on a local "bucket" and volume, after the sweep's
    # driver backed its database up there.
    from sweeps.tracking.backup import DatabaseBackup

    bucket, volume = tmp_path / "bucket", tmp_path / "volume"
    head = tmp_path / "old-head" / "mlflow.db"
    head.parent.mkdir()
    with sqlite3.connect(head) as db:
        db.execute("create table runs (id text)")
    DatabaseBackup(head, str(bucket), sweep).copy()
    restored = volume / Path(database).relative_to(mount["mountPath"])
    local = {env["BETAVAE_STORAGE_PATH"]: str(bucket), database: str(restored)}
    argv = [sys.executable, *(local.get(a, a) for a in argv[1:])]
    subprocess.run(argv, cwd=CLUSTER.parent, check=True)
    with sqlite3.connect(restored) as db:
        assert db.execute("select count(*) from runs").fetchone() == (0,)


# Who may reach the head pod of the RayJob's cluster: the NetworkPolicy read with Kubernetes'
# rules (a pod selected by some policy takes only what one of their rules admits; a rule
# admits a peer matched by one of its `from` entries on one of its ports; no `from` = anyone,
# no `ports` = every port).


def ray_pod_labels(template: dict, node_type: str) -> dict:
    """The labels KubeRay 1.5 gives a Ray pod: its own (`labelPod` in common/pod.go), then the
    template's, which may not override node type, group or cluster."""
    own = {
        "ray.io/is-ray-node": "yes",
        "ray.io/cluster": "betavae-frontier-x7k2p",  # KubeRay's generated name
        "ray.io/node-type": node_type,
        "ray.io/group": "headgroup" if node_type == "head" else "gpu",
        "app.kubernetes.io/name": "kuberay",
        "app.kubernetes.io/created-by": "kuberay-operator",
    }
    fixed = ("ray.io/node-type", "ray.io/group", "ray.io/cluster")
    extra = template.get("metadata", {}).get("labels", {})
    return own | {k: v for k, v in extra.items() if k not in fixed}


def matches(selector: dict | None, labels: dict) -> bool:
    if selector is None:
        return True
    assert set(selector) <= {"matchLabels"}, selector  # matchExpressions: not modelled here
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def admitted(policies: list[dict], pod: dict, peer: dict, port: int) -> bool:
    """Whether ``peer`` ({labels, namespace labels}) may open TCP ``port`` on ``pod``."""
    selecting = [p for p in policies if matches(p["spec"]["podSelector"], pod)]
    selecting = [p for p in selecting if "Ingress" in p["spec"].get("policyTypes", ["Ingress"])]
    if not selecting:
        return True  # no policy selects the pod: everything gets in
    for policy in selecting:
        for rule in policy["spec"].get("ingress", []):
            ports = rule.get("ports")
            if ports and not any(p.get("port") == port and p.get("protocol", "TCP") == "TCP"
                                 for p in ports):  # fmt: skip
                continue
            sources = rule.get("from")
            if not sources:
                return True
            for source in sources:
                # A podSelector alone means the policy's own namespace.
                in_namespace = (
                    matches(source["namespaceSelector"], peer["namespace"])
                    if "namespaceSelector" in source
                    else peer["namespace"].get("kubernetes.io/metadata.name") == "sweeps"
                )
                if in_namespace and matches(source.get("podSelector"), peer["labels"]):
                    return True
    return False


def rayjob_and_policies(job: dict | None = None) -> tuple[dict, list[dict]]:
    docs = list(yaml.safe_load_all((CLUSTER / "kuberay-rayjob.yaml").read_text()))
    policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
    return job or docs[0], policies


def test_only_the_operator_and_the_sweeps_own_pods_reach_the_head():
    """The dashboard listens on the head pod's address so that the operator can read the job's
    status; the NetworkPolicy lets in the cluster's own pods (every port: GCS, object store)
    and the KubeRay operator (the dashboard's port only), and nothing else."""
    job, policies = rayjob_and_policies()
    cluster = job["spec"]["rayClusterSpec"]
    assert cluster["authOptions"]["mode"] == "token"  # the first guard of the dashboard
    dashboard = int(cluster["headGroupSpec"]["rayStartParams"].get("dashboard-port", 8265))
    head = ray_pod_labels(cluster["headGroupSpec"]["template"], "head")
    (gpu,) = cluster["workerGroupSpecs"]
    worker = ray_pod_labels(gpu["template"], "worker")
    here = {"kubernetes.io/metadata.name": "sweeps"}
    elsewhere = {"kubernetes.io/metadata.name": "ray-system"}
    operator = {  # the operator's pod, as its Helm chart labels it, in its own namespace
        "labels": {"app.kubernetes.io/name": "kuberay-operator",
                   "app.kubernetes.io/instance": "kuberay-operator",
                   "app.kubernetes.io/component": "kuberay-operator"},
        "namespace": elsewhere,
    }  # fmt: skip
    kustomized = {"labels": {"app.kubernetes.io/name": "kuberay",
                             "app.kubernetes.io/component": "kuberay-operator"},
                  "namespace": elsewhere}  # fmt: skip
    neighbour = {"labels": {"app": "notebook"}, "namespace": here}
    other_ray = {"labels": ray_pod_labels({}, "worker"), "namespace": here}  # another RayCluster
    assert admitted(policies, head, operator, dashboard)
    assert admitted(policies, head, kustomized, dashboard)
    assert not admitted(policies, head, operator, 6379)  # the GCS: not the operator's business
    for port in (dashboard, 6379, 8076):
        assert admitted(policies, head, {"labels": worker, "namespace": here}, port)
        assert not admitted(policies, head, neighbour, port)
        assert not admitted(policies, head, other_ray, port)


@pytest.mark.parametrize(
    "plant",
    [
        lambda policy: policy["spec"]["ingress"][1].pop("ports"),  # operator on every port
        lambda policy: policy["spec"]["ingress"][0].pop("from"),  # everyone on every port
        lambda policy: policy["spec"]["ingress"][1]["from"][0].pop("podSelector"),
        lambda policy: policy["spec"]["podSelector"]["matchLabels"].update(app="betavae"),
    ],
    ids=["operator-any-port", "open-rule", "whole-namespace", "selects-no-pod"],
)
def test_the_reachability_check_catches_a_planted_defect(plant):
    job, policies = rayjob_and_policies()
    plant(policies[0])
    cluster = job["spec"]["rayClusterSpec"]
    head = ray_pod_labels(cluster["headGroupSpec"]["template"], "head")
    stranger = {"labels": {"app": "notebook"}, "namespace": {"kubernetes.io/metadata.name": "x"}}
    operator_ns = {"labels": {"app": "other"},
                   "namespace": {"kubernetes.io/metadata.name": "ray-system"}}  # fmt: skip
    operator = {"labels": {"app.kubernetes.io/component": "kuberay-operator"},
                "namespace": operator_ns["namespace"]}  # fmt: skip
    assert (
        admitted(policies, head, stranger, 8265)
        or admitted(policies, head, operator, 6379)
        or admitted(policies, head, operator_ns, 8265)
    )


# The NetworkPolicy against Kubernetes' own OpenAPI schema of networking.k8s.io/v1.

KUBERNETES = KUBERAY.parent / "kubernetes"  # its README says where it came from


def networkpolicy_problems(policy: dict) -> list[str]:
    """What the API server would refuse (jsonschema) or drop (a key no schema declares)."""
    import jsonschema

    fixture = json.loads((KUBERNETES / "networkpolicy-v1-openapi.json").read_text())
    schemas = dict(fixture["schemas"])
    # Kubernetes takes an integer or a string there; the published schema says string only.
    schemas["io.k8s.apimachinery.pkg.util.intstr.IntOrString"] = {"type": ["integer", "string"]}

    def resolve(node: dict | None) -> dict | None:
        while node is not None and "$ref" in node:
            node = schemas[node["$ref"].rsplit("/", 1)[-1]]
        return node

    root = {"$ref": f"#/components/schemas/{fixture['root']}", "components": {"schemas": schemas}}
    problems = [
        f"{e.json_path}: {e.message}"
        for e in jsonschema.Draft202012Validator(root).iter_errors(policy)
    ]

    def walk(value, node, path):
        node = resolve(node)
        if node is None:
            problems.append(f"{path}: not in the NetworkPolicy schema (the API server drops it)")
        elif isinstance(value, dict) and "properties" in node:
            for key, item in value.items():
                walk(item, node["properties"].get(key), f"{path}.{key}")
        elif isinstance(value, list) and "items" in node:
            for i, item in enumerate(value):
                walk(item, node["items"], f"{path}[{i}]")

    walk(policy, schemas[fixture["root"]], "$")
    return problems


def test_the_kubernetes_fixture_is_networkpolicy_v1():
    source = json.loads((KUBERNETES / "source.json").read_text())
    assert source["root"] == "io.k8s.api.networking.v1.NetworkPolicy"
    assert re.fullmatch(r"[0-9a-f]{40}", source["commit"])
    schemas = json.loads((KUBERNETES / "networkpolicy-v1-openapi.json").read_text())["schemas"]
    (kind,) = schemas[source["root"]]["x-kubernetes-group-version-kind"]
    assert kind == {"group": "networking.k8s.io", "kind": "NetworkPolicy", "version": "v1"}


@pytest.mark.parametrize(
    ("plant", "expected"),
    [
        (lambda p: p["spec"].update(podSelecter=p["spec"].pop("podSelector")), "podSelecter"),
        (lambda p: p["spec"].update(policyTypes="Ingress"), "is not of type 'array'"),
        (lambda p: p["spec"]["ingress"][1]["ports"][0].update(port=[8265]), "$.spec.ingress"),
        (lambda p: p["spec"]["ingress"][0].update(form=p["spec"]["ingress"][0].pop("from")),
         "$.spec.ingress[0].form"),
        (lambda p: p["spec"]["ingress"][0]["from"].append({"ipBlock": {}}), "'cidr' is a required"),
    ],
    ids=["misspelled-selector", "types-not-a-list", "port-type", "misspelled-from", "required"],
)  # fmt: skip
def test_the_networkpolicy_check_catches_a_planted_defect(plant, expected):
    _, policies = rayjob_and_policies()
    plant(policies[0])
    problems = networkpolicy_problems(policies[0])
    assert any(expected in p for p in problems), problems


def test_every_head_gives_the_driver_time_to_stop_cleanly_after_ray_job_stop():
    """``ray job stop`` sends SIGTERM, then SIGKILL after ``RAY_JOB_STOP_WAIT_TIME_S`` (Ray's
    default, 3 s, is shorter than a sweep's clean stop): every head that runs jobs raises it."""
    import re

    for name in ("gpu.yaml", "local.yaml"):
        waits = re.findall(r"RAY_JOB_STOP_WAIT_TIME_S=(\d+) ray start --head", commands(load(name)))
        assert waits and all(int(w) >= 30 for w in waits), (name, waits)
    env = {
        e["name"]: e.get("value")
        for e in head_pod(load("kuberay-rayjob.yaml"))["containers"][0]["env"]
    }
    assert int(env["RAY_JOB_STOP_WAIT_TIME_S"]) >= 30
