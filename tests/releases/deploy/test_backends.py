"""The script backend with real subprocesses, and the kubernetes backend against a fake API server over HTTP."""
import copy
import json

import pytest
from werkzeug import Request, Response

from releases.deploy import engine
from releases.deploy import services as deployments
from releases.deploy.backends import BackendError, StepContext
from releases.deploy.backends.kubernetes import KubernetesBackend, rollout_state
from releases.models import DeploymentTarget

pytestmark = pytest.mark.django_db


# --- script ---------------------------------------------------------------------------------------------
def test_script_backend__commands_get_release_details__recorded(users, envs, approved_release, tmp_path):
    out = tmp_path / "calls.txt"
    record = f'echo "$PMR_STEP $PMR_VERSION $PMR_ENVIRONMENT w=$PMR_WEIGHT prev=$PMR_PREVIOUS_VERSION" >> {out}'
    DeploymentTarget.objects.create(environment=envs["development"], backend="script", config={"commands": {
        "canary": record, "promote_full": record, "restore": record, "deploy": record}})
    release = approved_release(version="3.1.0")
    dep = deployments.deployment_create(release=release, environment=envs["development"], by=users["ops"],
                                        strategy="canary", parameters={"steps": [25, 100], "pause": 0},
                                        dispatch=False)
    dep = engine.run_inline(dep.pk)
    assert dep.status == "succeeded", dep.failure_reason
    assert out.read_text().splitlines() == [
        "canary 3.1.0 development w=25 prev=",
        "promote_full 3.1.0 development w=100 prev=",
    ]
    canary = dep.steps.get(kind="canary")
    assert any("exit code 0" in line["msg"] for line in canary.log)
    analysis = dep.steps.get(kind="analysis")
    assert analysis.outcome == "no rollback triggers for this deployment: analysis relies on the health checks"


def test_script_backend__failing_command__exit_code_and_output_recorded_and_rolled_back(users, envs,
                                                                                       approved_release, tmp_path):
    restored = tmp_path / "restored"
    DeploymentTarget.objects.create(environment=envs["development"], backend="script", config={"commands": {
        "deploy": "echo 'pulling image'; echo 'manifest unknown' >&2; exit 3",
        "restore": f"touch {restored}"}})
    dep = deployments.deployment_create(release=approved_release(), environment=envs["development"],
                                        by=users["ops"], dispatch=False)
    dep = engine.run_inline(dep.pk)
    assert dep.status == "rolled_back"
    assert "command exited with 3" in dep.failure_reason and "manifest unknown" in dep.failure_reason
    step = dep.steps.get(kind="deploy")
    messages = [line["msg"] for line in step.log]
    assert "exit code 3" in messages and any("pulling image" in m for m in messages)
    assert restored.exists()


def test_script_backend__missing_command__clear_error(users, envs, approved_release):
    DeploymentTarget.objects.create(environment=envs["development"], backend="script", config={"commands": {}})
    dep = deployments.deployment_create(release=approved_release(), environment=envs["development"],
                                        by=users["ops"], dispatch=False, auto_rollback=False)
    dep = engine.run_inline(dep.pk)
    assert dep.status == "failed"
    assert "no 'deploy' command is configured" in dep.failure_reason


def test_script_backend__timeout__step_fails(users, envs, approved_release):
    DeploymentTarget.objects.create(environment=envs["development"], backend="script",
                                    config={"commands": {"deploy": "sleep 5"}, "timeout": 0.2})
    dep = deployments.deployment_create(release=approved_release(), environment=envs["development"],
                                        by=users["ops"], dispatch=False, auto_rollback=False)
    assert "timed out after 0.2 s" in engine.run_inline(dep.pk).failure_reason


# --- kubernetes: a stateful fake API server over real HTTP ----------------------------------------------
def _deployment(name, image, replicas=4, uid=None, revision=1, labels=None):
    labels = labels or {"app": name}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": "pm", "uid": uid or f"uid-{name}", "generation": 1,
                     "annotations": {"deployment.kubernetes.io/revision": str(revision)}},
        "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels},
                              "spec": {"containers": [{"name": "app", "image": image}]}}},
        "status": {"observedGeneration": 1, "replicas": replicas, "updatedReplicas": replicas,
                   "availableReplicas": replicas, "readyReplicas": replicas},
    }


