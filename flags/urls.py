"""URL routes of the flags app (OFREP, Unleash client and frontend APIs, flag management API)."""

urlpatterns = []
