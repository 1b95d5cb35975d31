"""Environment configuration: the seed's ``EnvironmentConfig`` as typed sections, validation naming each field
path, and the diff and drift arithmetic. Pure: no Django import.

One dataclass per section; a field's type is its check (``str``, ``int``, ``float``, ``bool``, ``list[str]``,
``Secret``, a nested section, ``dict[str, FeatureFlag]``), its ``metadata`` the rest (bounds, choices, whether it
must match between environments). A section's ``problems()`` holds the checks across fields
(``database.connectionPool.max: must be ≥ min (2)``). Unknown keys are refused.

A ``Secret`` field never holds a value: only a reference, ``vault://<path>#<key>`` or ``env://<NAME>``, which the
workers resolve at deploy time (``releases.secrets``).
"""
import dataclasses
import re
import typing
from dataclasses import dataclass, field

SECRET_REFERENCE = re.compile(r"^(vault://[A-Za-z0-9_.\-/]+#[A-Za-z0-9_.\-]+|env://[A-Z_][A-Z0-9_]*)$")
FEATURE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$")
MAX_TEXT = 1000


class Secret(str):
    """A reference to a secret (``vault://path#key`` or ``env://NAME``), never the secret itself."""


def spec(*, ge=None, le=None, choices=None, must_match=False, help="", default=dataclasses.MISSING,
         default_factory=dataclasses.MISSING):
    meta = {"ge": ge, "le": le, "choices": choices, "must_match": must_match, "help": help}
    if default_factory is not dataclasses.MISSING:
        return field(default_factory=default_factory, metadata=meta)
    return field(default=default, metadata=meta)


# --- the seed's sections -------------------------------------------------------------------------------------
@dataclass
class ConnectionPool:
    min: int = spec(default=2, ge=0, le=1000)
    max: int = spec(default=10, ge=1, le=1000)
    idleTimeoutMillis: int = spec(default=30000, ge=0, le=86_400_000)

    def problems(self):
        if self.max < self.min:
            yield "max", f"must be ≥ min ({self.min})"


@dataclass
class DatabaseConfig:
    host: str = spec(default="localhost")
    port: int = spec(default=5432, ge=1, le=65535)
    database: str = spec(default="penguinmails")
    ssl: bool = spec(default=True)
    user: str = spec(default="penguinmails")
    password: Secret = spec(default="", help="a reference: vault://path#key or env://NAME")
    connectionPool: ConnectionPool = spec(default_factory=ConnectionPool)


@dataclass
class CacheConfig:
    host: str = spec(default="localhost")
    port: int = spec(default=6379, ge=1, le=65535)
    ttlSeconds: int = spec(default=300, ge=0, le=31_536_000)
    password: Secret = spec(default="")


@dataclass
class StorageConfig:
    bucket: str = spec(default="penguinmails")
    region: str = spec(default="eu-west-1")
    cdnUrl: str = spec(default="")
    accessKeyId: Secret = spec(default="")
    secretAccessKey: Secret = spec(default="")


@dataclass
class EmailConfig:
    provider: str = spec(default="smtp", choices=("smtp", "ses", "sendgrid", "postmark"))
    fromAddress: str = spec(default="noreply@penguinmails.com")
    smtpHost: str = spec(default="localhost")
    smtpPort: int = spec(default=587, ge=1, le=65535)
    apiKey: Secret = spec(default="")


@dataclass
class MonitoringConfig:
    metricsUrl: str = spec(default="")
    logLevel: str = spec(default="info", choices=("debug", "info", "warning", "error"))
    sampleRate: float = spec(default=1.0, ge=0.0, le=1.0, help="share of traces kept, 0…1")


@dataclass
class SecurityConfig:
    tlsMinVersion: str = spec(default="1.2", choices=("1.2", "1.3"), must_match=True)
    sessionTimeoutMinutes: int = spec(default=60, ge=1, le=10080, must_match=True)
    mfaRequired: bool = spec(default=True, must_match=True)
    allowedOrigins: list[str] = spec(default_factory=list)
    jwtSigningKey: Secret = spec(default="")


@dataclass
class FeatureCondition:
    attribute: str = spec(default="")
    operator: str = spec(default="in", choices=("in", "not_in", "equals", "gt", "lt"))
    values: list[str] = spec(default_factory=list)


