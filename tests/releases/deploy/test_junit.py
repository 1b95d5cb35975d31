"""JUnit XML counting (releases/deploy/junit.py)."""
import pytest

from releases.deploy import junit

JUNIT = b"""<?xml version="1.0"?>
<testsuites><testsuite name="api"><testcase classname="api" name="ok"/>
<testcase classname="api" name="broken"><failure message="boom"/></testcase>
<testcase classname="api" name="crash"><error/></testcase><testcase name="later"><skipped/></testcase>
</testsuite><testsuite name="db"><testcase name="db_ok"/></testsuite></testsuites>"""


def test_junit_counts__failures_errors_skipped__counted():
    assert junit.counts(JUNIT) == {"tests": 5, "failures": 1, "errors": 1, "skipped": 1, "passed": 2, "suites": 2,
                                   "failed_cases": ["api.broken", "api.crash"]}


@pytest.mark.parametrize("bad", [b"", b"<testsuite><testcase", b"not xml", b"<html/>",
                                 b'<!DOCTYPE x [<!ENTITY a "b">]><testsuite/>'])
def test_junit_counts__malformed__invalid(bad):
    with pytest.raises(junit.InvalidJUnit):
        junit.counts(bad)


@pytest.mark.parametrize(("report", "problem"), [
    (b'<testsuite tests="abc"><testcase name="a"/></testsuite>', 'tests="abc"'),
    (b'<testsuites failures="-1"><testsuite><testcase name="a"/></testsuite></testsuites>', "failures"),
    (b'<testsuites><testsuite errors="2.5"><testcase name="a"/></testsuite></testsuites>', "errors"),
    (b'<testsuite time="soon"><testcase name="a"/></testsuite>', "time"),
])
def test_junit_counts__count_attribute_not_a_number__invalid_naming_it(report, problem):
    with pytest.raises(junit.InvalidJUnit, match=problem):
        junit.counts(report)


def test_junit_counts__stated_counts_and_time__accepted():
    report = b'<testsuite tests="1" failures="0" errors="0" skipped="0" time="1,234.5"><testcase name="a"/></testsuite>'
    assert junit.counts(report)["passed"] == 1
