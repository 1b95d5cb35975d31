"""Metric providers behind one interface (``pmrelease.providers``): Prometheus over its HTTP API and the
builtin store applications push samples to. Configured per environment (``MetricsConfig``)."""
