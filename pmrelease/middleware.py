"""Request id: taken from X-Request-ID (or made), kept in a context variable for the audit trail."""
import contextvars
import re
import uuid

_request_id = contextvars.ContextVar("request_id", default="")
_VALID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


def current_request_id():
    return _request_id.get()


def set_request_id(value):
    """Set the id for work outside a request (Celery tasks, commands); returns the reset token."""
    return _request_id.set(value)


class RequestIdMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        incoming = request.headers.get("X-Request-ID", "")
        rid = incoming if _VALID.match(incoming) else uuid.uuid4().hex
        token = _request_id.set(rid)
        request.request_id = rid
        try:
            response = self.get_response(request)
        finally:
            _request_id.reset(token)
        response["X-Request-ID"] = rid
        return response
