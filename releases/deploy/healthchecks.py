"""HTTP health checks run by the worker against the deployed service."""
import time

import requests


def run_http_check(*, url, expected_status=200, timeout=5.0, retries=3, interval=2.0, sleep=time.sleep):
    """(ok, detail): ok once one of ``retries`` attempts answers ``expected_status``."""
    attempts = max(1, int(retries))
    detail = ""
    for attempt in range(1, attempts + 1):
        try:
            response = requests.get(url, timeout=timeout, allow_redirects=False)
            if response.status_code == expected_status:
                return True, f"{response.status_code} from {url} (attempt {attempt})"
            detail = f"{response.status_code} from {url}, expected {expected_status}"
        except requests.RequestException as exc:
            detail = f"{url}: {exc.__class__.__name__}: {exc}"
        if attempt < attempts:
            sleep(interval)
    return False, f"{detail} after {attempts} attempt(s)"
