"""The footer: the keys of what has focus, in the keymap's priority order, as many as fit
the width (`?` lists them all). Textual's own footer shows them in binding order and
lets the rest run off the edge, so at 80 columns a view showed its first few keys and
never `?`."""

from __future__ import annotations

from rich.cells import cell_len
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Footer
from textual.widgets._footer import FooterKey

from tui import keymap

# A key shows as " key description " (the padding of FooterKey's parts).
_PADDING = 3
# The palette key on the right: its item, its border and its right padding.
_PALETTE_EXTRA = 2


class KeyFooter(Footer):
    """`Footer` that orders keys by `keymap.priority` and leaves out what does not fit."""

    def __init__(self) -> None:
        super().__init__()
        self._width = 0

    def compose(self) -> ComposeResult:
        if not self._bindings_ready:
            return
        active = self.screen.active_bindings
        shown: dict[str, tuple[Binding, bool, str]] = {}
        for _node, binding, enabled, tooltip in active.values():
            # One item per action: several keys for one action show as the first.
            if binding.show and binding.action not in shown:
                shown[binding.action] = (binding, enabled, tooltip)
        ordered = sorted(shown.values(), key=lambda item: keymap.priority(item[0]))
        room = self.size.width or self.app.size.width
        palette = self._palette(active)
        if palette is not None:
            room -= self._width_of(palette[0]) + _PALETTE_EXTRA
        for binding, enabled, tooltip in ordered:
            width = self._width_of(binding)
            if width > room:
                continue
            room -= width
            yield FooterKey(
                binding.key,
                self.app.get_key_display(binding),
                binding.description,
                binding.action,
                disabled=not enabled,
                tooltip=tooltip,
            ).data_bind(compact=Footer.compact)
        if palette is not None:
            binding, enabled = palette
            yield FooterKey(
                binding.key,
                self.app.get_key_display(binding),
                binding.description,
                binding.action,
                classes="-command-palette",
                disabled=not enabled,
                tooltip=binding.tooltip or binding.description,
            )

    def _palette(self, active: dict) -> tuple[Binding, bool] | None:
        if not (self.show_command_palette and self.app.ENABLE_COMMAND_PALETTE):
            return None
        found = active.get(self.app.COMMAND_PALETTE_BINDING)
        return None if found is None else (found[1], found[2])

    def _width_of(self, binding: Binding) -> int:
        key = self.app.get_key_display(binding)
        return cell_len(key) + cell_len(binding.description) + _PADDING

    def on_resize(self, event: events.Resize) -> None:
        # What fits changes with the width; the height never changes (one line).
        if event.size.width != self._width:
            self._width = event.size.width
            self.call_after_refresh(self.recompose)
