"""Migrating from Unleash: every state of the published client specification, loaded with ``import_flags``, gives
every expected result through the official Unleash Python SDK (``/api/client/features``) and through the
OpenFeature SDK (OFREP); the export gives the state back, and importing it again changes nothing.

The files holding delta-API events instead of a state (19, 20) have nothing to import; the other 20 files hold
275 cases. Each file is imported into an environment named ``default``, the environment the SDK puts in its
context when a case gives none (OFREP defaults to the key's environment: the same).
"""
import io
import json

import pytest
from django.core.management import call_command
from openfeature import api as openfeature_api
from openfeature.contrib.provider.ofrep import OFREPProvider
from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import Reason

from flags import services, snapshots, transfer
from flags.engine import decode_payload
from flags.models import ConfigChange, FeatureFlag, FlagEnvironment, Segment
from pmrelease.models import AuditEvent
from releases.models import Environment
from tests.flags.test_engine_spec import SPEC_DIR, SPEC_FILES

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.integration, pytest.mark.timeout(300)]


def _load(file_name):
    return json.loads((SPEC_DIR / file_name).read_text(encoding="utf-8"))


STATE_FILES = [f for f in SPEC_FILES if "events" not in _load(f)["state"]]
CASES = {f: len(_load(f).get("tests") or ()) + len(_load(f).get("variantTests") or ()) for f in STATE_FILES}


def test_spec_states__every_file_with_a_state__275_cases():
    assert len(STATE_FILES) == 20 and sum(CASES.values()) == 275


def _by_name(doc):
    return {f["name"]: f for f in doc["features"]}


def _rows():
    return (FeatureFlag.objects.count(), FlagEnvironment.objects.count(), Segment.objects.count(),
            ConfigChange.objects.count(), AuditEvent.objects.count())


@pytest.fixture
def default_env(groups):
    return Environment.objects.create(name="default", display_name="Default", tier="development", position=0)


def _import(path, *args):
    out = io.StringIO()
    call_command("import_flags", "--environment", "default", "--format", "unleash", *args, str(path), stdout=out)
    return out.getvalue()


def _unleash_client(url, key, tmp_path):
    from UnleashClient import UnleashClient

    client = UnleashClient(url=f"{url}/api", app_name="spec", instance_id="spec-1", environment="default",
                           custom_headers={"Authorization": key}, refresh_interval=300, disable_metrics=True,
                           disable_registration=True, cache_directory=str(tmp_path / "unleash-cache"),
                           request_timeout=5, request_retries=0)
    client.initialize_client()
    assert client.is_initialized
    return client


def _ofrep_enabled(client, case):
    """isEnabled through OFREP: the boolean of a flag without variants; a flag answering with a variant is on
    (it is a string, object or number flag: the boolean evaluation says TYPE_MISMATCH); DISABLED or not found is
    the caller's default (false)."""
    details = client.get_boolean_details(case["toggleName"], False, EvaluationContext(attributes=case["context"]))
    if details.error_code == ErrorCode.TYPE_MISMATCH:
        return True
    assert details.error_code in (None, ErrorCode.FLAG_NOT_FOUND), details
    return details.value


def _ofrep_variant(client, case):
    """getVariant through OFREP, in the specification's shape: the variant's name, its payload (decoded by OFREP:
    compared with the expected payload decoded), whether the flag is on."""
    expected = case["expectedResult"]
    ctx = EvaluationContext(attributes=case["context"])
    if expected["enabled"]:
        payload = expected.get("payload")
        value = decode_payload(payload) if payload else expected["name"]
        resolve = {bool: client.get_boolean_details, int: client.get_integer_details, float: client.get_float_details,
                   str: client.get_string_details}.get(type(value), client.get_object_details)
        details = resolve(case["toggleName"], type(value)(), ctx)
        assert details.error_code is None, details
        return dict(expected, name=details.variant) if details.value == value else {"value": details.value}
    details = client.get_boolean_details(case["toggleName"], False, ctx)
    assert details.error_code in (None, ErrorCode.FLAG_NOT_FOUND), details
    feature_enabled = details.error_code is None and details.reason != Reason.DISABLED and details.value is True
    return {"name": "disabled", "enabled": False, "feature_enabled": feature_enabled}


@pytest.mark.parametrize("file_name", STATE_FILES)
def test_spec_state__imported__both_sdks_give_every_expected_result_and_export_is_a_fixed_point(
        file_name, default_env, live_server, tmp_path, request):
    suite = _load(file_name)
    state = suite["state"]
    path = tmp_path / "state.json"
    path.write_text(json.dumps(state), encoding="utf-8")

    # --dry-run: the plan, nothing written
    plan = _import(path, "--dry-run")
    assert f"{len(state['features'])} flag(s) would be created" in plan and _rows() == (0, 0, 0, 0, 0)

    _import(path)
    snapshots.reset()
    exported = transfer.export_document(default_env)
    assert _by_name(exported) == _by_name(state)
    assert exported["segments"] == sorted(state.get("segments") or [], key=lambda s: s["id"])
    again = services.flags_import(environment=default_env, doc=exported, by="import_flags")
    assert sorted(again.unchanged) == sorted(_by_name(state)) and not again.changed and not again.created
    assert not again.segments_changed and not again.segments_created
    assert transfer.export_document(default_env) == exported

    _key, raw = services.api_key_create(environment=default_env, kind="client")
    failures = []
    unleash = _unleash_client(live_server.url, raw, tmp_path)
    try:
        for case in suite.get("tests") or ():
            actual = unleash.is_enabled(case["toggleName"], case["context"])
            if actual != case["expectedResult"]:
                failures.append(f"Unleash SDK: {case['description']}: {actual}")
        for case in suite.get("variantTests") or ():
            actual = unleash.get_variant(case["toggleName"], case["context"])
            if actual != case["expectedResult"]:
                failures.append(f"Unleash SDK: {case['description']}: {actual}")
    finally:
        unleash.destroy()
    openfeature_api.set_provider(OFREPProvider(live_server.url, headers_factory=lambda: {
        "Authorization": f"Bearer {raw}"}, timeout=5.0))
    try:
        client = openfeature_api.get_client()
        for case in suite.get("tests") or ():
            actual = _ofrep_enabled(client, case)
            if actual != case["expectedResult"]:
                failures.append(f"OFREP: {case['description']}: {actual}")
        for case in suite.get("variantTests") or ():
            actual = _ofrep_variant(client, case)
            if actual != case["expectedResult"]:
                failures.append(f"OFREP: {case['description']}: {actual} != {case['expectedResult']}")
    finally:
        openfeature_api.shutdown()
    assert not failures, "\n".join(failures)
    request.node.user_properties.append(("spec_cases", CASES[file_name]))
