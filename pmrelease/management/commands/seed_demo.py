"""The demo organisation (idempotent): every installed app that has a ``demo`` module seeds its part, in the
order of INSTALLED_APPS, each building on what the earlier ones returned (environments and users first)."""
import importlib
import importlib.util

from django.apps import apps
from django.core.management.base import BaseCommand
from django.db import transaction


class Command(BaseCommand):
    help = "Create the demo organisation (idempotent)."

    def handle(self, *args, **options):
        context = {}
        for config in apps.get_app_configs():
            name = f"{config.name}.demo"
            if importlib.util.find_spec(name) is None:
                continue
            with transaction.atomic():
                context |= importlib.import_module(name).seed(stdout=self.stdout, **context) or {}
        self.stdout.write(self.style.SUCCESS("Demo ready."))
