"""Hooks an upper app fills at start-up, so that a lower layer can call it without importing upward.

The arrows point down (``pmrelease`` ← ``releases`` ← ``changes``/``flags``/``monitoring``). Where a lower
layer needs an upper app's service (the deployment engine ramping a flag, say), the lower layer declares a
``Hook`` and the upper app ``provide``s the implementation in its ``AppConfig.ready``. Calling a hook nobody
provided is a wiring error and says so; it is never silently skipped. Where many upper apps merely react to
something (a deployment ended), a Django signal is the better fit.
"""
from django.core.exceptions import ImproperlyConfigured


class Hook:
    def __init__(self, name, description):
        self.name = name
        self.description = description
        self._impl = None

    def provide(self, impl):
        """Install the implementation (usable as a decorator); returns it unchanged."""
        self._impl = impl
        return impl

    @property
    def provided(self):
        return self._impl is not None

    def __call__(self, *args, **kwargs):
        if self._impl is None:
            raise ImproperlyConfigured(f"nothing provides the '{self.name}' hook ({self.description}); "
                                       "is the app that provides it in INSTALLED_APPS?")
        return self._impl(*args, **kwargs)

    def __repr__(self):
        return f"<Hook {self.name}: {'provided' if self.provided else 'not provided'}>"


class Registry:
    """Named implementations of one interface (metric providers by kind, say), filled at start-up."""

    def __init__(self, what):
        self.what = what
        self._items = {}

    def register(self, name, item):
        self._items[name] = item
        return item

    def get(self, name):
        try:
            return self._items[name]
        except KeyError:
            known = ", ".join(sorted(self._items)) or "none"
            raise ImproperlyConfigured(f"no {self.what} named '{name}' (known: {known})") from None

    def names(self):
        return sorted(self._items)

    def __contains__(self, name):
        return name in self._items


# Environment API keys (the flags app issues them): resolve_api_key(raw) -> an object with ``environment_id``,
# ``environment_name`` and ``kind`` ("client", "frontend", "admin"), or None when the key is unknown or
# revoked. Other apps (the builtin metrics ingest) authenticate applications with it.
resolve_api_key = Hook("resolve_api_key", "the flags app resolves environment API keys")
