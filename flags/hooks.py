"""What the flags app asks of the changes app above it (which provides these in its AppConfig.ready).

A person's flag change where the environment needs a second person's approval is a change request of the
``flag_change`` class: decided on the change request's own page by whom the approval policy names.
"""
from pmrelease.registry import Hook

# decide(change=FlagChangeRequest, by=user, approve=bool, comment=str) -> the FlagChangeRequest, decided
decide = Hook("flag_change_decide", "the changes app decides a flag change through its change request")

# reference(change=FlagChangeRequest) -> (label, admin URL) of the change request that decides it, or None
reference = Hook("flag_change_reference", "the changes app names the change request deciding a flag change")

# references(changes=[FlagChangeRequest]) -> {flag change id: (label, admin URL)} of those that have one
references = Hook("flag_change_references", "the changes app names the change requests deciding flag changes")
