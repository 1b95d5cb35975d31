"""Signals of the releases app, for the apps above it to react to (the arrows point down: releases never
imports them).

``deployment_started``: a deployment started running (inside the starting transaction). Argument:
``deployment``.

``deployment_finished``: a deployment reached an end state (succeeded, failed, rolled back). Sent inside
the transaction that recorded the end, so a receiver's writes commit or roll back with it. Arguments:
``deployment``, ``automatic_rollback`` (a rollback the engine started on its own), ``reason``.
"""
from django.dispatch import Signal

deployment_started = Signal()
deployment_finished = Signal()
