"""``manage.py rewrap_secrets``: after a new key is put first in PMR_ENCRYPTION_KEYS, seal every stored secret's
data key with it (the old key can then be retired)."""
from django.core.management.base import BaseCommand

from pmrelease import crypto, delivery


class Command(BaseCommand):
    help = "Move every stored channel URL to the current encryption key (PMR_ENCRYPTION_KEYS' first)."

    def handle(self, *args, **options):
        moved = delivery.channels_rewrap()
        self.stdout.write(f"{moved} secret(s) moved to key {crypto.keys()[0][0]}")
