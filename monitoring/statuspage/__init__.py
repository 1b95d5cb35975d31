"""The public status page: components in groups with their status history, incidents and the incident policy,
scheduled maintenance, subscribers and notifications, and the static site published from them (the page,
the Atom feed and the Statuspage v2 JSON documents)."""
