"""Row locks in one order everywhere: **environments → releases → deployments**, each by id.

Two transactions that lock the same rows in different orders deadlock on PostgreSQL (a worker finishing an
aborted deployment held its release and environment while an operator cancelled a queued deployment of the same
release there, holding them the other way round). So every path that changes deployments takes its locks
through these functions: the environments first, then the releases, then the deployments, each set in id order,
with one ``SELECT … FOR UPDATE`` per table (never ``FOR UPDATE`` over a join, whose lock order the planner
chooses). Change requests, triggers and steps come after. SQLite has no row locks: its one writer lock orders
everything there.
"""
from ..models import Deployment, Environment, Release


def _lock(model, ids):
    if ids:
        list(model.objects.select_for_update().filter(pk__in=sorted(ids)).order_by("pk").values_list("pk", flat=True))


def lock_environment_and_release(environment_id, release_id=None):
    """Lock an environment, then (optionally) a release: what a new deployment or a queue needs."""
    _lock(Environment, [environment_id])
    if release_id is not None:
        _lock(Release, [release_id])


def lock_deployments(ids):
    """Lock the deployments ``ids`` with their environments and releases, in the order above; returns
    {id: deployment} (release and environment loaded)."""
    ids = sorted(set(ids))
    keys = list(Deployment.objects.filter(pk__in=ids).values_list("environment_id", "release_id"))
    _lock(Environment, {e for e, _ in keys})
    _lock(Release, {r for _, r in keys})
    rows = (Deployment.objects.select_for_update(of=("self",)).select_related("release", "environment")
            .filter(pk__in=ids).order_by("pk"))
    return {d.pk: d for d in rows}


def lock_deployment(deployment_id):
    """One deployment locked with its environment and release (Deployment.DoesNotExist when it is gone)."""
    found = lock_deployments([deployment_id])
    if deployment_id not in found:
        raise Deployment.DoesNotExist(f"deployment #{deployment_id}")
    return found[deployment_id]
