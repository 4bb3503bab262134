"""The import directions of SPEC section 9: stages never import each other."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).parent.parent / "monitor"

#: Shared leaves (`text`, `urls`) import nothing of ours and may be used by any stage.
LEAVES = {"text", "urls"}
ALLOWED: dict[str, set[str]] = {
    "__init__": set(),
    "__main__": {"cli"},
    "errors": set(),
    "text": set(),
    "urls": set(),
    "schema": {"errors"},
    "config": {"schema", "errors"},
    "parse": {"schema", "errors"},
    "rules": {"schema", "errors"},
    "dedupe": {"schema"},
    "fetch": {"schema", "errors"},
    "store": {"schema", "errors"},
    "alerts": {"schema", "store", "errors"},
    "pipeline": {
        "schema",
        "errors",
        "parse",
        "rules",
        "dedupe",
        "fetch",
        "store",
        "alerts",
        "config",
    },
    "daemon": {
        "pipeline",
        "config",
        "store",
        "alerts",
        "rules",
        "schema",
        "errors",
        "fetch",
        "web",
    },
    "web": {"store", "schema", "config", "errors"},
    "cli": {"*"},
}
PURE = {"parse", "dedupe", "text", "urls"}
IMPURE_MODULES = {"httpx", "socket", "sqlalchemy", "apprise", "time", "os", "pathlib"}


def stage_of(path: Path) -> str:
    relative = path.relative_to(PACKAGE)
    return relative.parts[0].removesuffix(".py")


def is_module(name: str) -> bool:
    return (PACKAGE / f"{name}.py").exists() or (PACKAGE / name).is_dir()


def imported_stages(path: Path) -> tuple[set[str], set[str]]:
    """(our stages imported, third-party top-level modules imported) by one file."""
    tree = ast.parse(path.read_text())
    ours: set[str] = set()
    others: set[str] = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
            if node.module == "monitor":
                names = [
                    f"monitor.{a.name}" if is_module(a.name) else "monitor.__init__"
                    for a in node.names
                ]
        for name in names:
            if name.startswith("monitor."):
                ours.add(name.split(".")[1])
            elif name != "monitor":
                others.add(name.split(".")[0])
    return ours, others


def test_every_stage_imports_only_what_the_architecture_allows() -> None:
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        stage = stage_of(path)
        assert stage in ALLOWED, f"{path.name}: a module the architecture does not name"
        ours, _ = imported_stages(path)
        allowed = ALLOWED[stage] | LEAVES | {stage, "__init__"}
        if "*" in allowed:
            continue
        if stage in LEAVES:
            allowed = {stage, "__init__"}
        problems += [f"{path.relative_to(PACKAGE)} imports monitor.{o}" for o in ours - allowed]
    assert problems == []


def test_pure_stages_use_no_network_disk_or_clock() -> None:
    for path in sorted(PACKAGE.rglob("*.py")):
        if stage_of(path) in PURE:
            _, others = imported_stages(path)
            assert others & IMPURE_MODULES == set(), path.name
            assert "datetime.now" not in path.read_text(), path.name
