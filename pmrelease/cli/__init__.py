"""``pmr``: the Release Portal from a pipeline (a client of the REST API; it imports no Django).

Configured by ``PMR_URL`` (the portal, e.g. https://releases.example.com) and ``PMR_TOKEN`` (an API token, best a
service account's with the scopes the job needs). Exit codes: 0 success; 1 the deployment failed, was rolled back
or cancelled (the reason is printed); 2 bad usage; 3 the portal refused the request (its message is printed) or
could not be reached; 4 waiting timed out.

    pmr release create --type minor --title "Faster sends" [--version 1.4.0] [--env staging ...] [--plan plan.yaml]
    pmr deploy RELEASE --env staging [--strategy canary] [--param pause=0 ...] [--wait] [--timeout 30m]
    pmr gate report DEPLOYMENT GATE (--junit report.xml | --passed N --failed M) [--url LINK]
    pmr wait DEPLOYMENT [--timeout 30m]
    pmr status [--env production]
"""
import json
import os
import re
import sys
import time
import uuid

import click

OK, FAILED, USAGE, REFUSED, TIMED_OUT = 0, 1, 2, 3, 4  # USAGE: click's own code for bad usage
TERMINAL = {"succeeded": OK, "failed": FAILED, "rolled_back": FAILED, "cancelled": FAILED}


class Portal:
    """The portal's API with the token; every write carries a fresh Idempotency-Key, reused on a retry."""

    def __init__(self, url, token, timeout=30.0):
        import httpx

        if not url:
            raise click.UsageError("set PMR_URL to the portal's address (e.g. https://releases.example.com)")
        if not token:
            raise click.UsageError("set PMR_TOKEN to an API token (Authorization: Bearer)")
        self.http = httpx.Client(base_url=url.rstrip("/"), timeout=timeout,
                                 headers={"Authorization": f"Bearer {token}", "User-Agent": "pmr"})

    def call(self, method, path, *, retries=3, **kwargs):
        import httpx

        headers = kwargs.pop("headers", {})
        if method == "POST":
            headers.setdefault("Idempotency-Key", str(uuid.uuid4()))
        for attempt in range(retries + 1):
            try:
                response = self.http.request(method, path, headers=headers, **kwargs)
            except httpx.HTTPError as exc:
                if attempt == retries:
                    raise Refused(f"the portal could not be reached: {exc}") from exc
                time.sleep(min(2 ** attempt, 10))
                continue
            if response.status_code in (502, 503, 504) and attempt < retries:
                time.sleep(min(2 ** attempt, 10))
                continue
            return response
        raise AssertionError("unreachable")

    def json(self, method, path, *, ok=(200, 201), **kwargs):
        response = self.call(method, path, **kwargs)
        if response.status_code not in ok:
            raise Refused(describe(response))
        return response.json()


class Refused(Exception):
    pass


def describe(response):
    """The portal's refusal as one readable line."""
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}: {response.text[:300]}"
    if isinstance(body, dict):
        parts = [str(body.get("detail", ""))] if body.get("detail") else []
        parts += [f"{k}: {'; '.join(map(str, v)) if isinstance(v, list) else v}" for k, v in body.items()
                  if k not in ("detail", "code")]
        return f"HTTP {response.status_code}: " + " | ".join(p for p in parts if p)
    return f"HTTP {response.status_code}: {body}"


