"""gunicorn reads this file from the working directory: the portal's Prometheus multiprocess housekeeping.

A worker that exits leaves its counters and histograms in PROMETHEUS_MULTIPROC_DIR (they stay in the sums);
its live gauges are dropped.
"""


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