class FakeKubernetes:
    """Just enough of the apps/v1 and core/v1 API. Like a real API server it runs no controllers by itself:
    ``controller`` decides what a rollout does ("complete" or "stuck")."""

    def __init__(self):
        self.deployments = {}
        self.replicasets = {}
        self.services = {}
        self.patches = []
        self.controller = "complete"

    def add_deployment(self, dep):
        self.deployments[dep["metadata"]["name"]] = dep
        self._replicaset_for(dep)

    def _replicaset_for(self, dep):
        rev = int(dep["metadata"]["annotations"]["deployment.kubernetes.io/revision"])
        name = f"{dep['metadata']['name']}-rev{rev}"
        template = copy.deepcopy(dep["spec"]["template"])
        template["metadata"].setdefault("labels", {})["pod-template-hash"] = f"h{rev}"
        self.replicasets[name] = {
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": name, "namespace": "pm", "labels": dict(dep["spec"]["selector"]["matchLabels"]),
                         "annotations": {"deployment.kubernetes.io/revision": str(rev)},
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "controller": True,
                                              "name": dep["metadata"]["name"], "uid": dep["metadata"]["uid"]}]},
            "spec": {"replicas": dep["spec"]["replicas"], "selector": dep["spec"]["selector"],
                     "template": template},
        }

    def _template_changed(self, dep, before):
        if dep["spec"]["template"] == before:
            return
        meta = dep["metadata"]
        meta["generation"] += 1
        rev = int(meta["annotations"]["deployment.kubernetes.io/revision"]) + 1
        meta["annotations"]["deployment.kubernetes.io/revision"] = str(rev)
        self._replicaset_for(dep)
        self._reconcile(dep)

    def _reconcile(self, dep):
        status = dep["status"]
        if self.controller == "complete":
            n = dep["spec"]["replicas"]
            status.update(observedGeneration=dep["metadata"]["generation"], replicas=n, updatedReplicas=n,
                          availableReplicas=n)
        else:
            status.update(observedGeneration=dep["metadata"]["generation"], updatedReplicas=1,
                          conditions=[{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
                                       "message": "ReplicaSet has timed out progressing."}])

    def __call__(self, request: Request):
        self.authorizations = [*getattr(self, "authorizations", []), request.headers.get("Authorization")]
        path = request.path.split("/")
        body = json.loads(request.data or b"null")
        ctype = request.headers.get("Content-Type", "")
        if path[1:4] == ["apis", "apps", "v1"] and path[6] == "deployments":
            name = path[7]
            dep = self.deployments.get(name)
            if dep is None:
                return Response(json.dumps({"kind": "Status", "code": 404, "reason": "NotFound"}), 404,
                                content_type="application/json")
            if request.method == "PATCH":
                self.patches.append((request.path, ctype, body))
                before = copy.deepcopy(dep["spec"]["template"])
                if len(path) > 8 and path[8] == "scale":
                    dep["spec"]["replicas"] = body["spec"]["replicas"]
                    self._reconcile(dep)
                    return Response(json.dumps({"apiVersion": "autoscaling/v1", "kind": "Scale",
                                                "metadata": {"name": name}, "spec": {"replicas": body["spec"]["replicas"]}}),
                                    content_type="application/json")
                if "json-patch" in ctype:
                    for op in body:
                        assert op["op"] == "replace" and op["path"] == "/spec/template"
                        dep["spec"]["template"] = op["value"]
                else:  # strategic merge of the container image
                    for container in body["spec"]["template"]["spec"]["containers"]:
                        for existing in dep["spec"]["template"]["spec"]["containers"]:
                            if existing["name"] == container["name"]:
                                existing.update(container)
                self._template_changed(dep, before)
            return Response(json.dumps(dep), content_type="application/json")
        if path[1:4] == ["apis", "apps", "v1"] and path[6] == "replicasets":
            return Response(json.dumps({"apiVersion": "apps/v1", "kind": "ReplicaSetList", "metadata": {},
                                        "items": list(self.replicasets.values())}), content_type="application/json")
        if path[1:3] == ["api", "v1"] and path[5] == "services":
            svc = self.services[path[6]]
            if request.method == "PATCH":
                self.patches.append((request.path, ctype, body))
                svc["spec"]["selector"].update(body["spec"]["selector"])
            return Response(json.dumps(svc), content_type="application/json")
        return Response("not found", 404)


