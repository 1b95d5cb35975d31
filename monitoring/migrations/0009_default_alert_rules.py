"""The seed's two alert rules for an existing production environment (new ones get them when created:
monitoring.alerting.services.on_environment_saved)."""
from django.db import migrations

DEFAULTS = [
    ("High Error Rate", "API error rate above 5%", 'rate(http_requests_total{status=~"5.."}[5m]) > 0.05', "critical",
     ["slack", "email", "sms"], 5),
    ("Slow Response Time", "95th percentile response time above 2 seconds",
     "histogram_quantile(0.95, rate(http_request_duration_seconds_bucket[5m])) > 2", "warning", ["slack"], 15),
]


def forwards(apps, schema_editor):
    Environment = apps.get_model("releases", "Environment")
    AlertRule = apps.get_model("monitoring", "AlertRule")
    Channel = apps.get_model("pmrelease", "Channel")
    for environment in Environment.objects.filter(name="production"):
        for name, description, condition, severity, channels, cooldown in DEFAULTS:
            rule, created = AlertRule.objects.get_or_create(
                environment=environment, name=name,
                defaults={"description": description, "condition": condition, "severity": severity,
                          "cooldown": cooldown, "enabled": True})
            if created:
                rule.channels.set(Channel.objects.filter(name__in=channels))


class Migration(migrations.Migration):
    dependencies = [("monitoring", "0008_alert_rules"), ("pmrelease", "0005_delivery")]
    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
