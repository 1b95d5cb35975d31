import pytest

from changes import services

PLANS = {"implementation_plan": "Roll out with a canary", "rollback_plan": "Roll back to the previous version",
         "testing_plan": "Staging gates and smoke tests"}


@pytest.fixture
def new_change(users, envs):
    """make(env names…, by=, **fields) -> a draft change request."""

    def make(*names, by=None, links=(), change_class="normal", **data):
        data = {"title": "A change", "impact": "low", "likelihood": "low", **PLANS, **data}
        data["environments"] = [envs[n] for n in (names or ("staging",))]
        return services.change_create(data=data, by=by or users["dev"], links=links, change_class=change_class)

    return make
