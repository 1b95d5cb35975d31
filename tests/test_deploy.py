"""deploy/: what production runs — the container image, the Kubernetes manifests, the systemd units and the nginx
routing — checked without a cluster: every manifest survives a round trip through the official client's models (a
misspelt or misplaced field is dropped by them, a wrong type refused), the pieces refer to each other correctly, the
probes are wired to /healthz and /readyz, every command names code that exists, and the portal's nginx block sends
the deployment waits to uvicorn (unbuffered, long timeouts) and everything else to gunicorn — parsed, checked with
``nginx -t`` and exercised through a real nginx when one is installed (required in CI)."""
import configparser
import http.server
import importlib
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import threading
import time
import urllib.request
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
    assert set(deployments) == {"pmrelease-web", "pmrelease-waits", "pmrelease-worker", "pmrelease-beat",
                                "pmrelease-flag-edge", "pmrelease-status-site"}
    beat = deployments["pmrelease-beat"]["spec"]
    assert beat["replicas"] == 1 and beat["strategy"]["type"] == "Recreate"  # never two beats
    assert "pmrelease-migrate" in _by_kind("Job")


def _binds(argv):
    """host:port a server command listens on: gunicorn's --bind, uvicorn's --host and --port."""
    def option(name):
        return argv[argv.index(name) + 1] if name in argv else None

    return option("--bind") or f"{option('--host')}:{option('--port')}"


@pytest.mark.parametrize(("name", "port"), [("pmrelease-web", 8000), ("pmrelease-waits", 8001),
                                            ("pmrelease-flag-edge", 8100)])
def test_manifests__http_processes__probes_on_healthz_and_readyz(name, port):
    container = _by_kind("Deployment")[name]["spec"]["template"]["spec"]["containers"][0]
    named = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    for probe in ("livenessProbe", "readinessProbe"):
        assert named[container[probe]["httpGet"]["port"]] == port
    assert _binds(container["args"]) == f"0.0.0.0:{port}"


@pytest.mark.parametrize("name", ["pmrelease-web", "pmrelease-waits"])
def test_manifests__portal_probes__send_a_host_the_portal_allows(name):
    config = _by_kind("ConfigMap")["pmrelease-config"]["data"]
    container = _by_kind("Deployment")[name]["spec"]["template"]["spec"]["containers"][0]
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
    for ingress in _by_kind("Ingress").values():
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                assert path["backend"]["service"]["name"] in services
                port = path["backend"]["service"]["port"]["name"]
                assert port in {p["name"] for p in services[path["backend"]["service"]["name"]]["spec"]["ports"]}


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
    if program in ("gunicorn", "uvicorn"):
        module, _, attr = argv[1].partition(":")
        assert callable(getattr(importlib.import_module(module), attr)), where
        if program == "uvicorn":
            assert module == "pmrelease.asgi", where  # the ASGI application with the waits' async-only stack
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
    assert {p.name for p in UNITS} == {"pmrelease-web.service", "pmrelease-waits.service", "pmrelease-worker.service",
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


# --- nginx: the portal's routing of the deployment waits -------------------------------------------------------
PORTAL_CONF = DEPLOY / "nginx-portal.conf"
NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None)
needs_nginx = pytest.mark.skipif(not NGINX and not os.environ.get("CI"),
                                 reason="no nginx binary (Debian package 'nginx'; required in CI)")


class Directive:
    def __init__(self, name, args, block=None):
        self.name, self.args, self.block = name, args, block

    def all(self, name):
        return [d for d in self.block or [] if d.name == name]

    def one(self, name):
        found = self.all(name)
        assert len(found) == 1, (name, [d.args for d in found])
        return found[0]

    def value(self, name, default=None):
        found = self.all(name)
        return " ".join(found[-1].args) if found else default

    def __repr__(self):
        return f"{self.name} {' '.join(self.args)}"


