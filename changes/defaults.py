"""The seed's approval workflow as the initial approval rules (plain data: migration 0002 installs them, and
``services.ensure_default_rules`` puts them back on an empty table). Administrators edit them afterwards."""

# description, change class ("" = normal), change type, min risk, production only, role, quorum
RULES = [
    ("Technical review", "", "", "low", False, "approvers", 1),
    ("Operations approval for production", "", "", "low", True, "operations", 1),
    ("Product approval for production changes of medium risk and above", "", "", "medium", True, "product", 1),
    ("Security review of security changes", "", "security", "low", False, "security", 1),
    ("Emergency authorisation by one operations approver", "emergency", "", "low", False, "operations", 1),
    ("A second person for a flag change", "flag_change", "", "low", False, "operations", 1),
]


def install(Group, ApprovalRule):
    """Create the rules on an empty table (with the models given: the migration's historical ones or the app's)."""
    if ApprovalRule.objects.exists():
        return []
    created = []
    for description, change_class, change_type, min_risk, production_only, role, quorum in RULES:
        group, _ = Group.objects.get_or_create(name=role)
        created.append(ApprovalRule.objects.create(
            description=description, change_class=change_class, change_type=change_type, min_risk=min_risk,
            production_only=production_only, role=group, quorum=quorum))
    return created
