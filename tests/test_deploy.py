"""deploy/: what production runs — the container image, the Kubernetes manifests and the systemd units — checked
without a cluster: every manifest survives a round trip through the official client's models (a misspelt or
misplaced field is dropped by them, a wrong type refused), the pieces refer to each other correctly, the probes are
wired to /healthz and /readyz, and every command names code that exists."""
import configparser
import importlib
import json
import re
import shlex
from pathlib import Path

import pytest
import yaml
from kubernetes import client

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
MANIFESTS = sorted((DEPLOY / "kubernetes").glob("*.yaml"))
UNITS = sorted(DEPLOY.glob("*.service"))


class _Response:
    def __init__(self, data):
        self.data = json.dumps(data)


def _documents():
    docs = []
    for path in MANIFESTS:
        docs += [(path.name, doc) for doc in yaml.safe_load_all(path.read_text()) if doc]
    return docs


def _model_class(doc):
    group_version = doc["apiVersion"].split("/")[-1]
    return f"{group_version.capitalize()}{doc['kind']}"


def _by_kind(kind):
    return {doc["metadata"]["name"]: doc for _, doc in _documents() if doc["kind"] == kind}


def _pod_specs():
    """(name, pod spec) of every Deployment and Job."""
    for kind in ("Deployment", "Job"):
        for name, doc in _by_kind(kind).items():
            yield name, doc["spec"]["template"]["spec"]


@pytest.mark.parametrize(("source", "doc"), _documents(), ids=lambda v: v if isinstance(v, str) else
                         f"{v['kind']}-{v['metadata']['name']}")
def test_manifest__kubernetes_models__round_trip_unchanged(source, doc):
    api = client.ApiClient()
    model = api.deserialize(_Response(doc), _model_class(doc))  # raises on a missing required field or bad type
    assert api.sanitize_for_serialization(model) == doc, f"{source}: a field the Kubernetes API does not know"


def test_manifests__every_process__one_deployment_each():
    deployments = _by_kind("Deployment")
    assert set(deployments) == {"pmrelease-web", "pmrelease-worker", "pmrelease-beat", "pmrelease-flag-edge",
                                "pmrelease-status-site"}
    beat = deployments["pmrelease-beat"]["spec"]
    assert beat["replicas"] == 1 and beat["strategy"]["type"] == "Recreate"  # never two beats
    assert "pmrelease-migrate" in _by_kind("Job")


@pytest.mark.parametrize(("name", "port"), [("pmrelease-web", 8000), ("pmrelease-flag-edge", 8100)])
def test_manifests__http_processes__probes_on_healthz_and_readyz(name, port):
    container = _by_kind("Deployment")[name]["spec"]["template"]["spec"]["containers"][0]
    named = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    for probe in ("livenessProbe", "readinessProbe"):
        assert named[container[probe]["httpGet"]["port"]] == port
    assert f"0.0.0.0:{port}" in container["args"]


def test_manifests__web_probes__send_a_host_the_portal_allows():
    config = _by_kind("ConfigMap")["pmrelease-config"]["data"]
    container = _by_kind("Deployment")["pmrelease-web"]["spec"]["template"]["spec"]["containers"][0]
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        headers = {h["name"]: h["value"] for h in container[probe]["httpGet"]["httpHeaders"]}
        assert headers["Host"] in config["ALLOWED_HOSTS"].split(",")


def test_manifests__references__services_config_secrets_and_volumes_exist():
    deployments, services = _by_kind("Deployment"), _by_kind("Service")
    claims, config_maps = _by_kind("PersistentVolumeClaim"), set(_by_kind("ConfigMap")) | {"pmrelease-status-nginx"}
    for service in services.values():
        labels = [d["spec"]["template"]["metadata"]["labels"] for d in deployments.values()]
        assert any(all(lbl.get(k) == v for k, v in service["spec"]["selector"].items()) for lbl in labels), service
    for deployment in deployments.values():
        spec = deployment["spec"]
        assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()
    secrets = {doc["metadata"]["name"] for _, doc in _documents() if doc["kind"] == "Secret"}
    for name, pod in _pod_specs():
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        for container in pod.get("initContainers", []) + pod["containers"]:
            for source in container.get("envFrom", []):
                if "configMapRef" in source:
                    assert source["configMapRef"]["name"] in config_maps, name
                if "secretRef" in source:
                    assert source["secretRef"]["name"] in secrets, name
            for mount in container.get("volumeMounts", []):
                assert mount["name"] in volumes, (name, mount)
        for volume in volumes.values():
            if "persistentVolumeClaim" in volume:
                assert volume["persistentVolumeClaim"]["claimName"] in claims, (name, volume)
            if "configMap" in volume:
                assert volume["configMap"]["name"] in config_maps, (name, volume)
    for rule in _by_kind("Ingress")["pmrelease"]["spec"]["rules"]:
        for path in rule["http"]["paths"]:
            assert path["backend"]["service"]["name"] in services


