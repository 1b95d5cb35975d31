"""``manage.py export_flags --environment NAME [--format unleash] [--output FILE]``: the inverse of import_flags."""
import json

from django.core.management.base import BaseCommand, CommandError

from flags import transfer
from releases.models import Environment


class Command(BaseCommand):
    help = "Write an environment's flags as an Unleash client-features document (what import_flags reads)."

    def add_arguments(self, parser):
        parser.add_argument("--environment", required=True)
        parser.add_argument("--format", default="unleash", choices=transfer.FORMATS)
        parser.add_argument("--output", default="-", help="file to write ('-': standard output)")

    def handle(self, *args, **options):
        environment = Environment.objects.filter(name=options["environment"]).first()
        if environment is None:
            raise CommandError(f"no environment {options['environment']!r}")
        text = json.dumps(transfer.export_document(environment), indent=2, ensure_ascii=False)
        if options["output"] == "-":
            self.stdout.write(text)
        else:
            with open(options["output"], "w", encoding="utf-8") as handle:
                handle.write(text + "\n")
            self.stderr.write(f"wrote {options['output']}")
