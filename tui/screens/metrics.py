"""Monitoring › Metrics: received instances/s, MB/s and mean C-FIND latency over the last
hour, as sparklines of 10-second intervals with the latest and peak figures.

The figures come from the status files of the serving processes (core.services.status),
read in a worker every few seconds. The interval in progress is left out: a partly
counted interval would read as a drop.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from textual import work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Label, Sparkline, Static

from core.services.status import BUCKET_SECONDS, HISTORY_SECONDS, Snapshot, run_dir, snapshot
from tui import keymap
from tui.widgets.live import refresh_while_showing
from tui.widgets.view import View

REFRESH_SECONDS = 2.0


@dataclass(frozen=True)
class Metric:
    """One sparkline: its id, title, unit, its place in a point of `hour_series`, and
    the decimals shown."""

    id: str
    title: str
    unit: str
    index: int
    digits: int


METRICS = (
    Metric("stored", "Received instances", "/s", 0, 1),
    Metric("mbps", "Received data", " MB/s", 1, 2),
    Metric("find", "C-FIND mean latency", " ms", 2, 1),
)


def hour_series(status: Snapshot, now: float) -> list[tuple[float, float, float]]:
    """(instances/s, MB/s, C-FIND ms) for each complete 10-second interval of the last
    hour, oldest first; intervals without activity are zeros."""
    current = int(now) // BUCKET_SECONDS * BUCKET_SECONDS
    count = HISTORY_SECONDS // BUCKET_SECONDS
    starts = [current - BUCKET_SECONDS * (count - i) for i in range(count)]
    by_start = {start: (stored, mbps, ms) for start, stored, mbps, ms in status.rates()}
    return [by_start.get(start, (0.0, 0.0, 0.0)) for start in starts]


def figures(values: list[float], metric: Metric) -> str:
    """The title line of a metric: latest interval and peak of the hour."""

    def fmt(value: float) -> str:
        return f"{value:.{metric.digits}f}{metric.unit}"

    latest = values[-1] if values else 0.0
    peak = max(values, default=0.0)
    return f"{metric.title}   last 10 s: {fmt(latest)}   peak: {fmt(peak)}"


class MetricsView(View):
    """Three sparklines over the last hour, refreshed every two seconds."""

    HELP = "Activity of the archive over the last hour, in 10-second intervals."
    BINDINGS = keymap.bindings("metrics", "refresh", refresh="refresh now")
    DEFAULT_CSS = """
    MetricsView { padding: 0 1; }
    MetricsView .metric { height: 1fr; min-height: 4; }
    MetricsView .metric-title { height: 1; text-style: bold; }
    MetricsView Sparkline { height: 1fr; min-height: 2; margin-bottom: 1; }
    MetricsView #metrics-axis { height: 1; color: $text-muted; }
    MetricsView #metrics-axis-left { width: 1fr; }
    MetricsView #metrics-axis-right { width: auto; }
    """

    # Nothing inside takes focus: the view does, so that its keys work and show.
    can_focus = True

    def __init__(self) -> None:
        super().__init__()
        self.series: list[tuple[float, float, float]] = []

    def focus_default(self) -> None:
        self.focus()

    def compose(self) -> ComposeResult:
        for metric in METRICS:
            with Vertical(classes="metric"):
                yield Static(figures([], metric), id=f"{metric.id}-title", classes="metric-title")
                yield Sparkline([], id=f"{metric.id}-sparkline")
        with Horizontal(id="metrics-axis"):
            yield Label("← 60 min ago (10 s per step)", id="metrics-axis-left")
            yield Label("now →", id="metrics-axis-right")

    def on_mount(self) -> None:
        refresh_while_showing(self, REFRESH_SECONDS)

    @work(exclusive=True, group="metrics", exit_on_error=False)
    async def reload(self) -> None:
        folder = run_dir(self.services.config.storage.path)
        now = self.console.clock()

        def read() -> list[tuple[float, float, float]]:
            return hour_series(snapshot(folder, now=now), now)

        self._show(await asyncio.to_thread(read))

    def values(self, metric: Metric) -> list[float]:
        """The hour's values of one metric, oldest first."""
        return [point[metric.index] for point in self.series]

    def _show(self, series: list[tuple[float, float, float]]) -> None:
        self.series = series
        for metric in METRICS:
            values = self.values(metric)
            self.query_one(f"#{metric.id}-title", Static).update(figures(values, metric))
            self.query_one(f"#{metric.id}-sparkline", Sparkline).data = values

    def action_refresh(self) -> None:
        """Read the figures again now."""
        self.reload()
