"""docs/architecture.md stays true: every module it names exists, every module of the package has
its place in the picture of the rooms, and every import inside the package goes down the picture,
so the import graph has no back-arrow and no circle.

A room is an importable name (``invokeai_ti.models``): whether it is one file or a subpackage of
several is the room's own affair, so a module split into a package keeps its place. The imports are
read from the source with ``ast``, the way a reader follows them, not by importing anything."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "invokeai_ti"
PAGE = ROOT / "docs" / "architecture.md"


def picture() -> list[list[str]]:
    """The rows of the rooms, top first: each row the modules (``cli.py``) and subpackages
    (``form/``) left of its ``|``."""
    block = re.search(r"## The rooms.*?```text\n(.*?)```", PAGE.read_text(encoding="utf-8"), re.S)
    assert block, "docs/architecture.md has no ```text picture under '## The rooms'"
    return [line.split("|")[0].split() for line in block.group(1).splitlines() if line.strip()]


def importable(name: str) -> str:
    """``models/``, ``models.py`` and ``models`` all name the room ``models``."""
    return name.removesuffix("/").removesuffix(".py")


def exists(name: str) -> bool:
    """Whether ``invokeai_ti/training/loop.py`` (or ``.../loop``, ``invokeai_ti/models/``) is a
    module or a package of the project."""
    path = ROOT / importable(name)
    return path.is_dir() or path.with_suffix(".py").is_file()


def room(path: Path) -> str:
    """The room a source file belongs to: the first name under the package."""
    return importable(path.relative_to(PACKAGE).parts[0])


def imported_rooms(path: Path) -> set[str]:
    """The rooms of the package that ``path`` imports from, relative imports resolved."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    package = parts[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            names = base + (node.module.split(".") if node.module else [])
            targets = [names + [alias.name] for alias in node.names] if len(names) == 1 else [names]
        elif isinstance(node, ast.Import):
            targets = [alias.name.split(".") for alias in node.names]
        else:
            continue
        for target in targets:
            if target[0] == "invokeai_ti" and len(target) > 1:
                if exists(f"invokeai_ti/{target[1]}"):
                    found.add(target[1])
    return found


def sources() -> list[Path]:
    """Every module of the package but its ``__init__``, which holds only the version."""
    return [path for path in sorted(PACKAGE.rglob("*.py")) if path != PACKAGE / "__init__.py"]


def test_every_module_the_page_names_exists():
    text = PAGE.read_text(encoding="utf-8")
    named = set(re.findall(r"invokeai_ti/[\w/]+(?:\.py|/)", text))
    named |= {name.replace(".", "/") for name in re.findall(r"\binvokeai_ti(?:\.[a-z_]+)+", text)}
    named |= {f"invokeai_ti/{name}" for row in picture() for name in row}
    missing = sorted(name for name in named if not exists(name))
    assert named and not missing, f"docs/architecture.md names modules that do not exist: {missing}"


def test_every_module_has_its_place_in_the_picture():
    placed = {importable(name) for row in picture() for name in row}
    unplaced = sorted({room(path) for path in sources()} - placed)
    assert not unplaced, f"place these in docs/architecture.md's picture of the rooms: {unplaced}"


def test_the_package_init_imports_nothing_of_the_package():
    init = PACKAGE / "__init__.py"
    assert not imported_rooms(init), "invokeai_ti/__init__.py imports the package; place it in the picture"


def test_every_import_inside_the_package_goes_down_the_picture():
    row_of = {importable(name): number for number, row in enumerate(picture()) for name in row}
    upward = []
    for path in sources():
        here = room(path)
        for target in imported_rooms(path) - {here}:
            if target in row_of and here in row_of and row_of[target] <= row_of[here]:
                upward.append(f"{path.relative_to(ROOT)} imports {target}")
    assert not upward, "imports that do not go down docs/architecture.md's picture: " + "; ".join(upward)
