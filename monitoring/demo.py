"""The monitoring app's part of ``seed_demo`` (which imports ``<app>.demo``): the demo status page."""
from .statuspage.demo import seed  # noqa: F401
