"""Deployments: one release going to one environment with one strategy, step by step."""
from typing import NamedTuple

from django.conf import settings
from django.db import models
from django.utils import timezone
from django_fsm import ConcurrentTransitionMixin, FSMField, transition

from .environments import Environment
from .releases import Release

__all__ = [
    "BackendKind", "ConcurrencyPolicy", "Deployment", "DeploymentStatus", "DeploymentStep", "DeploymentStrategy",
    "DeploymentTarget", "GateOnFailure", "Progress", "GateResult", "GateResultStatus", "HealthCheck", "StepPhase", "StepStatus",
    "TestingGate", "ACTIVE_DEPLOYMENT_STATES", "TriggerAction", "NoDataPolicy", "CompareTo", "CompareMode",
    "RollbackTrigger", "TriggerEvaluation", "OPERATOR_CHOICES",
]


class Progress(NamedTuple):
    done: int
    total: int

    @property
    def percent(self):
        return round(100 * self.done / self.total) if self.total else 0

    def as_dict(self):
        return {"done": self.done, "total": self.total, "percent": self.percent}


class DeploymentStrategy(models.TextChoices):
    ROLLING_UPDATE = "rolling-update", "Rolling update"
    BLUE_GREEN = "blue-green", "Blue-green"
    CANARY = "canary", "Canary"
    FEATURE_FLAG = "feature-flag", "Feature flag"
    BIG_BANG = "big-bang", "Big bang"


class BackendKind(models.TextChoices):
    KUBERNETES = "kubernetes", "Kubernetes"
    SCRIPT = "script", "Script"
    SIMULATION = "simulation", "Simulation (demo and tests)"


class ConcurrencyPolicy(models.TextChoices):
    QUEUE = "queue", "Queue: a second deployment waits for the first"
    REFUSE = "refuse", "Refuse: a second deployment is refused while one runs"


class DeploymentTarget(models.Model):
    """Where and how an environment is deployed to."""

    environment = models.OneToOneField(Environment, on_delete=models.CASCADE, related_name="target")
    backend = models.CharField(max_length=20, choices=BackendKind.choices, default=BackendKind.SIMULATION)
    config = models.JSONField(default=dict, blank=True, help_text="Backend settings (see the README).")
    concurrency = models.CharField(max_length=10, choices=ConcurrencyPolicy.choices, default=ConcurrencyPolicy.QUEUE)
    default_strategy = models.CharField(max_length=20, choices=DeploymentStrategy.choices,
                                        default=DeploymentStrategy.ROLLING_UPDATE)
    default_parameters = models.JSONField(default=dict, blank=True)
    state = models.JSONField(default=dict, blank=True, editable=False,
                             help_text="What the simulation backend holds as 'deployed'.")

    def __str__(self):
        return f"{self.environment.name} via {self.backend}"


class HealthCheck(models.Model):
    """An HTTP check run by the worker after each traffic step."""

    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="health_checks")
    name = models.CharField(max_length=100)
    url = models.URLField(max_length=500)
    expected_status = models.PositiveSmallIntegerField(default=200)
    timeout = models.FloatField(default=5.0, help_text="Seconds per attempt.")
    retries = models.PositiveSmallIntegerField(default=3)
    interval = models.FloatField(default=2.0, help_text="Seconds between attempts.")
    enabled = models.BooleanField(default=True)

    def __str__(self):
        return f"{self.name} ({self.url})"


class GateOnFailure(models.TextChoices):
    BLOCK = "block", "Block"
    WARN = "warn", "Warn (an authorised user may override)"
    IGNORE = "ignore", "Ignore (record only)"


class TestingGate(models.Model):
    """The seed's TestingGate: test results an environment's deployments wait for."""

    __test__ = False  # not a pytest test class

    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="testing_gates")
    name = models.CharField(max_length=100)
    slug = models.SlugField(max_length=100)
    tests = models.JSONField(default=list, blank=True, help_text='Suites, e.g. ["api-tests", "database-tests"].')
    required = models.BooleanField(default=True)
    timeout = models.PositiveIntegerField(default=30, help_text="Minutes to wait for a result.")
    on_failure = models.CharField(max_length=10, choices=GateOnFailure.choices, default=GateOnFailure.BLOCK)
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["environment__position", "position", "id"]
        constraints = [models.UniqueConstraint(fields=["environment", "slug"], name="uniq_gate_slug_per_env")]

    def __str__(self):
        return f"{self.name} ({self.environment.name})"


class DeploymentStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    PAUSED = "paused", "Paused"
    AWAITING_APPROVAL = "awaiting_approval", "Awaiting a person"
    ROLLING_BACK = "rolling_back", "Rolling back"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    ROLLED_BACK = "rolled_back", "Rolled back"
    CANCELLED = "cancelled", "Cancelled"


ACTIVE_DEPLOYMENT_STATES = [DeploymentStatus.RUNNING, DeploymentStatus.PAUSED, DeploymentStatus.AWAITING_APPROVAL,
                            DeploymentStatus.ROLLING_BACK]
_HALTED = [DeploymentStatus.RUNNING, DeploymentStatus.PAUSED, DeploymentStatus.AWAITING_APPROVAL]


class Deployment(ConcurrentTransitionMixin, models.Model):
    release = models.ForeignKey(Release, on_delete=models.PROTECT, related_name="deployments")
    environment = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="deployments")
    strategy = models.CharField(max_length=20, choices=DeploymentStrategy.choices)
    parameters = models.JSONField(default=dict, blank=True)
    backend = models.CharField(max_length=20, choices=BackendKind.choices)
    status = FSMField(default=DeploymentStatus.PENDING, choices=DeploymentStatus.choices, protected=True)
    previous_version = models.CharField(max_length=64, blank=True)
    current_step = models.PositiveIntegerField(default=0, help_text="Position of the step being executed.")
    auto_rollback = models.BooleanField(default=True, help_text="Roll back on its own when a step fails.")
    failure_reason = models.TextField(blank=True)
    waiting_for = models.CharField(max_length=200, blank=True, help_text="What a paused deployment waits for.")
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                     related_name="deployments_requested")
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    watchdog_restarts = models.PositiveSmallIntegerField(default=0)
    rolled_back_automatically = models.BooleanField(default=False, editable=False)
    gate_attempt = models.PositiveSmallIntegerField(
        default=1, editable=False, help_text="The testing gates' attempt: a retry after a failed gate starts a new "
                                             "one, which takes fresh results (results belong to an attempt).")

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["environment", "status"]),
                   # the list's ordering and its cursor pages (issue 18)
                   models.Index(fields=["-created_at", "-id"], name="deployment_created_idx")]

    def __str__(self):
        return f"{self.release.version} → {self.environment.name} ({self.strategy})"

    @property
    def is_active(self):
        return self.status in ACTIVE_DEPLOYMENT_STATES

    @property
    def is_finished(self):
        return self.status in (DeploymentStatus.SUCCEEDED, DeploymentStatus.FAILED, DeploymentStatus.ROLLED_BACK,
                               DeploymentStatus.CANCELLED)

    def progress(self):
        """Steps of the deploy phase done so far: ``Progress(done, total)`` with its ``percent``."""
        steps = [s for s in self.steps.all() if s.phase == StepPhase.DEPLOY]
        done = sum(1 for s in steps if s.status in (StepStatus.SUCCEEDED, StepStatus.SKIPPED))
        return Progress(done, len(steps))

    # --- transitions: state only ------------------------------------------------------------------------
    @transition(field=status, source=DeploymentStatus.PENDING, target=DeploymentStatus.RUNNING)
    def start(self, by=None, **kwargs):
        self.started_at = timezone.now()
        self.heartbeat_at = self.started_at

    @transition(field=status, source=DeploymentStatus.PENDING, target=DeploymentStatus.CANCELLED)
    def cancel(self, by=None, **kwargs):
        self.finished_at = timezone.now()

    @transition(field=status, source=DeploymentStatus.RUNNING, target=DeploymentStatus.PAUSED)
    def pause(self, by=None, **kwargs):
        self.waiting_for = kwargs.get("waiting_for", "resume by an operator")

    @transition(field=status, source=DeploymentStatus.PAUSED, target=DeploymentStatus.RUNNING)
    def resume(self, by=None, **kwargs):
        self.waiting_for = ""

    @transition(field=status, source=DeploymentStatus.RUNNING, target=DeploymentStatus.AWAITING_APPROVAL)
    def wait_for_person(self, by=None, **kwargs):
        self.waiting_for = kwargs.get("waiting_for", "promotion")

    @transition(field=status, source=DeploymentStatus.AWAITING_APPROVAL, target=DeploymentStatus.RUNNING)
    def promote(self, by=None, **kwargs):
        self.waiting_for = ""

    @transition(field=status, source=DeploymentStatus.RUNNING, target=DeploymentStatus.SUCCEEDED)
    def succeed(self, by=None, **kwargs):
        self.finished_at = timezone.now()

    @transition(field=status, source=[*_HALTED, DeploymentStatus.ROLLING_BACK], target=DeploymentStatus.FAILED)
    def fail(self, by=None, **kwargs):
        self.failure_reason = kwargs.get("reason", "") or self.failure_reason
        self.finished_at = timezone.now()
        self.waiting_for = ""

    @transition(field=status, source=[*_HALTED, DeploymentStatus.FAILED], target=DeploymentStatus.ROLLING_BACK)
    def abort(self, by=None, **kwargs):
        """Stop and go back to the previous version (operator, or automatic after a failure)."""
        self.waiting_for = ""
        self.finished_at = None

    @transition(field=status, source=DeploymentStatus.SUCCEEDED, target=DeploymentStatus.ROLLING_BACK)
    def rollback(self, by=None, **kwargs):
        self.finished_at = None

    @transition(field=status, source=DeploymentStatus.ROLLING_BACK, target=DeploymentStatus.AWAITING_APPROVAL)
    def hold_rollback(self, by=None, **kwargs):
        self.waiting_for = kwargs.get("waiting_for", "manual intervention in the rollback plan")

    @transition(field=status, source=DeploymentStatus.AWAITING_APPROVAL, target=DeploymentStatus.ROLLING_BACK)
    def continue_rollback(self, by=None, **kwargs):
        self.waiting_for = ""

    @transition(field=status, source=DeploymentStatus.ROLLING_BACK, target=DeploymentStatus.ROLLED_BACK)
    def finish_rollback(self, by=None, **kwargs):
        self.finished_at = timezone.now()

    @transition(field=status, source=DeploymentStatus.FAILED, target=DeploymentStatus.RUNNING)
    def retry(self, by=None, **kwargs):
        self.failure_reason = ""
        self.finished_at = None
        self.heartbeat_at = timezone.now()


