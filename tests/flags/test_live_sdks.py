"""The real SDKs against a live server: openfeature-sdk + OFREP provider, and Unleash's Python SDK."""
import random

import pytest
from openfeature import api as openfeature_api
from openfeature.contrib.provider.ofrep import OFREPProvider
from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import Reason

from flags import services, snapshots

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.integration, pytest.mark.timeout(120)]


@pytest.fixture
def sdk_flags(make_flag, envs):
    make_flag("new-checkout", enabled={"production": True}, strategies={"production": [
        {"name": "flexibleRollout", "parameters": {"rollout": "100", "stickiness": "default", "groupId": "nc"},
         "constraints": [{"contextName": "plan", "operator": "IN", "values": ["pro", "team"]}]}]})
    make_flag("banner-text", enabled={"production": True}, variants={"production": [
        {"name": "short", "weightType": "fix", "weight": 1000, "payload": {"type": "string", "value": "Hi!"}}]})
    make_flag("checkout-config", enabled={"production": True}, variants={"production": [
        {"name": "v2", "weightType": "variable",
         "payload": {"type": "json", "value": '{"steps": 2, "express": true}'}}]})


@pytest.fixture
def openfeature_client(live_server, sdk_flags, make_key):
    def client_with(key):
        provider = OFREPProvider(live_server.url, headers_factory=lambda: {"Authorization": f"Bearer {key}"},
                                 timeout=5.0)
        openfeature_api.set_provider(provider)
        return openfeature_api.get_client()

    yield client_with
    openfeature_api.shutdown()


def test_openfeature_ofrep__live_server__boolean_string_object_and_errors(openfeature_client, make_key):
    client = openfeature_client(make_key("production", "client"))
    pro = EvaluationContext(targeting_key="user-1", attributes={"plan": "pro"})

    details = client.get_boolean_details("new-checkout", False, pro)
    assert details.value is True and details.reason == Reason.TARGETING_MATCH and details.variant == "on"
    assert client.get_boolean_value("new-checkout", True, EvaluationContext("user-2", {"plan": "free"})) is False

    text = client.get_string_details("banner-text", "default", pro)
    assert text.value == "Hi!" and text.variant == "short" and text.error_code is None

    config = client.get_object_details("checkout-config", {}, pro)
    assert config.value == {"steps": 2, "express": True} and config.variant == "v2"

    missing = client.get_boolean_details("no-such-flag", True, pro)
    assert missing.value is True and missing.error_code == ErrorCode.FLAG_NOT_FOUND

    mismatch = client.get_string_details("new-checkout", "fallback", pro)
    assert mismatch.value == "fallback" and mismatch.error_code == ErrorCode.TYPE_MISMATCH


def test_openfeature_ofrep__disabled_boolean_string_and_object_flags__callers_default_with_reason_disabled(
        openfeature_client, make_key, envs):
    """A disabled flag has no value in OFREP (open-feature/protocol#46): the provider gives the caller's default,
    of whatever type, with reason DISABLED, and no TYPE_MISMATCH for string and object flags."""
    for key in ("new-checkout", "banner-text", "checkout-config"):
        services.flag_toggle(state=services.state_for(services.FeatureFlag.objects.get(key=key), envs["production"]),
                             enabled=False)
    client = openfeature_client(make_key("production", "client"))
    pro = EvaluationContext(targeting_key="user-1", attributes={"plan": "pro"})

    boolean = client.get_boolean_details("new-checkout", True, pro)
    assert (boolean.value, boolean.reason, boolean.error_code) == (True, Reason.DISABLED, None)
    text = client.get_string_details("banner-text", "the default banner", pro)
    assert (text.value, text.reason, text.error_code) == ("the default banner", Reason.DISABLED, None)
    config = client.get_object_details("checkout-config", {"steps": 3}, pro)
    assert (config.value, config.reason, config.error_code) == ({"steps": 3}, Reason.DISABLED, None)


def test_openfeature_ofrep__bad_key__default_value_with_error(openfeature_client):
    client = openfeature_client("not-a-real-key")
    details = client.get_boolean_details("new-checkout", True, EvaluationContext("user-1", {"plan": "pro"}))
    assert details.value is True and details.error_code == ErrorCode.GENERAL
    assert details.reason == Reason.ERROR


# --- Unleash Python SDK ------------------------------------------------------------------------------------
PLANS = ["free", "pro", "team", "enterprise", "PRO"]
REGIONS = ["eu-west-1", "us-east-1", "ap-south-1"]


