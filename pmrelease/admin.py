"""Admin for the audit trail (read-only, filterable, CSV export), and the pieces every app's admin uses: the
per-object history mixin, the status badge, and the mixin that turns a service's refusal into a message."""
from django import forms
from django.contrib import admin, messages
from django.contrib.auth.models import Group
from django.http import HttpResponseRedirect, StreamingHttpResponse
from django.template.response import TemplateResponse
from django.urls import path
from django.utils.cache import add_never_cache_headers
from django.utils.html import format_html
from rest_framework.authtoken.models import TokenProxy

from . import delivery, errors, tokens
from .exports import audit_csv_rows
from .lists import BoundedCountPaginator, distinct_values
from .models import ApiToken, AuditEvent, Channel, DeliveryAttempt, Notification, ServiceAccount, Subscription

# Status colours shared by every admin (GitHub's palette: readable on white and in the dark theme).
STATUS_COLOURS = {
    "planned": "#555", "approved": "#1f6feb", "deploying": "#9a6700", "deployed": "#1a7f37", "failed": "#cf222e",
    "rolled_back": "#8250df", "succeeded": "#1a7f37", "running": "#9a6700", "rolling_back": "#bc4c00",
    "awaiting_approval": "#1f6feb", "paused": "#555", "pending": "#555", "cancelled": "#555",
}


def status_badge(obj, field="status", colours=None):
    """The object's status (its display label) in the status colour."""
    value = getattr(obj, field)
    label = getattr(obj, f"get_{field}_display", lambda: value)()
    return format_html('<strong style="color:{}">{}</strong>', (colours or STATUS_COLOURS).get(value, "#000"), label)


def error_message(request, exc):
    """Show a service's refusal (a DomainError) to the person, with its reasons; a step-up refusal links to the
    second-factor prompt, which comes back to the page the person acted from."""
    if getattr(exc, "code", "") == "step_up_required":
        messages.error(request, format_html('{} <a href="{}">Verify your second factor</a>, then try again.',
                                            exc.text(), _after_refusal(request, exc)))
        return
    messages.error(request, exc.text())


def _after_refusal(request, exc):
    """Back to the page, or to the second-factor prompt first when that is what the refusal asks for."""
    from urllib.parse import quote

    from django.conf import settings
    from django.utils.http import url_has_allowed_host_and_scheme

    if getattr(exc, "code", "") == "step_up_required":
        back = request.get_full_path()
        referer = request.headers.get("Referer", "")
        if request.method == "POST" and url_has_allowed_host_and_scheme(referer, {request.get_host()}):
            back = referer  # the page the button was on, not the action's own URL
        return f"{settings.STEP_UP_URL}?next={quote(back)}"
    return request.get_full_path()


class ServiceAdminMixin:
    """Admins whose saves go through services: a refusal the forms could not foresee (the state changed
    meanwhile, a permission rule) becomes an error message on the same page, and nothing is saved."""

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except errors.DomainError as exc:
            error_message(request, exc)
            return HttpResponseRedirect(_after_refusal(request, exc))

    def delete_view(self, request, object_id, extra_context=None):
        try:
            return super().delete_view(request, object_id, extra_context)
        except errors.DomainError as exc:
            error_message(request, exc)
            return HttpResponseRedirect(request.get_full_path())


