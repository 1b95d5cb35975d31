"""Admin of the identity pieces: role mappings (written through ``rolemap``: administrators with a recent second
factor, audited), who came from which source and which roles the sign-ins granted (read-only), and the user form
refusing hand edits of mapped roles."""
from django import forms
from django.conf import settings
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin

from .. import errors
from ..admin import ServiceAdminMixin
from ..models import ExternalIdentity, RoleGrant, RoleMapping
from ..roles import Role
from . import rolemap


class RoleMappingForm(forms.ModelForm):
    role = forms.ChoiceField(choices=Role.choices)

    class Meta:
        model = RoleMapping
        fields = ["source", "group_name", "role"]

    def clean(self):
        data = super().clean()
        try:
            rolemap.validate_mapping(source=data.get("source"), group_name=data.get("group_name"),
                                     role=data.get("role"))
        except errors.ValidationFailed as exc:
            for name, problems in exc.field_errors.items():
                self.add_error(name if name in self.fields else None, problems)
        return data


@admin.register(RoleMapping)
class RoleMappingAdmin(ServiceAdminMixin, admin.ModelAdmin):
    form = RoleMappingForm
    list_display = ["source", "group_name", "role"]
    list_filter = ["source", "role"]
    search_fields = ["group_name"]

    def has_module_permission(self, request):
        return request.user.is_superuser

    has_view_permission = has_add_permission = has_change_permission = has_delete_permission = (
        lambda self, request, obj=None: request.user.is_superuser)

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "title": "Role mappings (plus any set in ROLE_MAPPINGS: "
                         f"{len(settings.ROLE_MAPPINGS)})"}
        return super().changelist_view(request, extra_context)

    def save_model(self, request, obj, form, change):
        existing = RoleMapping.objects.get(pk=obj.pk) if change else None
        saved = rolemap.mapping_save(by=request.user, mapping=existing, **{
            name: form.cleaned_data[name] for name in ("source", "group_name", "role")})
        obj.pk = saved.pk
        obj._state.adding = False

    def delete_model(self, request, obj):
        rolemap.mapping_delete(by=request.user, mapping=obj)

    def get_actions(self, request):
        return {}  # no bulk delete: each deletion goes through the service


@admin.register(ExternalIdentity)
class ExternalIdentityAdmin(admin.ModelAdmin):
    list_display = ["user", "source", "subject", "last_sign_in_at"]
    list_filter = ["source"]
    search_fields = ["user__username", "subject"]
    fields = readonly_fields = ["user", "source", "subject", "last_sign_in_at"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(RoleGrant)
class RoleGrantAdmin(admin.ModelAdmin):
    list_display = ["user", "role", "source", "groups", "granted_at"]
    list_filter = ["source", "role"]
    fields = readonly_fields = ["user", "role", "source", "groups", "granted_at"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class GuardedUserForm(UserAdmin.form):
    def clean_groups(self):
        groups = self.cleaned_data.get("groups")
        if groups is None or not self.instance.pk:
            return groups
        before = set(self.instance.groups.values_list("name", flat=True))
        after = {g.name for g in groups}
        try:
            rolemap.check_manual_edit(before ^ after)
        except errors.ValidationFailed as exc:
            raise forms.ValidationError(exc.message) from exc
        return groups


User = get_user_model()
if admin.site.is_registered(User):
    admin.site.unregister(User)


@admin.register(User)
class PortalUserAdmin(UserAdmin):
    form = GuardedUserForm
