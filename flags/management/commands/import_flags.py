"""``manage.py import_flags --environment NAME --format unleash [--dry-run] FILE``: load an Unleash client-features
file, losslessly; ``--dry-run`` prints the plan (created, changed, unchanged, warnings) and changes nothing."""
import json
import sys

from django.core.management.base import BaseCommand, CommandError

from flags import services, transfer
from pmrelease import errors
from releases.models import Environment


class Command(BaseCommand):
    help = "Load an Unleash client-features document ({version, features, segments}) as an environment's flags."

    def add_arguments(self, parser):
        parser.add_argument("file", help="the JSON file ('-' reads standard input)")
        parser.add_argument("--environment", required=True)
        parser.add_argument("--format", default="unleash", choices=transfer.FORMATS)
        parser.add_argument("--reason", default="")
        parser.add_argument("--dry-run", action="store_true", help="print what would change; change nothing")

    def handle(self, *args, **options):
        environment = Environment.objects.filter(name=options["environment"]).first()
        if environment is None:
            raise CommandError(f"no environment {options['environment']!r}")
        try:
            if options["file"] == "-":
                doc = json.load(sys.stdin)
            else:
                with open(options["file"], encoding="utf-8") as handle:
                    doc = json.load(handle)
        except OSError as exc:
            raise CommandError(f"cannot read {options['file']}: {exc}") from None
        except (ValueError, RecursionError) as exc:
            raise CommandError(f"{options['file']} is not valid JSON: {exc}") from None
        try:
            report = services.flags_import(environment=environment, doc=doc, by="import_flags",
                                           dry_run=options["dry_run"],
                                           reason=options["reason"] or f"import of {options['file']}")
        except errors.DomainError as exc:
            details = "\n".join(f"  - {r}" for r in exc.reasons)
            raise CommandError(f"{exc.message.split(':')[0]}:\n{details}" if details else exc.message) from None
        title = "dry run: nothing was changed" if options["dry_run"] else "imported"
        self.stdout.write(f"{environment.name}: {title}")
        for line in report.lines():
            self.stdout.write(line)
