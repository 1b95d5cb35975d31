"""The compliance report: every change to a gated environment with approvals, evidence, outcome and review; the
exceptions an auditor looks for; deployments without a change; the audit chain's state; JSON, CSV, admin."""
import csv
import datetime as dt
import io

import pytest
from django.utils import timezone

from changes import compliance, services
from changes.models import ChangeApproval
from pmrelease import audit
from releases.deploy import engine, gates
from releases.deploy import services as deployments
from tests.factories import covering_change
from tests.releases.conftest import approved_release, sim_targets  # noqa: F401 (fixtures)

pytestmark = pytest.mark.django_db


def run(dep):
    return engine.run_inline(dep.pk)


def start(release, env, users, **kw):
    return deployments.deployment_create(release=release, environment=env, by=users["ops"], dispatch=False,
                                         strategy="rolling-update", **kw)


def period():
    now = timezone.now()
    return now - dt.timedelta(days=1), now + dt.timedelta(hours=2)


def codes(row):
    return [code for code, _ in row.exceptions]


@pytest.fixture
def history(users, envs, sim_targets, approved_release):  # noqa: F811
    """A clean production change (staging gate passed), one with an approval withdrawn and a refused self-approval,
    a rollback's emergency change, and a deployment made while production required no change."""
    gate = gates.ensure_gate(envs["staging"], name="Integration tests", tests="integration", required=True,
                             timeout=5, on_failure="warn", position=0)
    clean = approved_release(title="Clean")
    run(start(clean, envs["development"], users))
    staging = start(clean, envs["staging"], users)  # CI reports as it starts
    deployments.gate_report(deployment=staging, gate=gate, by=users["ops"], passed=40, failed=0, dispatch=False)
    assert run(staging).status == "succeeded"
    good = covering_change(clean, envs["production"], by=users["planner"], approver=users["approver"])
    assert run(start(clean, envs["production"], users)).status == "succeeded"

    messy = approved_release(title="Messy")
    run(start(messy, envs["development"], users))
    messy_staging = start(messy, envs["staging"], users)
    deployments.gate_report(deployment=messy_staging, gate=gate, by=users["ops"], passed=30, failed=10,
                            dispatch=False)
    run(messy_staging)  # waits for the override
    deployments.gate_override(deployment=messy_staging, gate=gate, by=users["ops"], reason="flaky", dispatch=False)
    assert run(messy_staging).status == "succeeded"
    edited = covering_change(messy, envs["production"], by=users["planner"], approver=users["approver"])
    services.change_update(change=edited, by=users["planner"], data={"testing_plan": "changed after approval"})
    try:
        services.change_approve(change=edited, by=users["planner"])
    except Exception:  # noqa: BLE001 - refused, and recorded
        pass
    from tests.factories import approve_change

    approve_change(edited)
    dep = start(messy, envs["production"], users, parameters={"simulate": {"fail_health_check_at_weight": 10}})
    assert run(dep).status in ("rolled_back", "failed")

    services.policy_set(environment=envs["production"], requires=False, by=users["admin"])
    loose = approved_release(title="Loose")
    run(start(loose, envs["development"], users))
    loose_staging = start(loose, envs["staging"], users)
    deployments.gate_report(deployment=loose_staging, gate=gate, by=users["ops"], passed=1, failed=0, dispatch=False)
    run(loose_staging)
    uncovered = run(start(loose, envs["production"], users))
    services.policy_set(environment=envs["production"], requires=True, by=users["admin"])
    return {"good": good, "edited": edited, "uncovered": uncovered, "gate": gate}


def test_report__exceptions_highlighted(users, envs, history):
    report = compliance.build(*period())
    rows = {r.change.pk: r for r in report.rows}
    good = rows[history["good"].pk]
    assert codes(good) == []
    assert [a["before_implementation"] for a in good.approvals] == [True, True, True]
    assert [(e["environment"], e["gate"], e["status"]) for e in good.evidence] == [
        ("staging", "Integration tests", "passed")]
    assert good.deployments[0]["status"] == "succeeded"

    edited = rows[history["edited"].pk]
    assert set(codes(edited)) >= {"approval_withdrawn", "self_approval_refused", "missing_test_evidence", "failed"}
    emergency = next(r for r in report.rows if r.change.is_emergency)
    assert codes(emergency) == ["emergency_review_open"]
    assert [d["id"] for d in report.uncovered] == [history["uncovered"].pk]
    assert report.audit_intact and report.audit_checked > 0
    assert report.exception_count == sum(len(r.exceptions) for r in report.rows) + 1


