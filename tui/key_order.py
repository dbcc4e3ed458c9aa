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
#: A screen a key brought up (a prompt, a dialog, the first screen at start) is waited
#: for until it has focus, however busy the machine: on a loaded host mounting one took
#: longer than PATIENCE and the keys after `:` went to the list under it. Never longer
#: than this, though.
SCREEN_PATIENCE = 10.0


class KeysInOrder(App[None]):
    """An App whose keys are handled one after the other, each after the previous one's
    effects: mix in before App."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._typed: deque[events.Key] = deque()
        self._handing: events.Key | None = None
        self._in_flight_since: float | None = None
        # The screen in front when the key in flight was handed over.
        self._screen_before: object | None = None

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, events.Key) and not event.is_forwarded and event is not self._handing:
            self._typed.append(event)
            if self._in_flight_since is None:
                # Keys typed before the first screen can take them wait for it.
                self._in_flight_since, self._screen_before = time.monotonic(), None
                if self._screen_unready():
                    self.set_timer(POLL, self._when_settled)
                else:
                    await self._hand_over()
            return
        await super().on_event(event)

    def keys_waiting(self) -> bool:
        """Whether typed keys wait to be handed over, or the last one handed over has not
        settled yet."""
        return bool(self._typed) or self._in_flight_since is not None

    async def _hand_over(self) -> None:
        if not self._typed:
            self._in_flight_since = None
            return
        key = self._handing = self._typed.popleft()
        self._in_flight_since = time.monotonic()
        self._screen_before = self._front()
        try:
            await super().on_event(key)
        finally:
            self._handing = None
        self.set_timer(POLL, self._when_settled)

    async def _when_settled(self) -> None:
        waited = time.monotonic() - (self._in_flight_since or 0.0)
        busy = self._busy() and waited < PATIENCE
        unsettled = self._key_in_flight() or self._screen_unready()
        if busy or (unsettled and waited < SCREEN_PATIENCE):
            self.set_timer(POLL, self._when_settled)
        else:
            await self._hand_over()

    def _front(self) -> object | None:
        try:
            return self.screen
        except ScreenStackError:
            return None

    def _key_in_flight(self) -> bool:
        """The key handed over is still on its way: a key waits in the queue of the app,
        the screen or a widget on the focus path, or one of them is still handling a
        message (the key's binding running its action). Waited for however loaded the
        machine is, unlike the rest of the app's business (PATIENCE)."""
        screen = self._front()
        pumps: list[object] = [self]
        if screen is not None:
            pumps.append(screen)
            focused = getattr(screen, "focused", None)
            while focused is not None and focused is not screen:
                pumps.append(focused)
                focused = focused.parent
        for pump in pumps:
            # asyncio.Queue's own bookkeeping: no public way to look into Textual's queues.
            queue = getattr(pump, "_message_queue", None)
            waiting = getattr(queue, "_queue", ())
            if any(isinstance(message, events.Key) for message in waiting):
                return True
            if getattr(queue, "_unfinished_tasks", 0) > len(waiting) and pump is not self:
                return True
        return False

    def _screen_unready(self) -> bool:
        """A screen the last key brought up (or the first one) that cannot take keys
        yet: not mounted, nothing focused where something can be, or the widget focused
        not started yet."""
        screen = self._front()
        if screen is None or (screen is self._screen_before and screen.id != "_default"):
            return False
        if screen.id == "_default" or not screen.is_mounted:
            return True
        focused = screen.focused
        if focused is None:
            return bool(screen.focus_chain)
        # Focused but still starting (its mount and focus events waiting): a key taken
        # now was lost in the new input on a loaded machine.
        return not focused.is_mounted or bool(focused.message_queue_size)

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
