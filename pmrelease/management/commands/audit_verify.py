"""Check the audit trail: every row's hash and link, the checkpoint file, the trail against the newest
checkpoint. Prints every break with its row; exit status 1 when there is one."""
from django.core.management.base import BaseCommand, CommandError

from pmrelease import audit


class Command(BaseCommand):
    help = "Verify the audit trail's keyed hash chain against its newest checkpoint; report every break."

    def add_arguments(self, parser):
        parser.add_argument("--checkpoints", help="the checkpoint file (default: AUDIT_CHECKPOINT_PATH)")

    def handle(self, *args, **options):
        report = audit.verify(options.get("checkpoints"))
        checkpoint = f"; newest {report.checkpoint}" if report.checkpoint else "; no checkpoint yet"
        if not report.ok:
            for problem in report.breaks:
                self.stderr.write(f"BROKEN {problem}")
            raise CommandError(f"audit chain broken: {len(report.breaks)} break(s) in {report.checked} "
                               f"events{checkpoint}")
        self.stdout.write(self.style.SUCCESS(f"audit chain intact: {report.checked} events{checkpoint}"))
