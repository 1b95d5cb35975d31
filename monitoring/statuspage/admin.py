"""Operator admin for the status page. Every write goes through the status page's services (permission and
audit); ``monitoring/admin.py`` imports this module for Django's autodiscovery."""
from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse

from pmrelease import errors
from pmrelease.admin import AuditHistoryMixin, ServiceAdminMixin, error_message

from . import components, incidents, maintenance, publishing, subscribers
from . import status as st
from .access import can_operate
from .models import (
    Component,
    ComponentGroup,
    ComponentStatus,
    Delivery,
    Incident,
    IncidentPolicy,
    IncidentUpdate,
    Maintenance,
    MaintenanceStatus,
    MaintenanceUpdate,
    Subscriber,
)


class OperatorMixin:
    """Visible and editable by status page operators (operations role, superusers, change_incident)."""

    def has_module_permission(self, request):
        return can_operate(request.user)

    def has_view_permission(self, request, obj=None):
        return can_operate(request.user)

    def has_add_permission(self, request, *args):
        return can_operate(request.user)

    def has_change_permission(self, request, obj=None):
        return can_operate(request.user)

    def has_delete_permission(self, request, obj=None):
        return False

    def changelist_view(self, request, extra_context=None):
        _warn_if_publish_failed(request)
        return super().changelist_view(request, extra_context)

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        if request.method == "GET":
            _warn_if_publish_failed(request)
        return super().changeform_view(request, object_id, form_url, extra_context)


def _warn_if_publish_failed(request):
    """Operators see at once when the public page is no longer being updated."""
    for problem in publishing.problems():
        messages.warning(request, f"The public status page is out of date: {problem}")


# --- components ---------------------------------------------------------------------------------------------
@admin.register(ComponentGroup)
class ComponentGroupAdmin(ServiceAdminMixin, OperatorMixin, AuditHistoryMixin, admin.ModelAdmin):
    list_display = ["name", "position", "component_count"]
    fields = components.GROUP_FIELDS

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(number_of_components=Count("components"))

    @admin.display(description="components", ordering="number_of_components")
    def component_count(self, obj):
        return obj.number_of_components if hasattr(obj, "number_of_components") else obj.components.count()

    def save_model(self, request, obj, form, change):
        data = {name: form.cleaned_data[name] for name in components.GROUP_FIELDS}
        if change:
            components.group_update(group=obj, data=data, by=request.user)
        else:
            obj.pk = components.group_create(data=data, by=request.user).pk

    def delete_model(self, request, obj):
        components.group_delete(group=obj, by=request.user)

    def delete_queryset(self, request, queryset):
        for group in queryset:
            self.delete_model(request, group)


class ComponentForm(forms.ModelForm):
    set_status = forms.ChoiceField(choices=ComponentStatus.choices, label="Status",
                                   help_text="Changing it here records a status change (outside any incident).")
    status_reason = forms.CharField(required=False, label="Reason for the status change")

    class Meta:
        model = Component
        fields = components.COMPONENT_FIELDS

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["set_status"].initial = self.instance.status if self.instance.pk else st.OPERATIONAL


@admin.register(Component)
class ComponentAdmin(ServiceAdminMixin, OperatorMixin, AuditHistoryMixin, admin.ModelAdmin):
    form = ComponentForm
    list_display = ["name", "group", "status", "position", "showcase", "updated_at"]
    list_select_related = ["group"]  # a component may have no group: select_related() alone skips it
    list_filter = ["status", "group"]
    search_fields = ["name", "description"]
    filter_horizontal = ["environments"]
    fieldsets = [
        (None, {"fields": ["name", "description", "group", "position", "set_status", "status_reason"]}),
        ("Display", {"fields": ["showcase", "only_show_if_degraded", "start_date"]}),
        ("Deployments", {"fields": ["environments"]}),
    ]

    def save_model(self, request, obj, form, change):
        data = {name: form.cleaned_data[name] for name in components.COMPONENT_FIELDS}
        new_status = form.cleaned_data["set_status"]
        if not change:
            obj.pk = components.component_create(data={**data, "status": new_status}, by=request.user).pk
            return
        saved = components.component_update(component=obj, data=data, by=request.user)
        if new_status != saved.status:
            components.component_set_status(component=saved, status=new_status, by=request.user,
                                            reason=form.cleaned_data.get("status_reason", ""))

    def save_related(self, request, form, formsets, change):
        """The services already saved the environments."""