@pytest.fixture
def rich_flags(make_flag, envs):
    """Flags exercising strategies, constraints, segments, variants and a dependency, in staging."""
    segment = services.segment_save(name="europe", constraints=[
        {"contextName": "region", "operator": "STR_STARTS_WITH", "values": ["eu-"]}])
    rollout = {"name": "flexibleRollout", "parameters": {"rollout": "35", "stickiness": "default", "groupId": "r"},
               "constraints": [{"contextName": "plan", "operator": "IN", "values": ["pro", "team"],
                                "caseInsensitive": False, "inverted": False}]}
    make_flag("rollout-35", enabled={"staging": True}, strategies={"staging": [rollout]})
    make_flag("europe-only", enabled={"staging": True}, strategies={"staging": [
        {"name": "flexibleRollout", "parameters": {"rollout": "80", "stickiness": "sessionId", "groupId": "eu"},
         "constraints": [], "segments": [segment.pk]}]})
    make_flag("beta-users", enabled={"staging": True}, strategies={"staging": [
        {"name": "userWithId", "parameters": {"userIds": "3,7,11,19"}, "constraints": []},
        {"name": "default", "parameters": {}, "constraints": [
            {"contextName": "version", "operator": "SEMVER_GT", "value": "2.3.0"}]}]})
    make_flag("pricing-test", enabled={"staging": True}, variants={"staging": [
        {"name": "a", "weightType": "variable", "stickiness": "default",
         "payload": {"type": "string", "value": "9.99"}},
        {"name": "b", "weightType": "variable", "stickiness": "default"},
        {"name": "c", "weightType": "fix", "weight": 200, "stickiness": "default",
         "overrides": [{"contextName": "userId", "values": ["42"]}]}]})
    make_flag("strategy-variants", enabled={"staging": True}, strategies={"staging": [
        {"name": "flexibleRollout", "parameters": {"rollout": "60", "stickiness": "userId", "groupId": "sv"},
         "constraints": [{"contextName": "region", "operator": "IN", "values": ["eu-west-1"], "inverted": True}],
         "variants": [{"name": "x", "weightType": "variable", "stickiness": "userId"},
                      {"name": "y", "weightType": "variable", "stickiness": "userId"}]}]})
    child = make_flag("child-of-rollout", enabled={"staging": True})
    services.flag_update(flag=child, data={"parent": services.FeatureFlag.objects.get(key="rollout-35")})
    make_flag("kill-switch", enabled={"staging": False}, type="kill-switch")


def _contexts(count, seed=20240607):
    rng = random.Random(seed)
    for _ in range(count):
        properties = {"plan": rng.choice(PLANS), "region": rng.choice(REGIONS),
                      "version": f"{rng.randint(1, 3)}.{rng.randint(0, 5)}.{rng.randint(0, 9)}"}
        yield {"userId": str(rng.randint(1, 60)), "sessionId": f"s{rng.randint(1, 10_000)}",
               "properties": properties}


def test_unleash_python_sdk__live_server__same_results_as_the_portal_engine(live_server, rich_flags, make_key, envs,
                                                                            tmp_path):
    from UnleashClient import UnleashClient

    client = UnleashClient(
        url=f"{live_server.url}/api", app_name="parity-test", instance_id="parity-1",
        custom_headers={"Authorization": make_key("staging", "client")}, refresh_interval=300,
        disable_metrics=True, disable_registration=True, cache_directory=str(tmp_path), request_timeout=5,
        request_retries=0,
    )
    client.initialize_client()
    try:
        assert client.is_initialized
        portal = snapshots.get(envs["staging"].pk).snapshot
        names = portal.feature_names()
        assert len(names) == 7
        compared = 0
        for context in _contexts(3000):
            sdk_context = dict(context)
            ours = dict(context, appName="parity-test", environment="default")
            for name in names:
                assert client.is_enabled(name, sdk_context) == portal.is_enabled(name, ours), (name, context)
                sdk_variant = client.get_variant(name, sdk_context)
                our_variant = portal.get_variant(name, ours)
                assert (sdk_variant["name"], sdk_variant["enabled"]) == (our_variant["name"], our_variant["enabled"])
                assert sdk_variant.get("payload") == our_variant.get("payload")
                compared += 1
        assert compared == 3000 * 7
        enabled_share = sum(portal.is_enabled("rollout-35", dict(c, appName="p", environment="default"))
                            for c in _contexts(3000)) / 3000
        assert 0.05 < enabled_share < 0.5  # the rollout actually splits the generated population
    finally:
        client.destroy()


def test_unleash_python_sdk__metrics_and_registration__accepted_by_the_portal(live_server, rich_flags, make_key,
                                                                             envs, tmp_path):
    from UnleashClient import UnleashClient

    from flags.models import ClientApplication

    client = UnleashClient(
        url=f"{live_server.url}/api", app_name="metrics-test", instance_id="m-1",
        custom_headers={"Authorization": make_key("staging", "client")}, refresh_interval=300,
        metrics_interval=1, cache_directory=str(tmp_path), request_timeout=5, request_retries=0,
    )
    client.initialize_client()
    try:
        for i in range(10):
            client.is_enabled("rollout-35", {"userId": str(i), "properties": {"plan": "pro"}})
        import time

        from flags.models import FlagMetricsBucket

        def counted():
            row = FlagMetricsBucket.objects.filter(flag_key="rollout-35", environment=envs["staging"]).first()
            return 0 if row is None else row.yes + row.no

        deadline = time.monotonic() + 15  # the SDK may split the ten evaluations over two metric posts
        while time.monotonic() < deadline and counted() < 10:
            time.sleep(0.2)
        assert counted() == 10
        assert ClientApplication.objects.filter(app_name="metrics-test", environment=envs["staging"]).exists()
    finally:
        client.destroy()
