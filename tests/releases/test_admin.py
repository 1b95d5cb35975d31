"""The admin as approvers and operators use it: buttons, refusals, notes, calendar, history."""
import pytest

from pmrelease.models import AuditEvent
from releases.models import Environment, Release
from tests.factories import make_release

pytestmark = pytest.mark.django_db


def _buttons(client, release):
    html = client.get(f"/admin/releases/release/{release.pk}/change/").content.decode()
    return [name for name in ("approve", "reject", "deploy", "complete", "fail", "rollback")
            if f'name="action" value="{name}"' in html]


def test_change_view__approver__sees_approve_and_reject_only(client, users, envs):
    release = make_release(by=users["planner"], envs=[envs["staging"], envs["production"]])
    client.force_login(users["approver"])
    assert _buttons(client, release) == ["approve", "reject"]


def test_change_view__author_and_operations__see_no_approval_buttons(client, users, envs):
    release = make_release(by=users["dev"], envs=[envs["staging"]])
    client.force_login(users["dev"])
    assert _buttons(client, release) == []
    client.force_login(users["ops"])
    assert _buttons(client, release) == []


def test_change_view__approved_release__operations_sees_deploy(client, users, envs, step_up):
    release = make_release(by=users["planner"], envs=[envs["production"]])
    client.force_login(users["approver"])
    step_up(client)  # production actions need a recent second factor
    client.post(f"/admin/releases/release/{release.pk}/act/approve/", {"text": "ok"})
    assert Release.objects.get(pk=release.pk).status == "approved"
    client.force_login(users["ops"])
    step_up(client)  # production actions need a recent second factor
    html = client.get(f"/admin/releases/release/{release.pk}/change/").content.decode()
    assert _buttons(client, release) == []  # the deploy form, not a bare status button
    assert f'action="/admin/releases/release/{release.pk}/deploy/"' in html
    assert "production — not yet: production needs a successful deployment to staging first" in html
    client.force_login(users["dev2"])
    step_up(client)  # production actions need a recent second factor
    assert "/deploy/" not in client.get(f"/admin/releases/release/{release.pk}/change/").content.decode()


def test_act_view__forged_post_without_permission__refused_server_side(client, users, envs):
    release = make_release(by=users["planner"], envs=[envs["staging"], envs["production"]])
    client.force_login(users["dev"])  # no button shown, posts anyway
    response = client.post(f"/admin/releases/release/{release.pk}/act/approve/", {"text": ""}, follow=True)
    assert Release.objects.get(pk=release.pk).status == "planned"
    assert "is not in the &#x27;approvers&#x27; group" in response.content.decode()
    hidden = make_release(by=users["planner"], envs=[envs["production"]])
    assert client.post(f"/admin/releases/release/{hidden.pk}/act/approve/", {"text": ""}).status_code == 404


def test_act_view__self_approval_post__refused(client, users, envs):
    release = make_release(by=users["approver"], envs=[envs["staging"]])
    client.force_login(users["approver"])
    response = client.post(f"/admin/releases/release/{release.pk}/act/approve/", {"text": ""}, follow=True)
    assert Release.objects.get(pk=release.pk).status == "planned"
    assert "cannot approve" in response.content.decode()


def test_act_view__get__405(client, users, envs):
    release = make_release(by=users["dev"], envs=[envs["staging"]])
    client.force_login(users["approver"])
    assert client.get(f"/admin/releases/release/{release.pk}/act/approve/").status_code == 405


def test_change_view__plan_blockers__shown_and_no_approve_button(client, users, envs):
    release = make_release(by=users["dev"], envs=[envs["staging"]], plan={})
    client.force_login(users["approver"])
    html = client.get(f"/admin/releases/release/{release.pk}/change/").content.decode()
    assert "the rollback plan is missing" in html
    assert _buttons(client, release) == ["reject"]


