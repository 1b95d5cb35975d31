"""Signals of the flags app, for the apps above it.

``flag_change_proposed``: a person proposed a flag change where a second person must approve it (inside the
proposing transaction). Argument: ``change`` (the FlagChangeRequest). The changes app opens its change request.
"""
from django.dispatch import Signal

flag_change_proposed = Signal()
