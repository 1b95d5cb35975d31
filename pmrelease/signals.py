"""Every django-fsm transition on any model lands in the audit trail, with who and why."""
from django.dispatch import receiver
from django_fsm.signals import post_transition

from . import audit


@receiver(post_transition)
def audit_transition(sender, instance, name, source, target, **kwargs):
    method_kwargs = kwargs.get("method_kwargs") or {}
    audit.record(
        action=f"{sender._meta.model_name}.{name}",
        obj=instance,
        by=method_kwargs.get("by"),
        before={"status": source},
        after={"status": target},
        reason=method_kwargs.get("reason") or "",
    )
