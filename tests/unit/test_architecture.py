"""The code as the next person finds it: ARCHITECTURE.md names files that exist, dependencies flow
one way (no cli <-> api cycle, recording never imports providers), ``[DONE]`` is spelled in one
place, and no comment, docstring or document points outside the repository (a path there, or a
planning note such as an issue number) instead of saying what it means."""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "relaystack"
SOURCES = sorted(PACKAGE.rglob("*.py"))
FILE_NAME = re.compile(r"\.(py|yaml|html|css|js|md)$")


def _module(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return {name for name in names if name == "relaystack" or name.startswith("relaystack.")}


def _named_in_architecture() -> list[str]:
    """Every file or folder ARCHITECTURE.md names in backticks (templates like ``<name>.py`` and
    globs left out: they name a pattern, not a file)."""
    tokens = re.findall(r"`([^`\s]+)`", (ROOT / "ARCHITECTURE.md").read_text(encoding="utf-8"))
    named = []
    for token in tokens:
        if token.startswith("/") or any(c in token for c in "<>*"):
            continue  # a route, or a pattern
        if FILE_NAME.search(token) or (token.endswith("/") and token.count("/") == 1):
            named.append(token)
    return sorted(set(named))


def test_architecture_md_names_only_files_that_exist() -> None:
    named = _named_in_architecture()
    assert len(named) > 50  # the check reads the document, not an empty list
    everything = {p.name for base in (PACKAGE, ROOT / "tests", ROOT / "bench") for p in base.rglob("*")}
    missing = []
    for token in named:
        # a path from the root or the package; a bare file name (said beside its folder) anywhere, or at the root
        found = (any((base / token).exists() for base in (ROOT, PACKAGE)) if "/" in token
                 else token in everything or (ROOT / token).exists())  # fmt: skip
        if not found:
            missing.append(token)
    assert not missing, f"ARCHITECTURE.md names files that do not exist: {missing}"


# package -> packages it must never import (GUIDE: cli -> api -> router -> providers -> upstream;
# recording wraps the seam and never imports providers)
FORBIDDEN = {
    "upstream": {"recording", "providers", "router", "registry", "api", "frontends", "gateway", "server", "cli"},
    "recording": {"providers", "router", "registry", "api", "frontends", "gateway", "server", "cli"},
    "providers": {"router", "registry", "api", "frontends", "gateway", "server", "cli"},
    "router": {"api", "frontends", "gateway", "server", "cli"},
    "registry": {"router", "api", "frontends", "gateway", "server", "cli"},
    "storage": {"providers", "router", "registry", "api", "frontends", "gateway", "server", "cli"},
    "console": {"providers", "router", "registry", "api", "frontends", "gateway", "storage", "server", "cli"},
    "api": {"cli", "server"},
    "frontends": {"cli", "server"},
    "gateway": {"cli", "server", "api", "router", "providers"},
}


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_dependencies_flow_one_way(package: str) -> None:
    assert (PACKAGE / package).exists() or (PACKAGE / f"{package}.py").exists(), package
    wrong = []
    for path in SOURCES:
        module = _module(path)
        if module.split(".")[1:2] != [package]:
            continue
        for name in _imports(path):
            top = name.split(".")[1] if "." in name else ""
            if top in FORBIDDEN[package]:
                wrong.append(f"{module} imports {name}")
    assert not wrong, wrong


def test_only_the_entry_point_imports_the_cli() -> None:
    importers = sorted(_module(p) for p in SOURCES if any(n == "relaystack.cli" or n.startswith("relaystack.cli.")
                                                          for n in _imports(p)))
    assert importers == ["relaystack.__main__"]


def _code_strings(path: Path) -> list[tuple[int, str]]:
    """String and bytes literals of a module that are not docstrings."""
    tree = _tree(path)
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                docstrings.add(id(first.value))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and id(node) not in docstrings and isinstance(node.value, str | bytes):
            value = node.value.decode("latin-1") if isinstance(node.value, bytes) else node.value
            found.append((node.lineno, value))
    return found


def test_done_is_spelled_in_sse_py_only() -> None:
    spelled = [f"{path.relative_to(ROOT)}:{line}" for path in SOURCES for line, value in _code_strings(path)
               if value.strip() == "[DONE]" or "data: [DONE]" in value]
    assert spelled and all(place.startswith("src/relaystack/sse.py:") for place in spelled), spelled


# what lies outside the repository: the team's shared folder and its reference documents
OUTSIDE = re.compile(r"\.\./shared|/work/|shared/reference|\b(llama-stack-next|llama-stack-spec|peers|reliability|"
                     r"aesthetics|embedded|gateway-bench|GUIDE|HELPER)\.md\b")


# a planning note: the tracker's issue numbers mean nothing to a reader of the code
PLANNING = re.compile(r"\bissues?\s*#?\d+", re.IGNORECASE)


def _written_files() -> list[Path]:
    """Every file people read: the code (src, tests, bench, scripts) and the documents."""
    found = [*SOURCES, *(ROOT / "tests").rglob("*.py"), *(ROOT / "bench").rglob("*.py"),
             *(ROOT / "scripts").glob("*"), *ROOT.glob("*.md"), *(ROOT / "docs").rglob("*.md"),
             *(ROOT / "bench").rglob("*.md"), *(ROOT / "tests").rglob("*.md"), *(ROOT / "examples").rglob("*")]
    # bench/results/ is the bench's output (not committed): run reports, and the peers' venvs
    results = ROOT / "bench" / "results"
    return [p for p in found if p.is_file() and "recordings" not in p.parts and p != Path(__file__)
            and not p.is_relative_to(results)]


@pytest.mark.parametrize(("what", "pattern"), [("a path outside the repository", OUTSIDE),
                                               ("an issue number", PLANNING)])
def test_no_comment_docstring_or_document_points_outside_the_repository(what: str, pattern: re.Pattern[str]) -> None:
    files = _written_files()
    assert any(p.suffix == ".md" for p in files) and PACKAGE / "telemetry.py" in files
    offending = []
    for path in files:
        for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            if pattern.search(line):
                offending.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not offending, f"{what}: say what is meant instead: {offending}"