def test_admin_add_release__form__version_proposed_and_audited(client, users, envs):
    make_release(by=users["dev"], envs=[envs["staging"]], version="4.2.0")
    client.force_login(users["dev"])
    data = {
        "version": "", "type": "minor", "title": "From the admin", "description": "", "quorum": 1,
        "environments": [envs["staging"].pk],
    }
    for prefix in ("note_items", "prerequisites", "risk_assessment", "rollback_plan", "rollback_strategies",
                   "rollback_steps", "communication_plan", "testing_requirements", "approvals", "rollback_triggers"):
        data.update({f"{prefix}-TOTAL_FORMS": 0, f"{prefix}-INITIAL_FORMS": 0})
    data.update({"rollback_steps-TOTAL_FORMS": 1, "rollback_steps-0-order": 1,
                 "rollback_steps-0-description": "Undo", "rollback_steps-0-verification": "ok",
                 "rollback_steps-0-timeout": 60, "rollback_steps-0-on_failure": "stop"})
    response = client.post("/admin/releases/release/add/", data)
    assert response.status_code == 302, response.content.decode()[:3000]
    release = Release.objects.get(title="From the admin")
    assert release.version == "4.3.0" and release.created_by == users["dev"]
    assert release.rollback_steps.count() == 1
    event = AuditEvent.objects.for_object(release).get()
    assert event.action == "release.create" and event.after["rollback_steps"][0][1] == "Undo"


def test_admin_add_release__bad_version__form_error(client, users, envs):
    client.force_login(users["dev"])
    response = client.post("/admin/releases/release/add/", {"version": "1.0", "type": "minor", "title": "x",
                                                            "quorum": 1})
    assert response.status_code == 200
    assert "not a semantic version" in response.content.decode()


def test_notes_view__shows_and_downloads(client, users, envs):
    release = make_release(by=users["dev"], envs=[envs["staging"]], version="5.0.0", type="major")
    client.force_login(users["approver"])
    page = client.get(f"/admin/releases/release/{release.pk}/notes/")
    assert "# Release 5.0.0 - " in page.content.decode()
    download = client.get(f"/admin/releases/release/{release.pk}/notes/?download=1")
    assert download["Content-Disposition"] == 'attachment; filename="release-5.0.0.md"'


def test_awaiting_view_and_filter__lists_my_pending_approvals(client, users, envs):
    release = make_release(by=users["dev"], envs=[envs["staging"]], title="Needs me")
    client.force_login(users["approver"])
    assert "Needs me" in client.get("/admin/releases/release/awaiting-my-approval/").content.decode()
    assert "Needs me" in client.get("/admin/releases/release/?awaiting=me").content.decode()
    client.force_login(users["dev"])
    assert "Needs me" not in client.get("/admin/releases/release/awaiting-my-approval/").content.decode()
    assert release.pk


def test_cadence_view__renders_calendar_and_overdue(client, users, envs):
    client.force_login(users["ops"])
    html = client.get("/admin/releases/release/cadence/?year=2026&month=11").content.decode()
    assert "November 2026" in html and "overdue" in html
    assert client.get("/admin/releases/release/cadence/?year=x").status_code == 200


def test_history_view__shows_audit_rows(client, users, envs):
    release = make_release(by=users["dev"], envs=[envs["staging"]])
    client.force_login(users["approver"])
    client.post(f"/admin/releases/release/{release.pk}/act/reject/", {"text": "No load test"})
    html = client.get(f"/admin/releases/release/{release.pk}/history/").content.decode()
    assert "release.reject" in html and "No load test" in html and "release.create" in html


def test_auditevent_admin__read_only_and_csv_export(client, users, envs):
    make_release(by=users["dev"], envs=[envs["staging"]])
    event = AuditEvent.objects.first()
    client.force_login(users["admin"])
    assert client.get("/admin/pmrelease/auditevent/").status_code == 200
    assert client.post(f"/admin/pmrelease/auditevent/{event.pk}/delete/", {"post": "yes"}).status_code == 403
    assert client.get("/admin/pmrelease/auditevent/add/").status_code == 403
    export = client.get("/admin/pmrelease/auditevent/export/?action=release.create")
    body = b"".join(export.streaming_content).decode()
    assert "release.create" in body and export["Content-Type"].startswith("text/csv")


def test_environment_admin__developer_sees_no_production_and_cannot_edit_staging(client, users, envs):
    client.force_login(users["dev"])
    listing = client.get("/admin/releases/environment/").content.decode()
    assert f"/admin/releases/environment/{envs['staging'].pk}/change/" in listing
    assert f"/admin/releases/environment/{envs['production'].pk}/change/" not in listing
    assert client.get(f"/admin/releases/environment/{envs['production'].pk}/change/").status_code == 302
    page = client.get(f"/admin/releases/environment/{envs['staging'].pk}/change/").content.decode()
    assert 'name="_save"' not in page  # view only