def _unit(path):
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str
    text = re.sub(r"\\\n\s*", " ", path.read_text())  # systemd's line continuations
    parser.read_string(text)
    return parser


def _commands():
    """Every command the manifests and units start, as argv."""
    for name, pod in _pod_specs():
        for container in pod["containers"]:
            if container["image"].startswith("registry.example.com/pmrelease"):
                yield name, container["args"]
    for unit in UNITS:
        yield unit.name, shlex.split(_unit(unit)["Service"]["ExecStart"])


@pytest.mark.parametrize(("where", "argv"), list(_commands()), ids=lambda v: v if isinstance(v, str) else "")
def test_commands__name_code_that_exists(where, argv):
    program = Path(argv[0]).name
    if program == "gunicorn":
        module, _, attr = argv[1].partition(":")
        assert callable(getattr(importlib.import_module(module), attr)), where
    elif program == "celery":
        assert argv[1:3] == ["-A", "pmrelease"] and argv[3] in ("worker", "beat"), where
        importlib.import_module("pmrelease.celery")
    else:
        assert argv[:2] == ["python", "manage.py"] and argv[2] == "migrate", where


def test_manifests__the_settings_they_set__are_the_portals():
    settings_source = (DEPLOY.parent / "pmrelease" / "settings.py").read_text()
    for key in _by_kind("ConfigMap")["pmrelease-config"]["data"]:
        assert re.search(rf'"{key}"', settings_source), f"{key} is no setting of pmrelease/settings.py"


def test_status_site__nginx_config__the_portal_address_rewritten_matches_the_shipped_block():
    init = _by_kind("Deployment")["pmrelease-status-site"]["spec"]["template"]["spec"]["initContainers"][0]
    pattern = re.search(r"s/(.+?)/(.+?)/", init["command"][-1]).group(1)
    conf = (DEPLOY / "nginx-status.conf").read_text()
    assert pattern.replace("\\", "") in conf  # the sed finds the upstream line of the VM block
    root = re.search(r"^\s*root (\S+);", conf, re.M).group(1)
    mounts = {m["mountPath"] for m in _by_kind("Deployment")["pmrelease-status-site"]["spec"]["template"]["spec"][
        "containers"][0]["volumeMounts"]}
    assert root in mounts
    assert _by_kind("ConfigMap")["pmrelease-config"]["data"]["STATUS_PUBLISH_DIR"] == root


def test_kustomization__lists_every_manifest_and_the_nginx_block():
    kustomization = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    listed = set(kustomization["resources"])
    assert listed == {f"kubernetes/{p.name}" for p in MANIFESTS} - {"kubernetes/secret.example.yaml"}
    for generator in kustomization["configMapGenerator"]:
        for file in generator["files"]:
            assert (DEPLOY / file).is_file()


@pytest.mark.parametrize("path", UNITS, ids=lambda p: p.name)
def test_systemd_unit__complete_and_restarting(path):
    unit = _unit(path)
    assert unit["Unit"]["Description"]
    service = unit["Service"]
    assert service["User"] == "pmrelease" and service["WorkingDirectory"] == "/opt/pmrelease"
    assert service["EnvironmentFile"] == "/etc/pmrelease/env"
    assert service["Restart"] == "always"
    assert service["ExecStart"].startswith("/opt/pmrelease/.venv/bin/")
    assert unit["Install"]["WantedBy"] == "multi-user.target"


def test_systemd_units__one_per_process():
    assert {p.name for p in UNITS} == {"pmrelease-web.service", "pmrelease-worker.service",
                                       "pmrelease-beat.service", "pmrelease-flag-edge.service"}


def test_dockerfile__runs_the_portal_as_a_user_with_a_health_check():
    text = (DEPLOY / "Dockerfile").read_text()
    instructions = [line.split()[0] for line in text.splitlines() if line and not line.startswith(("#", " "))]
    assert instructions[0] == "FROM" and "python:3.11" in text.splitlines()[
        next(i for i, line in enumerate(text.splitlines()) if line.startswith("FROM"))]
    assert re.search(r"^USER pmrelease$", text, re.M) and re.search(r"^EXPOSE 8000$", text, re.M)
    assert "/healthz" in re.search(r"^HEALTHCHECK.*(?:\n\s+.*)*", text, re.M).group(0)
    assert "pmrelease.wsgi:application" in re.search(r"^CMD .*(?:\n\s+.*)*", text, re.M).group(0)
    for source in re.findall(r"^COPY (.+) \./", text, re.M):
        for name in source.split():
            assert (DEPLOY.parent / name).exists(), name
