"""Adding hand-written parts to the OpenAPI document (for the APIs served outside DRF, which drf-spectacular
cannot see: the flag edge, the published status page). Each app's schema hook calls :func:`merge`."""
import json


def merge(result, *, paths, schemas, security_schemes=None, tags=()):
    """Add ``paths``, component ``schemas``, ``security_schemes`` and ``tags`` to an OpenAPI document.

    The parts are copied through JSON, so the document shares no object with the module constants (nor two
    places of the document one object). A path, or a component with other content, that is already there is a
    programming error (two owners of one name): ValueError."""
    parts = json.loads(json.dumps({"paths": paths, "schemas": schemas, "securitySchemes": security_schemes or {},
                                   "tags": list(tags)}))
    components = result.setdefault("components", {})
    for section in ("schemas", "securitySchemes"):
        target = components.setdefault(section, {})
        for name, value in parts[section].items():
            if target.get(name, value) != value:
                raise ValueError(f"OpenAPI components.{section}.{name} is defined twice")
            target[name] = value
    documented = result.setdefault("paths", {})
    for path, item in parts["paths"].items():
        if path in documented:
            raise ValueError(f"OpenAPI path {path} is defined twice")
        documented[path] = item
    tags = result.setdefault("tags", [])
    known = {tag["name"] for tag in tags}
    tags += [tag for tag in parts["tags"] if tag["name"] not in known]
    return result