class IndexedValuesFilter(admin.AllValuesFieldListFilter):
    """A list filter offering the distinct values of an indexed column, found by a skip scan of its index
    (``pmrelease.lists.distinct_values``) instead of ``SELECT DISTINCT`` over every row. For admins that show
    every row of their table (the audit trail)."""

    def __init__(self, field, request, params, model, model_admin, field_path):
        super().__init__(field, request, params, model, model_admin, field_path)
        self.lookup_choices = distinct_values(model, field_path)


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ["id", "created_at", "actor_username", "action", "object_type", "object_repr", "reason_short"]
    list_filter = [("action", IndexedValuesFilter), ("object_type", IndexedValuesFilter),
                   ("actor_username", IndexedValuesFilter), ("created_at", admin.DateFieldListFilter)]
    # The trail grows forever: one bounded count per page, not two full ones (issue 18).
    paginator = BoundedCountPaginator
    show_full_result_count = False
    search_fields = ["object_repr", "reason", "actor_username", "action", "object_id", "request_id"]
    date_hierarchy = "created_at"
    readonly_fields = [f.name for f in AuditEvent._meta.fields]
    actions = ["export_csv"]
    change_list_template = "admin/pmrelease/auditevent/change_list.html"

    @admin.display(description="reason")
    def reason_short(self, obj):
        return (obj.reason[:80] + "…") if len(obj.reason) > 80 else obj.reason

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_urls(self):
        return [path("export/", self.admin_site.admin_view(self.export_view), name="pmrelease_auditevent_export"),
                *super().get_urls()]

    def _csv_response(self, queryset):
        response = StreamingHttpResponse(audit_csv_rows(queryset.order_by("id")), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = 'attachment; filename="audit-trail.csv"'
        return response

    def export_view(self, request):
        """Export what the change list currently shows (its filters and search applied)."""
        if not self.has_view_permission(request):
            from django.core.exceptions import PermissionDenied

            raise PermissionDenied
        changelist = self.get_changelist_instance(request)
        return self._csv_response(changelist.get_queryset(request))

    @admin.action(description="Export selected events as CSV")
    def export_csv(self, request, queryset):
        return self._csv_response(queryset)


class AuditHistoryMixin:
    """Replace the admin's "History" page with the object's rows from the audit trail."""

    object_history_template = "admin/pmrelease/audit_history.html"

    def history_view(self, request, object_id, extra_context=None):
        obj = self.get_object(request, object_id)
        if obj is None or not self.has_view_or_change_permission(request, obj):
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Audit history: {obj}",
            "subtitle": None,
            "object": obj,
            "opts": self.opts,
            "app_label": self.opts.app_label,
            "events": AuditEvent.objects.for_object(obj).order_by("-id"),
            **(extra_context or {}),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, self.object_history_template, context)


def save_formset_through(formset, *, save, delete, fields):
    """Save an admin inline formset through services instead of ``formset.save()``: ``save(instance, data)``
    for each new or changed row (``instance`` unsaved for a new one; ``data`` its cleaned ``fields``) and
    ``delete(instance)`` for each row marked for deletion. Keeps the formset's record of what changed, for
    the admin's change message."""
    formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
    for form in formset.initial_forms:
        if form in formset.deleted_forms:
            formset.deleted_objects.append(form.instance)
            delete(form.instance)
        elif form.has_changed():
            formset.changed_objects.append((save(form.instance, _cleaned(form, fields)), form.changed_data))
    for form in formset.extra_forms:
        if not form.has_changed() or (formset.can_delete and formset._should_delete_form(form)):
            continue
        formset.new_objects.append(save(None, _cleaned(form, fields)))


def _cleaned(form, fields):
    return {name: form.cleaned_data[name] for name in fields if name in form.cleaned_data}


# API tokens: only hashes are kept (pmrelease.tokens). DRF's own Token admin would issue clear-text keys that no
# longer authenticate: it is not offered.
admin.site.unregister(TokenProxy)


class ApiTokenForm(forms.ModelForm):
    """Issuing a token: whose, named, scoped, optionally limited to environments and expiring."""

    scopes = forms.MultipleChoiceField(choices=list(tokens.SCOPES.items()), widget=forms.CheckboxSelectMultiple)
    environment_names = forms.CharField(required=False, label="environments",
                                        help_text="comma-separated environment names; empty: every environment")

    class Meta:
        model = ApiToken
        fields = ["user", "name", "scopes", "expires_at"]

    def environments(self):
        return [n.strip() for n in self.cleaned_data.get("environment_names", "").split(",") if n.strip()]

    def clean(self):
        """The service's checks beside the fields, so a refusal keeps what was typed (and issues nothing)."""
        data = super().clean()
        user = data.get("user")
        if user is not None and not user.is_active:
            self.add_error("user", f"{user.get_username()} is inactive: it cannot be given a token")
        if "name" in data and "scopes" in data:
            problems = tokens.token_problems(name=data["name"], scopes=list(data["scopes"]),
                                             environments=self.environments(), expires_at=data.get("expires_at"))
            for field, said in problems.items():
                self.add_error({"environments": "environment_names"}.get(field, field), said)
        return data