def duration(text):
    """'30m', '90s', '1h', '45' (seconds) → seconds."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", text or "")
    if not match:
        raise click.BadParameter(f"{text!r}: a duration such as 90s, 30m or 1h")
    return float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[match.group(2)]


def parse_params(items):
    params = {}
    for item in items:
        if "=" not in item:
            raise click.BadParameter(f"{item!r}: give parameters as key=value", param_hint="--param")
        key, value = item.split("=", 1)
        try:
            params[key] = json.loads(value)
        except ValueError:
            params[key] = value
    return params


def portal():
    return Portal(os.environ.get("PMR_URL", ""), os.environ.get("PMR_TOKEN", ""))


def run(command):
    """Call ``command`` turning refusals into exit code 3 with the message."""
    try:
        return command()
    except Refused as exc:
        click.echo(f"pmr: {exc}", err=True)
        sys.exit(REFUSED)


@click.group()
def main():
    """The PenguinMails Release Portal from a pipeline (PMR_URL, PMR_TOKEN)."""


# --- releases -----------------------------------------------------------------------------------------------------
@main.group()
def release():
    """Releases."""


@release.command("create")
@click.option("--type", "release_type", required=True, type=click.Choice(["major", "minor", "patch", "hotfix"]))
@click.option("--title", required=True)
@click.option("--version", default=None, help="default: the next version of this type")
@click.option("--description", default="")
@click.option("--env", "environments", multiple=True, help="a target environment (repeat)")
@click.option("--plan", type=click.File("r"), help="a YAML or JSON file with the release plan's fields")
def release_create(release_type, title, version, description, environments, plan):
    """Create a release; prints its version."""
    body = {"type": release_type, "title": title, "description": description}
    if plan is not None:
        import yaml

        loaded = yaml.safe_load(plan)
        if not isinstance(loaded, dict):
            raise click.BadParameter("the plan file must hold a mapping of release fields", param_hint="--plan")
        body = {**loaded, **body}
    if version:
        body["version"] = version
    if environments:
        body["environments"] = list(environments)
    created = run(lambda: portal().json("POST", "/api/v1/releases/", json=body))
    click.echo(created["version"])


# --- deployments --------------------------------------------------------------------------------------------------
@main.command()
@click.argument("release_version")
@click.option("--env", "environment", required=True)
@click.option("--strategy", default=None, help="default: the environment's")
@click.option("--param", "params", multiple=True, help="a strategy parameter key=value (JSON values; repeat)")
@click.option("--wait/--no-wait", default=False, help="wait for the end, printing each step")
@click.option("--timeout", default="30m", help="how long --wait waits (90s, 30m, 1h)")
def deploy(release_version, environment, strategy, params, wait, timeout):
    """Deploy a release; prints the deployment's id (and, with --wait, its steps as they happen)."""
    seconds = duration(timeout)
    body = {"release": release_version, "environment": environment, "parameters": parse_params(params)}
    if strategy:
        body["strategy"] = strategy
    api = portal()
    created = run(lambda: api.json("POST", "/api/v1/deployments/", json=body, ok=(201,)))
    click.echo(f"deployment {created['id']}: {created['release']} → {created['environment']} "
               f"({created['strategy']}) {created['status']}")
    if not wait:
        return
    sys.exit(run(lambda: wait_for(api, created["id"], seconds)))


@main.command("wait")
@click.argument("deployment_id", type=int)
@click.option("--timeout", default="30m", help="how long to wait (90s, 30m, 1h)")
def wait_command(deployment_id, timeout):
    """Wait for a deployment's verdict, printing its steps (exit 0 success, 1 failed or rolled back, 4 timeout)."""
    sys.exit(run(lambda: wait_for(portal(), deployment_id, duration(timeout))))


def wait_for(api, deployment_id, seconds):
    """Follow the event stream (falling back to long-polls) until a terminal state; returns the exit code."""
    deadline = time.monotonic() + seconds
    status = follow_events(api, deployment_id, deadline)
    while status is None and time.monotonic() < deadline:
        wait = max(1, min(60, int(deadline - time.monotonic())))
        response = api.call("GET", f"/api/v1/deployments/{deployment_id}/", params={"wait": wait},
                            timeout=wait + 30)
        if response.status_code != 200:
            raise Refused(describe(response))
        body = response.json()
        if body["status"] in TERMINAL:
            status = body["status"]
    if status is None:
        click.echo(f"pmr: deployment {deployment_id} did not finish within {seconds:g} s", err=True)
        return TIMED_OUT
    body = api.json("GET", f"/api/v1/deployments/{deployment_id}/")
    if status == "succeeded":
        click.echo(f"deployment {deployment_id} succeeded: {body['release']} runs in {body['environment']}")
        return OK
    reason = body.get("failure_reason") or body.get("waiting_for") or ""
    click.echo(f"pmr: deployment {deployment_id} {status.replace('_', ' ')}" + (f": {reason}" if reason else ""),
               err=True)
    return TERMINAL[status]


