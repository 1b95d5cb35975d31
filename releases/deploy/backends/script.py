"""ScriptBackend: runs operator-configured commands for each operation.

Target config: ``{"commands": {"deploy": "...", "canary": "...", "promote_full": "...", "deploy_idle": "...",
"switch_traffic": "...", "scale_down": "...", "restore": "...", "health": "...", "scale": "..."},
"timeout": 300, "cwd": "/srv/deploy", "run_rollback_commands": false}``.
Each command runs with ``/bin/sh -c`` and these variables in its environment: PMR_VERSION,
PMR_PREVIOUS_VERSION, PMR_ENVIRONMENT, PMR_STEP, PMR_WEIGHT, PMR_STRATEGY, PMR_DEPLOYMENT_ID, PMR_MODE.
Exit code 0 is success; the exit code and output are recorded in the step's log. ``health`` exits 0 when
healthy; ``scale`` (a rollback trigger's scale_up) gets PMR_SCALE_FACTOR. Metrics do not come from the
script: applications push them to the builtin provider, or the environment reads Prometheus. Rollback-plan step commands run only
with ``run_rollback_commands`` set, since release plans are edited by more people than targets are.

With ``"config_secrets": true`` the worker resolves the secret references of the environment's configuration
(``releases.secrets``, audited) and passes each as ``PMR_SECRET_<PATH>`` (``database.password`` →
``PMR_SECRET_DATABASE_PASSWORD``); their values are replaced by ``••••`` in the step log and in errors.
"""
import os
import subprocess

from .base import Backend, BackendError

MAX_OUTPUT = 4000


class ScriptBackend(Backend):
    name = "script"
    _resolved = None

    def _secrets(self, ctx, operation):
        """{PMR_SECRET_…: value} of the environment's configuration references (resolved once per backend)."""
        if not self.config.get("config_secrets"):
            return {}
        if self._resolved is None:
            from ... import configuration, secrets

            document = configuration.current_document(self.target.environment) or {}
            try:
                values = secrets.resolve_document(document, purpose=f"deployment #{ctx.deployment_id} ({operation})")
            except Exception as exc:  # noqa: BLE001 - a DomainError or a backend failure: the step fails saying why
                raise BackendError(f"{operation}: a configuration secret could not be resolved: "
                                   f"{getattr(exc, 'message', exc)}") from exc
            self._resolved = {"PMR_SECRET_" + path.replace(".", "_").upper(): value for path, value in values.items()}
        return self._resolved

    def _redact(self, text):
        from ... import secrets

        return secrets.redact(text, list((self._resolved or {}).values()))

    def _run(self, ctx, command, operation, extra=None, check=True):
        env = {
            **os.environ,
            "PMR_VERSION": ctx.version, "PMR_PREVIOUS_VERSION": ctx.previous_version or "",
            "PMR_ENVIRONMENT": ctx.environment, "PMR_STEP": ctx.step, "PMR_STRATEGY": ctx.strategy,
            "PMR_DEPLOYMENT_ID": str(ctx.deployment_id),
            "PMR_WEIGHT": str(ctx.params.get("weight", ctx.params.get("percentage", ""))),
            "PMR_MODE": str(ctx.params.get("mode", "")),
            **(extra or {}),
            **self._secrets(ctx, operation),
        }
        timeout = float(self.config.get("timeout", 300))
        ctx.check_lease()
        ctx.log(f"$ {command}")
        try:
            result = subprocess.run(["/bin/sh", "-c", command], env=env, cwd=self.config.get("cwd") or None,
                                    capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise BackendError(f"{operation}: command timed out after {timeout:g} s") from exc
        except OSError as exc:
            raise BackendError(f"{operation}: command could not start: {exc}") from exc
        output = self._redact((result.stdout + result.stderr).strip())
        if output:
            ctx.log(output[-MAX_OUTPUT:])
        ctx.log(f"exit code {result.returncode}")
        if check and result.returncode != 0:
            raise BackendError(f"{operation}: command exited with {result.returncode}: {output[-300:]}")
        return result

    def _command(self, operation):
        command = (self.config.get("commands") or {}).get(operation)
        if not command:
            raise BackendError(f"no '{operation}' command is configured for the script backend")
        return command

    def deploy(self, ctx, mode):
        self._run(ctx, self._command("deploy"), "deploy")

    def canary(self, ctx, weight):
        self._run(ctx, self._command("canary"), "canary", {"PMR_WEIGHT": f"{weight:g}"})

    def promote_full(self, ctx):
        self._run(ctx, self._command("promote_full"), "promote_full", {"PMR_WEIGHT": "100"})

    def deploy_idle(self, ctx):
        self._run(ctx, self._command("deploy_idle"), "deploy_idle")

    def switch_traffic(self, ctx):
        self._run(ctx, self._command("switch_traffic"), "switch_traffic")

    def scale_down(self, ctx):
        self._run(ctx, self._command("scale_down"), "scale_down")

    def restore(self, ctx):
        self._run(ctx, self._command("restore"), "restore")

    def scale(self, ctx, factor):
        self._run(ctx, self._command("scale"), "scale", {"PMR_SCALE_FACTOR": f"{factor:g}"})
        return f"scale command run with PMR_SCALE_FACTOR={factor:g}"

    def health(self, ctx):
        command = (self.config.get("commands") or {}).get("health")
        if not command:
            return None
        result = self._run(ctx, command, "health", check=False)
        return [("health command", result.returncode == 0, f"exit code {result.returncode}")]

    def run_rollback_step(self, ctx, step):
        if not step.get("command") or not self.config.get("run_rollback_commands"):
            return super().run_rollback_step(ctx, step)
        result = self._run(ctx, step["command"], f"rollback step {step['order']}", check=False)
        return result.returncode == 0, f"exit code {result.returncode}"