@admin.register(ApiToken)
class ApiTokenAdmin(ServiceAdminMixin, admin.ModelAdmin):
    """Tokens are issued here (the key is shown once, on the page answering the save) and revoked with the
    action; they are never edited."""

    form = ApiTokenForm
    list_display = ["user", "name", "prefix", "scopes", "environments", "expires_at", "last_used_at", "revoked_at",
                    "created_at"]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["user__username", "name", "prefix"]
    actions = ["revoke"]
    readonly = ["user", "name", "prefix", "scopes", "environments", "expires_at", "created_at", "last_used_at",
                "revoked_at", "revoked_by"]

    def has_add_permission(self, request):
        return request.user.is_superuser

    def has_change_permission(self, request, obj=None):
        return obj is None and request.user.is_superuser  # the change list's actions; no editing

    def has_delete_permission(self, request, obj=None):
        return False  # revoked (audited), never deleted: a deleted token would leave its issue row orphaned

    def get_fields(self, request, obj=None):
        return self.readonly if obj else ["user", "name", "scopes", "environment_names", "expires_at"]

    def get_readonly_fields(self, request, obj=None):
        return self.readonly if obj else []

    def save_model(self, request, obj, form, change):
        token, key = tokens.create_token(user=form.cleaned_data["user"], by=request.user,
                                         name=form.cleaned_data["name"], scopes=form.cleaned_data["scopes"],
                                         environments=form.environments(),
                                         expires_at=form.cleaned_data.get("expires_at"))
        obj.pk = token.pk
        obj._issued = (token, key)  # shown by response_add, on the answer to this POST only

    def response_add(self, request, obj, post_url_continue=None):
        """The key on the answer to the POST itself, never stored: not in a message (the cookie or session that
        carries messages to the next page would hold it), not cached by the browser."""
        token, key = obj._issued
        response = TemplateResponse(request, "admin/pmrelease/apitoken/issued.html", {
            **self.admin_site.each_context(request), "title": f"Token {token.name} issued", "opts": self.opts,
            "token": token, "key": key})
        add_never_cache_headers(response)  # Cache-Control: no-cache, no-store, must-revalidate, private
        return response

    def save_related(self, request, form, formsets, change):
        pass  # the service saved everything

    def log_addition(self, request, obj, message):
        pass  # the audit trail has it (apitoken.issue)

    @admin.action(description="Revoke selected tokens")
    def revoke(self, request, queryset):
        done = 0
        for token in queryset.filter(revoked_at__isnull=True):
            tokens.revoke_token(token=token, by=request.user)
            done += 1
        messages.success(request, f"{done} token(s) revoked")


class ServiceAccountForm(forms.ModelForm):
    username = forms.CharField(max_length=150)
    roles = forms.ModelMultipleChoiceField(queryset=Group.objects.order_by("name"), required=False,
                                           widget=forms.CheckboxSelectMultiple,
                                           help_text="its environment access is that of these roles")

    class Meta:
        model = ServiceAccount
        fields = ["description"]

    def clean(self):
        data = super().clean()
        if "username" in data:
            problems = tokens.service_account_problems(username=data["username"],
                                                       roles=[g.name for g in data.get("roles") or []])
            for field, said in problems.items():
                self.add_error(field, said)
        return data


@admin.register(ServiceAccount)
class ServiceAccountAdmin(ServiceAdminMixin, AuditHistoryMixin, admin.ModelAdmin):
    """Accounts for CI and scripts: no password, no admin login; they act through API tokens."""

    form = ServiceAccountForm
    list_display = ["user", "description", "roles", "created_by", "created_at"]
    list_select_related = ["user", "created_by"]  # created_by may be empty: select_related() alone skips it
    search_fields = ["user__username", "description"]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("user__groups")

    def has_add_permission(self, request):
        return request.user.is_superuser

    def has_change_permission(self, request, obj=None):
        return obj is None and request.user.is_superuser

    def has_delete_permission(self, request, obj=None):
        return False  # deleting the row would quietly turn the account into a person's, unaudited

    def get_fields(self, request, obj=None):
        return ["user", "description", "roles", "created_by", "created_at"] if obj else [
            "username", "roles", "description"]

    def get_readonly_fields(self, request, obj=None):
        return ["user", "description", "roles", "created_by", "created_at"] if obj else []

    @admin.display(description="roles")
    def roles(self, obj):
        return ", ".join(sorted(g.name for g in obj.user.groups.all())) or "—"

    def save_model(self, request, obj, form, change):
        account = tokens.service_account_create(
            username=form.cleaned_data["username"], roles=[g.name for g in form.cleaned_data["roles"]],
            description=form.cleaned_data.get("description", ""), by=request.user)
        obj.pk = account.pk
        obj.user = account.user

    def save_related(self, request, form, formsets, change):
        pass

    def log_addition(self, request, obj, message):
        pass


# --- delivery: channels (URLs write-only), their subscriptions, and the notifications with every attempt -------------
class ChannelForm(forms.ModelForm):
    url = forms.CharField(
        required=False, strip=True, widget=forms.PasswordInput(render_value=False, attrs={"size": 80}),
        help_text="An apprise URL (slack://…, mailto://…, json://host/path, pagerduty://…), stored encrypted and "
                  "never shown again. Leave empty to keep the stored one, or name an environment variable below.")

    secret = forms.CharField(
        required=False, strip=True, widget=forms.PasswordInput(render_value=False, attrs={"size": 60}),
        help_text="Signed webhooks: the HMAC-SHA256 secret the receiver checks X-PMR-Signature with (at least 16 "
                  "characters), stored encrypted and never shown again. Leave empty to keep the stored one.")

    kind = forms.ChoiceField(choices=[("apprise", "apprise URL"), ("webhook", "signed webhook")], required=False,
                             initial="apprise", help_text="A signed webhook POSTs each event's JSON, signed with "
                                                          "HMAC-SHA256 (docs/pipelines.md).")

    class Meta:
        model = Channel
        fields = ["name", "description", "kind", "url", "secret", "url_env", "enabled"]

    def clean_kind(self):
        return self.cleaned_data.get("kind") or (self.instance.kind if self.instance.pk else "apprise")


