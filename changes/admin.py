"""The change-management admin: the change page with its decision buttons, the approver queue ("awaiting my
decision"), the calendar (month and week) of windows, freezes and scheduled changes, open emergency reviews and
the compliance report; windows, freezes, templates and the approval policy. Every write goes through
``services``."""
import datetime as dt

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone

from pmrelease import errors
from pmrelease.admin import AuditHistoryMixin, ServiceAdminMixin, error_message, status_badge
from releases import access
from releases.models import Environment, Release

from . import compliance, selectors, services
from .api import compliance_period
from .models import (
    BEFORE_IMPLEMENTING,
    ApprovalRule,
    ChangeClass,
    ChangeFreeze,
    ChangeRequest,
    ChangeTemplate,
    ChangeWindow,
    CloseCode,
    EnvironmentChangePolicy,
    RiskLevel,
)
from .policy import POLICY, effective_risk

COLOURS = {"draft": "#555", "submitted": "#1f6feb", "in_review": "#9a6700", "approved": "#1a7f37",
           "scheduled": "#1a7f37", "implementing": "#bc4c00", "validating": "#9a6700", "closed": "#555",
           "failed": "#cf222e", "cancelled": "#555"}
RISK_COLOURS = {"low": "#1a7f37", "medium": "#9a6700", "high": "#bc4c00", "critical": "#cf222e"}


class AwaitingMyDecisionFilter(admin.SimpleListFilter):
    title = "my queue"
    parameter_name = "queue"

    def lookups(self, request, model_admin):
        return [("mine", "Awaiting my decision"), ("reviews", "Emergency reviews open")]

    def queryset(self, request, queryset):
        if self.value() == "mine":
            return queryset.filter(pk__in=[c.pk for c in selectors.awaiting_decision(request.user)])
        if self.value() == "reviews":
            return queryset.filter(pk__in=selectors.open_reviews().values("pk"))
        return queryset


class ChangeRequestForm(forms.ModelForm):
    change_class = forms.ChoiceField(choices=[(ChangeClass.NORMAL, "Normal"), (ChangeClass.EMERGENCY, "Emergency")],
                                     initial=ChangeClass.NORMAL, required=False,
                                     help_text="A standard change comes from its template (below).")
    template = forms.ModelChoiceField(queryset=ChangeTemplate.objects.filter(active=True, approved_at__isnull=False),
                                      required=False, help_text="An approved template makes it a standard change: "
                                                                "pre-authorised, it skips review.")
    releases = forms.ModelMultipleChoiceField(queryset=Release.objects.order_by("-created_at"), required=False,
                                              help_text="The releases this change covers (their deployments to "
                                                        "gated environments need it).")

    class Meta:
        model = ChangeRequest
        fields = ["title", "description", "type", "priority", "impact", "likelihood", "environments",
                  "planned_start", "duration", "maintenance", "implementation_plan", "rollback_plan", "testing_plan",
                  "approvers", "implementer"]