def test_environment_admin__operations_edit__audited(client, users, envs):
    client.force_login(users["ops"])
    env = envs["qa"]
    data = {"name": env.name, "display_name": "QA lab", "purpose": env.purpose, "tier": env.tier,
            "position": env.position, "is_active": "on", "promotes_to": "", "attached_to": envs["staging"].pk,
            "attachment": "testing", "infrastructure": '{"vps": "1 vCPU"}', "data_source": "", "data_retention": "",
            "data_backup": ""}
    for prefix in ("access", "target", "testing_gates", "health_checks", "rollback_triggers", "metrics"):
        data.update({f"{prefix}-TOTAL_FORMS": 0, f"{prefix}-INITIAL_FORMS": 0})
    response = client.post(f"/admin/releases/environment/{env.pk}/change/", data)
    assert response.status_code == 302, response.content.decode()[:2000]
    event = AuditEvent.objects.get(action="environment.update")
    assert event.after["display_name"] == "QA lab" and event.actor_username == "ops"


def test_deploy_form__ops__starts_deployment_and_page_shows_live_steps(client, users, envs, sim_targets,
                                                                       approved_release):
    release = approved_release()
    client.force_login(users["ops"])
    response = client.post(f"/admin/releases/release/{release.pk}/deploy/", {
        "environment": envs["development"].pk, "strategy": "canary", "parameters": '{"pause": null}'})
    from releases.models import Deployment

    dep = Deployment.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/admin/releases/deployment/{dep.pk}/change/"
    page = client.get(response["Location"]).content.decode()
    assert "Canary at 10% of traffic" in page and "data-progress-url" in page
    progress = client.get(f"/admin/releases/deployment/{dep.pk}/progress/").json()
    assert progress["status"] == "running" and progress["steps"][0]["name"] == "Canary at 10% of traffic"
    assert "abort" in progress["actions"]


def test_deploy_form__bad_json_and_refused_promotion__message_no_deployment(client, users, envs, sim_targets,
                                                                           approved_release):
    release = approved_release()
    client.force_login(users["ops"])
    page = client.post(f"/admin/releases/release/{release.pk}/deploy/",
                       {"environment": envs["development"].pk, "parameters": "{oops"}, follow=True)
    assert "Parameters must be a JSON object" in page.content.decode()
    page = client.post(f"/admin/releases/release/{release.pk}/deploy/",
                       {"environment": envs["production"].pk}, follow=True)
    assert "needs a successful deployment to staging first" in page.content.decode()
    from releases.models import Deployment

    assert not Deployment.objects.exists()


def test_deployment_actions__developer_forged_post__refused(client, users, envs, sim_targets, approved_release):
    from releases.deploy import services as deployments

    release = approved_release(type="hotfix")
    dep = deployments.deployment_create(release=release, environment=envs["staging"], by=users["ops"],
                                        dispatch=False)
    client.force_login(users["dev"])  # limited on staging: may view, not act
    page = client.get(f"/admin/releases/deployment/{dep.pk}/change/").content.decode()
    assert 'value="abort"' not in page
    response = client.post(f"/admin/releases/deployment/{dep.pk}/act/abort/", {"text": "x"}, follow=True)
    assert "limited access to staging" in response.content.decode()
    dep.refresh_from_db()
    assert dep.status == "running"


def test_gate_result_form__recorded_by_hand__deployment_continues(client, users, envs, sim_targets, seed_gates,
                                                                  approved_release):
    from releases.deploy import engine
    from releases.deploy import services as deployments

    dep = deployments.deployment_create(release=approved_release(), environment=envs["development"],
                                        by=users["ops"], dispatch=False)
    engine.run_inline(dep.pk, max_steps=5)
    client.force_login(users["dev"])  # full access to development: may report
    page = client.get(f"/admin/releases/deployment/{dep.pk}/change/").content.decode()
    assert "Record result" in page
    gate = seed_gates["Unit Tests"]
    bad = client.post(f"/admin/releases/deployment/{dep.pk}/gates/{gate.pk}/result/", {"passed": "x", "failed": 0},
                      follow=True)
    assert "whole numbers" in bad.content.decode()
    client.post(f"/admin/releases/deployment/{dep.pk}/gates/{gate.pk}/result/", {"passed": 12, "failed": 0})
    assert dep.gate_results.get().status == "passed"
    assert engine.run_inline(dep.pk).status == "succeeded"