class StepPhase(models.TextChoices):
    DEPLOY = "deploy", "Deploy"
    ROLLBACK = "rollback", "Rollback"


class StepStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    WAITING = "waiting", "Waiting"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    SKIPPED = "skipped", "Skipped"


class DeploymentStep(models.Model):
    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="steps")
    phase = models.CharField(max_length=10, choices=StepPhase.choices, default=StepPhase.DEPLOY)
    position = models.PositiveIntegerField()
    kind = models.CharField(max_length=30)
    name = models.CharField(max_length=200)
    params = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=10, choices=StepStatus.choices, default=StepStatus.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True, help_text="A worker holds the step until then.")
    lease_generation = models.PositiveIntegerField(
        default=0, help_text="Fencing token: one more on every claim; a worker's effects and result count only while "
                             "its generation is the step's.")
    lease_holder = models.CharField(max_length=200, blank=True, help_text="The worker (host:pid) holding the lease.")
    worker_losses = models.PositiveSmallIntegerField(
        default=0, help_text="Times the step's worker vanished and another one took it over (not attempts).")
    resume_at = models.DateTimeField(null=True, blank=True, help_text="A waiting step is looked at again then.")
    outcome = models.TextField(blank=True)
    log = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["position"]
        constraints = [models.UniqueConstraint(fields=["deployment", "position"], name="uniq_step_position")]

    def __str__(self):
        return f"{self.position}. {self.name} [{self.status}]"


class GateResultStatus(models.TextChoices):
    PASSED = "passed", "Passed"
    FAILED = "failed", "Failed"
    TIMED_OUT = "timed_out", "No result before the timeout"
    OVERRIDDEN = "overridden", "Failed, overridden"


class GateResult(models.Model):
    """A result reported by CI for one gate of one deployment's gate attempt (the latest one of the deployment's
    current attempt counts)."""

    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="gate_results")
    gate = models.ForeignKey(TestingGate, on_delete=models.PROTECT, related_name="results")
    attempt = models.PositiveSmallIntegerField(default=1, help_text="The deployment's gate attempt it belongs to.")
    status = models.CharField(max_length=12, choices=GateResultStatus.choices)
    tests = models.PositiveIntegerField(default=0)
    passed = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    errors = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0)
    url = models.URLField(max_length=500, blank=True)
    source = models.CharField(max_length=10, default="json")
    details = models.JSONField(default=dict, blank=True)
    reported_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                    related_name="+")
    override_reason = models.TextField(blank=True)
    overridden_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                      related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-id"]

    def __str__(self):
        return f"{self.gate.name}: {self.status}"


