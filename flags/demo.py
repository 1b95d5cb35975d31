"""Demo flags for ``manage.py seed_demo`` (idempotent): a release ramp, an experiment with variants, a kill switch,
a segment-targeted beta, a dependent flag, and a guarded ramp its guard paused. API keys are not created here
(``create_api_key`` prints them)."""
import datetime as dt

from django.utils import timezone

from pmrelease import providers

from . import guards, services
from .models import FeatureFlag, FlagType, GradualRollout, RolloutKind, Segment


def seed(*, envs, users, stdout, **_):
    if FeatureFlag.objects.filter(key="new-checkout").exists():
        stdout.write("flags: demo flags already present")
        return
    owner = users.get("dev") if isinstance(users, dict) else None
    beta = Segment.objects.filter(name="beta-customers").first() or services.segment_save(
        name="beta-customers", description="customers who opted into the beta programme",
        constraints=[{"contextName": "plan", "operator": "IN", "values": ["pro", "enterprise"]},
                     {"contextName": "betaOptIn", "operator": "IN", "values": ["true"]}])

    def state(flag, env):
        return services.state_for(flag, envs[env])

    # A release flag: on in development and staging, ramping gradually in production.
    checkout = services.flag_create(key="new-checkout", type=FlagType.RELEASE, owner=owner, tags=["checkout"],
                                    description="The redesigned checkout flow", monitoring_metrics=[
                                        "error_rate", "response_time_p95"],
                                    monitoring_alerts=[{"metric": "error_rate", "operator": ">", "threshold": 0.02,
                                                        "duration": 120, "action": "pause_rollout"}])
    for env in ("development", "staging"):
        services.flag_toggle(state=state(checkout, env), enabled=True, reason="demo")
    if "production" in envs:
        services.ramp_start(state=state(checkout, "production"), steps="5, 25@60, 50@120, 100@240",
                            reason="demo: gradual rollout")

    # An experiment with variants and payloads.
    subject = services.flag_create(key="campaign-subject-line-test", type=FlagType.EXPERIMENT, owner=owner,
                                   description="A/B test of AI-suggested subject lines", tags=["campaigns"])
    variants = [
        {"name": "control", "weightType": "variable", "stickiness": "default",
         "payload": {"type": "json", "value": '{"suggestions": false}'}},
        {"name": "ai-suggested", "weightType": "variable", "stickiness": "default",
         "payload": {"type": "json", "value": '{"suggestions": true, "max": 3}'}},
    ]
    for env in ("development", "staging", "production"):
        if env in envs:
            services.flag_state_update(state=state(subject, env), enabled=True, variants=variants,
                                       strategies=[], reason="demo")

    # A kill switch, on everywhere (turning it off disables bulk sending).
    kill = services.flag_create(key="bulk-send-enabled", type=FlagType.KILL_SWITCH,
                                description="Kill switch for bulk e-mail sending", tags=["sending"])
    for env in envs:
        services.flag_state_update(state=state(kill, env), enabled=True, rollout=RolloutKind.IMMEDIATE,
                                   strategies=[], reason="demo")

    # A beta for a segment, and a flag depending on it.
    editor = services.flag_create(key="template-editor-v2", type=FlagType.RELEASE, owner=owner,
                                  description="The new template editor, for beta customers first")
    for env in ("development", "staging", "production"):
        if env in envs:
            services.apply_rollout(state=state(editor, env), kind=RolloutKind.USER_SEGMENT, segments=[beta.pk],
                                   user_ids=["support-demo"], reason="demo")
    snippets = services.flag_create(key="template-snippets", type=FlagType.RELEASE, owner=owner,
                                    description="Reusable snippets inside the new template editor")
    services.flag_update(flag=snippets, data={"parent": editor})
    for env in ("development", "staging"):
        services.flag_toggle(state=state(snippets, env), enabled=True, reason="demo")

    services.flag_create(key="contact-import-dedupe", type=FlagType.OPERATIONAL,
                         description="Deduplicate contacts during CSV import", tags=["contacts"])
    if "production" in envs:
        _guarded_ramp(envs["production"], owner)
    ramps = GradualRollout.objects.count()
    stdout.write(f"flags: {FeatureFlag.objects.count()} demo flags, {ramps} gradual rollout(s); "
                 f"create API keys with: manage.py create_api_key --environment staging --kind client")


def _guarded_ramp(production, owner):
    """A ramp its guard paused: started 40 minutes ago, healthy at 10 % and 25 %, then the flag's error rate
    (samples the application pushes with the flag's key) above 5 % for two minutes at 50 %: the watch's rounds,
    replayed every 30 s over that history, pause it — its chart is on the flag's production page."""
    flag = services.flag_create(key="send-time-optimizer", type=FlagType.RELEASE, owner=owner, tags=["sending"],
                                description="Send each e-mail at the hour its recipient usually opens mail",
                                monitoring_metrics=["error_rate"],
                                monitoring_alerts=[{"metric": "error_rate", "operator": ">", "threshold": 0.05,
                                                    "duration": 120, "cooldown": 30, "action": "pause_rollout"}])
    now = timezone.now().replace(microsecond=0)
    start = now - dt.timedelta(minutes=40)
    services.ramp_start(state=services.state_for(flag, production), steps="10, 25@10, 50@10, 100@30", now=start,
                        reason="demo: guarded gradual rollout")
    breach_from = now - dt.timedelta(minutes=12)
    production.refresh_from_db(fields=["current_version"])  # the demo's history may have deployed since it loaded
    version = production.current_version
    moment = start
    while moment <= now - dt.timedelta(minutes=5):
        samples = [{"metric": "error_rate", "version": version, "flag": flag.key, "at": at.isoformat(),
                    "value": (0.11 + 0.01 * (at.second % 3)) if at >= breach_from else 0.008 + 0.001 * (at.second % 5)}
                   for at in (moment + dt.timedelta(seconds=s) for s in range(0, 30, 10))]
        providers.ingest(production, samples)
        services.advance_due_ramps(now=moment)
        guards.tick(now=moment.timestamp() + 29.5)
        moment += dt.timedelta(seconds=30)
