"""``manage.py export_alert_rules [--environment NAME] [--output FILE]``: the enabled alert rules as a
Prometheus rules file (for teams that let Prometheus + Alertmanager evaluate them), to standard output."""
from django.core.management.base import BaseCommand, CommandError

from monitoring.alerting import services
from releases.models import Environment


class Command(BaseCommand):
    help = "Print the enabled alert rules as a Prometheus rules file (promtool check rules accepts it)."

    def add_arguments(self, parser):
        parser.add_argument("--environment", help="only this environment's rules (its name)")
        parser.add_argument("--output", help="write to this file instead of standard output")

    def handle(self, *args, environment=None, output=None, **options):
        env = None
        if environment:
            env = Environment.objects.filter(name=environment).first()
            if env is None:
                known = ", ".join(Environment.objects.order_by("position").values_list("name", flat=True))
                raise CommandError(f"no environment named '{environment}' (known: {known or 'none'})")
        text = services.export_yaml(env)
        if output:
            with open(output, "w", encoding="utf-8") as handle:
                handle.write(text)
        else:
            self.stdout.write(text, ending="")
