"""A real OpenID provider that the project did not write (PyPI's oidc-provider-mock), run as its own process."""
import contextlib
import socket
import subprocess
import sys
import time
from urllib.parse import quote

import httpx


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def oidc_provider():
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "oidc_provider_mock", "--port", str(port), "--host", "127.0.0.1"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                if httpx.get(f"{url}/.well-known/openid-configuration", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        else:
            raise RuntimeError("oidc-provider-mock did not start")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def set_user(url, sub, claims):
    response = httpx.put(f"{url}/users/{quote(sub, safe='')}", json=claims, timeout=5)
    assert response.status_code == 204, response.text