# --- incidents ---------------------------------------------------------------------------------------------------
class IncidentUpdateInline(admin.TabularInline):
    model = IncidentUpdate
    extra = 0
    fields = ["status", "body", "affected_components", "display_at", "created_by"]
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_view_permission(self, request, obj=None):
        return can_operate(request.user)


def _no_inline_changes(formsets):
    """Read-only inlines: tell the admin's change message that nothing was saved through them."""
    for formset in formsets:
        formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []


class IncidentCreateForm(forms.ModelForm):
    body = forms.CharField(widget=forms.Textarea(attrs={"rows": 4}), label="First update",
                           help_text="What is happening, as the public will read it.")
    affected_components = forms.ModelMultipleChoiceField(queryset=Component.objects.all(), required=False,
                                                         widget=forms.CheckboxSelectMultiple)
    component_status = forms.ChoiceField(choices=ComponentStatus.choices, initial=st.PARTIAL,
                                         label="Status of the affected components")
    publish = forms.BooleanField(required=False, initial=True,
                                 help_text="Untick to save a draft that is not public until published.")

    class Meta:
        model = Incident
        fields = ["name", "impact", "started_at", "deployment"]


@admin.register(Incident)
class IncidentAdmin(ServiceAdminMixin, OperatorMixin, AuditHistoryMixin, admin.ModelAdmin):
    list_display = ["name", "status", "impact", "is_published", "started_at", "resolved_at", "environment"]
    list_select_related = ["environment"]  # empty for an incident of no environment: select_related() skips it
    list_filter = ["status", "impact", ("published_at", admin.EmptyFieldListFilter)]
    search_fields = ["name"]
    inlines = [IncidentUpdateInline]
    change_form_template = "admin/monitoring/incident/change_form.html"
    readonly_fields = ["name", "status", "impact", "published_at", "started_at", "identified_at", "monitoring_at",
                       "resolved_at", "postmortem", "environment", "deployment", "affected_summary",
                       "proposed_summary", "internal_notes"]
    raw_id_fields = ["deployment"]

    @admin.display(boolean=True, description="published")
    def is_published(self, obj):
        return obj.is_published

    @admin.display(description="proposed component statuses (confirm them when publishing)")
    def proposed_summary(self, obj):
        names = dict(Component.objects.filter(pk__in=[int(k) for k in obj.proposed_components or {}])
                     .values_list("pk", "name"))
        labels = dict(ComponentStatus.choices)
        return ", ".join(f"{names[int(k)]} ({labels.get(v, v)})" for k, v in (obj.proposed_components or {}).items()
                         if int(k) in names) or "—"

    @admin.display(description="affected components")
    def affected_summary(self, obj):
        return ", ".join(f"{a.component.name} ({a.get_status_display()})"
                         for a in obj.affected.select_related("component")) or "—"

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = IncidentCreateForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields if obj else []

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["name", "impact", "started_at", "deployment", "body", "affected_components", "component_status",
                    "publish"]
        return self.readonly_fields

    def get_inlines(self, request, obj):
        return self.inlines if obj else []

    def has_delete_permission(self, request, obj=None):
        return can_operate(request.user) and obj is not None and not obj.is_published

    def delete_model(self, request, obj):
        incidents.incident_delete_draft(incident=obj, by=request.user)

    def save_model(self, request, obj, form, change):
        if change:
            return
        data = form.cleaned_data
        incident = incidents.incident_create(
            name=data["name"], body=data["body"], by=request.user, impact=data["impact"],
            started_at=data.get("started_at"), publish=data.get("publish", False), deployment=data.get("deployment"),
            components={c: data["component_status"] for c in data["affected_components"]})
        obj.pk = incident.pk

    def save_related(self, request, form, formsets, change):
        """The service created the rows; the update inline is read-only."""
        _no_inline_changes(formsets)

    def get_urls(self):
        return [path("<int:pk>/act/<str:name>/", self.admin_site.admin_view(self.act_view),
                     name="monitoring_incident_act"), *super().get_urls()]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        obj = self.get_object(request, object_id)
        extra = {"status_actions": incidents.available_incident_actions(obj, request.user) if obj else [],
                 "action_labels": INCIDENT_ACTION_LABELS}
        return super().change_view(request, object_id, form_url, {**extra, **(extra_context or {})})

    def act_view(self, request, pk, name):
        """One form per transition: the public update's text and the affected components' statuses."""
        incident = get_object_or_404(Incident, pk=pk)
        if not can_operate(request.user):
            raise PermissionDenied
        change_url = reverse("admin:monitoring_incident_change", args=[pk])
        affected = list(incident.affected.select_related("component"))
        confirm = _publish_rows(incident, affected) if name == "publish" else []
        if request.method == "POST":
            try:
                if name == "publish":
                    incidents.incident_publish(incident=incident, by=request.user, component_statuses={
                        row["component"]: request.POST.get(f"component_{row['component'].pk}")
                        for row in confirm if request.POST.get(f"component_{row['component'].pk}")})
                else:
                    statuses = {a.component: request.POST.get(f"component_{a.component_id}") for a in affected
                                if request.POST.get(f"component_{a.component_id}")}
                    if name == "update":
                        incidents.incident_add_update(incident=incident, by=request.user,
                                                      body=request.POST.get("body", ""), component_statuses=statuses)
                    else:
                        incidents.incident_transition(incident=incident, name=name, by=request.user,
                                                      body=request.POST.get("body", ""), component_statuses=statuses)
            except errors.DomainError as exc:
                error_message(request, exc)
                return HttpResponseRedirect(request.path)
            messages.success(request, f"{INCIDENT_ACTION_LABELS.get(name, name)}: done.")
            return HttpResponseRedirect(change_url)
        context = {
            **self.admin_site.each_context(request), "opts": self.opts, "original": incident,
            "title": f"{INCIDENT_ACTION_LABELS.get(name, name)}: {incident}", "name": name,
            "needs_body": name != "publish", "affected": affected,
            "statuses": ComponentStatus.choices, "change_url": change_url,
            "default_status": st.OPERATIONAL if name == "resolve" else "",
            "confirm": confirm, "first_update": incident.updates.order_by("created_at", "id").first(),
        }
        return TemplateResponse(request, "admin/monitoring/action_form.html", context)


