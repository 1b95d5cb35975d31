"""Reads of the flags app that are more than a query: why a flag (or segment) can never match, for the admin."""
from django.db.models import Prefetch

from . import documents, transfer
from .models import FeatureFlag, FlagEnvironment, GradualRollout, Lifecycle, RampStatus, Segment

OPEN_RAMPS = (RampStatus.RUNNING, RampStatus.PAUSED)


def _known():
    segments = set(Segment.objects.values_list("pk", flat=True))
    flags = dict(FeatureFlag.objects.exclude(lifecycle=Lifecycle.ARCHIVED).values_list("key", "dependencies"))
    return segments, flags


def state_warnings(state, known=None):
    """Why parts of a flag's configuration in one environment can never match (an imported construct: an unknown
    operator, a missing segment or parent, ...) or look like a secret; empty when nothing is wrong."""
    segment_ids, flags = known or _known()
    feature = documents.feature_document(state.flag, state)
    return transfer.feature_warnings(feature, segment_ids=segment_ids, flags=flags)


def flag_warnings(flag):
    """``{environment name: [warning]}`` for the environments where ``flag`` has warnings."""
    return flags_warnings([flag])[flag.pk]


def flags_warnings(flags):
    """``{flag id: {environment name: [warning]}}`` of many flags (a list page's): the known segments and flags
    read once, the flags' states in one query."""
    known = _known()
    result = {flag.pk: {} for flag in flags}
    for state in FlagEnvironment.objects.filter(flag__in=list(result)).select_related("environment", "flag"):
        warnings = state_warnings(state, known)
        if warnings:
            result[state.flag_id][state.environment.name] = warnings
    return result


def segment_warnings(segment):
    return transfer.constraint_warnings(segment.constraints if isinstance(segment.constraints, list) else [],
                                        f"segment {segment.name!r}")


def flags_with_states(flags=None):
    """``flags`` (every flag by default) with their owner and parent, their environment states and each state's
    open ramp (running or paused, newest first: ``state.open_ramps``) fetched with them: the flag API's list
    costs four queries for any number of flags."""
    ramps = Prefetch("ramps", queryset=GradualRollout.objects.filter(status__in=OPEN_RAMPS), to_attr="open_ramps")
    states = Prefetch("states", queryset=FlagEnvironment.objects.select_related("environment").prefetch_related(ramps))
    return (FeatureFlag.objects.all() if flags is None else flags).select_related("owner", "parent") \
        .prefetch_related(states)
