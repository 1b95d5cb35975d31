"""A real Celery worker (the project's app, its configured broker) for integration tests."""
import contextlib
import time

from celery.contrib.testing.worker import start_worker

from pmrelease.celery import app


@contextlib.contextmanager
def running_worker():
    with contextlib.suppress(Exception):
        app.control.purge()  # drop messages other tests published with no worker running
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=15, loglevel="WARNING"):
        yield app


def wait_for(predicate, timeout=30.0, interval=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