@dataclass
class FeatureConfig:
    enabled: bool = spec(default=False, must_match=True)
    percentage: float = spec(default=100.0, ge=0.0, le=100.0, help="for gradual rollouts")
    conditions: list[FeatureCondition] = spec(default_factory=list)


@dataclass
class EnvironmentConfig:
    database: DatabaseConfig = spec(default_factory=DatabaseConfig)
    cache: CacheConfig = spec(default_factory=CacheConfig)
    storage: StorageConfig = spec(default_factory=StorageConfig)
    email: EmailConfig = spec(default_factory=EmailConfig)
    monitoring: MonitoringConfig = spec(default_factory=MonitoringConfig)
    security: SecurityConfig = spec(default_factory=SecurityConfig)
    features: dict[str, FeatureConfig] = spec(default_factory=dict)


SECTIONS = [f.name for f in dataclasses.fields(EnvironmentConfig)]


# --- validation ----------------------------------------------------------------------------------------------
class ConfigInvalid(ValueError):
    """``errors``: {"database.connectionPool.max": "must be ≥ min (2)", …}."""

    def __init__(self, errors):
        self.errors = dict(errors)
        super().__init__("; ".join(f"{k}: {v}" for k, v in self.errors.items()))


def _hints(cls):
    return typing.get_type_hints(cls)


def _is_section(tp):
    return dataclasses.is_dataclass(tp) and isinstance(tp, type)


def _check_scalar(tp, value, meta, path, errors):
    if tp is bool:
        if not isinstance(value, bool):
            errors[path] = "must be true or false"
            return None
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            errors[path] = "must be a whole number"
            return None
    elif tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            errors[path] = "must be a number"
            return None
        value = float(value)
    elif tp in (str, Secret):
        if not isinstance(value, str):
            errors[path] = "must be a string"
            return None
        if len(value) > MAX_TEXT:
            errors[path] = f"must be at most {MAX_TEXT} characters"
            return None
        if tp is Secret and value and not SECRET_REFERENCE.match(value):
            errors[path] = ("must be a secret reference (vault://path#key or env://NAME), never the secret "
                            "value itself")
            return None
    if meta.get("ge") is not None and value < meta["ge"]:
        errors[path] = f"must be ≥ {meta['ge']}"
        return None
    if meta.get("le") is not None and value > meta["le"]:
        errors[path] = f"must be ≤ {meta['le']}"
        return None
    if meta.get("choices") and value not in meta["choices"]:
        errors[path] = f"must be one of {', '.join(meta['choices'])}"
        return None
    return value


def _check(tp, value, meta, path, errors):
    origin = typing.get_origin(tp)
    if _is_section(tp):
        return _check_section(tp, value, path, errors)
    if origin is list:
        (item,) = typing.get_args(tp)
        if not isinstance(value, list):
            errors[path] = "must be a list"
            return None
        if len(value) > 100:
            errors[path] = "must have at most 100 items"
            return None
        return [_check(item, v, {}, f"{path}[{i}]", errors) for i, v in enumerate(value)]
    if origin is dict:
        _, item = typing.get_args(tp)
        if not isinstance(value, dict):
            errors[path] = "must be an object"
            return None
        out = {}
        for name, v in value.items():
            if not FEATURE_NAME.match(str(name)):
                errors[f"{path}.{name}"] = "a name is letters, digits, '.', '_' or '-' (at most 100)"
                continue
            out[name] = _check(item, v, {}, f"{path}.{name}", errors)
        return out
    return _check_scalar(tp, value, meta, path, errors)


def _check_section(cls, value, path, errors):
    if value is None:
        value = {}
    if not isinstance(value, dict):
        errors[path or "(document)"] = "must be an object"
        return None
    prefix = f"{path}." if path else ""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for name in value:
        if name not in fields:
            errors[f"{prefix}{name}"] = f"unknown key (known: {', '.join(fields)})"
    hints = _hints(cls)
    kwargs = {}
    before = len(errors)
    for name, f in fields.items():
        if name in value:
            kwargs[name] = _check(hints[name], value[name], f.metadata, f"{prefix}{name}", errors)
    if len(errors) > before:
        return None
    instance = cls(**kwargs)
    for name, message in getattr(instance, "problems", lambda: ())():
        errors[f"{prefix}{name}"] = message
    return instance


def validate(document):
    """The normalised document (every section and default filled in) or ConfigInvalid naming each field path."""
    errors = {}
    instance = _check_section(EnvironmentConfig, document, "", errors)
    if errors:
        raise ConfigInvalid(errors)
    return dataclasses.asdict(instance)