@pytest.fixture
def k8s(httpserver):
    fake = FakeKubernetes()
    httpserver.expect_request("").respond_with_handler(fake)
    fake.url = httpserver.url_for("").rstrip("/")
    return fake


def _backend(k8s, **config):
    target = DeploymentTarget(backend="kubernetes", config={
        "host": k8s.url, "token": "t0ken", "verify_ssl": False, "namespace": "pm", "deployment": "app",
        "container": "app", "image": "registry.local/penguinmails:{version}", "service": "app",
        "poll_interval": 0.01, "progress_timeout": 2, **config})
    return KubernetesBackend(target=target)


def _ctx(version="2.0.0", strategy="rolling-update", previous="1.0.0"):
    return StepContext(deployment_id=1, environment="staging", version=version, previous_version=previous,
                       strategy=strategy, step="deploy")


def test_kubernetes_deploy__image_patched_and_rollout_waited(k8s):
    k8s.add_deployment(_deployment("app", "registry.local/penguinmails:1.0.0"))
    ctx = _ctx()
    _backend(k8s).deploy(ctx, "rolling")
    path, ctype, body = k8s.patches[0]
    assert path == "/apis/apps/v1/namespaces/pm/deployments/app"
    assert ctype == "application/strategic-merge-patch+json"
    assert body == {"spec": {"template": {"spec": {"containers": [
        {"name": "app", "image": "registry.local/penguinmails:2.0.0"}]}}}}
    assert k8s.deployments["app"]["spec"]["template"]["spec"]["containers"][0]["image"].endswith(":2.0.0")
    assert "deployment app successfully rolled out" in ctx.lines


@pytest.mark.django_db
def test_kubernetes_token__a_secret_reference__resolved_by_the_worker_and_audited(k8s, monkeypatch):
    from pmrelease.models import AuditEvent

    monkeypatch.setenv("PMR_TEST_K8S_TOKEN", "resolved-token-value")
    k8s.add_deployment(_deployment("app", "registry.local/penguinmails:1.0.0"))
    _backend(k8s, token="env://PMR_TEST_K8S_TOKEN").deploy(_ctx(), "rolling")
    assert set(k8s.authorizations) == {"Bearer resolved-token-value"}
    assert AuditEvent.objects.filter(action="secret.resolve", object_id="env://PMR_TEST_K8S_TOKEN").exists()
    monkeypatch.delenv("PMR_TEST_K8S_TOKEN")
    with pytest.raises(BackendError, match="could not be resolved: env://PMR_TEST_K8S_TOKEN"):
        _backend(k8s, token="env://PMR_TEST_K8S_TOKEN")


def test_kubernetes_token__stored_in_clear__refused_on_save_still_used_if_saved_before(k8s):
    from releases.deploy.backends import config_problems, stored_config_problems

    config = {"host": k8s.url, "namespace": "pm", "deployment": "app", "container": "app", "image": "r:{version}"}
    assert stored_config_problems("kubernetes", {**config, "token": "vault://secret/k8s/deployer#token"}) == []
    assert any("secret reference" in p for p in stored_config_problems("kubernetes", {**config, "token": "t0ken"}))
    assert config_problems("kubernetes", {**config, "token": "t0ken"}) == []  # a target saved before runs
    k8s.add_deployment(_deployment("app", "registry.local/penguinmails:1.0.0"))
    _backend(k8s).deploy(_ctx(), "rolling")  # "token": "t0ken"
    assert set(k8s.authorizations) == {"Bearer t0ken"}


def test_kubernetes_deploy__progress_deadline_exceeded__fails(k8s):
    k8s.add_deployment(_deployment("app", "registry.local/penguinmails:1.0.0"))
    k8s.controller = "stuck"
    with pytest.raises(BackendError, match="exceeded its progress deadline"):
        _backend(k8s).deploy(_ctx(), "rolling")