def _publish_rows(incident, affected):
    """The components a draft's publication sets, each with its status to confirm: the engine's proposal, or the
    status set on the draft; the preview shows them as the public will see them."""
    rows = [{"component": a.component, "status": a.status, "proposed": False} for a in affected]
    seen = {a.component_id for a in affected}
    proposals = incident.proposed_components or {}
    for component in Component.objects.filter(pk__in=[int(k) for k in proposals]):
        if component.pk not in seen:
            rows.append({"component": component, "status": proposals[str(component.pk)], "proposed": True})
    return rows


INCIDENT_ACTION_LABELS = {"publish": "Publish draft", "identify": "Identified", "monitor": "Monitoring a fix",
                          "resolve": "Resolve", "publish_postmortem": "Publish postmortem",
                          "update": "Post an update"}


# --- maintenance ---------------------------------------------------------------------------------------------------
class MaintenanceUpdateInline(IncidentUpdateInline):
    model = MaintenanceUpdate


class MaintenanceForm(forms.ModelForm):
    class Meta:
        model = Maintenance
        fields = ["name", "body", "components", "scheduled_for", "scheduled_until", "auto_start", "auto_complete",
                  "remind_before"]

    def clean(self):
        cleaned = super().clean()
        start, end = cleaned.get("scheduled_for"), cleaned.get("scheduled_until")
        if start and end and end <= start:
            self.add_error("scheduled_until", "The maintenance must end after it starts.")
        return cleaned


