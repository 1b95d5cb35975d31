"""gunicorn reads this file from the working directory: the portal's Prometheus multiprocess housekeeping.

The master sets PROMETHEUS_MULTIPROC_DIR as the portal's settings would (``VAR_DIR/prometheus`` unless set), so
that the workers it forks inherit it; a worker that exits leaves its counters and histograms in the sums
(prometheus-client's ``mark_process_dead`` drops only the live gauges of that pid).
"""
import os
from pathlib import Path

_var = Path(os.environ.get("VAR_DIR", Path(__file__).resolve().parent / "var"))
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(_var / "prometheus"))


def child_exit(server, worker):
    from prometheus_client import multiprocess

    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory and os.path.isdir(directory):
        multiprocess.mark_process_dead(worker.pid, directory)