@admin.register(ChangeRequest)
class ChangeRequestAdmin(ServiceAdminMixin, AuditHistoryMixin, admin.ModelAdmin):
    form = ChangeRequestForm
    change_form_template = "admin/changes/changerequest/change_form.html"
    change_list_template = "admin/changes/changerequest/change_list.html"
    list_display = ["reference", "title", "class_label", "status_badge", "risk_badge", "where", "planned_start",
                    "requested_by"]
    list_filter = [AwaitingMyDecisionFilter, "status", "change_class", "type", "environments"]
    search_fields = ["title", "description"]
    date_hierarchy = "planned_start"
    filter_horizontal = ["environments", "approvers"]
    readonly_fields = ["status", "risk_shown", "approval_round", "requested_by", "submitted_at", "approved_at",
                       "implemented_at", "validated_at", "closed_at", "close_code", "close_notes"]

    def get_fieldsets(self, request, obj=None):
        head = ["title", "description", "type", "priority"]
        if obj is None:
            head += ["change_class", "template", "releases"]
        return [
            (None, {"fields": [*head, "status"] if obj else head}),
            ("Risk", {"fields": ["impact", "likelihood", *(["risk_shown"] if obj else [])]}),
            ("Where and when", {"fields": ["environments", "planned_start", "duration", "maintenance", "implementer"]}),
            ("Approvers", {"fields": ["approvers"], "description": "The approval policy names the roles; name "
                                                                   "people here who must approve as well."}),
            ("Plans", {"fields": ["implementation_plan", "rollback_plan", "testing_plan"]}),
            *([("Record", {"classes": ["collapse"], "fields": [
                "approval_round", "requested_by", "submitted_at", "approved_at", "implemented_at", "validated_at",
                "closed_at", "close_code", "close_notes"]})] if obj else []),
        ]

    def get_queryset(self, request):
        return (selectors.visible_changes(request.user, super().get_queryset(request))
                .select_related("requested_by").prefetch_related("environments"))

    @admin.display(description="change", ordering="id")
    def reference(self, obj):
        return f"CHG-{obj.pk}"

    @admin.display(description="class", ordering="change_class")
    def class_label(self, obj):
        return obj.get_change_class_display().split(" (")[0]

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj):
        return status_badge(obj, colours=COLOURS)

    @admin.display(description="risk", ordering="risk")
    def risk_badge(self, obj):
        from django.utils.html import format_html

        level = effective_risk(obj)
        return format_html('<strong style="color:{}">{}</strong>', RISK_COLOURS.get(level, "#000"), level)

    @admin.display(description="risk")
    def risk_shown(self, obj):
        return f"{effective_risk(obj)} — " + "; ".join(obj.risk_reasons)

    @admin.display(description="environments")
    def where(self, obj):
        return ", ".join(e.name for e in obj.environments.all())

    # --- permissions: the services decide; the admin shows what they would allow -------------------------
    def has_change_permission(self, request, obj=None):
        if obj is not None and obj.status not in BEFORE_IMPLEMENTING:
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return False  # never deleted: cancelled with a reason

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        if db_field.name == "environments":
            kwargs["queryset"] = access.visible_environments(request.user)
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    # --- saving through the services ------------------------------------------------------------------------
    def save_model(self, request, obj, form, change):
        """Nothing here: saved with its environments in ``save_related``, through a service."""

    def save_related(self, request, form, formsets, change):
        names = form.changed_data if change else list(form.cleaned_data)
        data = {name: form.cleaned_data[name] for name in names if name in services.CHANGE_FIELDS}
        if change:
            saved = services.change_update(change=ChangeRequest.objects.get(pk=form.instance.pk), data=data,
                                           by=request.user)
        else:
            links = list(form.cleaned_data.get("releases") or [])
            template = form.cleaned_data.get("template")
            if template is not None:
                saved = services.change_create_from_template(template=template, data=data, by=request.user,
                                                             links=links)
            else:
                saved = services.change_create(data=data, by=request.user, links=links,
                                               change_class=form.cleaned_data.get("change_class") or ChangeClass.NORMAL)
        form.instance.__dict__ |= {f.attname: saved.__dict__[f.attname] for f in ChangeRequest._meta.concrete_fields}
        form.instance._state.adding = False

    # --- the change page: decisions, review, risk, links, conflicts -----------------------------------------
    def change_view(self, request, object_id, form_url="", extra_context=None):
        change = self.get_object(request, object_id)
        extra_context = extra_context or {}
        if change is not None:
            refusals, warnings = services.schedule_problems(change) if change.planned_start else ([], [])
            extra_context |= {
                "actions": (actions := selectors.available_actions(change, request.user)),
                "can_decide": any(a.name == "approve" for a in actions),
                "decision_reason": POLICY.eligibility(change, request.user)[1],
                "requirement": POLICY.progress(change),
                "missing": POLICY.tally(change).missing,
                "votes": change.approvals.select_related("approver").order_by("round", "created_at"),
                "linked": selectors.linked(change),
                "conflicts": selectors.conflicts(change),
                "schedule_refusals": refusals, "schedule_warnings": warnings,
                "may_review": selectors.may_review(change, request.user),
                "may_raise_risk": POLICY.eligibility(change, request.user, for_vote=False)[0]
                and change.status in BEFORE_IMPLEMENTING,
                "higher_risks": RiskLevel.values[RiskLevel.values.index(effective_risk(change)) + 1:],
                "close_codes": CloseCode.choices,
                "effective_risk": effective_risk(change),
            }
        return super().change_view(request, object_id, form_url, extra_context)

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("awaiting-my-decision/", wrap(self.awaiting_view), name="changes_changerequest_awaiting"),
            path("calendar/", wrap(self.calendar_view), name="changes_changerequest_calendar"),
            path("compliance/", wrap(self.compliance_view), name="changes_changerequest_compliance"),
            path("<int:object_id>/act/<str:name>/", wrap(self.act_view), name="changes_changerequest_act"),
            path("<int:object_id>/review/", wrap(self.review_view), name="changes_changerequest_review"),
            path("<int:object_id>/raise-risk/", wrap(self.raise_risk_view), name="changes_changerequest_raise_risk"),
            *super().get_urls(),
        ]

    def _visible(self, request, object_id):
        return get_object_or_404(self.get_queryset(request), pk=object_id)

    def _back(self, object_id):
        return HttpResponseRedirect(reverse("admin:changes_changerequest_change", args=[object_id]))

    def act_view(self, request, object_id, name):
        """Run a step from its button; the service re-checks state and permission."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if name not in selectors.ACTIONS:
            raise PermissionDenied
        change = self._visible(request, object_id)
        text = request.POST.get("text", "")
        try:
            if name == "close":
                change = services.change_close(change=change, by=request.user, notes=text,
                                               close_code=request.POST.get("close_code") or CloseCode.SUCCESSFUL)
            else:
                change = services.change_transition(change=change, name=name, by=request.user, text=text)
        except errors.DomainError as exc:
            error_message(request, exc)
        else:
            self.message_user(request, f"{selectors.ACTIONS[name][0]}: {change} is now "
                                       f"{change.get_status_display().lower()}.", messages.SUCCESS)
        return self._back(object_id)

    def review_view(self, request, object_id):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        change = self._visible(request, object_id)
        try:
            services.change_record_review(change=change, by=request.user, root_cause=request.POST.get("root_cause"),
                                          prevention=request.POST.get("prevention"))
        except errors.DomainError as exc:
            error_message(request, exc)
        else:
            self.message_user(request, "Post-implementation review recorded.", messages.SUCCESS)
        return self._back(object_id)

    def raise_risk_view(self, request, object_id):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        change = self._visible(request, object_id)
        try:
            services.change_raise_risk(change=change, by=request.user, level=request.POST.get("level"),
                                       reason=request.POST.get("reason", ""))
        except errors.DomainError as exc:
            error_message(request, exc)
        else:
            self.message_user(request, f"Risk raised to {request.POST.get('level')}.", messages.SUCCESS)
        return self._back(object_id)

    def _page(self, request, template, title, **context):
        return TemplateResponse(request, template, {**self.admin_site.each_context(request), "opts": self.opts,
                                                    "title": title, **context})

    def awaiting_view(self, request):
        return self._page(request, "admin/changes/changerequest/awaiting.html", "Awaiting my decision",
                          changes=selectors.awaiting_decision(request.user),
                          reviews=selectors.visible_changes(request.user, selectors.open_reviews()))

    def calendar_view(self, request):
        today = timezone.localdate()
        envs = list(access.visible_environments(request.user))
        chosen = request.GET.get("environment")
        if chosen:
            envs = [e for e in envs if e.name == chosen] or envs
        view = "week" if request.GET.get("view") == "week" else "month"
        try:
            anchor = dt.date.fromisoformat(request.GET["date"]) if request.GET.get("date") else today
        except ValueError:
            anchor = today
        context = {"view": view, "today": today, "environments": access.visible_environments(request.user),
                   "chosen": chosen or "", "zone": timezone.get_current_timezone_name()}
        if view == "week":
            monday = anchor - dt.timedelta(days=anchor.weekday())
            context |= {"days": selectors.week_calendar(monday, envs), "anchor": monday,
                        "prev": monday - dt.timedelta(days=7), "next": monday + dt.timedelta(days=7),
                        "heading": f"Week of {monday:%d %B %Y}"}
        else:
            first = anchor.replace(day=1)
            context |= {"weeks": selectors.month_calendar(first.year, first.month, envs), "anchor": first,
                        "prev": (first - dt.timedelta(days=1)).replace(day=1),
                        "next": (first + dt.timedelta(days=32)).replace(day=1), "heading": f"{first:%B %Y}"}
        return self._page(request, "admin/changes/changerequest/calendar.html", "Change calendar", **context)

    def compliance_view(self, request):
        if not request.user.has_perm("pmrelease.view_auditevent"):
            raise PermissionDenied("the compliance report needs the pmrelease.view_auditevent permission")
        try:
            since, until = compliance_period(request.GET)
        except errors.DomainError as exc:
            error_message(request, exc)
            since, until = compliance_period({})
        report = compliance.build(since, until)
        if request.GET.get("format") == "csv":
            response = HttpResponse(compliance.as_csv(report), content_type="text/csv; charset=utf-8")
            response["Content-Disposition"] = f'attachment; filename="compliance-{since:%Y%m%d}-{until:%Y%m%d}.csv"'
            return response
        template = ("admin/changes/changerequest/compliance_print.html" if request.GET.get("print")
                    else "admin/changes/changerequest/compliance.html")
        return self._page(request, template, "Compliance report", report=report, meanings=compliance.EXCEPTIONS,
                          since=since, until=until, query=request.GET.urlencode())


# --- windows, freezes, templates, the policy ---------------------------------------------------------------
class _ServiceSaved(ServiceAdminMixin, AuditHistoryMixin, admin.ModelAdmin):
    """Admins whose rows are saved (with their many-to-many fields) and deleted by a service."""

    def save_model(self, request, obj, form, change):
        """Nothing here: saved in ``save_related``, through a service."""

    def save_related(self, request, form, formsets, change):
        existing = type(form.instance).objects.get(pk=form.instance.pk) if change else None
        names = form.changed_data if change else list(form.cleaned_data)
        saved = self.service_save(request, {n: form.cleaned_data[n] for n in names if n in self.service_fields},
                                  existing, form)
        form.instance.pk = saved.pk
        form.instance._state.adding = False

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            self.delete_model(request, obj)


@admin.register(ChangeWindow)
class ChangeWindowAdmin(_ServiceSaved):
    list_display = ["environment", "name", "when", "active"]
    list_filter = ["environment", "active"]
    fields = ["environment", *services.WINDOW_FIELDS]
    service_fields = services.WINDOW_FIELDS

    @admin.display(description="when")
    def when(self, obj):
        from .schedule import Window

        return Window(name="", days=tuple(obj.days), start=obj.start_time, end=obj.end_time,
                      tz=obj.timezone).describe().lstrip(" (").rstrip(")")

    def get_readonly_fields(self, request, obj=None):
        return ["environment"] if obj else []

    def service_save(self, request, data, existing, form):
        env = existing.environment if existing else form.cleaned_data["environment"]
        return services.window_save(environment=env, data=data, by=request.user, window=existing)

    def delete_model(self, request, obj):
        services.window_delete(window=obj, by=request.user)


@admin.register(ChangeFreeze)
class ChangeFreezeAdmin(_ServiceSaved):
    list_display = ["reason", "period", "where", "active"]
    list_filter = ["active"]
    filter_horizontal = ["environments"]
    fields = services.FREEZE_FIELDS
    service_fields = services.FREEZE_FIELDS

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("environments")

    @admin.display(description="when")
    def period(self, obj):
        if obj.rule:
            return f"{obj.rule} from {obj.rule_start:%Y-%m-%d %H:%M} for {obj.duration_minutes} min ({obj.timezone})"
        return f"{obj.starts_at:%Y-%m-%d %H:%M} – {obj.ends_at:%Y-%m-%d %H:%M} UTC"

    @admin.display(description="environments")
    def where(self, obj):
        return ", ".join(e.name for e in obj.environments.all()) or "every gated environment"

    def service_save(self, request, data, existing, form):
        return services.freeze_save(data=data, by=request.user, freeze=existing)

    def delete_model(self, request, obj):
        services.freeze_delete(freeze=obj, by=request.user)


@admin.register(ChangeTemplate)
class ChangeTemplateAdmin(_ServiceSaved):
    list_display = ["name", "version", "type", "max_risk", "approved_by", "approved_at", "active"]
    list_select_related = ["approved_by"]  # empty until approved: select_related() alone skips it
    list_filter = ["active", "type"]
    filter_horizontal = ["environments"]
    fields = services.TEMPLATE_FIELDS
    service_fields = services.TEMPLATE_FIELDS
    actions = ["approve_templates"]

    def get_readonly_fields(self, request, obj=None):
        return services.TEMPLATE_FIELDS if obj is not None and obj.is_approved else []

    def service_save(self, request, data, existing, form):
        return services.template_save(data=data, by=request.user, template=existing)

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.action(description="Approve the selected template versions")
    def approve_templates(self, request, queryset):
        for template in queryset:
            try:
                services.template_approve(template=template, by=request.user)
            except errors.DomainError as exc:
                error_message(request, exc)
            else:
                self.message_user(request, f"{template} approved: standard changes may use it.", messages.SUCCESS)


@admin.register(ApprovalRule)
class ApprovalRuleAdmin(_ServiceSaved):
    """The approval policy: which roles approve which changes, with a quorum (administrators edit it)."""

    list_display = ["description", "role", "quorum", "change_class", "change_type", "min_risk", "environment",
                    "production_only", "active"]
    list_select_related = ["role", "environment"]  # the environment may be empty: select_related() alone skips it
    list_filter = ["role", "change_class", "active"]
    fields = services.RULE_FIELDS
    service_fields = services.RULE_FIELDS

    def service_save(self, request, data, existing, form):
        return services.rule_save(data=data, by=request.user, rule=existing)

    def delete_model(self, request, obj):
        services.rule_delete(rule=obj, by=request.user)


@admin.register(EnvironmentChangePolicy)
class EnvironmentChangePolicyAdmin(_ServiceSaved):
    """Whether an environment requires a covering change (production-tier ones do unless said here)."""

    list_display = ["environment", "requires_change"]
    fields = ["environment", "requires_change"]
    service_fields = ["requires_change"]

    def get_readonly_fields(self, request, obj=None):
        return ["environment"] if obj else []

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "environment":
            kwargs["queryset"] = Environment.objects.filter(change_policy__isnull=True)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def service_save(self, request, data, existing, form):
        env = existing.environment if existing else form.cleaned_data["environment"]
        return services.policy_set(environment=env, requires=form.cleaned_data["requires_change"], by=request.user)

    def has_delete_permission(self, request, obj=None):
        return False

