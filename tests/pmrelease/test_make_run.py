"""`make run` with PORT set: every public link carries that port (PORTAL_URL derived from PORT)."""
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _run_line(*make_args, environ=None):
    """The command `make run` would start honcho with (make -n: nothing runs), as (env assignments, argv)."""
    out = subprocess.run(["make", "-n", "run", *make_args], cwd=REPO, env=environ or _clean_env(),
                         capture_output=True, text=True, check=True, timeout=60).stdout
    line = next(line for line in out.splitlines() if "honcho start" in line)
    words = shlex.split(line)
    assignments = dict(w.split("=", 1) for w in words if re.match(r"^[A-Z_]+=", w))
    return assignments, out


def _clean_env():
    return {k: v for k, v in os.environ.items() if k not in ("PORT", "PORTAL_URL", "STATUS_PUBLIC_URL")}


def _links(environ):
    """The public links a process of the portal makes, given the environment honcho hands it."""
    code = (
        "import django, json; django.setup()\n"
        "from django.conf import settings\n"
        "from monitoring.statuspage.documents import public_url\n"
        "print(json.dumps({'portal': settings.PORTAL_URL, 'status': settings.STATUS_PUBLIC_URL,"
        " 'page': public_url(), 'feed': public_url('feed.atom'),"
        " 'confirm': public_url('subscriptions/confirm/t/')}))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=environ, capture_output=True, text=True,
                         check=True, timeout=60).stdout
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.parametrize("process_port", ["18811", "18911"])  # honcho gives the worker and beat PORT+100, +200
def test_make_run__port_set__every_public_link_has_that_port(process_port):
    assignments, out = _run_line("PORT=18811")
    assert assignments["PORTAL_URL"] == "http://127.0.0.1:18811"
    assert "http://127.0.0.1:18811/admin/" in out and "8000" not in out
    environ = {**_clean_env(), "PORTAL_URL": assignments["PORTAL_URL"], "PORT": process_port,
               "DJANGO_SETTINGS_MODULE": "pmrelease.settings"}
    links = _links(environ)
    assert links == {"portal": "http://127.0.0.1:18811", "status": "http://127.0.0.1:18811/status",
                     "page": "http://127.0.0.1:18811/status", "feed": "http://127.0.0.1:18811/status/feed.atom",
                     "confirm": "http://127.0.0.1:18811/status/subscriptions/confirm/t/"}


def test_make_run__portal_url_set__kept():
    assignments, _ = _run_line("PORT=18811", environ={**_clean_env(), "PORTAL_URL": "https://releases.example.com"})
    assert assignments["PORTAL_URL"] == "https://releases.example.com"