@admin.register(Maintenance)
class MaintenanceAdmin(ServiceAdminMixin, OperatorMixin, AuditHistoryMixin, admin.ModelAdmin):
    form = MaintenanceForm
    list_display = ["name", "status", "scheduled_for", "scheduled_until", "auto_start", "auto_complete"]
    list_filter = ["status"]
    search_fields = ["name"]
    filter_horizontal = ["components"]
    inlines = [MaintenanceUpdateInline]
    change_form_template = "admin/monitoring/maintenance/change_form.html"
    fields = ["name", "body", "components", "scheduled_for", "scheduled_until", "auto_start", "auto_complete",
              "remind_before"]

    def get_readonly_fields(self, request, obj=None):
        if obj is not None and obj.status != MaintenanceStatus.SCHEDULED:
            return self.fields
        return []

    def get_inlines(self, request, obj):
        return self.inlines if obj else []

    def save_model(self, request, obj, form, change):
        data = {name: form.cleaned_data[name] for name in maintenance.MAINTENANCE_FIELDS if name in form.cleaned_data}
        if not change:
            obj.pk = maintenance.maintenance_create(data=data, by=request.user).pk
        elif data:  # once the maintenance has started every field is read-only: nothing to save
            maintenance.maintenance_update(maintenance=obj, data=data, by=request.user)

    def save_related(self, request, form, formsets, change):
        """Saved by save_model through the services; the update inline is read-only."""
        _no_inline_changes(formsets)

    def get_urls(self):
        return [path("<int:pk>/act/<str:name>/", self.admin_site.admin_view(self.act_view),
                     name="monitoring_maintenance_act"), *super().get_urls()]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        obj = self.get_object(request, object_id)
        from django_fsm import can_proceed

        labels = {"start": "Start", "verify": "Verify", "complete": "Complete", "cancel": "Cancel this maintenance"}
        actions = [(n, label) for n, label in labels.items() if obj and can_proceed(getattr(obj, n))]
        return super().change_view(request, object_id, form_url,
                                   {"status_actions": actions if can_operate(request.user) else [],
                                    **(extra_context or {})})

    def act_view(self, request, pk, name):
        row = get_object_or_404(Maintenance, pk=pk)
        if not can_operate(request.user) or request.method != "POST":
            raise PermissionDenied
        try:
            maintenance.maintenance_transition(maintenance=row, name=name, by=request.user,
                                               body=request.POST.get("body", ""))
            messages.success(request, f"Maintenance: {name} done.")
        except errors.DomainError as exc:
            error_message(request, exc)
        return HttpResponseRedirect(reverse("admin:monitoring_maintenance_change", args=[pk]))


# --- policy, subscribers, deliveries -----------------------------------------------------------------------------
@admin.register(IncidentPolicy)
class IncidentPolicyAdmin(ServiceAdminMixin, OperatorMixin, AuditHistoryMixin, admin.ModelAdmin):
    list_display = ["environment", "policy"]
    fields = ["environment", "policy"]

    def get_readonly_fields(self, request, obj=None):
        return ["environment"] if obj else []  # one policy per environment: another environment is another row

    def save_model(self, request, obj, form, change):
        environment = obj.environment if change else form.cleaned_data["environment"]
        obj.pk = incidents.incident_policy_set(environment=environment, policy=form.cleaned_data["policy"], by=request.user).pk


class SubscriberForm(forms.ModelForm):
    webhook_url = forms.URLField(assume_scheme="https", max_length=500)

    class Meta:
        model = Subscriber
        fields = ["webhook_url", "components"]

    def clean_webhook_url(self):
        if not self.cleaned_data.get("webhook_url"):
            raise forms.ValidationError("operators add webhook subscribers; e-mail subscribers opt in on the page")
        return self.cleaned_data["webhook_url"]


@admin.register(Subscriber)
class SubscriberAdmin(ServiceAdminMixin, OperatorMixin, AuditHistoryMixin, admin.ModelAdmin):
    list_display = ["__str__", "kind", "confirmed_at", "unsubscribed_at", "created_at"]
    list_filter = ["kind", ("confirmed_at", admin.EmptyFieldListFilter), ("unsubscribed_at", admin.EmptyFieldListFilter)]
    search_fields = ["email", "webhook_url"]
    form = SubscriberForm

    def get_readonly_fields(self, request, obj=None):
        return ["kind", "email", "webhook_url", "confirmed_at", "unsubscribed_at", "created_at"] if obj else []

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["webhook_url", "components"]
        return ["kind", "email", "webhook_url", "components", "confirmed_at", "unsubscribed_at", "created_at"]

    def has_change_permission(self, request, obj=None):
        return obj is None and can_operate(request.user)

    def save_model(self, request, obj, form, change):
        subscriber = subscribers.webhook_subscriber_create(url=form.cleaned_data["webhook_url"],
                                                           components=form.cleaned_data["components"], by=request.user)
        obj.pk = subscriber.pk

    def save_related(self, request, form, formsets, change):
        """Saved by the service."""


@admin.register(Delivery)
class DeliveryAdmin(OperatorMixin, admin.ModelAdmin):
    list_display = ["event", "subscriber", "status", "attempts", "created_at", "sent_at", "last_error"]
    list_filter = ["status"]
    search_fields = ["event", "subscriber__email", "subscriber__webhook_url"]

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in Delivery._meta.fields]

    def has_add_permission(self, request, *args):
        return False

    def has_change_permission(self, request, obj=None):
        return False