# --- rollback triggers and their evaluations -------------------------------------------------------------
class TriggerAction(models.TextChoices):
    ROLLBACK = "rollback", "Roll back"
    ALERT = "alert", "Alert"
    SCALE_UP = "scale_up", "Scale up"


class NoDataPolicy(models.TextChoices):
    HOLD = "hold", "Hold (record, do nothing)"
    ALERT = "alert", "Alert"
    BREACH = "breach", "Count as a breach"


class CompareTo(models.TextChoices):
    NONE = "", "The metric itself"
    STABLE = "stable", "Relative to the stable version"


class CompareMode(models.TextChoices):
    RATIO = "ratio", "Ratio (new ÷ stable)"
    DIFFERENCE = "difference", "Difference (new − stable)"


OPERATOR_CHOICES = [(op, op) for op in (">", "<", ">=", "<=", "==", "!=")]


class RollbackTrigger(models.Model):
    """The seed's RollbackTrigger. Three kinds of rows: an environment's defaults, a release's overrides (on
    its plan), and the effective set a deployment copied when it started (which records when it fired)."""

    environment = models.ForeignKey(Environment, null=True, blank=True, on_delete=models.CASCADE,
                                    related_name="rollback_triggers")
    release = models.ForeignKey(Release, null=True, blank=True, on_delete=models.CASCADE,
                                related_name="rollback_triggers")
    deployment = models.ForeignKey("Deployment", null=True, blank=True, on_delete=models.CASCADE,
                                   related_name="triggers")
    metric = models.CharField(max_length=100, help_text="A metric the environment's provider knows, e.g. error_rate.")
    operator = models.CharField(max_length=2, choices=OPERATOR_CHOICES, default=">")
    threshold = models.FloatField()
    duration = models.PositiveIntegerField(default=0, help_text="Seconds the breach must be sustained.")
    action = models.CharField(max_length=10, choices=TriggerAction.choices, default=TriggerAction.ROLLBACK)
    cooldown = models.PositiveIntegerField(default=0, help_text="Minutes before the trigger may fire again.")
    compare = models.CharField(max_length=10, choices=CompareTo.choices, default="", blank=True)
    compare_mode = models.CharField(max_length=10, choices=CompareMode.choices, default=CompareMode.RATIO)
    no_data = models.CharField(max_length=10, choices=NoDataPolicy.choices, default=NoDataPolicy.HOLD)
    scale_factor = models.FloatField(default=2.0, help_text="For scale_up: multiply the replicas by this.")
    enabled = models.BooleanField(default=True)
    position = models.PositiveSmallIntegerField(default=0)
    last_fired_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["position", "id"]
        constraints = [models.CheckConstraint(
            condition=(models.Q(environment__isnull=False, release__isnull=True, deployment__isnull=True)
                       | models.Q(environment__isnull=True, release__isnull=False, deployment__isnull=True)
                       | models.Q(environment__isnull=True, release__isnull=True, deployment__isnull=False)),
            name="rollback_trigger_one_owner")]

    def __str__(self):
        text = f"{self.metric} {self.operator} {self.threshold:g}"
        if self.compare:
            text = f"{self.metric} ({self.compare_mode} to stable) {self.operator} {self.threshold:g}"
        return text + (f" for {self.duration} s" if self.duration else "") + f" → {self.action}"


class TriggerEvaluation(models.Model):
    """One judgement of one trigger of a deployment: by the scheduled watch or an analysis step."""

    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="evaluations")
    trigger = models.ForeignKey(RollbackTrigger, on_delete=models.CASCADE, related_name="evaluations")
    at = models.DateTimeField(default=timezone.now)
    decision = models.CharField(max_length=12)
    value = models.FloatField(null=True, blank=True)
    baseline = models.FloatField(null=True, blank=True)
    detail = models.CharField(max_length=500, blank=True)
    source = models.CharField(max_length=10, default="watch")  # watch | analysis

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["deployment", "-at"]), models.Index(fields=["at"])]

    def __str__(self):
        return f"{self.trigger} at {self.at:%H:%M:%S}: {self.decision}"