def test_kubernetes_undo__previous_replicaset_template_restored(k8s):
    k8s.add_deployment(_deployment("app", "registry.local/penguinmails:1.0.0"))
    backend = _backend(k8s)
    backend.deploy(_ctx(), "rolling")
    assert k8s.deployments["app"]["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"
    ctx = _ctx()
    backend.restore(ctx)
    path, ctype, body = k8s.patches[-1]
    assert ctype == "application/json-patch+json"
    assert body[0]["op"] == "replace" and body[0]["path"] == "/spec/template"
    assert "pod-template-hash" not in body[0]["value"]["metadata"]["labels"]
    assert k8s.deployments["app"]["spec"]["template"]["spec"]["containers"][0]["image"].endswith(":1.0.0")
    assert "deployment/app rolled back to revision 1" in ctx.lines


def test_kubernetes_blue_green__selector_switched_and_back(k8s):
    k8s.add_deployment(_deployment("app-blue", "registry.local/penguinmails:1.0.0", labels={"slot": "blue"}))
    k8s.add_deployment(_deployment("app-green", "registry.local/penguinmails:0.9.0", replicas=0,
                                   labels={"slot": "green"}))
    k8s.services["app"] = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "app", "namespace": "pm"},
                           "spec": {"selector": {"app": "pm", "slot": "blue"}}}
    backend = _backend(k8s, replicas=4)
    ctx = _ctx(strategy="blue-green")
    backend.deploy_idle(ctx)
    assert k8s.deployments["app-green"]["spec"]["template"]["spec"]["containers"][0]["image"].endswith(":2.0.0")
    assert k8s.deployments["app-green"]["spec"]["replicas"] == 4
    assert k8s.services["app"]["spec"]["selector"]["slot"] == "blue"
    backend.switch_traffic(ctx)
    assert k8s.patches[-1][2] == {"spec": {"selector": {"slot": "green"}}}
    assert k8s.services["app"]["spec"]["selector"] == {"app": "pm", "slot": "green"}
    backend.switch_traffic(ctx)  # idempotent: a re-run does not flip back
    assert k8s.services["app"]["spec"]["selector"]["slot"] == "green"
    backend.restore(ctx)
    assert k8s.services["app"]["spec"]["selector"]["slot"] == "blue"


def test_kubernetes_canary__replica_ratio_then_promotion(k8s):
    k8s.add_deployment(_deployment("app", "registry.local/penguinmails:1.0.0", replicas=10))
    k8s.add_deployment(_deployment("app-canary", "registry.local/penguinmails:1.0.0", replicas=0,
                                   labels={"app": "app", "track": "canary"}))
    backend = _backend(k8s, replicas=10)
    ctx = _ctx(strategy="canary")
    backend.canary(ctx, 20)
    assert k8s.deployments["app-canary"]["spec"]["replicas"] == 2
    assert k8s.deployments["app"]["spec"]["replicas"] == 8
    assert k8s.deployments["app-canary"]["spec"]["template"]["spec"]["containers"][0]["image"].endswith(":2.0.0")
    backend.promote_full(ctx)
    assert k8s.deployments["app"]["spec"]["replicas"] == 10
    assert k8s.deployments["app"]["spec"]["template"]["spec"]["containers"][0]["image"].endswith(":2.0.0")
    assert k8s.deployments["app-canary"]["spec"]["replicas"] == 0


def test_kubernetes_api_error__backend_error_names_it(k8s):
    with pytest.raises(BackendError, match="answered 404"):
        _backend(k8s).deploy(_ctx(), "rolling")


def test_kubernetes_backend__missing_config__refused():
    with pytest.raises(BackendError, match="needs 'namespace'"):
        KubernetesBackend(target=DeploymentTarget(backend="kubernetes", config={"host": "http://x"}))


def test_rollout_state__kubectl_order():
    from types import SimpleNamespace as NS

    def dep(gen, observed, replicas, updated, total, available):
        return NS(metadata=NS(name="app", generation=gen), spec=NS(replicas=replicas),
                  status=NS(observed_generation=observed, updated_replicas=updated, replicas=total,
                            available_replicas=available, conditions=[]))
    assert rollout_state(dep(2, 1, 3, 3, 3, 3))[0] == "wait"
    assert "new replicas" in rollout_state(dep(2, 2, 3, 1, 3, 1))[1]
    assert "pending termination" in rollout_state(dep(2, 2, 3, 3, 5, 3))[1]
    assert "available" in rollout_state(dep(2, 2, 3, 3, 3, 2))[1]
    assert rollout_state(dep(2, 2, 3, 3, 3, 3))[0] == "done"


