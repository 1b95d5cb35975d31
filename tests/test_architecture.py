"""The architecture's rules that a reviewer should not have to check by hand (DESIGN.md, "Layout")."""
import ast
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
APPS = ["pmrelease", "releases", "changes", "flags", "monitoring"]

# The modules that must not write models themselves: they parse input, call a service and answer.
ENTRY_POINTS = ("admin", "api", "views", "tasks", "urls", "serializers")
WRITES = {"save", "delete", "create", "update", "get_or_create", "update_or_create"}

# A write call that is not a model write. Each entry: (module path, enclosing function, method, why).
ALLOWED = {
    # none needed today
}


def parse(source, filename="<unknown>"):
    """``ast.parse``, robust to CPython 3.11's "AST constructor recursion depth mismatch": after other tests in
    the same process hit a RecursionError (the 990-level JSON documents), ast.parse may raise SystemError.
    Then the module is parsed in a fresh interpreter and its tree comes back pickled."""
    try:
        return ast.parse(source, filename=filename)
    except SystemError:
        code = "import ast, pickle, sys; sys.stdout.buffer.write(pickle.dumps(ast.parse(sys.stdin.read(), sys.argv[1])))"
        done = subprocess.run([sys.executable, "-c", code, filename], input=source.encode(), capture_output=True,
                              check=True)
        return pickle.loads(done.stdout)


def _entry_modules():
    for app in APPS:
        base = ROOT / app
        for path in sorted(base.rglob("*.py")):
            rel = path.relative_to(ROOT)
            parts = rel.with_suffix("").parts
            if "migrations" in parts:
                continue
            is_command = "management" in parts and "commands" in parts
            if is_command or any(part in ENTRY_POINTS for part in parts):
                yield rel


def _write_calls(tree):
    """(line, function, method) of every call ``x.<write>(...)`` or ``x.bulk_*(...)`` in a module."""
    found = []

    class Visitor(ast.NodeVisitor):
        def __init__(self):
            self.stack = []

        def visit_FunctionDef(self, node):
            self.stack.append(node.name)
            self.generic_visit(node)
            self.stack.pop()

        visit_AsyncFunctionDef = visit_FunctionDef

        def visit_Call(self, node):
            func = node.func
            if isinstance(func, ast.Attribute) and (func.attr in WRITES or func.attr.startswith("bulk_")):
                found.append((node.lineno, self.stack[-1] if self.stack else "<module>", func.attr))
            self.generic_visit(node)

    Visitor().visit(tree)
    return found


@pytest.mark.parametrize("module", list(_entry_modules()), ids=str)
def test_entry_points__write_no_model__every_write_goes_through_a_service(module):
    tree = parse((ROOT / module).read_text(), filename=str(module))
    offending = [f"{module}:{line} {function}() calls .{method}(...)"
                 for line, function, method in _write_calls(tree)
                 if (str(module), function, method) not in ALLOWED]
    assert not offending, "write through a service instead:\n" + "\n".join(offending)


def test_entry_points__the_rule_sees_a_write():
    """The check itself: a save in an admin-like module is found."""
    tree = parse("def save_model(self, request, obj, form, change):\n    obj.save()\n    Foo.objects.bulk_create([])\n")
    assert [(f, m) for _, f, m in _write_calls(tree)] == [("save_model", "save"), ("save_model", "bulk_create")]


def test_project_imports__never_guarded_by_except_importerror():
    """The apps are always installed: a guarded import hides wiring errors (DESIGN.md: hooks and signals)."""
    offending = []
    for app in APPS:
        for path in (ROOT / app).rglob("*.py"):
            for node in ast.walk(parse(path.read_text(), filename=str(path))):
                if isinstance(node, ast.Try) and any(
                        isinstance(h.type, ast.Name) and h.type.id in ("ImportError", "ModuleNotFoundError")
                        for h in node.handlers):
                    offending.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not offending, offending


def test_row_locks__never_for_update_over_a_join():
    """``select_for_update()`` with ``select_related`` locks the joined rows too, in an order the planner picks:
    the lock order of releases/deploy/locks.py (environments → releases → deployments) then breaks. Lock
    ``of=("self",)`` and take the other rows through the lock helpers."""
    offending = []
    for app in APPS:
        for path in (ROOT / app).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            for node in ast.walk(parse(path.read_text(), filename=str(path))):
                if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                    continue
                chain, inner = [], node
                while isinstance(inner, ast.Call) and isinstance(inner.func, ast.Attribute):
                    chain.append(inner)
                    inner = inner.func.value
                names = {c.func.attr for c in chain}
                locks = [c for c in chain if c.func.attr == "select_for_update"]
                if "select_related" in names and locks and not any(k.arg == "of" for k in locks[0].keywords):
                    offending.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not sorted(set(offending)), sorted(set(offending))
