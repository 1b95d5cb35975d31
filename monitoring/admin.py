"""Django's admin autodiscovery imports this module: it registers the status page's and the metrics' admin."""
from .alerting import admin as alerting_admin  # noqa: F401
from .metrics import admin as metrics_admin  # noqa: F401
from .reliability import admin as reliability_admin  # noqa: F401
from .statuspage import admin  # noqa: F401
