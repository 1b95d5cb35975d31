"""System checks of the identity settings (``manage.py check``, run at start-up): a malformed ``ROLE_MAPPINGS``
entry or a break-glass-only portal without a break-glass account is an error, not a surprise at sign-in."""
from django.conf import settings
from django.core import checks

from .. import errors
from . import rolemap


@checks.register(checks.Tags.security)
def identity_settings(app_configs, **kwargs):
    problems = []
    if not isinstance(settings.ROLE_MAPPINGS, list):
        problems.append(checks.Error("ROLE_MAPPINGS must be a JSON list of {source, group, role} objects",
                                     id="pmrelease.E101"))
    else:
        for index, entry in enumerate(settings.ROLE_MAPPINGS):
            try:
                if not isinstance(entry, dict) or set(entry) != {"source", "group", "role"}:
                    raise errors.ValidationFailed("needs exactly the keys source, group and role")
                rolemap.validate_mapping(source=entry["source"], group_name=entry["group"], role=entry["role"])
            except errors.ValidationFailed as exc:
                problems.append(checks.Error(f"ROLE_MAPPINGS[{index}] {entry!r}: {exc.message}", id="pmrelease.E102"))
    if not settings.LOCAL_LOGIN_ENABLED and not settings.BREAK_GLASS_USERNAMES:
        problems.append(checks.Warning("LOCAL_LOGIN_ENABLED is off and BREAK_GLASS_USERNAMES is empty: nobody can "
                                       "sign in while the IdP is down", id="pmrelease.W101"))
    return problems
