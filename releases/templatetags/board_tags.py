"""The deployment board on the admin's landing page: ``{% deployment_board %}`` (releases.selectors)."""
from django import template

from pmrelease.admin import STATUS_COLOURS

from .. import selectors

register = template.Library()


@register.inclusion_tag("admin/releases/board.html", takes_context=True)
def deployment_board(context):
    request = context.get("request")
    user = getattr(request, "user", None)
    if user is None or not user.has_perm("releases.view_release"):
        return {"board": None}
    board = selectors.deployment_board(user)
    for row in board["rows"]:
        for cell in row["cells"]:
            dep = cell["deployment"]
            cell["colour"] = STATUS_COLOURS.get(dep.status, "#000") if dep else ""
    return {"board": board}