def _nginx_parse(text):
    """nginx's configuration syntax as a tree of directives (words, quoted strings, comments, blocks)."""
    tokens = re.findall(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|#[^\n]*|[{};]|[^\s{};"\'#]+', text)
    tokens = [t[1:-1] if t[:1] in "\"'" else t for t in tokens if not t.startswith("#")]
    position = 0

    def block():
        nonlocal position
        directives, words = [], []
        while position < len(tokens):
            token = tokens[position]
            position += 1
            if token == ";":
                directives.append(Directive(words[0], words[1:]))
                words = []
            elif token == "{":
                directives.append(Directive(words[0], words[1:], block()))
                words = []
            elif token == "}":
                assert not words, words
                return directives
            else:
                words.append(token)
        assert not words, words
        return directives

    return Directive("main", [], block())


def _seconds(value):
    number, unit = re.fullmatch(r"(\d+)(ms|s|m|h)?", value).groups()
    return int(number) * {"ms": 0.001, "s": 1, None: 1, "m": 60, "h": 3600}[unit]


def _portal():
    conf = _nginx_parse(PORTAL_CONF.read_text())
    upstreams = {u.args[0]: u for u in conf.all("upstream")}
    [server] = conf.all("server")
    locations = {" ".join(loc.args): loc for loc in server.all("location")}
    return conf, upstreams, server, locations


def _upstream_of(location, upstreams):
    target = location.value("proxy_pass")
    assert target and target.startswith("http://"), location
    name = target.removeprefix("http://")
    assert name in upstreams, (location, name)
    return name


def _upstream_address(upstream):
    return upstream.one("server").args[0]


def _unit_bind(unit_name):
    return _binds(shlex.split(_unit(DEPLOY / unit_name)["Service"]["ExecStart"]))


def test_nginx_portal__upstreams__the_gunicorn_and_uvicorn_units():
    _, upstreams, _, _ = _portal()
    assert _upstream_address(upstreams["pmrelease_web"]) == _unit_bind("pmrelease-web.service") == "127.0.0.1:8000"
    assert _upstream_address(upstreams["pmrelease_waits"]) == _unit_bind("pmrelease-waits.service") == (
        "127.0.0.1:8001")
    assert shlex.split(_unit(DEPLOY / "pmrelease-waits.service")["Service"]["ExecStart"])[1] == (
        "pmrelease.asgi:application")


def _assert_waits_location(location, upstreams, at_least):
    assert _upstream_of(location, upstreams) == "pmrelease_waits", location
    assert location.value("proxy_buffering") == "off", location
    read = _seconds(location.value("proxy_read_timeout", "60s"))
    assert read >= at_least and read >= 65, (location, read)


def test_nginx_portal__event_stream__to_uvicorn_unbuffered_with_a_long_timeout():
    from pmrelease import asgi

    _, upstreams, server, locations = _portal()
    stream = locations[r"~ ^/api/v1/deployments/\d+/events/$"]
    _assert_waits_location(stream, upstreams, at_least=15 + 50)  # keep-alives every 15 s, with room
    assert stream.args[1] == asgi._EVENTS.pattern  # the path the ASGI application treats as a wait


def test_nginx_portal__long_poll__a_get_with_wait_to_uvicorn_any_other_to_gunicorn():
    from pmrelease import asgi

    conf, upstreams, server, locations = _portal()
    detail = locations[r"~ ^/api/v1/deployments/\d+/$"]
    assert detail.args[1] == asgi._DETAIL.pattern
    assert _upstream_of(detail, upstreams) == "pmrelease_web"  # no wait: gunicorn, buffered
    assert detail.value("proxy_buffering", "on") == "on"
    [condition] = detail.all("if")
    variable = condition.args[0].strip("()")
    assert condition.one("return").args == ["418"]
    assert detail.value("error_page") == "418 = @pmrelease_long_poll"
    [chooser] = [m for m in conf.all("map") if m.args[1] == variable]
    assert "$arg_wait" in chooser.args[0] and chooser.args[0].startswith("$request_method")
    rules = {d.name: d.args[0] for d in chooser.block}
    assert rules["default"] == "0" and rules["~^GET:.+"] == "1"
    key = chooser.args[0]
    matches = lambda method, wait: bool(re.search(r"^GET:.+", key.replace("$request_method", method).replace(  # noqa: E731
        "$arg_wait", wait)))
    assert matches("GET", "30") and not matches("GET", "") and not matches("PATCH", "30")
    _assert_waits_location(locations["@pmrelease_long_poll"], upstreams, at_least=60 + 5)  # the longest wait: 60 s


def test_nginx_portal__everything_else__to_gunicorn():
    _, upstreams, server, locations = _portal()
    waits = {r"~ ^/api/v1/deployments/\d+/events/$", "@pmrelease_long_poll"}
    for args, location in locations.items():
        if args not in waits:
            assert _upstream_of(location, upstreams) == "pmrelease_web", location
    assert _upstream_of(locations["/"], upstreams) == "pmrelease_web"
    assert _seconds(locations["/"].value("proxy_read_timeout")) >= 60  # gunicorn's --timeout


def test_ingress__event_streams__to_the_waits_service_unbuffered():
    from pmrelease import asgi

    ingress = _by_kind("Ingress")["pmrelease-waits"]
    annotations = ingress["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/use-regex"] == "true"
    assert annotations["nginx.ingress.kubernetes.io/proxy-buffering"] == "off"
    assert int(annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= 65
    [rule] = ingress["spec"]["rules"]
    assert rule["host"] in {r["host"] for r in _by_kind("Ingress")["pmrelease"]["spec"]["rules"]}
    [path] = rule["http"]["paths"]
    assert path["backend"]["service"]["name"] == "pmrelease-waits" and path["pathType"] == "ImplementationSpecific"
    pattern = re.compile("^" + path["path"], re.I)  # how ingress-nginx reads it: location ~* "^<path>"
    for sample in ("/api/v1/deployments/42/events/", "/api/v1/deployments/7/events/", "/api/v1/deployments/x/events/",
                   "/api/v1/deployments/42/", "/api/v1/deployments/42/events/more"):
        assert bool(pattern.match(sample)) == bool(asgi._EVENTS.match(sample)), sample
    waits = _by_kind("Service")["pmrelease-waits"]["spec"]["ports"]
    container = _by_kind("Deployment")["pmrelease-waits"]["spec"]["template"]["spec"]["containers"][0]
    assert waits[0]["port"] == container["ports"][0]["containerPort"] == 8001


def _nginx_wrapper(tmp_path, conf_text):
    """A whole nginx.conf around the shipped server block, every path under ``tmp_path`` (no root needed)."""
    (tmp_path / "portal.conf").write_text(conf_text)
    for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (tmp_path / name).mkdir(exist_ok=True)
    wrapper = tmp_path / "nginx.conf"
    wrapper.write_text(f"""
pid {tmp_path}/nginx.pid;
error_log {tmp_path}/error.log;
worker_processes 1;
events {{ worker_connections 64; }}
http {{
    access_log {tmp_path}/access.log;
    client_body_temp_path {tmp_path}/body;
    proxy_temp_path {tmp_path}/proxy;
    fastcgi_temp_path {tmp_path}/fastcgi;
    uwsgi_temp_path {tmp_path}/uwsgi;
    scgi_temp_path {tmp_path}/scgi;
    include {tmp_path}/portal.conf;
}}
""")
    return wrapper


@needs_nginx
def test_nginx_portal__nginx_t__accepts_the_shipped_block(tmp_path):
    assert NGINX, "nginx (Debian's package) is required in CI"
    wrapper = _nginx_wrapper(tmp_path, PORTAL_CONF.read_text())
    result = subprocess.run([NGINX, "-t", "-p", str(tmp_path), "-c", str(wrapper)], capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 0, result.stderr
    assert "syntax is ok" in result.stderr


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stand_in(name):
    """An upstream that answers every request with its own name and what it saw."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def _answer(self):
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            body = json.dumps({"upstream": name, "method": self.command, "path": self.path}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PATCH = _answer

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@needs_nginx
def test_nginx_portal__real_nginx__routes_the_waits_to_uvicorn_and_the_rest_to_gunicorn(tmp_path):
    assert NGINX, "nginx (Debian's package) is required in CI"
    web, waits = _stand_in("web"), _stand_in("waits")
    port = _free_port()
    text = PORTAL_CONF.read_text()
    text = text.replace("server 127.0.0.1:8000;", f"server 127.0.0.1:{web.server_port};")
    text = text.replace("server 127.0.0.1:8001;", f"server 127.0.0.1:{waits.server_port};")
    text = re.sub(r"^\s*listen \[::\]:80;\n", "", text, flags=re.M).replace("listen 80;", f"listen 127.0.0.1:{port};")
    wrapper = _nginx_wrapper(tmp_path, text)
    process = subprocess.Popen([NGINX, "-p", str(tmp_path), "-c", str(wrapper), "-g", "daemon off;"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)

        def route(path, method="GET"):
            request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method,
                                             data=b"{}" if method != "GET" else None,
                                             headers={"Host": "releases.penguinmails.example"})
            with urllib.request.urlopen(request, timeout=10) as response:
                answer = json.loads(response.read())
            assert answer["path"] == path and answer["method"] == method
            return answer["upstream"]

        assert route("/api/v1/deployments/42/events/") == "waits"
        assert route("/api/v1/deployments/42/?wait=30") == "waits"
        assert route("/api/v1/deployments/42/?fields=status&wait=5") == "waits"
        assert route("/api/v1/deployments/42/") == "web"
        assert route("/api/v1/deployments/42/?wait=") == "web"
        assert route("/api/v1/deployments/42/?wait=30", method="PATCH") == "web"
        assert route("/api/v1/deployments/42/retry/", method="POST") == "web"
        assert route("/api/v1/deployments/?wait=30") == "web"
        assert route("/api/v1/deployments/42/events/extra") == "web"
        assert route("/admin/") == "web" and route("/ofrep/v1/evaluate/flags") == "web"
    finally:
        process.terminate()
        process.wait(timeout=10)
        web.shutdown()
        waits.shutdown()
