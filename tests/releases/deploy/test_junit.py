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
