"""The compliance report an ISO 27001 / SOC 2 auditor asks for: per period, every change to an environment that
requires one (production and dr by default) with its approvals (who, when, before implementation?), testing
evidence (the gate results of its deployments and of its releases' earlier stages), the deployment outcome and
the emergency review, with the exceptions highlighted; deployments there without a change; and whether the
audit chain verifies."""
import csv
import datetime as dt
import io
from dataclasses import dataclass, field

from django.contrib.contenttypes.models import ContentType
from django.db.models import F, Q

from pmrelease import audit
from pmrelease.approvals import Decision
from pmrelease.models import AuditEvent
from releases.models import Deployment, GateResult, Release

from .models import ChangeClass, ChangeLink, ChangeRequest, ChangeStatus
from .policy import effective_risk
from .services import environments_requiring_change

# Exception codes (stable: the CSV and the API carry them) and what they mean.
EXCEPTIONS = {
    "approved_after_implementation": "an approval was given after implementation began",
    "not_approved_before_implementation": "implemented without an approval given before it",
    "missing_test_evidence": "no passed testing gate for what was deployed",
    "approval_withdrawn": "approvals withdrawn by an edit of what was approved",
    "self_approval_refused": "an approval by the requester or implementer was attempted (refused)",
    "emergency_review_open": "an emergency change without its post-implementation review and retrospective approval",
    "failed": "the change failed",
    "deployment_without_change": "a deployment to an environment that requires a change, with no change covering it",
}


@dataclass
class Row:
    change: ChangeRequest
    approvals: list = field(default_factory=list)  # dicts: approver, decision, at, round, before_implementation
    evidence: list = field(default_factory=list)  # dicts: deployment, environment, gate, status, tests, failed
    deployments: list = field(default_factory=list)  # dicts: id, environment, version, status, started, finished
    exceptions: list = field(default_factory=list)  # (code, detail)


@dataclass
class Report:
    since: dt.datetime
    until: dt.datetime
    rows: list
    uncovered: list  # deployments without a change: dicts
    audit_intact: bool
    audit_checked: int
    audit_breaks: list  # strings

    @property
    def exception_count(self):
        return sum(len(r.exceptions) for r in self.rows) + len(self.uncovered)


def _in_period(since, until):
    return (Q(implemented_at__gte=since, implemented_at__lt=until)
            | Q(implemented_at__isnull=True, created_at__gte=since, created_at__lt=until))


def build(since, until):
    """The report for [since, until)."""
    gated = environments_requiring_change()
    gated_ids = [e.pk for e in gated]
    changes = list(ChangeRequest.objects.filter(_in_period(since, until), environments__in=gated_ids).distinct()
                   .select_related("requested_by", "implementer", "pir_reviewer", "retro_approved_by")
                   .prefetch_related("environments", "approvals__approver", "links__content_type")
                   .order_by(F("implemented_at").asc(nulls_last=True), "created_at", "id"))
    dep_type = ContentType.objects.get_for_model(Deployment)
    rel_type = ContentType.objects.get_for_model(Release)
    ids = [str(c.pk) for c in changes]
    events = {}
    for e in AuditEvent.objects.filter(object_type=ChangeRequest._meta.label_lower, object_id__in=ids,
                                       action__in=["changerequest.approvals_withdrawn", "change.approval_refused"]):
        events.setdefault(int(e.object_id), []).append(e)
    rows = [_row(c, dep_type, rel_type, gated_ids, events.get(c.pk, [])) for c in changes]
    uncovered = _uncovered(since, until, gated_ids, dep_type)
    check = audit.verify()
    return Report(since=since, until=until, rows=rows, uncovered=uncovered, audit_intact=check.ok,
                  audit_checked=check.checked, audit_breaks=[str(b) for b in check.breaks])


