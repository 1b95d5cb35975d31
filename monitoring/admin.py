"""Django's admin autodiscovery imports this module: it registers the status page's admin."""
from .statuspage import admin  # noqa: F401
