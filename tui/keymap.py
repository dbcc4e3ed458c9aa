"""The console's one table of keys: an action has one key in every view (`n` creates,
`e` edits, `delete` deletes, `r` refreshes, `d` downloads, `s` saves a CSV, `f` goes to
the search form, `]` and `[` turn pages or frames...). Views, screens and the app build
their BINDINGS from it with `bindings`; the footer orders them by `priority`."""

from __future__ import annotations

from dataclasses import dataclass

from textual.binding import Binding

# The footer's order, ESSENTIAL first; what does not fit the width is left out, so `?`
# (which lists all) comes before everything.
ESSENTIAL, FIRST, SECOND, LAST = 1, 2, 3, 4
# Not in the footer (the mode bar shows them, or a neighbouring key stands for both).
HIDDEN = 0


@dataclass(frozen=True)
class Key:
    """One action: the key(s), the action it runs (`action_<name>`, with arguments where
    one method serves several keys), what the footer and `?` call it, its priority in the
    footer, where the key's name reads badly how the footer shows it, and whether the app
    sees the key before any focused widget does."""

    key: str
    action: str
    description: str
    priority: int
    display: str | None = None
    before_widgets: bool = False


KEYS: dict[str, Key] = {
    # Everywhere (the app's own).
    "keys": Key("question_mark", "keys", "keys", ESSENTIAL),
    "command": Key("colon", "command", "view", SECOND),
    "filter": Key("slash", "filter", "filter", SECOND),
    "back": Key("escape", "back", "back", LAST),
    "quit": Key("ctrl+q", "quit", "quit", LAST, before_widgets=True),
    "monitoring": Key("f2", "mode('monitoring')", "Monitoring mode", HIDDEN),
    "navigation": Key("f3", "mode('navigation')", "Navigation mode", HIDDEN),
    "configuration": Key("f4", "mode('configuration')", "Configuration mode", HIDDEN),
    # Lists.
    "next_page": Key("right_square_bracket", "next_page", "next page", SECOND),
    "previous_page": Key("left_square_bracket", "previous_page", "previous page", LAST),
    "tag": Key("space", "tag", "tag", LAST),
    "open": Key("enter", "open", "open", LAST),
    "create": Key("n", "create", "create", FIRST),
    "edit": Key("e", "edit", "edit", FIRST),
    "delete": Key("delete", "delete", "delete", FIRST),
    "attributes": Key("a", "attributes", "attributes", FIRST),
    "search": Key("f", "search", "search form", SECOND),
    "refresh": Key("r", "refresh", "refresh", SECOND),
    "download": Key("d", "download", "download", LAST),
    "csv": Key("s", "csv", "CSV of the result list", LAST),
    "image": Key("v", "view_image", "view image", LAST),
    "upload": Key("u", "upload", "upload", LAST),
    "expiration": Key("x", "expiration", "expiration date", LAST),
    "access_control": Key("c", "access_control", "access control ID", LAST),
    "merge": Key("m", "merge", "merge into…", FIRST),
    "issuer": Key("i", "supplement_issuer", "supplement issuer", LAST),
    "merged": Key("t", "toggle_merged", "show/hide merged", LAST),
    "echo": Key("p", "echo", "C-ECHO (ping)", FIRST),
    "pause": Key("z", "pause", "pause/resume refresh", FIRST),
    "export": Key("E", "export", "export…", SECOND),
    "commitment": Key("C", "commitment", "storage commitment…", LAST),
    "ian": Key("I", "ian", "IAN…", LAST),
    "retrieve": Key("R", "retrieve", "retrieve…", FIRST),
    "workitems": Key("W", "workitems", "work items…", LAST),
    "cancel_task": Key("k", "cancel_tasks", "cancel task", FIRST),
    "reschedule": Key("ctrl+r", "reschedule", "reschedule", FIRST),
    # Worklists: the SPS status of MWL items, the state of work items.
    "change_state": Key("g", "change_state", "change state", FIRST),
    "add_mwl": Key("w", "add_mwl", "new MWL item", LAST),
    # Work items (UPS).
    "clone": Key("c", "clone", "clone", FIRST),
    "subscribe": Key("plus", "subscribe", "subscribe AE", LAST, "+"),
    "unsubscribe": Key("minus", "unsubscribe", "unsubscribe AE", LAST, "-"),
    "templates": Key("t", "toggle_templates", "templates / work items", SECOND),
    # Forms, prompts and questions.
    "save": Key("ctrl+s", "save", "save", FIRST),
    "cancel": Key("escape", "cancel", "cancel", SECOND),
    "complete": Key("tab", "complete", "complete", SECOND),
    "all_matching": Key("asterisk", "switch", "all matching / these", FIRST, "*"),
    "yes": Key("y", "answer(True)", "Yes", FIRST),
    "no": Key("n,escape", "answer(False)", "No", FIRST),
    "store": Key("enter", "upload", "upload", FIRST),
    "dismiss": Key("escape,q,question_mark", "dismiss", "Close", FIRST, "esc"),
    # Attributes.
    "save_json": Key("j", "save('json')", "save as JSON", FIRST),
    "save_text": Key("t", "save('text')", "save as text", FIRST),
    "close": Key("escape,q", "close", "close", SECOND, "esc"),
    # The image.
    "wider": Key("right", "window(0, 1)", "width", FIRST, "←→"),
    "narrower": Key("left", "window(0, -1)", "narrower", HIDDEN),
    "centre_up": Key("up", "window(1, 0)", "centre", FIRST, "↑↓"),
    "centre_down": Key("down", "window(-1, 0)", "centre down", HIDDEN),
    "preset": Key("v", "preset", "preset", FIRST),
    "reset": Key("r", "reset", "reset", SECOND),
    "next_frame": Key("right_square_bracket,pagedown", "frame(1)", "frame", SECOND, "[ ]"),
    "previous_frame": Key("left_square_bracket,pageup", "frame(-1)", "previous frame", HIDDEN),
}


def bindings(prefix: str, *names: str, **descriptions: str) -> list[Binding]:
    """The bindings of actions `names` of the table, with ids `<prefix>-<name>`; a view
    may say what an action does there (`open="studies of the patient"`)."""
    out = []
    for name in names:
        key = KEYS[name]
        out.append(
            Binding(
                key.key,
                key.action,
                descriptions.get(name, key.description),
                show=key.priority != HIDDEN,
                key_display=key.display,
                priority=key.before_widgets,
                id=f"{prefix}-{name}",
            )
        )
    return out


def priority(binding: Binding) -> int:
    """A binding's place in the footer (FIRST..LAST): the table's, by the binding's id;
    bindings from outside the table (prompts, forms) come after FIRST."""
    name = (binding.id or "").partition("-")[2]
    key = KEYS.get(name)
    return key.priority if key is not None else SECOND
