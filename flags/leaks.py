"""Does a text look like a secret? The portal-wide check (``pmrelease.leaks``). The import keeps such text as
it is and warns (a migration must not lose or refuse what Unleash served)."""
from pmrelease.leaks import secret_kinds

__all__ = ["secret_kinds"]