class SubscriptionInline(admin.TabularInline):
    model = Subscription
    extra = 1
    fields = ["event", "environment"]

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if db_field.name == "event":
            choices = [(delivery.ANY, "every event"), *delivery.EVENTS.items()]
            return forms.ChoiceField(choices=choices, initial=delivery.ANY, label="event")
        return super().formfield_for_dbfield(db_field, request, **kwargs)


@admin.register(Channel)
class ChannelAdmin(ServiceAdminMixin, AuditHistoryMixin, admin.ModelAdmin):
    form = ChannelForm
    list_display = ["name", "description", "url_shown", "enabled", "subscribed_to"]
    readonly_fields = ["url_shown"]
    inlines = [SubscriptionInline]
    actions = ["send_test"]

    @admin.display(description="URL")
    def url_shown(self, obj):
        return delivery.describe(obj) if obj and obj.pk else "—"

    @admin.display(description="subscribed to")
    def subscribed_to(self, obj):
        return ", ".join(f"{s.event}{'@' + s.environment if s.environment else ''}"
                         for s in obj.subscriptions.all()) or "—"

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("subscriptions")

    def _administrator(self, request):
        return request.user.is_active and request.user.is_superuser

    def has_add_permission(self, request):
        return self._administrator(request)

    def has_change_permission(self, request, obj=None):
        return self._administrator(request)

    def has_delete_permission(self, request, obj=None):
        return self._administrator(request)

    def save_model(self, request, obj, form, change):
        data = {name: form.cleaned_data[name] for name in ChannelForm.Meta.fields
                if name in form.cleaned_data and (name not in ("url", "secret") or form.cleaned_data[name])}
        saved = delivery.channel_save(data=data, by=request.user, channel=obj if change else None)
        obj.pk = saved.pk
        obj.refresh_from_db()

    def save_formset(self, request, form, formset, change):
        channel = form.instance
        save_formset_through(
            formset, fields=["event", "environment"],
            save=lambda row, data: delivery.subscription_save(channel=channel, by=request.user, **data),
            delete=lambda row: delivery.subscription_delete(subscription=row, by=request.user))

    def delete_model(self, request, obj):
        delivery.channel_delete(channel=obj, by=request.user)

    @admin.action(description="Send a test notification")
    def send_test(self, request, queryset):
        for channel in queryset:
            delivery.channel_test(channel=channel, by=request.user)
        messages.success(request, f"Test notifications queued for {queryset.count()} channel(s): see Notifications.")


class DeliveryAttemptInline(admin.TabularInline):
    model = DeliveryAttempt
    extra = 0
    fields = readonly_fields = ["at", "delivered", "error", "duration_ms"]
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = ["created_at", "event", "environment", "target", "title", "status_shown", "attempts", "last_error"]
    list_filter = ["status", "event", "environment", "channel"]
    search_fields = ["title", "key"]
    fields = readonly_fields = ["event", "environment", "key", "channel", "recipients", "title", "body", "severity",
                                "data", "status", "attempts", "last_error", "created_at", "delivered_at"]
    inlines = [DeliveryAttemptInline]
    actions = ["redeliver"]
    list_select_related = ["channel"]

    @admin.display(description="to")
    def target(self, obj):
        return obj.channel.name if obj.channel_id else ", ".join(obj.recipients)

    @admin.display(description="status")
    def status_shown(self, obj):
        return status_badge(obj, colours={"pending": "#555", "delivered": "#1a7f37", "failed": "#cf222e"})

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_view_permission(self, request, obj=None):
        return request.user.is_active and request.user.is_superuser

    @admin.action(description="Redeliver the selected failed notifications")
    def redeliver(self, request, queryset):
        done = 0
        for notification in queryset:
            try:
                delivery.redeliver(notification=notification, by=request.user)
                done += 1
            except errors.DomainError as exc:
                error_message(request, exc)
        if done:
            messages.success(request, f"{done} notification(s) queued again.")

from .identity import admin as _identity_admin  # noqa: E402,F401  (registers the identity admin)
