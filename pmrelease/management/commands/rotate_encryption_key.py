"""Re-wrap every stored encrypted value under the current key (the first of PMR_ENCRYPTION_KEYS).

Rotation: put the new key first and keep the old one after it (``PMR_ENCRYPTION_KEYS=k2:…,k1:…``), restart the
processes, run this command; during the grace period both keys open values. When it reports nothing left under an
old key, drop that key from the setting."""
from django.core.management.base import BaseCommand

from pmrelease import crypto


class Command(BaseCommand):
    help = "Re-wrap every stored encrypted value under the current encryption key"

    def handle(self, *args, **options):
        current = crypto.keys()[0][0]
        moved = crypto.rewrap_all()
        for name, count in moved.items():
            self.stdout.write(f"{name}: {count} re-wrapped under key {current}")
        older = [kid for kid, _ in crypto.keys()[1:]]
        if older:
            self.stdout.write(f"every stored value now opens with key {current}; "
                              f"{', '.join(older)} may be removed from PMR_ENCRYPTION_KEYS after the grace period")