def defaults():
    return dataclasses.asdict(EnvironmentConfig())


def section_fields(section):
    """[(name, type name, metadata)] of a top-level section's own fields (nested sections flattened with
    dots) — what the admin's per-section form is built from."""
    cls = _hints(EnvironmentConfig)[section]
    out = []

    def walk(c, prefix):
        hints = _hints(c)
        for f in dataclasses.fields(c):
            tp = hints[f.name]
            if _is_section(tp):
                walk(tp, f"{prefix}{f.name}.")
            else:
                out.append((f"{prefix}{f.name}", _type_name(tp), dict(f.metadata)))

    walk(cls, "")
    return out


def _type_name(tp):
    if tp is Secret:
        return "secret"
    if typing.get_origin(tp) is list:
        (item,) = typing.get_args(tp)
        return "list" if item is str else "json"
    return {str: "str", int: "int", float: "float", bool: "bool"}.get(tp, "json")


# --- flattening, diff and drift ----------------------------------------------------------------------------------
def flatten(document, prefix=""):
    """{"database.connectionPool.max": 10, "features.x.enabled": true, …}; lists are leaves."""
    out = {}
    for key, value in (document or {}).items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, f"{path}."))
        elif isinstance(value, dict):
            continue  # an empty mapping declares nothing
        else:
            out[path] = value
    return out


@dataclass(frozen=True)
class Change:
    path: str
    kind: str  # added | removed | changed
    before: typing.Any = None
    after: typing.Any = None

    def as_dict(self):
        return {"path": self.path, "kind": self.kind, "before": self.before, "after": self.after}

    def __str__(self):
        if self.kind == "added":
            return f"+ {self.path} = {self.after!r}"
        if self.kind == "removed":
            return f"- {self.path} (was {self.before!r})"
        return f"~ {self.path}: {self.before!r} → {self.after!r}"


def diff(before, after):
    """The changes from document ``before`` to ``after``, by field path, in path order."""
    a, b = flatten(before), flatten(after)
    changes = []
    for path in sorted(set(a) | set(b)):
        if path not in a:
            changes.append(Change(path, "added", after=b[path]))
        elif path not in b:
            changes.append(Change(path, "removed", before=a[path]))
        elif a[path] != b[path]:
            changes.append(Change(path, "changed", before=a[path], after=b[path]))
    return changes


def _must_match_rules():
    """Path patterns (``security.tlsMinVersion``, ``features.*.enabled``) declared must-match in the schema."""
    rules = []

    def walk(cls, prefix):
        hints = _hints(cls)
        for f in dataclasses.fields(cls):
            tp = hints[f.name]
            if _is_section(tp):
                walk(tp, f"{prefix}{f.name}.")
            elif typing.get_origin(tp) is dict and _is_section(typing.get_args(tp)[1]):
                walk(typing.get_args(tp)[1], f"{prefix}{f.name}.*.")
            elif f.metadata.get("must_match"):
                rules.append(f"{prefix}{f.name}")

    walk(EnvironmentConfig, "")
    return rules


MUST_MATCH = _must_match_rules()


def _matches(rule, path):
    rp, pp = rule.split("."), path.split(".")
    return len(rp) == len(pp) and all(r in ("*", p) for r, p in zip(rp, pp, strict=True))


def is_must_match(path):
    return any(_matches(rule, path) for rule in MUST_MATCH)


@dataclass(frozen=True)
class Drift:
    path: str
    values: dict  # environment name -> value (None: not declared there)

    def as_dict(self):
        return {"path": self.path, "values": self.values}


def drift(documents):
    """Must-match keys whose values differ between the environments of ``documents`` ({name: document})."""
    flat = {name: flatten(doc) for name, doc in documents.items()}
    paths = sorted({p for f in flat.values() for p in f if is_must_match(p)})
    out = []
    for path in paths:
        values = {name: f.get(path) for name, f in flat.items()}
        if len({repr(v) for v in values.values()}) > 1:
            out.append(Drift(path, values))
    return out


def must_match_differences(pinned, current):
    """The must-match changes between a release's pinned document and an environment's current one."""
    return [c for c in diff(pinned, current) if is_must_match(c.path)]


def references(document):
    """{path: reference} of every secret reference in ``document``."""
    return {p: v for p, v in flatten(document).items() if isinstance(v, str) and SECRET_REFERENCE.match(v)}
