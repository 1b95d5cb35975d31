"""KubernetesBackend, with the official ``kubernetes`` client.

Target config: ``{"host": "https://k8s.example:6443", "token": "vault://secret/k8s/deployer#token", "verify_ssl": true,
"namespace": "penguinmails", "deployment": "app", "container": "app",
"image": "registry.example/penguinmails:{version}", "service": "app", "colour_label": "slot",
"replicas": 10, "progress_timeout": 600, "poll_interval": 2}``.

- rolling / all at once: patch the container image, then wait like ``kubectl rollout status``;
- canary: a second Deployment ``<deployment>-canary`` (label track=canary) runs the new image with replicas
  in proportion to the weight, the stable one the rest; promotion patches the stable image and scales the
  canary to zero;
- blue-green: Deployments ``<deployment>-blue`` / ``<deployment>-green`` behind a Service whose selector's
  colour label is switched;
- restore: like ``kubectl rollout undo`` (the previous ReplicaSet's pod template), or the selector switched
  back for blue-green.

``token`` is a secret reference (``vault://<mount>/<path>#<key>`` or ``env://<NAME>``, ``releases.secrets``),
resolved by the worker when it builds the client (audited): the target's config is stored and shown in clear, so
a token itself is refused when a target is saved (``stored_config_problems``); one saved before that rule is still
used, with a warning in the log.
"""
import logging
import math
import time

from django.conf import settings
from kubernetes import client
from kubernetes.client.rest import ApiException

from pmrelease import errors

from .base import Backend, BackendError

logger = logging.getLogger(__name__)
REVISION = "deployment.kubernetes.io/revision"


def max_progress_timeout():
    """The longest rollout wait a step may take: two of them must fit in the step time limit."""
    return (settings.DEPLOY_STEP_TIME_LIMIT - 120) / 2


def rollout_state(dep):
    """kubectl's rollout-status logic: ("done" | "wait" | "failed", message)."""
    spec, status, meta = dep.spec, dep.status, dep.metadata
    if (meta.generation or 0) > (status.observed_generation or 0):
        return "wait", "waiting for the deployment spec update to be observed"
    for cond in status.conditions or []:
        if cond.type == "Progressing" and cond.reason == "ProgressDeadlineExceeded":
            return "failed", f"deployment {meta.name} exceeded its progress deadline"
    replicas = spec.replicas if spec.replicas is not None else 1
    updated = status.updated_replicas or 0
    if updated < replicas:
        return "wait", f"{updated} of {replicas} new replicas have been updated"
    if (status.replicas or 0) > updated:
        return "wait", f"{(status.replicas or 0) - updated} old replicas are pending termination"
    if (status.available_replicas or 0) < updated:
        return "wait", f"{status.available_replicas or 0} of {updated} updated replicas are available"
    return "done", f"deployment {meta.name} successfully rolled out"


