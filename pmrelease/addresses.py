"""Where the workers may send a webhook: public addresses only (the status page's subscribers and the delivery
engine's webhook channels), so that whoever configures a URL cannot make a worker reach loopback, link-local
(cloud metadata), private or reserved hosts. Checked when the URL is saved and again at send time (DNS may have
changed)."""
import ipaddress
import socket
from urllib.parse import urlsplit


def public_target_problem(url, *, allow_private=False):
    """Why a worker must not POST to ``url`` (None when it may). ``allow_private`` lifts the public-address rule
    (for deployments whose receivers are internal), not the URL checks."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        return f"not a valid URL: {exc}"
    if parts.scheme not in ("http", "https") or not host:
        return "only http(s) URLs with a host are accepted"
    if allow_private:
        return None
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)}
    except (OSError, UnicodeError) as exc:
        return f"{host} does not resolve ({exc})"
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%")[0])
        if not ip.is_global:
            return f"{host} resolves to {ip}, which is not a public address"
    return None
