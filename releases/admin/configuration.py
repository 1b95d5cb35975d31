"""Admin of environment configuration and secret references.

- Configuration versions: read-only (never changed or deleted); each shows its document and its diff.
- The editor (``config/<environment>/<section>/``): one form per section of the schema, not a JSON textarea;
  a save goes through ``releases.configuration.config_section_save`` (validation, leak scan, a new version,
  audit) and the schema's errors are shown on the fields they name.
- Compare (``compare/``): two versions, or two environments' current configurations, as a readable diff.
- Drift (``drift/``): must-match keys that differ between environments.
- Secret references: saved through ``releases.secrets`` with their rotation state shown.
"""
import json

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from pmrelease import errors, leaks
from pmrelease.admin import AuditHistoryMixin, ServiceAdminMixin, error_message
from pmrelease.roles import Capability

from .. import access, configuration, secrets
from .. import configschema as schema
from ..models import ConfigVersion, Environment, SecretReference


def _shown(value):
    """A value as the document holds it (JSON: true, 50.0, "text")."""
    return json.dumps(value, ensure_ascii=False)


def _name(dotted):
    return dotted.replace(".", "__")


def section_form_class(section):
    """A Django form for one schema section (features: rows of name, enabled, percentage)."""
    fields = {}
    for dotted, kind, meta in schema.section_fields(section):
        label = dotted
        help_text = meta.get("help") or ""
        if meta.get("must_match"):
            help_text = (help_text + " " if help_text else "") + "Must match across environments."
        if meta.get("choices"):
            field = forms.ChoiceField(choices=[(c, c) for c in meta["choices"]], label=label)
        elif kind == "bool":
            field = forms.BooleanField(required=False, label=label)
        elif kind == "int":
            field = forms.IntegerField(label=label)
        elif kind == "float":
            field = forms.FloatField(label=label)
        elif kind == "list":
            field = forms.CharField(required=False, label=label, widget=forms.Textarea(attrs={"rows": 3}))
            help_text = (help_text + " " if help_text else "") + "One per line."
        elif kind == "secret":
            field = forms.CharField(required=False, label=label, max_length=schema.MAX_TEXT,
                                    widget=forms.TextInput(attrs={"placeholder": "vault://secret/app/db#password"}))
            help_text = "A reference (vault://mount/path#key or env://NAME), never the secret itself."
        else:
            field = forms.CharField(required=False, label=label, max_length=schema.MAX_TEXT)
        field.help_text = help_text
        fields[_name(dotted)] = field
    return type(f"{section.title()}ConfigForm", (forms.Form,), fields)


class FeatureRow(forms.Form):
    name = forms.CharField(required=False, max_length=100)
    enabled = forms.BooleanField(required=False)
    percentage = forms.FloatField(required=False, min_value=0, max_value=100)
    delete = forms.BooleanField(required=False, label="remove")


FeatureRows = forms.formset_factory(FeatureRow, extra=1)


def _initial(section, document):
    values = configuration.section_values(document, section)
    initial = {}
    for dotted, kind, _ in schema.section_fields(section):
        value = values.get(dotted)
        initial[_name(dotted)] = "\n".join(value) if kind == "list" and isinstance(value, list) else value
    return initial


def _values(section, cleaned):
    values = {}
    for dotted, kind, _ in schema.section_fields(section):
        value = cleaned.get(_name(dotted))
        if kind == "list":
            value = [line.strip() for line in (value or "").splitlines() if line.strip()]
        values[dotted] = value
    return values


