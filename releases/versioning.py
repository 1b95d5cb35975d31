"""Semantic-version arithmetic for releases (no Django import)."""
import semver

BUMP_BY_TYPE = {"major": "major", "minor": "minor", "patch": "patch", "hotfix": "patch"}


class InvalidVersion(ValueError):
    pass


def parse(version):
    """Parse a strict semver string ("2.1.0", "2.1.0-rc.1"); a leading "v" is not accepted."""
    try:
        return semver.Version.parse(str(version).strip())
    except (ValueError, TypeError) as exc:
        raise InvalidVersion(f"'{version}' is not a semantic version (MAJOR.MINOR.PATCH, e.g. 2.1.0)") from exc


def latest(versions):
    """The highest of the given version strings (invalid ones ignored), or None."""
    parsed = []
    for v in versions:
        try:
            parsed.append(parse(v))
        except InvalidVersion:
            continue
    return str(max(parsed)) if parsed else None


def propose(last_version, release_type):
    """The next version after ``last_version`` for a release of ``release_type``.

    major → X+1.0.0, minor → X.Y+1.0, patch and hotfix → X.Y.Z+1. With no previous release: 0.1.0
    (1.0.0 for a first major release). A pre-release last version is finalised first ("2.0.0-rc.1"
    → "2.0.0" for any bump that semver would finalise).
    """
    if release_type not in BUMP_BY_TYPE:
        raise ValueError(f"unknown release type '{release_type}'")
    if not last_version:
        return "1.0.0" if release_type == "major" else "0.1.0"
    current = parse(last_version)
    return str(current.next_version(part=BUMP_BY_TYPE[release_type]))


def is_valid_successor(last_version, version, release_type):
    """Whether ``version`` is greater than ``last_version``; returns (ok, message)."""
    new = parse(version)
    if last_version and new <= parse(last_version):
        return False, f"version {version} is not greater than the latest release {last_version}"
    if release_type == "major" and last_version and new.major == parse(last_version).major:
        return False, f"a major release must raise the major version (latest is {last_version})"
    return True, ""
