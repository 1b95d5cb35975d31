"""``manage.py create_api_key --environment NAME --kind client|frontend|admin``: prints a new key once."""
from django.core.management.base import BaseCommand, CommandError

from flags import services
from flags.models import ApiKeyKind
from pmrelease import errors
from releases.models import Environment


class Command(BaseCommand):
    help = "Create an API key for one environment's flag APIs and print it (it is stored hashed: shown once)."

    def add_arguments(self, parser):
        parser.add_argument("--environment", required=True, help="environment name, e.g. staging")
        parser.add_argument("--kind", required=True, choices=ApiKeyKind.values)
        parser.add_argument("--name", default="", help="what the key is for (e.g. the application)")
        parser.add_argument("--rate-limit", type=int, default=None, help="OFREP requests/s per process")

    def handle(self, *args, **options):
        environment = Environment.objects.filter(name=options["environment"]).first()
        if environment is None:
            known = ", ".join(Environment.objects.values_list("name", flat=True)) or "none"
            raise CommandError(f"no environment {options['environment']!r} (known: {known})")
        try:
            key, raw = services.api_key_create(environment=environment, kind=options["kind"], name=options["name"],
                                               rate_limit=options["rate_limit"], by="create_api_key")
        except errors.DomainError as exc:
            raise CommandError(exc.text()) from None
        self.stderr.write(f"{key.kind} key {key.prefix}… for {environment.name} (shown once, store it now):")
        self.stdout.write(raw)