@admin.register(ConfigVersion)
class ConfigVersionAdmin(admin.ModelAdmin):
    list_display = ["__str__", "environment", "number", "author", "created_at", "comment", "changed"]
    list_filter = ["environment"]
    search_fields = ["comment", "environment__name"]
    readonly_fields = ["environment", "number", "author", "created_at", "comment", "document_view", "changes_view"]
    fields = readonly_fields
    change_list_template = "admin/releases/configversion/change_list.html"

    def get_queryset(self, request):
        return (super().get_queryset(request).select_related("environment", "author")
                .filter(environment__in=access.visible_environments(request.user)))

    def has_view_permission(self, request, obj=None):
        return request.user.has_perm("releases.view_environment")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="changes")
    def changed(self, obj):
        return len(obj.changes)

    @admin.display(description="document")
    def document_view(self, obj):
        rows = "".join(format_html("<tr><td><code>{}</code></td><td><code>{}</code></td></tr>", key, repr(value))
                       for key, value in schema.flatten(obj.document).items())
        return format_html("<table>{}</table>", mark_safe(rows))  # noqa: S308 - each row built by format_html

    @admin.display(description="diff to the previous version")
    def changes_view(self, obj):
        return format_html("<pre>{}</pre>", "\n".join(str(schema.Change(**c)) for c in obj.changes) or "(first)")

    # --- editor, compare, drift --------------------------------------------------------------------------
    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("edit/<slug:environment>/", wrap(self.editor_view), name="releases_configversion_editor"),
            path("edit/<slug:environment>/<str:section>/", wrap(self.editor_view),
                 name="releases_configversion_editor_section"),
            path("policy/<slug:environment>/", wrap(self.policy_view), name="releases_configversion_policy"),
            path("compare/", wrap(self.compare_view), name="releases_configversion_compare"),
            path("drift/", wrap(self.drift_view), name="releases_configversion_drift"),
            *super().get_urls(),
        ]

    def _environment(self, request, name):
        env = access.visible_environments(request.user).filter(name=name).first()
        if env is None:
            raise Http404(f"no environment {name!r} you may see")
        return env

    def _context(self, request, title, **extra):
        return {**self.admin_site.each_context(request), "opts": self.opts, "title": title,
                "environments": list(access.visible_environments(request.user).filter(is_active=True)), **extra}

    def editor_view(self, request, environment, section=None):
        env = self._environment(request, environment)
        section = section or schema.SECTIONS[0]
        if section not in schema.SECTIONS:
            raise Http404(f"no section {section!r}")
        can_edit = access.can(request.user, env, Capability.CONFIGURE)
        current = configuration.current(env)
        document = current.document if current else schema.defaults()
        features = section == "features"
        form_class = section_form_class(section) if not features else None
        if request.method == "POST":
            if not can_edit:
                raise PermissionDenied
            if features:
                form = FeatureRows(request.POST, prefix="features")
                valid = form.is_valid()
            else:
                form = form_class(request.POST)
                valid = form.is_valid()
            comment = request.POST.get("comment", "")
            if valid:
                if features:
                    values = {}
                    old = document.get("features") or {}
                    for row in form.cleaned_data:
                        if row.get("name") and not row.get("delete"):
                            values[row["name"]] = {
                                **(old.get(row["name"]) or {}), "enabled": bool(row.get("enabled")),
                                "percentage": 100.0 if row.get("percentage") is None else row["percentage"]}
                else:
                    values = _values(section, form.cleaned_data)
                try:
                    version, created = configuration.config_section_save(
                        environment=env, section=section, values=values, by=request.user, comment=comment)
                except errors.ValidationFailed as exc:
                    self._attach_errors(form, section, exc)
                    messages.error(request, f"Not saved: {', '.join(exc.field_errors) or exc.message} — "
                                            "see the fields marked below." if exc.field_errors else exc.text())
                except errors.DomainError as exc:
                    error_message(request, exc)
                else:
                    self.message_user(request, f"{env.name}: configuration version {version.number} saved."
                                      if created else f"{env.name}: nothing changed.", messages.SUCCESS)
                    return HttpResponseRedirect(reverse("admin:releases_configversion_editor_section",
                                                        args=[env.name, section]))
        elif features:
            rows = [{"name": n, "enabled": v.get("enabled"), "percentage": v.get("percentage")}
                    for n, v in sorted((document.get("features") or {}).items())]
            form = FeatureRows(initial=rows, prefix="features")
        else:
            form = form_class(initial=_initial(section, document))
        if not can_edit:
            for f in ([form] if not features else form.forms):
                for field in f.fields.values():
                    field.disabled = True
        context = self._context(
            request, f"Configuration of {env}: {section}", environment=env, section=section,
            sections=schema.SECTIONS, form=form, features=features, current=current, can_edit=can_edit,
            may_override=leaks.may_override(request.user), override_field=leaks.FORM_FIELD,
            require_pinned_match=configuration.requires_pinned_match(env),
            versions=env.config_versions.select_related("author").order_by("-number")[:10],
            must_match=[d for d, _, meta in (schema.section_fields(section) if not features else [])
                        if meta.get("must_match")])
        return TemplateResponse(request, "admin/releases/configversion/editor.html", context)

    def policy_view(self, request, environment):
        """POST: set whether deployments to the environment need their release's pinned must-match keys."""
        if request.method != "POST":
            raise Http404("POST only")
        env = self._environment(request, environment)
        try:
            configuration.policy_set(environment=env, by=request.user,
                                     require_pinned_match=request.POST.get("require_pinned_match") == "on")
        except errors.DomainError as exc:
            error_message(request, exc)
        else:
            self.message_user(request, f"{env.name}: deployments {'now' if configuration.requires_pinned_match(env) else 'no longer'} "
                                       "need the pinned must-match keys to match.", messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:releases_configversion_editor", args=[env.name]))

    @staticmethod
    def _attach_errors(form, section, exc):
        """Put the schema's field-path errors on the form fields they name (the rest on the form)."""
        prefix = f"{section}."
        for key, messages_ in exc.field_errors.items():
            text = " ".join(map(str, messages_)) if isinstance(messages_, list | tuple) else str(messages_)
            name = _name(key[len(prefix):]) if key.startswith(prefix) else None
            if isinstance(form, forms.BaseFormSet):
                form._non_form_errors = form.error_class([*form.non_form_errors(), f"{key}: {text}"])
            elif name in form.fields:
                form.add_error(name, text)
            else:
                form.add_error(None, f"{key}: {text}")

    def _side(self, request, value):
        """'staging' (its current configuration) or 'staging@3' (a version) → (label, version or None)."""
        name, _, number = (value or "").partition("@")
        env = self._environment(request, name)
        if number:
            if not number.isdigit():
                raise Http404("a version is a number")
            version = get_object_or_404(ConfigVersion, environment=env, number=int(number))
        else:
            version = configuration.current(env)
        return version

    def compare_view(self, request):
        left, right = request.GET.get("left", ""), request.GET.get("right", "")
        changes, before, after = None, None, None
        if left and right:
            before, after = self._side(request, left), self._side(request, right)
            changes = [{**c, "before": _shown(c["before"]), "after": _shown(c["after"])}
                       for c in configuration.compare(before, after)]
        context = self._context(request, "Compare configurations", left=left, right=right, before=before,
                                after=after, changes=changes)
        return TemplateResponse(request, "admin/releases/configversion/compare.html", context)

    def drift_view(self, request):
        drift = configuration.drift(by=request.user)
        order = [e.name for e in access.visible_environments(request.user).order_by("position", "name")]
        names = [n for n in order if any(n in d["values"] for d in drift)]
        rows = [{"path": d["path"], "values": [None if d["values"].get(n) is None else _shown(d["values"][n])
                                               for n in names]} for d in drift]
        context = self._context(request, "Configuration drift", drift=rows, names=names,
                                rules=schema.MUST_MATCH)
        return TemplateResponse(request, "admin/releases/configversion/drift.html", context)


class SecretReferenceForm(forms.ModelForm):
    class Meta:
        model = SecretReference
        fields = ["name", "reference", "environment", "owner", "description", "rotation_automatic",
                  "rotation_frequency_days", "grace_period_days", "last_rotated_at"]


@admin.register(SecretReference)
class SecretReferenceAdmin(ServiceAdminMixin, AuditHistoryMixin, admin.ModelAdmin):
    form = SecretReferenceForm
    list_display = ["name", "reference", "environment", "owner", "last_rotated_at", "rotation_state", "due_at",
                    "check_error"]
    list_filter = ["environment", "rotation_automatic"]
    search_fields = ["name", "reference", "description"]
    readonly_fields = ["backend_version", "backend_metadata", "checked_at", "check_error", "rotation_state"]

    def get_queryset(self, request):
        qs = super().get_queryset(request).select_related("environment", "owner")
        if request.user.is_superuser:
            return qs
        return qs.filter(environment__in=access.visible_environments(request.user))

    def has_view_permission(self, request, obj=None):
        return request.user.has_perm("releases.view_environment")

    def has_add_permission(self, request):
        return request.user.is_superuser or any(access.can(request.user, e, Capability.CONFIGURE)
                                                for e in Environment.objects.all())

    def has_change_permission(self, request, obj=None):
        if obj is None:
            return self.has_add_permission(request)
        return request.user.is_superuser or (obj.environment is not None
                                             and access.can(request.user, obj.environment, Capability.CONFIGURE))

    def has_delete_permission(self, request, obj=None):
        return obj is not None and self.has_change_permission(request, obj)

    @admin.display(description="rotation")
    def rotation_state(self, obj):
        return secrets.rotation_of(obj).state.replace("_", " ")

    @admin.display(description="due")
    def due_at(self, obj):
        return secrets.rotation_of(obj).due_at

    def save_model(self, request, obj, form, change):
        data = {name: form.cleaned_data[name] for name in (form.changed_data if change else form.cleaned_data)
                if name in secrets.REFERENCE_FIELDS}
        saved = secrets.reference_save(data=data, by=request.user,
                                       instance=SecretReference.objects.get(pk=obj.pk) if change else None)
        obj.pk = saved.pk
        obj._state.adding = False

    def delete_model(self, request, obj):
        secrets.reference_delete(instance=obj, by=request.user)

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            secrets.reference_delete(instance=obj, by=request.user)
