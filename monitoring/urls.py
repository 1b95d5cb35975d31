"""URL routes of the monitoring app (public status page, Statuspage v2 JSON, feed, subscriptions)."""

urlpatterns = []