def test_kubernetes_target__end_to_end_deployment_and_abort(users, envs, approved_release, k8s):
    k8s.add_deployment(_deployment("app", "registry.local/penguinmails:1.0.0"))
    DeploymentTarget.objects.create(environment=envs["development"], backend="kubernetes", config={
        "host": k8s.url, "namespace": "pm", "deployment": "app", "container": "app", "verify_ssl": False,
        "image": "registry.local/penguinmails:{version}", "poll_interval": 0.01, "progress_timeout": 2})
    dep = deployments.deployment_create(release=approved_release(version="2.0.0", type="major"),
                                        environment=envs["development"], by=users["ops"], dispatch=False)
    dep = engine.run_inline(dep.pk)
    assert dep.status == "succeeded", dep.failure_reason
    deployments.deployment_action(deployment=dep, name="rollback", by=users["ops"], reason="bad", dispatch=False)
    dep = engine.run_inline(dep.pk)
    assert dep.status == "rolled_back", dep.failure_reason
    assert k8s.deployments["app"]["spec"]["template"]["spec"]["containers"][0]["image"].endswith(":1.0.0")


def test_advance_deployment__time_limits__above_the_longest_kubernetes_step(settings):
    """A rollout may wait progress_timeout (600 s by default) twice in one step: the task that runs the step
    must not be killed first (it had Celery's global 300 s soft limit, failing a 5-10 minute rollout)."""
    from releases.deploy.backends.kubernetes import max_progress_timeout
    from releases.tasks import advance_deployment

    assert max_progress_timeout() >= 600
    assert advance_deployment.soft_time_limit >= 2 * max_progress_timeout() + 60
    assert advance_deployment.time_limit > advance_deployment.soft_time_limit
    assert settings.CELERY_TASK_SOFT_TIME_LIMIT < advance_deployment.soft_time_limit


def test_kubernetes_target__progress_timeout_beyond_the_step_limit__refused(users, envs):
    from pmrelease import errors
    from releases import environments

    config = {"host": "https://k8s.example", "namespace": "pm", "deployment": "app", "container": "app",
              "image": "r/app:{version}", "progress_timeout": 86_400}
    with pytest.raises(errors.ValidationFailed) as exc:
        environments.target_save(environment=envs["staging"], data={"backend": "kubernetes", "config": config},
                                 by=users["ops"])
    assert "progress_timeout" in exc.value.text()
    config["progress_timeout"] = 600
    target = environments.target_save(environment=envs["staging"], data={"backend": "kubernetes", "config": config},
                                      by=users["ops"])
    assert target.config["progress_timeout"] == 600


def test_kubernetes_scale__trigger_scale_up__replicas_times_factor_capped(k8s):
    k8s.add_deployment(_deployment("app", "registry.local/penguinmails:1.0.0", replicas=4))
    backend = _backend(k8s, max_replicas=10)
    assert backend.scale(_ctx(), 2) == "deployment/app scaled from 4 to 8 replicas"
    path, _, body = k8s.patches[-1]
    assert path == "/apis/apps/v1/namespaces/pm/deployments/app/scale" and body == {"spec": {"replicas": 8}}
    assert backend.scale(_ctx(), 2) == "deployment/app scaled from 8 to 10 replicas"  # capped by max_replicas
    assert backend.scale(_ctx(), 2) == "deployment/app already at 10 replicas (max_replicas)"