def _row(change, dep_type, rel_type, gated_ids, events):
    row = Row(change=change)
    started = change.implemented_at
    for vote in sorted(change.approvals.all(), key=lambda v: v.created_at):
        row.approvals.append({"approver": vote.approver.get_username(), "decision": vote.decision,
                              "at": vote.created_at, "round": vote.round, "comment": vote.comment,
                              "before_implementation": started is None or vote.created_at <= started})
    if change.retro_approved_at:
        row.approvals.append({"approver": change.retro_approved_by.get_username(), "decision": "retrospective",
                              "at": change.retro_approved_at, "round": change.approval_round, "comment": "",
                              "before_implementation": False})
    links = list(change.links.all())
    dep_ids = [int(link.object_id) for link in links if link.content_type_id == dep_type.pk]
    rel_ids = [int(link.object_id) for link in links if link.content_type_id == rel_type.pk]
    deployments = list(Deployment.objects.filter(pk__in=dep_ids).select_related("environment", "release"))
    rel_ids += [d.release_id for d in deployments]
    for d in deployments:
        row.deployments.append({"id": d.pk, "environment": d.environment.name, "version": d.release.version,
                                "status": d.status, "started_at": d.started_at, "finished_at": d.finished_at})
    # testing evidence: the gates of its deployments and of its releases' deployments before it (staging…)
    results = GateResult.objects.filter(Q(deployment_id__in=dep_ids) | Q(
        deployment__release_id__in=rel_ids, deployment__environment__position__lt=_max_position(change)))
    if started:
        results = results.filter(created_at__lte=started + dt.timedelta(days=1))
    for r in results.select_related("gate", "deployment__environment").order_by("created_at", "id"):
        row.evidence.append({"deployment": r.deployment_id, "environment": r.deployment.environment.name,
                             "gate": r.gate.name, "status": r.status, "tests": r.tests, "failed": r.failed,
                             "url": r.url, "at": r.created_at})
    implemented = change.status not in (ChangeStatus.DRAFT, ChangeStatus.SUBMITTED, ChangeStatus.IN_REVIEW,
                                        ChangeStatus.APPROVED, ChangeStatus.SCHEDULED, ChangeStatus.CANCELLED)
    exceptions = row.exceptions
    approved = [a for a in row.approvals if a["decision"] == Decision.APPROVED]
    if implemented and not change.is_emergency and change.change_class != ChangeClass.STANDARD:
        late = [a for a in approved if not a["before_implementation"]]
        if late:
            exceptions.append(("approved_after_implementation",
                               ", ".join(f"{a['approver']} at {a['at']:%Y-%m-%d %H:%M}" for a in late)))
        if not any(a["before_implementation"] for a in approved):
            exceptions.append(("not_approved_before_implementation", "no approval before "
                               f"{started:%Y-%m-%d %H:%M}" if started else "no approval"))
    if implemented and not change.is_emergency and not any(e["status"] == "passed" for e in row.evidence):
        exceptions.append(("missing_test_evidence", "no passed gate on its deployments or earlier stages"
                           + (" (failed gates overridden)" if any(e["status"] == "overridden" for e in row.evidence)
                              else "")))
    for e in events:
        if e.action == "changerequest.approvals_withdrawn":
            exceptions.append(("approval_withdrawn", f"{e.created_at:%Y-%m-%d %H:%M} by {e.actor_username}: "
                               f"{', '.join((e.after or {}).get('changed', []))}"))
        elif "separation of duties" in e.reason:
            exceptions.append(("self_approval_refused", f"{e.actor_username} at {e.created_at:%Y-%m-%d %H:%M}: "
                               f"{e.reason}"))
    if change.is_emergency and implemented and change.needs_review:
        missing = [what for what, done in (("review", change.pir_at), ("retrospective approval",
                                                                        change.retro_approved_at)) if not done]
        exceptions.append(("emergency_review_open", "missing: " + ", ".join(missing)))
    if change.status == ChangeStatus.FAILED:
        exceptions.append(("failed", change.close_notes[:200]))
    return row


def _max_position(change):
    return max([e.position for e in change.environments.all()] or [0])


def _uncovered(since, until, gated_ids, dep_type):
    covered = {int(i) for i in ChangeLink.objects.filter(content_type=dep_type)
               .values_list("object_id", flat=True)}
    out = []
    for d in (Deployment.objects.filter(environment_id__in=gated_ids, started_at__gte=since, started_at__lt=until)
              .select_related("environment", "release").order_by("started_at", "id")):
        if d.pk not in covered:
            out.append({"id": d.pk, "environment": d.environment.name, "version": d.release.version,
                        "status": d.status, "started_at": d.started_at})
    return out


# --- renderings --------------------------------------------------------------------------------------------------
def _iso(value):
    return value.isoformat() if value else None


