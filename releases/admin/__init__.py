"""The releases app's admin: environments, releases, deployments (one module each)."""
from . import configuration, deployments, environments, releases  # noqa: F401  (each registers its ModelAdmins)
