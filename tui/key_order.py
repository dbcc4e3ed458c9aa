"""Keys typed in a burst reach the widget they were meant for.

Over SSH keys arrive in bursts. Textual hands each key to the widget focused when the app
reads it, and a key's effect (a focus move, a pushed prompt) lands a few messages later:
after `f` the name typed next still went to the table, after `:` the letters went to a
prompt not yet mounted. So the app hands a key over only once the previous one has
settled: the message queues of the app, the screen and its widgets are empty.
"""

from __future__ import annotations

import time
from collections import deque

from textual import events
from textual.app import App, ScreenStackError

#: How often the app looks whether a key has settled, in seconds.
POLL = 0.002
#: A key that keeps widgets busy longer (an animation, a live view's timer) lets the next
#: one through after this many seconds.
PATIENCE = 0.2


class KeysInOrder(App[None]):
    """An App whose keys are handled one after the other, each after the previous one's
    effects: mix in before App."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._typed: deque[events.Key] = deque()
        self._handing: events.Key | None = None
        self._in_flight_since: float | None = None

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, events.Key) and not event.is_forwarded and event is not self._handing:
            self._typed.append(event)
            if self._in_flight_since is None:
                await self._hand_over()
            return
        await super().on_event(event)

    async def _hand_over(self) -> None:
        if not self._typed:
            self._in_flight_since = None
            return
        key = self._handing = self._typed.popleft()
        self._in_flight_since = time.monotonic()
        try:
            await super().on_event(key)
        finally:
            self._handing = None
        self.set_timer(POLL, self._when_settled)

    async def _when_settled(self) -> None:
        since = self._in_flight_since or 0.0
        if self._busy() and time.monotonic() - since < PATIENCE:
            self.set_timer(POLL, self._when_settled)
        else:
            await self._hand_over()

    def _busy(self) -> bool:
        if self.message_queue_size:
            return True
        try:
            screen = self.screen
        except ScreenStackError:  # no screen yet, or the app is closing
            return False
        if not screen.is_mounted or screen.message_queue_size:
            return True
        return any(widget.message_queue_size for widget in screen.walk_children())