def as_dict(report):
    return {
        "since": _iso(report.since), "until": _iso(report.until),
        "audit_chain": {"intact": report.audit_intact, "checked": report.audit_checked,
                        "breaks": report.audit_breaks},
        "exception_count": report.exception_count,
        "changes": [{
            "id": r.change.pk, "title": r.change.title, "class": r.change.change_class, "type": r.change.type,
            "risk": effective_risk(r.change), "status": r.change.status, "close_code": r.change.close_code,
            "environments": [e.name for e in r.change.environments.all()],
            "requested_by": r.change.requested_by.get_username() if r.change.requested_by else None,
            "implementer": r.change.implementer.get_username() if r.change.implementer else None,
            "approved_at": _iso(r.change.approved_at), "implemented_at": _iso(r.change.implemented_at),
            "closed_at": _iso(r.change.closed_at),
            "approvals": [{**a, "at": _iso(a["at"])} for a in r.approvals],
            "test_evidence": [{**e, "at": _iso(e["at"])} for e in r.evidence],
            "deployments": [{**d, "started_at": _iso(d["started_at"]), "finished_at": _iso(d["finished_at"])}
                            for d in r.deployments],
            "emergency_review": ({"root_cause": r.change.pir_root_cause, "prevention": r.change.pir_prevention,
                                  "reviewer": r.change.pir_reviewer.get_username() if r.change.pir_reviewer else None,
                                  "reviewed_at": _iso(r.change.pir_at),
                                  "retro_approved_by": (r.change.retro_approved_by.get_username()
                                                        if r.change.retro_approved_by else None),
                                  "retro_approved_at": _iso(r.change.retro_approved_at)}
                                 if r.change.is_emergency else None),
            "exceptions": [{"code": code, "meaning": EXCEPTIONS[code], "detail": detail}
                           for code, detail in r.exceptions],
        } for r in report.rows],
        "deployments_without_change": [{**d, "started_at": _iso(d["started_at"]),
                                        "exception": "deployment_without_change"} for d in report.uncovered],
    }


CSV_COLUMNS = ["change", "title", "class", "type", "risk", "status", "close_code", "environments", "requested_by",
               "implementer", "approvals", "approved_before_implementation", "implemented_at", "test_evidence",
               "deployments", "emergency_review", "exceptions"]


def _cell(value):
    """A CSV cell a spreadsheet will not run as a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def as_csv(report):
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([f"# compliance report {report.since:%Y-%m-%d %H:%M} – {report.until:%Y-%m-%d %H:%M} UTC; audit "
                     f"chain {'intact' if report.audit_intact else 'BROKEN'} ({report.audit_checked} events)"])
    writer.writerow(CSV_COLUMNS)
    for r in report.rows:
        c = r.change
        writer.writerow([_cell(v) for v in [
            f"CHG-{c.pk}", c.title, c.change_class, c.type, effective_risk(c), c.status, c.close_code,
            " ".join(e.name for e in c.environments.all()),
            c.requested_by.get_username() if c.requested_by else "",
            c.implementer.get_username() if c.implementer else "",
            "; ".join(f"{a['approver']} {a['decision']} {a['at']:%Y-%m-%d %H:%M}" for a in r.approvals),
            "yes" if any(a["before_implementation"] and a["decision"] == Decision.APPROVED for a in r.approvals)
            else "no",
            _iso(c.implemented_at) or "",
            "; ".join(f"{e['environment']} {e['gate']} {e['status']}" for e in r.evidence),
            "; ".join(f"#{d['id']} {d['environment']} {d['status']}" for d in r.deployments),
            (f"reviewed by {c.pir_reviewer.get_username() if c.pir_reviewer else '-'}; retro approval "
             f"{c.retro_approved_by.get_username() if c.retro_approved_by else '-'}") if c.is_emergency else "",
            "; ".join(f"{code}: {detail}" for code, detail in r.exceptions)]])
    for d in report.uncovered:
        writer.writerow([_cell(v) for v in ["", f"deployment #{d['id']} of {d['version']}", "", "", "", d["status"], "",
                                             d["environment"], "", "", "", "no", _iso(d["started_at"]), "", "", "",
                                             "deployment_without_change: " + EXCEPTIONS["deployment_without_change"]]])
    return out.getvalue()