def test_scale_up_trigger__watch_fires__backend_scaled_and_recorded(users, envs, approved_release, settings):
    """The watch's scale_up action goes through the deployment's backend (the simulator here)."""
    import time

    from pmrelease.models import AuditEvent
    from releases.deploy import watch

    settings.METRICS_BUILTIN_BUCKET_SECONDS = 1
    target = DeploymentTarget.objects.create(environment=envs["development"], backend="simulation",
                                             config={"simulation": {"error_rate_after_success": {"rate": 0.5}}})
    envs["development"].bake_minutes = 10
    envs["development"].save(update_fields=["bake_minutes"])
    dep = deployments.deployment_create(
        release=approved_release(), environment=envs["development"], by=users["ops"], dispatch=False,
        parameters={"rollback_triggers": [{"metric": "error_rate", "operator": ">", "threshold": 0.1,
                                           "action": "scale_up", "scale_factor": 3}]})
    dep = engine.run_inline(dep.pk)
    report = watch.tick(now=time.time(), dispatch=False)
    assert report["actions"] == [("scale_up", dep.pk)]
    target.refresh_from_db()
    assert target.state["replicas"] == 3
    event = AuditEvent.objects.get(action="deployment.trigger_fired")
    assert event.after["action"] == "scale_up" and event.after["result"] == "simulated: 3 replicas"


def test_script_backend__config_secrets__resolved_for_the_command_redacted_in_log(users, envs, approved_release,
                                                                                  monkeypatch, tmp_path):
    from pmrelease.models import AuditEvent
    from releases import configuration

    monkeypatch.setenv("PMR_TEST_DB_PASSWORD", "s3cr3t-db-password-42")
    configuration.config_save(environment=envs["development"], by=users["admin"],
                              document={"database": {"password": "env://PMR_TEST_DB_PASSWORD"}})
    seen = tmp_path / "seen"
    DeploymentTarget.objects.create(environment=envs["development"], backend="script", config={
        "config_secrets": True, "commands": {
            "deploy": f'echo "connecting with $PMR_SECRET_DATABASE_PASSWORD"; printf %s "$PMR_SECRET_DATABASE_PASSWORD" > {seen}'}})
    dep = deployments.deployment_create(release=approved_release(), environment=envs["development"],
                                        by=users["ops"], dispatch=False)
    dep = engine.run_inline(dep.pk)
    assert dep.status == "succeeded", dep.failure_reason
    assert seen.read_text() == "s3cr3t-db-password-42"  # the command got the value
    messages = [line["msg"] for line in dep.steps.get(kind="deploy").log]
    assert "connecting with ••••" in messages
    assert not any("s3cr3t" in m for s in dep.steps.all() for m in [line["msg"] for line in s.log])
    event = AuditEvent.objects.filter(action="secret.resolve").get()
    assert event.object_id == "env://PMR_TEST_DB_PASSWORD" and f"deployment #{dep.pk}" in event.reason


def test_script_backend__config_secret_missing__step_fails_saying_which(users, envs, approved_release):
    from releases import configuration

    configuration.config_save(environment=envs["development"], by=users["admin"],
                              document={"database": {"password": "env://PMR_NO_SUCH_VARIABLE"}})
    DeploymentTarget.objects.create(environment=envs["development"], backend="script", config={
        "config_secrets": True, "commands": {"deploy": "true", "restore": "true"}})
    dep = deployments.deployment_create(release=approved_release(), environment=envs["development"],
                                        by=users["ops"], dispatch=False)
    dep = engine.run_inline(dep.pk)
    assert dep.status == "failed" and "PMR_NO_SUCH_VARIABLE" in dep.failure_reason  # the restore needs it too


@pytest.mark.django_db
def test_admin_target_form__kubernetes_token_in_clear__error_on_config(envs):
    import json as _json

    from releases.admin.environments import DeploymentTargetForm

    config = {"host": "https://k8s.example:6443", "namespace": "pm", "deployment": "app", "container": "app",
              "image": "r:{version}"}

    from django.forms import modelform_factory

    from releases.environments import TARGET_FIELDS

    def form(token):
        return modelform_factory(DeploymentTarget, form=DeploymentTargetForm, fields=TARGET_FIELDS)(data={"backend": "kubernetes", "config": _json.dumps({**config, "token": token}),
                                          "concurrency": "queue", "default_strategy": "rolling-update",
                                          "default_parameters": "{}"},
                                    instance=DeploymentTarget(environment=envs["qa"]))

    refused = form("eyJhbGciOiJSUzI1NiJ9.a-real-looking-token")
    assert not refused.is_valid() and "secret reference" in str(refused.errors["config"])
    accepted = form("vault://secret/k8s/deployer#token")
    assert accepted.is_valid(), accepted.errors
