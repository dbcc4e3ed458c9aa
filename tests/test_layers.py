"""Imports point one way (DESIGN.md, "Shape of the code"): every module's imports, read
with `ast`, against the layers of the code. A failure names the file, line and import."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# What each part of core may import of core, besides itself. core.config and core.events
# are shared by all; core.archive and core.serving wire the parts and may import any.
SHARED = {"core.config", "core.events"}
ALLOWED = {
    "core.dicom": set(),
    "core.dimse": {"core.dicom"},
    "core.db": {"core.dicom"},
    "core.storage": set(),
    "core.dicomweb": {"core.dicom"},
    "core.index": {"core.db", "core.storage", "core.dicom"},
    "core.queue": {"core.db", "core.dicom"},
    "core.services": {
        "core.queue",
        "core.index",
        "core.db",
        "core.storage",
        "core.dimse",
        "core.dicom",
        "core.dicomweb",
    },
    "core.net": {"core.services", "core.dimse", "core.dicom"},
    "core.hl7": {"core.services", "core.dicom"},
    "core.config": set(),
    "core.events": set(),
}
WIRING = {"core.archive", "core.serving"}
# The console reaches the archive through its use cases only.
TUI_ALLOWED = {"core.services", "core.config"}
TUI_FORBIDDEN_LIBRARIES = {"sqlalchemy", "pynetdicom"}
# The outermost layer: the entry point may import anything.
OUTERMOST = {"tui.cli"}


def _modules() -> Iterator[tuple[Path, str]]:
    for package in ("core", "tui"):
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            yield path, ".".join(parts)


def _imports(path: Path) -> Iterator[tuple[int, str]]:
    """(line, imported module) for every import, type-checking ones included."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            # `from core.dimse import messages` imports core.dimse.messages.
            for alias in node.names:
                yield node.lineno, f"{node.module}.{alias.name}"


def _part(module: str) -> str:
    """The part of the code a module belongs to: core.<package or module>, or tui."""
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "core" else parts[0]


def _wrong_way(importer: str, imported: str) -> str | None:
    """Why `importer` may not import `imported`, or None when it may."""
    source, target = _part(importer), _part(imported)
    top = imported.split(".")[0]
    if (
        importer in OUTERMOST
        or source == target
        or top not in {"core", "tui", *TUI_FORBIDDEN_LIBRARIES}
    ):
        return None
    if source == "tui":
        if top in TUI_FORBIDDEN_LIBRARIES:
            return f"the console does not use {top}: it calls core.services"
        if target not in TUI_ALLOWED:
            return "the console imports only core.services and core.config of core"
        return None
    if top == "tui":
        return "core knows nothing of the console"
    if top in TUI_FORBIDDEN_LIBRARIES or source in WIRING:
        return None
    if source not in ALLOWED:
        return f"{source} has no place in the layers of DESIGN.md: add it to tests/test_layers.py"
    if target in ALLOWED[source] | SHARED:
        return None
    return f"{source} may import only {', '.join(sorted(ALLOWED[source] | SHARED))} of core"


def test_imports_point_one_way() -> None:
    wrong = [
        f"{path.relative_to(ROOT)}:{line}: {module} imports {imported}: {why}"
        for path, module in _modules()
        for line, imported in _imports(path)
        if (why := _wrong_way(module, imported)) is not None
    ]
    assert not wrong, "imports pointing the wrong way:\n" + "\n".join(wrong)


def test_a_wrong_import_is_named() -> None:
    """The rules themselves: each kind of wrong import is caught."""
    assert _wrong_way("core.services.verification", "core.net.scu")
    assert _wrong_way("core.net.store_scp", "core.storage.filesystem")
    assert _wrong_way("core.net.find_scp", "core.db.matching")
    assert _wrong_way("core.dimse.store_scu", "core.services.retrieve")
    assert _wrong_way("core.index.writer", "core.services.context")
    assert _wrong_way("core.db.models", "tui.app")
    assert _wrong_way("tui.screens.studies", "core.db.models")
    assert _wrong_way("tui.screens.studies", "sqlalchemy")
    assert _wrong_way("tui.widgets.view", "pynetdicom.sop_class")
    assert _wrong_way("tui.app", "core.archive")
    assert _wrong_way("core.net.find_scp", "core.services.query") is None
    assert _wrong_way("tui.cli", "core.archive") is None
    assert _wrong_way("core.serving", "core.net.server") is None
    assert _wrong_way("tui.screens.studies", "core.services.studies") is None