def test_report__approval_after_implementation__flagged(users, envs, history):
    change = history["good"]
    change.refresh_from_db()
    late = ChangeApproval.objects.filter(change=change).first()
    ChangeApproval.objects.filter(pk=late.pk).update(created_at=change.implemented_at + dt.timedelta(minutes=5))
    row = next(r for r in compliance.build(*period()).rows if r.change.pk == change.pk)
    assert codes(row) == ["approved_after_implementation"]
    ChangeApproval.objects.filter(change=change).update(created_at=change.implemented_at + dt.timedelta(minutes=5))
    row = next(r for r in compliance.build(*period()).rows if r.change.pk == change.pk)
    assert codes(row) == ["approved_after_implementation", "not_approved_before_implementation"]


def test_report__outside_the_period__left_out(users, envs, history):
    now = timezone.now()
    report = compliance.build(now - dt.timedelta(days=30), now - dt.timedelta(days=2))
    assert report.rows == [] and report.uncovered == []


def test_report__audit_chain_broken__said_so(users, envs, history, monkeypatch):
    broken = audit.Report(checked=10, breaks=[audit.Break(7, "its content does not match its hash")])
    monkeypatch.setattr(compliance.audit, "verify", lambda *a, **k: broken)
    data = compliance.as_dict(compliance.build(*period()))
    assert data["audit_chain"] == {"intact": False, "checked": 10,
                                   "breaks": ["event #7: its content does not match its hash"]}


def test_api__json_and_csv__auditor_only(api, users, envs, history):
    since, until = period()
    params = {"since": since.isoformat(), "until": until.isoformat()}
    assert api(users["dev"]).get("/api/v1/compliance/report/", params).status_code == 403
    response = api(users["security"]).get("/api/v1/compliance/report/", params)
    assert response.status_code == 200
    body = response.json()
    assert body["audit_chain"]["intact"] is True
    assert {c["id"] for c in body["changes"]} >= {history["good"].pk, history["edited"].pk}
    assert body["deployments_without_change"][0]["id"] == history["uncovered"].pk
    edited = next(c for c in body["changes"] if c["id"] == history["edited"].pk)
    assert {"code": "approval_withdrawn", "meaning": compliance.EXCEPTIONS["approval_withdrawn"]}.items() <= \
        next(e for e in edited["exceptions"] if e["code"] == "approval_withdrawn").items()
    csv_response = api(users["security"]).get("/api/v1/compliance/report/", {**params, "format": "csv"})
    assert csv_response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(csv_response.content.decode())))
    assert "audit chain intact" in rows[0][0]
    assert rows[1] == compliance.CSV_COLUMNS
    assert any(r[0] == f"CHG-{history['good'].pk}" and r[11] == "yes" for r in rows[2:])
    assert any("deployment_without_change" in r[-1] for r in rows[2:])


@pytest.mark.parametrize("params, field", [
    ({"since": "yesterday"}, "since"),
    ({"until": "2026-13-01"}, "until"),
    ({"since": "2026-12-02", "until": "2026-12-01"}, "until"),
    ({"since": "2020-01-01", "until": "2026-01-01"}, "since"),
])
def test_api__bad_period__400_naming_the_parameter(api, users, params, field):
    response = api(users["security"]).get("/api/v1/compliance/report/", params)
    assert response.status_code == 400, response.content
    assert field in response.json()


def test_csv__cells_that_look_like_formulas__neutralised(users, envs, history):
    from changes.models import ChangeRequest

    ChangeRequest.objects.filter(pk=history["good"].pk).update(title='=HYPERLINK("http://evil")')
    text = compliance.as_csv(compliance.build(*period()))
    assert "'=HYPERLINK" in text


def test_admin__page_print_view_and_csv(client, users, envs, history):
    client.force_login(users["security"])
    page = client.get("/admin/changes/changerequest/compliance/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "Audit chain:" in html and "intact" in html and "approval_withdrawn" in html
    printed = client.get("/admin/changes/changerequest/compliance/?print=1")
    assert b"@page" in printed.content and b"compliance report" in printed.content
    assert client.get("/admin/changes/changerequest/compliance/?format=csv")["Content-Type"].startswith("text/csv")
    client.force_login(users["dev"])
    assert client.get("/admin/changes/changerequest/compliance/").status_code == 403


def test_api__bad_period_asked_as_csv__400_in_json(api, users):
    response = api(users["security"]).get("/api/v1/compliance/report/", {"since": "soon", "format": "csv"})
    assert response.status_code == 400 and response["Content-Type"] == "application/json"
    assert "since" in response.json()
