"""Domain errors raised by services; the API and admin turn them into 400/403/409 answers."""


class DomainError(Exception):
    """Base class: the operation was refused and nothing was changed."""

    status_code = 400
    code = "invalid"

    def __init__(self, message, *, reasons=None, field_errors=None):
        super().__init__(message)
        self.message = str(message)
        self.reasons = list(reasons or [])
        self.field_errors = dict(field_errors or {})

    def text(self):
        """The message with its reasons and field errors, as one line for people (admin messages, CLI)."""
        reasons = "; ".join(self.reasons)
        fields = "; ".join(f"{name}: {' '.join(map(str, v)) if isinstance(v, list | tuple) else v}"
                           for name, v in self.field_errors.items())
        return " — ".join(part for part in (self.message, reasons, fields) if part)

    def as_dict(self):
        data = {"detail": self.message, "code": self.code}
        if self.reasons:
            data["reasons"] = self.reasons
        if self.field_errors:
            data.update(self.field_errors)
        return data


class ValidationFailed(DomainError):
    status_code = 400
    code = "invalid"


class PermissionDenied(DomainError):
    status_code = 403
    code = "permission_denied"


class NotFound(DomainError):
    status_code = 404
    code = "not_found"


class TransitionNotAllowed(DomainError):
    """The object's current state does not allow the transition (or its conditions are unmet)."""

    status_code = 409
    code = "transition_not_allowed"


def full_clean(instance, exclude=None):
    """Run a model's validation; on failure raise ValidationFailed naming every field and problem."""
    from django.core.exceptions import ValidationError

    try:
        instance.full_clean(exclude=exclude)
    except ValidationError as exc:
        problems = [f"{field}: {message}" for field, messages in exc.message_dict.items() for message in messages]
        raise ValidationFailed("; ".join(problems), field_errors=exc.message_dict) from exc