class KubernetesBackend(Backend):
    name = "kubernetes"

    @staticmethod
    def config_problems(config):
        """What is wrong with a target config (empty: nothing). A step may wait for two rollouts (canary and
        stable), and must end within the worker's time limit for one step: ``progress_timeout`` is capped."""
        problems = [f"the kubernetes target needs '{key}' in its config"
                    for key in ("host", "namespace", "deployment", "container", "image") if not config.get(key)]
        timeout = config.get("progress_timeout", 600)
        cap = max_progress_timeout()
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout <= cap:
            problems.append(f"progress_timeout must be seconds between 1 and {cap:g} (a step may wait for two "
                            f"rollouts within DEPLOY_STEP_TIME_LIMIT = {settings.DEPLOY_STEP_TIME_LIMIT} s)")
        return problems

    @classmethod
    def stored_config_problems(cls, config):
        """``config_problems``, and what may not be stored: the API token itself (a secret reference only)."""
        from ... import secrets

        problems = cls.config_problems(config)
        token = config.get("token")
        if token:
            try:
                secrets.parse(token)
            except errors.ValidationFailed:
                problems.append("token must be a secret reference (vault://<mount>/<path>#<key> or env://<NAME>), "
                                "not the token itself: a target's config is stored and shown in clear")
        return problems

    def _token(self):
        from ... import secrets

        token = self.config.get("token")
        if not token:
            return None
        try:
            secrets.parse(token)
        except errors.ValidationFailed:
            logger.warning("deployment target of %s: its Kubernetes token is stored in clear in the target's "
                           "config; store it in Vault or the worker's environment and put the reference there",
                           getattr(self.target, "environment_id", "?"))
            return token
        try:
            return secrets.resolve(token, purpose=f"Kubernetes token of the deployment target of environment "
                                                  f"#{getattr(self.target, 'environment_id', '?')}")
        except errors.DomainError as exc:
            raise BackendError(f"the Kubernetes token could not be resolved: {exc.message}") from exc

    def __init__(self, *, target, overrides=None):
        super().__init__(target=target, overrides=overrides)
        problems = self.config_problems(self.config)
        if problems:
            raise BackendError("; ".join(problems))
        configuration = client.Configuration()
        configuration.host = self.config["host"].rstrip("/")
        configuration.verify_ssl = bool(self.config.get("verify_ssl", True))
        token = self._token()
        if token:
            configuration.api_key = {"authorization": token}
            configuration.api_key_prefix = {"authorization": "Bearer"}
        self.api_client = client.ApiClient(configuration)
        self.apps = client.AppsV1Api(self.api_client)
        self.core = client.CoreV1Api(self.api_client)
        self.ns = self.config["namespace"]
        self.name_ = self.config["deployment"]
        self.container = self.config["container"]

    # --- helpers ---------------------------------------------------------------------------------------
    def _image(self, version):
        return self.config["image"].format(version=version)

    def _call(self, what, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except ApiException as exc:
            raise BackendError(f"{what}: Kubernetes API answered {exc.status} {exc.reason}") from exc
        except Exception as exc:  # connection refused, TLS, timeouts: urllib3 raises many kinds
            raise BackendError(f"{what}: {exc.__class__.__name__}: {exc}") from exc

    def _set_image(self, ctx, name, version):
        ctx.check_lease()
        body = {"spec": {"template": {"spec": {"containers": [{"name": self.container, "image": self._image(version)}]}}}}
        self._call(f"patch deployment {name}", self.apps.patch_namespaced_deployment, name, self.ns, body)
        ctx.log(f"deployment/{name}: container {self.container} image set to {self._image(version)}")

    def _scale(self, ctx, name, replicas):
        ctx.check_lease()
        self._call(f"scale deployment {name}", self.apps.patch_namespaced_deployment_scale, name, self.ns,
                   {"spec": {"replicas": replicas}})
        ctx.log(f"deployment/{name} scaled to {replicas}")

    def wait_rollout(self, ctx, name):
        timeout = float(self.config.get("progress_timeout", 600))
        interval = float(self.config.get("poll_interval", 2))
        deadline = time.monotonic() + timeout
        last = None
        while True:
            dep = self._call(f"read deployment {name}", self.apps.read_namespaced_deployment, name, self.ns)
            state, message = rollout_state(dep)
            if message != last:
                ctx.log(message)
                last = message
            if state == "done":
                return
            if state == "failed":
                raise BackendError(message)
            if time.monotonic() > deadline:
                raise BackendError(f"rollout of {name} did not finish within {timeout:g} s ({message})")
            time.sleep(interval)

    def _total_replicas(self):
        if self.config.get("replicas"):
            return int(self.config["replicas"])
        dep = self._call("read deployment", self.apps.read_namespaced_deployment, self.name_, self.ns)
        return dep.spec.replicas or 1

    # --- operations -------------------------------------------------------------------------------------
    def deploy(self, ctx, mode):
        self._set_image(ctx, self.name_, ctx.version)
        self.wait_rollout(ctx, self.name_)

    def canary(self, ctx, weight):
        total = self._total_replicas()
        canary_replicas = max(1, math.ceil(total * weight / 100))
        canary = f"{self.name_}-canary"
        self._set_image(ctx, canary, ctx.version)
        self._scale(ctx, canary, canary_replicas)
        self._scale(ctx, self.name_, max(total - canary_replicas, 0))
        self.wait_rollout(ctx, canary)
        ctx.log(f"traffic ≈ {canary_replicas}/{total} replicas on the canary ({weight:g}% asked)")

    def promote_full(self, ctx):
        total = self._total_replicas()
        self._set_image(ctx, self.name_, ctx.version)
        self._scale(ctx, self.name_, total)
        self.wait_rollout(ctx, self.name_)
        self._scale(ctx, f"{self.name_}-canary", 0)

    def _colours(self):
        service = self.config.get("service")
        if not service:
            raise BackendError("blue-green on kubernetes needs 'service' in the target config")
        label = self.config.get("colour_label", "slot")
        svc = self._call(f"read service {service}", self.core.read_namespaced_service, service, self.ns)
        active = (svc.spec.selector or {}).get(label, "blue")
        return service, label, active, "green" if active == "blue" else "blue"

    def deploy_idle(self, ctx):
        _, _, active, idle = self._colours()
        name = f"{self.name_}-{idle}"
        self._set_image(ctx, name, ctx.version)
        self._scale(ctx, name, self._total_replicas())
        self.wait_rollout(ctx, name)
        ctx.log(f"{idle} runs {ctx.version}; {active} still serves traffic")

    def switch_traffic(self, ctx):
        service, label, active, idle = self._colours()
        dep = self._call("read idle deployment", self.apps.read_namespaced_deployment, f"{self.name_}-{idle}", self.ns)
        images = [c.image for c in dep.spec.template.spec.containers if c.name == self.container]
        if images != [self._image(ctx.version)]:
            ctx.log(f"traffic already on {active} with {ctx.version}")
            return
        ctx.check_lease()
        self._call(f"patch service {service}", self.core.patch_namespaced_service, service, self.ns,
                   {"spec": {"selector": {label: idle}}})
        ctx.log(f"service/{service} selector {label}={idle}")

    def scale(self, ctx, factor):
        """A rollback trigger's scale_up: the serving Deployment's replicas × factor, at most ``max_replicas``
        (default 50); for blue-green the active colour, for a running canary the canary."""
        name = self.name_
        if ctx.strategy == "blue-green" and self.config.get("service"):
            _, _, active, _ = self._colours()
            name = f"{self.name_}-{active}"
        dep = self._call(f"read deployment {name}", self.apps.read_namespaced_deployment, name, self.ns)
        current = dep.spec.replicas or 1
        wanted = min(max(current + 1, math.ceil(current * factor)), int(self.config.get("max_replicas", 50)))
        if wanted <= current:
            return f"deployment/{name} already at {current} replicas (max_replicas)"
        self._scale(ctx, name, wanted)
        return f"deployment/{name} scaled from {current} to {wanted} replicas"

    def scale_down(self, ctx):
        _, _, active, idle = self._colours()
        self._scale(ctx, f"{self.name_}-{idle}", 0)

    def restore(self, ctx):
        strategy = ctx.strategy
        if strategy == "blue-green":
            service, label, active, idle = self._colours()
            dep = self._call("read deployment", self.apps.read_namespaced_deployment, f"{self.name_}-{idle}", self.ns)
            if (dep.spec.replicas or 0) == 0:
                self._scale(ctx, f"{self.name_}-{idle}", self._total_replicas())
                self.wait_rollout(ctx, f"{self.name_}-{idle}")
            ctx.check_lease()
            self._call(f"patch service {service}", self.core.patch_namespaced_service, service, self.ns,
                       {"spec": {"selector": {label: idle}}})
            ctx.log(f"service/{service} selector switched back to {label}={idle}")
            return
        if strategy == "canary":
            self._scale(ctx, f"{self.name_}-canary", 0)
            self._scale(ctx, self.name_, self._total_replicas())
        self.undo(ctx, self.name_)

    def undo(self, ctx, name):
        """``kubectl rollout undo``: the previous revision's pod template, JSON-patched onto the deployment."""
        dep = self._call(f"read deployment {name}", self.apps.read_namespaced_deployment, name, self.ns)
        current = int((dep.metadata.annotations or {}).get(REVISION, "0"))
        selector = ",".join(f"{k}={v}" for k, v in (dep.spec.selector.match_labels or {}).items())
        sets = self._call("list replicasets", self.apps.list_namespaced_replica_set, self.ns, label_selector=selector)
        owned = [rs for rs in sets.items
                 if any(ref.uid == dep.metadata.uid for ref in (rs.metadata.owner_references or []))]
        revisions = sorted(((int((rs.metadata.annotations or {}).get(REVISION, "0")), rs) for rs in owned),
                           key=lambda pair: pair[0])
        previous = [(rev, rs) for rev, rs in revisions if rev < current]
        if not previous:
            raise BackendError(f"deployment {name} has no previous revision to roll back to")
        revision, replica_set = previous[-1]
        template = self.api_client.sanitize_for_serialization(replica_set.spec.template)
        template.get("metadata", {}).get("labels", {}).pop("pod-template-hash", None)
        ctx.check_lease()
        self._call(f"roll back deployment {name}", self.apps.patch_namespaced_deployment, name, self.ns,
                   [{"op": "replace", "path": "/spec/template", "value": template}])
        ctx.log(f"deployment/{name} rolled back to revision {revision}")
        self.wait_rollout(ctx, name)