def follow_events(api, deployment_id, deadline):
    """Print the stream's step and log events; the terminal status, or None when the stream stopped early."""
    import httpx

    try:
        with api.http.stream("GET", f"/api/v1/deployments/{deployment_id}/events/",
                             timeout=httpx.Timeout(30.0, read=60.0)) as stream:
            if stream.status_code != 200:
                return None
            name = None
            for line in stream.iter_lines():
                if time.monotonic() > deadline:
                    return None
                if line.startswith("event: "):
                    name = line[7:]
                elif line.startswith("data: "):
                    data = json.loads(line[6:])
                    if name == "step":
                        click.echo(f"  step {data['step']} {data['name']}: {data['status']}"
                                   + (f" — {data['outcome']}" if data.get("outcome") else ""))
                    elif name == "log":
                        click.echo(f"    {data['t']} {data['msg']}")
                    elif name == "status":
                        click.echo(f"  deployment: {data['status']}"
                                   + (f" (waiting for {data['waiting_for']})" if data.get("waiting_for") else ""))
                    elif name == "end":
                        return data["status"]
    except httpx.HTTPError:
        return None
    return None


# --- gates --------------------------------------------------------------------------------------------------------
@main.group()
def gate():
    """Testing gates."""


@gate.command("report")
@click.argument("deployment_id", type=int)
@click.argument("gate_slug")
@click.option("--junit", type=click.File("rb"), help="a JUnit XML report")
@click.option("--passed", type=click.IntRange(min=0))
@click.option("--failed", type=click.IntRange(min=0))
@click.option("--url", default="", help="a link to the test run")
def gate_report(deployment_id, gate_slug, junit, passed, failed, url):
    """Report a gate's result for a deployment (JUnit XML, or counts)."""
    path = f"/api/v1/deployments/{deployment_id}/gates/{gate_slug}/results/"
    if junit is not None and (passed is not None or failed is not None):
        raise click.UsageError("give --junit or --passed/--failed, not both")
    if junit is None and (passed is None or failed is None):
        raise click.UsageError("give --junit FILE, or both --passed N and --failed M")

    def call():
        if junit is not None:
            return portal().json("POST", path, content=junit.read(), params={"url": url} if url else None,
                                 headers={"Content-Type": "application/xml"}, ok=(201,))
        return portal().json("POST", path, json={"passed": passed, "failed": failed, "url": url}, ok=(201,))

    result = run(call)
    click.echo(f"{result['gate']}: {result['status']} ({result['passed']} passed, {result['failed']} failed, "
               f"attempt {result['attempt']})")


# --- status -------------------------------------------------------------------------------------------------------
@main.command()
@click.option("--env", "environment", default=None, help="one environment, with its gates")
def status(environment):
    """What runs where: each environment's current version and last deployment."""
    api = portal()
    if environment:
        envs = [run(lambda: api.json("GET", f"/api/v1/environments/{environment}/"))]
    else:
        envs = run(lambda: api.json("GET", "/api/v1/environments/", params={"page_size": 100}))["results"]
    for env in envs:
        last = env.get("last_deployment") or {}
        when = last.get("finished_at") or last.get("created_at") or ""
        line = f"{env['name']:<14} {env.get('current_version') or '—':<12}"
        if last:
            line += f" last: #{last['id']} {last['release']} {last['status']} {when[:19]} by {last['requested_by']}"
        click.echo(line.rstrip())
        for item in env.get("testing_gates", []):
            click.echo(f"  gate {item['slug']}: {item['name']} ({'required' if item['required'] else 'optional'}, "
                       f"{item['timeout']} min, on failure {item['on_failure']})")


if __name__ == "__main__":
    main()
