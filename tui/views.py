"""The console's views (the tabs of the three modes), by name: what `:` jumps to."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tui.widgets.view import View

MODES = ("monitoring", "navigation", "configuration")
MODE_TITLES = {
    "monitoring": "Monitoring",
    "navigation": "Navigation",
    "configuration": "Configuration",
}


@dataclass(frozen=True)
class ViewSpec:
    """A view: its `:` name and aliases, its mode and tab title, and where its class is."""

    name: str
    mode: str
    title: str
    aliases: tuple[str, ...]
    target: str  # "module:Class"

    def view_class(self) -> type[View]:
        """The class of the view (its module is imported on first use)."""
        module, _, cls = self.target.partition(":")
        found: type[View] = getattr(import_module(module), cls)
        return found

    def create(self) -> View:
        return self.view_class()()


VIEWS: tuple[ViewSpec, ...] = (
    ViewSpec(
        "associations",
        "monitoring",
        "Associations",
        ("assoc", "a"),
        "tui.screens.associations:AssociationsView",
    ),
    ViewSpec("queues", "monitoring", "Queues", ("queue", "tasks"), "tui.screens.queues:QueuesView"),
    ViewSpec("export", "monitoring", "Export", ("exports",), "tui.screens.export:ExportView"),
    ViewSpec("retrieve", "monitoring", "Retrieve", ("ret",), "tui.screens.retrieve:RetrieveView"),
    ViewSpec(
        "stgcmt",
        "monitoring",
        "Storage commitments",
        ("commitments", "sc"),
        "tui.screens.stgcmt:StgCmtView",
    ),
    ViewSpec(
        "storage", "monitoring", "Storage systems", ("fs", "st"), "tui.screens.storage:StorageView"
    ),
    ViewSpec("metrics", "monitoring", "Metrics", ("m",), "tui.screens.metrics:MetricsView"),
    ViewSpec("studies", "navigation", "Studies", ("study", "s"), "tui.screens.studies:StudiesView"),
    ViewSpec(
        "patients", "navigation", "Patients", ("patient", "p"), "tui.screens.patients:PatientsView"
    ),
    ViewSpec("mwl", "navigation", "MWL", ("worklist",), "tui.screens.mwl:MWLView"),
    ViewSpec("mpps", "navigation", "MPPS", ("pps",), "tui.screens.mpps:MPPSView"),
    ViewSpec(
        "uwl", "navigation", "Work Items", ("workitems", "ups", "w"), "tui.screens.uwl:UWLView"
    ),
    ViewSpec("device", "configuration", "Device", ("dev",), "tui.screens.device:DeviceView"),
    ViewSpec("aes", "configuration", "Archive AEs", ("ae",), "tui.screens.aes:ArchiveAEsView"),
    ViewSpec(
        "remote",
        "configuration",
        "Remote AEs",
        ("remotes", "r"),
        "tui.screens.remote:RemoteAEsView",
    ),
    ViewSpec(
        "exporters", "configuration", "Exporters", ("ex",), "tui.screens.exporters:ExportersView"
    ),
)


def views_of(mode: str) -> list[ViewSpec]:
    """The views of a mode, in tab order."""
    return [v for v in VIEWS if v.mode == mode]


def find(name: str) -> ViewSpec | None:
    """The view called `name` (or one of its aliases), ignoring case."""
    key = name.strip().lower()
    return next((v for v in VIEWS if key == v.name or key in v.aliases), None)


def completions() -> list[str]:
    """Every name `:` accepts, for completion."""
    return sorted({v.name for v in VIEWS} | {a for v in VIEWS for a in v.aliases})
