"""A line that says when config.toml holds changes the running archive applies only
after a restart (ports, AEs, database...), checked every few seconds in a worker."""

from __future__ import annotations

import asyncio

from textual import work
from textual.widgets import Static

from core.config import ConfigError
from core.services.config_edit import pending_restart
from tui.widgets.live import showing

CHECK_SECONDS = 5.0


class RestartNotice(Static):
    """Hidden while the file matches the running archive; otherwise names the settings
    waiting for a restart (or why the file does not load)."""

    DEFAULT_CSS = """
    RestartNotice { height: auto; padding: 0 1; background: $warning 30%; display: none; }
    """

    def on_mount(self) -> None:
        self.check()
        self.set_interval(CHECK_SECONDS, self._tick)

    def _tick(self) -> None:
        if self.parent is not None and showing(self.parent):
            self.check()

    @work(exclusive=True, group="restart-notice", exit_on_error=False)
    async def check(self) -> None:
        """Compare the file with the running archive's settings, off the UI thread."""
        services = self.app.services  # type: ignore[attr-defined]

        def work() -> str:
            try:
                pending = pending_restart(services)
            except ConfigError as exc:
                return f"config.toml does not load, nothing of it applies: {exc}"
            if not pending:
                return ""
            return (
                f"Restart the archive to apply these changes of config.toml: {', '.join(pending)}"
            )

        text = await asyncio.to_thread(work)
        self.update(text)
        self.display = bool(text)
