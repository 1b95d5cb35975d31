"""JUnit XML → test counts, with junitparser (no Django import)."""
from junitparser import Error, Failure, JUnitXml, Skipped
from junitparser.junitparser import JUnitXmlError

MAX_BYTES = 10 * 1024 * 1024


class InvalidJUnit(ValueError):
    pass


COUNT_ATTRIBUTES = ("tests", "failures", "errors", "skipped", "disabled")


def _check_counts(element):
    """The count attributes a report states must be whole numbers, and ``time`` a number: a report whose
    header says ``tests="abc"`` is not trusted for its cases either."""
    for name in COUNT_ATTRIBUTES:
        value = element.get(name)
        if value is not None and not value.strip().isdigit():
            raise InvalidJUnit(f"<{element.tag} {name}=\"{value[:40]}\">: {name} must be a whole number")
    value = element.get("time")
    if value is not None:
        try:
            if float(value.replace(",", "")) < 0:
                raise ValueError
        except ValueError:
            raise InvalidJUnit(f"<{element.tag} time=\"{value[:40]}\">: time must be a number of seconds") from None


def counts(data: bytes):
    """{"tests", "failures", "errors", "skipped", "passed", "suites", "failed_cases"} of a JUnit XML report."""
    if not data or not data.strip():
        raise InvalidJUnit("the JUnit XML report is empty")
    if len(data) > MAX_BYTES:
        raise InvalidJUnit(f"the JUnit XML report is larger than {MAX_BYTES // (1024 * 1024)} MiB")
    if b"<!DOCTYPE" in data[:2048] or b"<!ENTITY" in data:
        raise InvalidJUnit("DTDs and entities are not accepted in JUnit XML reports")
    try:
        xml = JUnitXml.fromstring(data)
    except (JUnitXmlError, SyntaxError, ValueError, TypeError) as exc:  # ElementTree's ParseError is a SyntaxError
        raise InvalidJUnit(f"not a JUnit XML report: {exc}") from exc
    suites = list(xml) if xml._tag == "testsuites" else [xml]
    for element in [xml._elem, *(getattr(suite, "_elem", None) for suite in suites)]:
        if element is not None:
            _check_counts(element)
    total = failures = errors = skipped = 0
    failed_cases = []
    for suite in suites:
        if getattr(suite, "_tag", None) != "testsuite":
            continue
        for case in suite:
            total += 1
            results = list(case.result) if case.result else []
            if any(isinstance(r, Failure) for r in results):
                failures += 1
                failed_cases.append(f"{case.classname}.{case.name}" if case.classname else case.name)
            elif any(isinstance(r, Error) for r in results):
                errors += 1
                failed_cases.append(f"{case.classname}.{case.name}" if case.classname else case.name)
            elif any(isinstance(r, Skipped) for r in results):
                skipped += 1
    if total == 0 and not suites:
        raise InvalidJUnit("the report has no <testsuite>")
    return {"tests": total, "failures": failures, "errors": errors, "skipped": skipped,
            "passed": total - failures - errors - skipped, "suites": len(suites), "failed_cases": failed_cases[:50]}
