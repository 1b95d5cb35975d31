"""Does a text look like a secret? detect-secrets with its keyword and token-format plugins (private keys, AWS,
GitHub, GitLab, Slack and other tokens, JWTs, basic-auth URLs); its entropy plugins are off, since they flag git
SHAs, image digests and UUIDs.

The import keeps such text as it is and warns (a migration must not lose or refuse what Unleash served); the
portal-wide leak scanner of the configuration issue, once it lands, is the one to call here instead.
"""
import functools

from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
from detect_secrets.core.scan import scan_line
from detect_secrets.settings import transient_settings

_OFF = ("Base64HighEntropyString", "HexHighEntropyString", "IPPublicDetector")


@functools.cache
def _plugins():
    return [{"name": cls.__name__} for cls in get_mapping_from_secret_type_to_class().values()
            if cls.__name__ not in _OFF]


def secret_kinds(text):
    """The kinds of secret ``text`` seems to hold (empty: none)."""
    if not isinstance(text, str) or not text.strip():
        return []
    kinds = []
    with transient_settings({"plugins_used": _plugins()}):
        for line in text.splitlines()[:200]:
            for secret in scan_line(line[:2000]):
                if secret.type not in kinds:
                    kinds.append(secret.type)
    return kinds