def test_environment_admin__add_by_superuser__created_and_audited(client, users, envs):
    from releases.models import Environment

    client.force_login(users["admin"])
    data = {"name": "perf", "display_name": "Performance lab", "purpose": "", "tier": "testing", "position": 9,
            "is_active": "on", "promotes_to": "", "attached_to": envs["staging"].pk, "attachment": "testing",
            "infrastructure": "{}", "data_source": "", "data_retention": "", "data_backup": ""}
    for prefix in ("access", "target", "testing_gates", "health_checks", "rollback_triggers", "metrics"):
        data.update({f"{prefix}-TOTAL_FORMS": 0, f"{prefix}-INITIAL_FORMS": 0})
    response = client.post("/admin/releases/environment/add/", data)
    assert response.status_code == 302, response.content.decode()[:2000]
    env = Environment.objects.get(name="perf")
    assert AuditEvent.objects.filter(action="environment.create", object_id=str(env.pk)).exists()


def test_environment_admin__your_access_column__per_request_never_another_users(client, rf, users, envs):
    """The admin instance is shared by every thread of a gunicorn worker: the column must not read request
    state stored on it (one user saw another's access level)."""
    from django.contrib import admin

    model_admin = admin.site._registry[Environment]
    dev_request = rf.get("/admin/releases/environment/")
    dev_request.user = users["dev"]
    columns = model_admin.get_list_display(dev_request)
    client.force_login(users["ops"])  # meanwhile another thread serves ops the same list
    assert client.get("/admin/releases/environment/").status_code == 200
    column = next(c for c in columns if c == "my_access" or getattr(c, "short_description", "") == "your access")
    cell = column(envs["production"]) if callable(column) else getattr(model_admin, column)(envs["production"])
    assert cell == "none"  # dev's access to production, not ops' "administrative"


def _environment_form(env, **extra):
    data = {"name": env.name, "display_name": env.display_name, "purpose": env.purpose, "tier": env.tier,
            "position": env.position, "is_active": "on", "promotes_to": "", "attached_to": "", "attachment": "",
            "infrastructure": "{}", "data_source": "", "data_retention": "", "data_backup": "", "bake_minutes": ""}
    for prefix in ("access", "target", "testing_gates", "health_checks", "rollback_triggers", "metrics"):
        data.update({f"{prefix}-TOTAL_FORMS": 0, f"{prefix}-INITIAL_FORMS": 0})
    return {**data, **extra}


def test_environment_admin__default_triggers_and_metrics_provider__saved_through_services(client, users, envs, step_up):
    client.force_login(users["ops"])
    step_up(client)  # production actions need a recent second factor
    env = envs["production"]
    data = _environment_form(env, **{
        "rollback_triggers-TOTAL_FORMS": 1, "rollback_triggers-0-metric": "error_rate",
        "rollback_triggers-0-operator": ">", "rollback_triggers-0-threshold": "0.2", "rollback_triggers-0-duration": 120,
        "rollback_triggers-0-action": "rollback", "rollback_triggers-0-cooldown": 30, "rollback_triggers-0-compare": "",
        "rollback_triggers-0-compare_mode": "ratio", "rollback_triggers-0-no_data": "hold",
        "rollback_triggers-0-scale_factor": 2, "rollback_triggers-0-enabled": "on", "rollback_triggers-0-position": 0,
        "metrics-TOTAL_FORMS": 1, "metrics-0-kind": "prometheus", "metrics-0-url": "http://prometheus:9090",
        "metrics-0-timeout": 5, "metrics-0-verify_tls": "on", "metrics-0-auth_env": "", "metrics-0-app": "",
        "metrics-0-rate_window": "30s", "metrics-0-templates": "{}"})
    response = client.post(f"/admin/releases/environment/{env.pk}/change/", data)
    assert response.status_code == 302, response.content.decode()[:3000]
    assert [str(t) for t in env.rollback_triggers.all()] == ["error_rate > 0.2 for 120 s → rollback"]
    assert env.metrics.kind == "prometheus" and env.metrics.rate_window == "30s"
    actions = set(AuditEvent.objects.filter(object_id=str(env.pk)).values_list("action", flat=True))
    assert {"environment.rollbacktrigger", "environment.metrics"} <= actions
    page = client.get(f"/admin/releases/environment/{env.pk}/change/").content.decode()
    assert "Test query: each named metric once" in page and "default rollback triggers" in page.lower()


def test_metrics_test_query__builtin_store__shows_each_metric(client, users, envs):
    client.force_login(users["ops"])
    page = client.get(f"/admin/monitoring/metricsconfig/test/{envs['staging'].pk}/").content.decode()
    assert "error_rate" in page and "response_time_p95" in page and "no data for version" in page
    client.force_login(users["support"])  # no access to staging
    assert client.get(f"/admin/monitoring/metricsconfig/test/{envs['staging'].pk}/").status_code == 403
