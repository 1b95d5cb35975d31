"""Focused tests of flags.engine: reasons and explanations, operators, compile errors, deltas, validation."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from flags.engine import (
    DISABLED,
    SPLIT,
    STATIC,
    TARGETING_MATCH,
    UNKNOWN,
    RegexTranslationError,
    Snapshot,
    compile_rust_regex,
    compute_variant_weights,
    decode_payload,
    normalized_hash,
)
from flags.engine.validation import (
    validate_constraint,
    validate_payload,
    validate_segment,
    validate_strategy,
    validate_variants,
)


def snap(*features: dict, segments: list | None = None, hostname: str = "app-01") -> Snapshot:
    return Snapshot.from_client_features(
        {"version": 2, "features": list(features), "segments": segments or []}, hostname=hostname
    )


def flag(name: str = "f", strategies: list | None = None, enabled: bool = True, **extra) -> dict:
    return {"name": name, "enabled": enabled, "strategies": strategies or [], **extra}


def constraint(context_name: str, operator: str, values=None, value=None, **extra) -> dict:
    result = {"contextName": context_name, "operator": operator, **extra}
    if values is not None:
        result["values"] = values
    if value is not None:
        result["value"] = value
    return result


def only(*constraints: dict, name: str = "default", parameters: dict | None = None) -> list:
    return [{"name": name, "parameters": parameters or {}, "constraints": list(constraints)}]


# ------------------------------------------------------------------------------------------- reasons


def test_evaluate__unknown_flag__flag_not_found_with_unknown_reason():
    result = snap().evaluate("nope", {})
    assert result.flag_not_found and not result.enabled
    assert result.reason == UNKNOWN
    assert "does not exist" in result.explanation


def test_evaluate__flag_switched_off__disabled_reason():
    result = snap(flag(enabled=False, strategies=[{"name": "default"}])).evaluate("f", {})
    assert not result.enabled and result.reason == DISABLED
    assert result.variant_dict() == {"name": "disabled", "enabled": False, "feature_enabled": False}


def test_evaluate__no_strategies__static_reason():
    result = snap(flag()).evaluate("f", {})
    assert result.enabled and result.reason == STATIC
    assert result.strategy_index is None


def test_evaluate__default_strategy_without_constraints__static_reason():
    result = snap(flag(strategies=[{"name": "default"}])).evaluate("f", {"userId": "1"})
    assert result.enabled and result.reason == STATIC
    assert result.strategy_index == 0 and result.strategy_name == "default"
    assert "strategy[0] default" in result.explanation


def test_evaluate__constraint_decides__targeting_match_naming_the_constraint():
    s = snap(flag(strategies=only(constraint("plan", "IN", ["pro", "team"]))))
    hit = s.evaluate("f", {"properties": {"plan": "pro"}})
    miss = s.evaluate("f", {"properties": {"plan": "free"}})
    assert hit.enabled and hit.reason == TARGETING_MATCH
    assert not miss.enabled and miss.reason == TARGETING_MATCH
    assert "strategy[0] default" in miss.explanation
    assert "constraint[0] `plan IN ['pro', 'team']` not satisfied" in miss.explanation


def test_evaluate__second_constraint_fails__explanation_names_that_constraint():
    s = snap(
        flag(
            strategies=only(
                constraint("environment", "IN", ["prod"]), constraint("plan", "STR_STARTS_WITH", ["ent"])
            )
        )
    )
    result = s.evaluate("f", {"environment": "prod", "properties": {"plan": "pro"}})
    assert not result.enabled
    assert "constraint[1] `plan STR_STARTS_WITH ['ent']`" in result.explanation


def test_evaluate__user_with_id__targeting_match():
    s = snap(flag(strategies=[{"name": "userWithId", "parameters": {"userIds": "alice, bob"}}]))
    assert s.evaluate("f", {"userId": "bob"}).reason == TARGETING_MATCH
    assert s.evaluate("f", {"userId": "bob"}).enabled
    assert not s.evaluate("f", {"userId": "carol"}).enabled


def test_evaluate__partial_rollout__split_reason_with_bucket():
    strategy = {
        "name": "flexibleRollout",
        "parameters": {"rollout": "50", "stickiness": "userId", "groupId": "g"},
    }
    s = snap(flag(strategies=[strategy]))
    results = [s.evaluate("f", {"userId": str(i)}) for i in range(200)]
    assert {r.reason for r in results} == {SPLIT}
    assert any(r.enabled for r in results) and not all(r.enabled for r in results)
    inside = next(r for r in results if r.enabled)
    assert re.search(r"bucket \d+ <= 50", inside.explanation)


def test_evaluate__full_rollout_without_constraints__static_reason():
    strategy = {"name": "flexibleRollout", "parameters": {"rollout": "100", "stickiness": "default"}}
    assert snap(flag(strategies=[strategy])).evaluate("f", {"userId": "7"}).reason == STATIC


def test_evaluate__variant_split__split_reason_and_payload():
    variants = [
        {"name": "blue", "weight": 500, "payload": {"type": "string", "value": "b"}},
        {"name": "red", "weight": 500, "payload": {"type": "json", "value": '{"x": 1}'}},
    ]
    s = snap(flag(strategies=[{"name": "default"}], variants=variants))
    results = [s.evaluate("f", {"userId": str(i)}) for i in range(50)]
    assert {r.reason for r in results} == {SPLIT}
    assert {r.variant for r in results} == {"blue", "red"}
    red = next(r for r in results if r.variant == "red")
    assert red.payload == {"type": "json", "value": '{"x": 1}'}
    assert "weighted split" in red.explanation


def test_evaluate__variant_override__targeting_match():
    variants = [
        {"name": "a", "weight": 500, "overrides": [{"contextName": "userId", "values": ["vip"]}]},
        {"name": "b", "weight": 500},
    ]
    result = snap(flag(strategies=[{"name": "default"}], variants=variants)).evaluate("f", {"userId": "vip"})
    assert result.variant == "a" and result.reason == TARGETING_MATCH
    assert "override on userId" in result.explanation


def test_evaluate__no_strategy_matches__lists_every_strategy_failure():
    strategies = [
        {"name": "userWithId", "parameters": {"userIds": "alice"}},
        {"name": "remoteAddress", "parameters": {"IPs": "10.0.0.0/8"}},
    ]
    result = snap(flag(strategies=strategies)).evaluate("f", {"userId": "bob", "remoteAddress": "8.8.8.8"})
    assert not result.enabled and result.reason == TARGETING_MATCH
    assert (
        "strategy[0] userWithId" in result.explanation and "strategy[1] remoteAddress" in result.explanation
    )


def test_evaluate__parent_dependency_unmet__explains_parent():
    s = snap(flag("parent", enabled=False), flag("child", dependencies=[{"feature": "parent"}]))
    result = s.evaluate("child", {})
    assert not result.enabled
    assert "parent flag 'parent' is not enabled" in result.explanation


def test_evaluate_all__every_flag__keyed_in_document_order():
    s = snap(flag("a"), flag("b", enabled=False))
    results = s.evaluate_all({})
    assert list(results) == ["a", "b"] == s.feature_names()
    assert results["a"].enabled and not results["b"].enabled


def test_feature__known_flag__exposes_metadata():
    s = snap(flag("a", type="release", project="web", impressionData=True))
    info = s.feature("a")
    assert info is not None and info.type == "release" and info.project == "web" and info.impression_data
    assert s.feature("missing") is None and "a" in s and len(s) == 1


# ------------------------------------------------------------------------------------------- operators


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("10.1.2.3", True),
        ("11.0.0.1", False),
        ("192.168.7.7", True),
        ("2001:db8::42", True),
        ("2001:db9::1", False),
        ("::ffff:10.9.9.9", True),
        ("not-an-ip", False),
    ],
)
def test_in_cidr__ipv4_and_ipv6_ranges__membership(address, expected):
    values = ["10.0.0.0/8", "192.168.7.7", "2001:db8::/32", "bogus/99"]
    s = snap(flag(strategies=only(constraint("remoteAddress", "IN_CIDR", values))))
    assert s.is_enabled("f", {"remoteAddress": address}) is expected


def test_in_cidr__inverted_and_missing_address__negates_false():
    s = snap(flag(strategies=only(constraint("remoteAddress", "IN_CIDR", ["10.0.0.0/8"], inverted=True))))
    assert s.is_enabled("f", {})
    assert not s.is_enabled("f", {"remoteAddress": "10.0.0.1"})


def test_remote_address_strategy__ips_and_cidr__matches_both():
    s = snap(
        flag(strategies=[{"name": "remoteAddress", "parameters": {"IPs": "127.0.0.1, 172.16.0.0/12, ::1"}}])
    )
    assert s.is_enabled("f", {"remoteAddress": "127.0.0.1"})
    assert s.is_enabled("f", {"remoteAddress": "172.20.1.1"})
    assert s.is_enabled("f", {"remoteAddress": "::1"})
    assert not s.is_enabled("f", {"remoteAddress": "8.8.8.8"})
    assert not s.is_enabled("f", {})


@pytest.mark.parametrize(
    ("operator", "values", "value", "expected"),
    [
        ("STR_STARTS_WITH", ["PRO"], "pro-plan", True),
        ("STR_ENDS_WITH", [".COM"], "a@b.com", True),
        ("STR_CONTAINS", ["Pen"], "happypenguin", True),
        ("IN", ["PRO"], "pro", False),
    ],
)
def test_case_insensitive__string_operators__ignore_case_but_in_does_not(operator, values, value, expected):
    s = snap(flag(strategies=only(constraint("plan", operator, values, caseInsensitive=True))))
    assert s.is_enabled("f", {"properties": {"plan": value}}) is expected


def test_case_sensitive__string_operators__respect_case():
    s = snap(flag(strategies=only(constraint("plan", "STR_STARTS_WITH", ["PRO"]))))
    assert not s.is_enabled("f", {"properties": {"plan": "pro"}})


def test_regex__case_insensitive_flag__matches_other_case():
    s = snap(
        flag(strategies=only(constraint("email", "REGEX", value=r"@penguin\.com$", caseInsensitive=True)))
    )
    assert s.is_enabled("f", {"properties": {"email": "Tux@Penguin.COM"}})
    assert not s.is_enabled("f", {"properties": {"email": "tux@penguin.com.evil"}})


def test_numeric__context_values_as_numbers__compared_numerically():
    s = snap(flag(strategies=only(constraint("seats", "NUM_GTE", value="10"))))
    assert s.is_enabled("f", {"properties": {"seats": 12}})
    assert s.is_enabled("f", {"properties": {"seats": "10.0"}})
    assert not s.is_enabled("f", {"properties": {"seats": "9"}})
    assert not s.is_enabled("f", {"properties": {"seats": "lots"}})
    assert not s.is_enabled("f", {"properties": {"seats": True}})


def test_date_after__no_current_time__uses_now():
    past = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    s = snap(
        flag("after-past", strategies=only(constraint("currentTime", "DATE_AFTER", value=past))),
        flag("after-future", strategies=only(constraint("currentTime", "DATE_AFTER", value=future))),
    )
    assert s.is_enabled("after-past", {})
    assert not s.is_enabled("after-future", {})


def test_semver__prerelease_ordering__follows_semver():
    s = snap(flag(strategies=only(constraint("version", "SEMVER_GTE", value="2.0.0-rc.1"))))
    assert s.is_enabled("f", {"properties": {"version": "2.0.0"}})
    assert s.is_enabled("f", {"properties": {"version": "2.0.0-rc.2"}})
    assert not s.is_enabled("f", {"properties": {"version": "2.0.0-beta.9"}})
    assert not s.is_enabled("f", {"properties": {"version": "v2.0.0"}})


def test_not_in__missing_value__true_unless_inverted():
    s = snap(
        flag("plain", strategies=only(constraint("plan", "NOT_IN", ["free"]))),
        flag("inverted", strategies=only(constraint("plan", "NOT_IN", ["free"], inverted=True))),
    )
    assert s.is_enabled("plain", {}) and not s.is_enabled("inverted", {})


def test_top_level_custom_field__not_in_properties__still_resolved():
    s = snap(flag(strategies=only(constraint("plan", "IN", ["pro"]))))
    assert s.is_enabled("f", {"plan": "pro"})


# ----------------------------------------------------------------------------------------- strategies


def test_flexible_rollout__25_percent__close_to_a_quarter_of_users():
    strategy = {"name": "flexibleRollout", "parameters": {"rollout": "25", "stickiness": "userId"}}
    s = snap(flag("rollout", strategies=[strategy]))
    enabled = sum(s.is_enabled("rollout", {"userId": str(i)}) for i in range(10_000))
    assert 2_300 < enabled < 2_700


def test_flexible_rollout__no_group_id__groups_on_flag_name():
    strategy = {"name": "flexibleRollout", "parameters": {"rollout": "40", "stickiness": "userId"}}
    s = snap(flag("my-flag", strategies=[strategy]))
    for i in range(100):
        expected = normalized_hash("my-flag", str(i)) <= 40
        assert s.is_enabled("my-flag", {"userId": str(i)}) is expected


def test_flexible_rollout__custom_stickiness_missing__disabled():
    strategy = {"name": "flexibleRollout", "parameters": {"rollout": "100", "stickiness": "tenantId"}}
    s = snap(flag(strategies=[strategy]))
    assert not s.is_enabled("f", {"userId": "1"})
    assert s.is_enabled("f", {"properties": {"tenantId": "t-1"}})


def test_application_hostname__context_property_or_configured_host__matches():
    strategy = {"name": "applicationHostname", "parameters": {"hostNames": "App-01, web-02"}}
    s = snap(flag(strategies=[strategy]), hostname="app-01")
    assert s.is_enabled("f", {})
    assert s.is_enabled("f", {"properties": {"hostname": "WEB-02"}})
    assert not s.is_enabled("f", {"properties": {"hostname": "db-01"}})


def test_unknown_strategy__any_context__disabled_with_warning():
    s = snap(flag(strategies=[{"name": "myCustomStrategy", "parameters": {}}]))
    assert not s.is_enabled("f", {"userId": "1"})
    assert any("unknown strategy 'myCustomStrategy'" in w for w in s.warnings)


# -------------------------------------------------------------------------------------- compile errors


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (constraint("seats", "NUM_GT", value="ten"), "is not a number"),
        (constraint("currentTime", "DATE_AFTER", value="yesterday"), "is not an ISO-8601 date-time"),
        (constraint("version", "SEMVER_EQ", value="v1.0.0"), "is not a valid semantic version"),
        (constraint("email", "REGEX", value="(unclosed"), "not a supported regular expression"),
        (constraint("email", "REGEX", value="(?=look)ahead"), "look-ahead is not supported"),
        (constraint("plan", "LIKE", ["x"]), "unknown operator 'LIKE'"),
    ],
)
def test_compile_error__invalid_constraint__always_false_and_reported(bad, message):
    inverted = dict(bad, inverted=True)
    s = snap(flag("f", strategies=only(bad)), flag("g", strategies=only(inverted)))
    context = {"properties": {"seats": "20", "email": "x", "plan": "x", "version": "1.0.0"}}
    assert not s.is_enabled("f", context)
    assert not s.is_enabled("g", context)  # inverted does not turn an invalid constraint on
    assert any(message in w for w in s.warnings), s.warnings
    assert "invalid:" in s.evaluate("f", context).explanation


def test_compile_error__missing_segment__strategy_off_and_explained():
    s = snap(flag(strategies=[{"name": "default", "segments": [42]}]))
    assert not s.is_enabled("f", {})
    assert "segment 42 does not exist" in s.evaluate("f", {}).explanation


def test_compile_error__non_numeric_rollout__strategy_off():
    s = snap(flag(strategies=[{"name": "flexibleRollout", "parameters": {"rollout": "lots"}}]))
    assert not s.is_enabled("f", {"userId": "1"})
    assert s.warnings


def test_from_client_features__not_a_mapping__type_error():
    with pytest.raises(TypeError):
        Snapshot.from_client_features([])  # type: ignore[arg-type]


# -------------------------------------------------------------------------------------------- segments


def test_segment__constraints_added_to_strategy__both_must_pass():
    segments = [{"id": 1, "name": "beta", "constraints": [constraint("plan", "IN", ["beta"])]}]
    s = snap(
        flag(
            strategies=[
                {
                    "name": "default",
                    "constraints": [constraint("environment", "IN", ["prod"])],
                    "segments": [1],
                }
            ]
        ),
        segments=segments,
    )
    assert s.is_enabled("f", {"environment": "prod", "properties": {"plan": "beta"}})
    assert not s.is_enabled("f", {"environment": "prod", "properties": {"plan": "ga"}})
    assert "segment 1 constraint[0]" in s.evaluate("f", {"environment": "prod"}).explanation


# --------------------------------------------------------------------------------------------- variants


def test_get_variant__result_mutated__snapshot_unaffected():
    variants = [{"name": "v", "weight": 1000, "payload": {"type": "string", "value": "x"}}]
    s = snap(flag(strategies=[{"name": "default"}], variants=variants))
    first = s.get_variant("f", {"userId": "1"})
    first["payload"]["value"] = "changed"
    first["name"] = "changed"
    assert s.get_variant("f", {"userId": "1"}) == {
        "name": "v",
        "payload": {"type": "string", "value": "x"},
        "enabled": True,
        "feature_enabled": True,
    }


def test_get_variant__zero_weight_variant__never_selected():
    variants = [{"name": "never", "weight": 0}, {"name": "always", "weight": 1000}]
    s = snap(flag(variants=variants))
    assert {s.get_variant("f", {"userId": str(i)})["name"] for i in range(200)} == {"always"}


def test_get_variant__variant_without_payload__no_payload_key():
    s = snap(flag(variants=[{"name": "plain", "weight": 1000}]))
    assert s.get_variant("f", {}) == {"name": "plain", "enabled": True, "feature_enabled": True}


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({"type": "json", "value": '{"a": [1, 2]}'}, {"a": [1, 2]}),
        ({"type": "number", "value": "42"}, 42),
        ({"type": "number", "value": "1.5"}, 1.5),
        ({"type": "csv", "value": "a,b\nc,d"}, [["a", "b"], ["c", "d"]]),
        ({"type": "string", "value": "hello"}, "hello"),
        (None, None),
    ],
)
def test_decode_payload__each_type__python_value(payload, expected):
    assert decode_payload(payload) == expected


def test_compute_variant_weights__fix_and_variable__remainder_to_first_variable():
    result = compute_variant_weights(
        [
            {"name": "a", "weightType": "fix", "weight": 400},
            {"name": "b", "weightType": "variable"},
            {"name": "c", "weightType": "variable"},
            {"name": "d", "weightType": "variable"},
        ]
    )
    assert [v["weight"] for v in result] == [400, 200, 200, 200]
    odd = compute_variant_weights([{"name": n, "weightType": "variable"} for n in "xyz"])
    assert [v["weight"] for v in odd] == [334, 333, 333]


def test_compute_variant_weights__fixed_over_total__value_error():
    with pytest.raises(ValueError):
        compute_variant_weights([{"name": "a", "weightType": "fix", "weight": 1200}])


# ------------------------------------------------------------------------------------------------ delta


def test_apply_delta__update_and_remove__new_snapshot_old_unchanged():
    base = snap(flag("a"), flag("b"))
    changed = base.apply_delta(
        [
            {"eventId": 1, "type": "feature-updated", "feature": flag("a", enabled=False)},
            {"eventId": 2, "type": "feature-removed", "featureName": "b", "project": "default"},
            {"eventId": 3, "type": "feature-updated", "feature": flag("c")},
        ]
    )
    assert changed.feature_names() == ["a", "c"]
    assert not changed.is_enabled("a", {}) and changed.is_enabled("c", {})
    assert base.is_enabled("a", {}) and base.is_enabled("b", {})


def test_apply_delta__segment_updated__dependent_flags_recompiled():
    segments = [{"id": 1, "constraints": [constraint("plan", "IN", ["pro"])]}]
    base = snap(flag("a", strategies=[{"name": "default", "segments": [1]}]), segments=segments)
    assert base.is_enabled("a", {"properties": {"plan": "pro"}})
    changed = base.apply_delta(
        {
            "events": [
                {
                    "eventId": 9,
                    "type": "segment-updated",
                    "segment": {"id": 1, "constraints": [constraint("plan", "IN", ["team"])]},
                }
            ]
        }
    )
    assert not changed.is_enabled("a", {"properties": {"plan": "pro"}})
    assert changed.is_enabled("a", {"properties": {"plan": "team"}})


def test_apply_delta__hydration__replaces_everything():
    base = snap(flag("old"))
    hydrated = base.apply_delta(
        [{"eventId": 1, "type": "hydration", "segments": [], "features": [flag("new")]}]
    )
    assert hydrated.feature_names() == ["new"]


# ------------------------------------------------------------------------------------------------ regex


@pytest.mark.parametrize(
    ("pattern", "text", "expected"),
    [
        ("^(?i)abc$", "AbC", True),
        ("a(?i)b|c", "C", True),  # Rust: the inline flag lasts to the end of the group, across '|'
        ("abc$", "abc\n", False),  # Rust's $ is end-of-text only
        ("(?m)^b$", "a\nb\nc", True),
        ("^[[:alpha:]]+$", "Alpha", True),
        ("^[[:alpha:]]+$", "Alpha1", False),
        ("^[[:^digit:]]+$", "abc", True),
        ("a*+b", "aab", True),  # nested repetition in Rust, not possessive
        ("^[a-z&&[^aeiou]]+$", "xyz", True),
        ("^[a-z&&[^aeiou]]+$", "xaz", False),
        (r"^\p{L}+$", "héllo", True),
        (r"\x{41}", "A", True),
    ],
)
def test_rust_regex__rust_semantics__emulated(pattern, text, expected):
    assert (compile_rust_regex(pattern).search(text) is not None) is expected


@pytest.mark.parametrize("pattern", ["(?=a)b", "(?<!a)b", r"(a)\1", "(?P=n)", "(?>a)", r"\p{Greek}", "[a"])
def test_rust_regex__unsupported_construct__rejected(pattern):
    with pytest.raises(RegexTranslationError):
        compile_rust_regex(pattern)


# ------------------------------------------------------------------------------------------- validation


def test_validate_constraint__valid_constraints__no_errors():
    assert validate_constraint(constraint("plan", "IN", ["pro"])) == []
    assert validate_constraint(constraint("seats", "NUM_LT", value="3.5")) == []
    assert validate_constraint(constraint("currentTime", "DATE_BEFORE", value="2030-01-01T00:00:00Z")) == []
    assert validate_constraint(constraint("version", "SEMVER_GTE", value="1.2.3-rc.1")) == []
    assert validate_constraint(constraint("email", "REGEX", value="^(?i)[a-z]+@x\\.com$")) == []
    assert validate_constraint(constraint("remoteAddress", "IN_CIDR", ["10.0.0.0/8", "::1"])) == []


@pytest.mark.parametrize(
    ("bad", "fragment"),
    [
        (constraint("plan", "LIKE", ["x"]), "unknown operator 'LIKE'"),
        (constraint("", "IN", ["x"]), "contextName is required"),
        (constraint("seats", "NUM_EQ", value="ten"), "is not a number"),
        (constraint("seats", "NUM_EQ"), "needs a single value"),
        (constraint("t", "DATE_AFTER", value="31/01/2025"), "not a valid ISO-8601 date-time"),
        (constraint("v", "SEMVER_EQ", value="v1.2.3"), "drop the leading 'v'"),
        (constraint("v", "SEMVER_LT", value="1.2"), "not a valid semantic version"),
        (constraint("e", "REGEX", value="(a"), "not a valid regular expression"),
        (constraint("e", "REGEX", value="(?=a)"), "look-ahead is not supported"),
        (constraint("ip", "IN_CIDR", ["10.0.0.0/33"]), "not a valid IP address or CIDR range"),
        (constraint("plan", "IN", []), "at least one value"),
        (constraint("plan", "IN", value="x"), "needs a list of values"),
        (constraint("plan", "IN", ["x"], inverted="yes"), "inverted must be true or false"),
        (constraint("plan", "IN", ["x"], caseInsensitive=True), "caseInsensitive has no effect"),
    ],
)
def test_validate_constraint__invalid_constraint__readable_error(bad, fragment):
    errors = validate_constraint(bad)
    assert any(fragment in e for e in errors), errors


def test_validate_strategy__valid_flexible_rollout__no_errors():
    strategy = {
        "name": "flexibleRollout",
        "parameters": {"rollout": "25", "stickiness": "default", "groupId": "checkout"},
        "constraints": [constraint("environment", "IN", ["prod"])],
        "variants": [
            {
                "name": "a",
                "weight": 500,
                "weightType": "variable",
                "payload": {"type": "json", "value": "{}"},
            },
            {"name": "b", "weight": 500, "weightType": "variable"},
        ],
        "segments": [1],
    }
    assert validate_strategy(strategy, segment_ids=[1]) == []


@pytest.mark.parametrize(
    ("strategy", "fragment"),
    [
        ({"name": "flexibleRollout", "parameters": {"rollout": "150"}}, "must be between 0 and 100"),
        ({"name": "flexibleRollout", "parameters": {"rollout": "-1"}}, "must be between 0 and 100"),
        ({"name": "flexibleRollout", "parameters": {"rollout": "half"}}, "is not a number"),
        ({"name": "flexibleRollout", "parameters": {}}, "needs the 'rollout' parameter"),
        ({"name": "gradualRolloutRandom", "parameters": {"percentage": "12.5"}}, "must be a whole number"),
        ({"name": "userWithId", "parameters": {"userIds": " , "}}, "at least one user id"),
        (
            {"name": "remoteAddress", "parameters": {"IPs": "10.0.0.1, 300.1.1.1"}},
            "'300.1.1.1' is not a valid",
        ),
        ({"name": "applicationHostname", "parameters": {}}, "at least one host name"),
        ({"name": "mystery"}, "unknown strategy 'mystery'"),
        ({"name": "default", "parameters": {"x": 5}}, "parameter 'x' must be a string"),
        (
            {"name": "default", "constraints": [constraint("s", "NUM_GT", value="x")]},
            "constraints[0]: NUM_GT",
        ),
        ({"name": "default", "segments": [7]}, "segment 7 does not exist"),
        (
            {"name": "default", "variants": [{"name": "a", "weight": 1200, "weightType": "fix"}]},
            "must be between 0 and 1000",
        ),
    ],
)
def test_validate_strategy__invalid_strategy__readable_error(strategy, fragment):
    errors = validate_strategy(strategy, segment_ids=[1])
    assert any(fragment in e for e in errors), errors


@pytest.mark.parametrize(
    ("variants", "fragment"),
    [
        (
            [
                {"name": "a", "weight": 600, "weightType": "fix"},
                {"name": "b", "weight": 600, "weightType": "fix"},
            ],
            "add up to 1200",
        ),
        ([{"name": "a", "weight": 10, "weightType": "odd"}], "weightType 'odd'"),
        ([{"name": "a", "weight": 500}, {"name": "a", "weight": 500}], "duplicate variant name 'a'"),
        ([{"name": "disabled", "weight": 1000}], "reserved"),
        ([{"name": "a", "weight": 1000, "payload": {"type": "json", "value": "{oops"}}], "not valid JSON"),
        ([{"name": "a", "weight": 1000, "payload": {"type": "number", "value": "one"}}], "is not a number"),
        ([{"name": "a", "weight": 1000, "payload": {"type": "xml", "value": "<a/>"}}], "payload type 'xml'"),
    ],
)
def test_validate_variants__invalid_variants__readable_error(variants, fragment):
    errors = validate_variants(variants)
    assert any(fragment in e for e in errors), errors


def test_validate_variants__computed_weights_not_summing__error():
    assert validate_variants([{"name": "a", "weight": 400}], weights_computed=True)
    assert validate_variants([{"name": "a", "weight": 1000}], weights_computed=True) == []


def test_validate_payload__valid_payloads__no_errors():
    assert validate_payload({"type": "csv", "value": "a,b"}) == []
    assert validate_payload({"type": "number", "value": "3"}) == []
    assert validate_payload(None) == []


def test_validate_segment__bad_constraint__prefixed_error():
    errors = validate_segment({"id": 1, "constraints": [constraint("plan", "NOPE", ["x"])]})
    assert errors == [
        "constraints[0]: unknown operator 'NOPE' (expected one of DATE_AFTER, DATE_BEFORE, IN, IN_CIDR, NOT_IN, "
        "NUM_EQ, NUM_GT, NUM_GTE, NUM_LT, NUM_LTE, REGEX, SEMVER_EQ, SEMVER_GT, SEMVER_GTE, SEMVER_LT, "
        "SEMVER_LTE, STR_CONTAINS, STR_ENDS_WITH, STR_STARTS_WITH)"
    ]
