"""The monitoring app's part of ``seed_demo`` (which imports ``<app>.demo``): the demo status page, and the
service level objectives measured on its history and on the production deployments."""
from .statuspage.demo import seed as seed_status_page

SLOS = [  # name, component, indicator, objective (percent), window (days)
    ("REST API availability", "REST API", "uptime", 99.9, 30),
    ("SMTP relay availability", "SMTP relay", "uptime", 99.5, 30),
    ("Production deployments succeed", None, "deployment_success", 90.0, 30),
]


def seed(*, envs, users, stdout, **kwargs):
    result = seed_status_page(envs=envs, users=users, stdout=stdout, **kwargs)
    _slos(envs or {}, users or {}, stdout)
    return result


def _slos(envs, users, stdout):
    from .reliability import services
    from .reliability.models import ServiceLevelObjective
    from .statuspage.models import Component

    production, admin = envs.get("production"), users.get("admin")
    if production is None or admin is None or ServiceLevelObjective.objects.exists():
        return
    for name, component_name, sli, objective, window in SLOS:
        component = (Component.objects.filter(name=component_name, environments=production).first()
                     if component_name else None)
        if component_name and component is None:  # not the demo's page (or not linked to production)
            continue
        services.slo_save(by=admin, data={"name": name, "environment": production, "component": component,
                                          "sli": sli, "objective": objective, "window_days": window})
    stdout.write(f"Service level objectives: {ServiceLevelObjective.objects.count()} on production.")
