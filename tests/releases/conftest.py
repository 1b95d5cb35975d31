import pytest

from releases import services
from releases.deploy import gates
from releases.deploy.gates import SEED_TESTING_GATES
from releases.models import DeploymentTarget
from tests.factories import make_release


@pytest.fixture
def sim_targets(envs):
    """A simulation target on every environment."""
    return {name: DeploymentTarget.objects.create(environment=env, backend="simulation")
            for name, env in envs.items()}


@pytest.fixture
def seed_gates(envs):
    made = {}
    for position, (name, env, tests, required, timeout, on_failure) in enumerate(SEED_TESTING_GATES):
        made[name] = gates.ensure_gate(envs[env], name=name, tests=tests, required=required,
                                       timeout=timeout, on_failure=on_failure, position=position)
    return made


@pytest.fixture
def approved_release(users, envs):
    """An approved release targeting development, staging and production."""
    def make(**kwargs):
        kwargs.setdefault("envs", [envs["development"], envs["staging"], envs["production"]])
        release = make_release(by=users["planner"], **kwargs)
        services.release_approve(release=release, by=users["approver"])
        return release

    return make


from tests.vault_support import bao_server  # noqa: E402, F401 - the OpenBao dev server fixture
