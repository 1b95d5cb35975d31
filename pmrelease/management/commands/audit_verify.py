"""Check the audit trail's hash chain; exit 1 when it is broken."""
from django.core.management.base import BaseCommand, CommandError

from pmrelease import audit


class Command(BaseCommand):
    help = "Verify the audit trail's hash chain."

    def handle(self, *args, **options):
        ok, bad_id, checked = audit.verify_chain()
        if not ok:
            raise CommandError(f"audit chain broken at event {bad_id} (after {checked} intact events)")
        self.stdout.write(self.style.SUCCESS(f"audit chain intact: {checked} events"))
