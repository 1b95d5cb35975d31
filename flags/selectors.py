"""Reads of the flags app that are more than a query: why a flag (or segment) can never match, for the admin."""
from . import documents, transfer
from .models import FeatureFlag, FlagEnvironment, Lifecycle, Segment


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
    known = _known()
    result = {}
    for state in FlagEnvironment.objects.filter(flag=flag).select_related("environment", "flag"):
        warnings = state_warnings(state, known)
        if warnings:
            result[state.environment.name] = warnings
    return result


def segment_warnings(segment):
    return transfer.constraint_warnings(segment.constraints if isinstance(segment.constraints, list) else [],
                                        f"segment {segment.name!r}")
