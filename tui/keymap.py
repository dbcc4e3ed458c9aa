"""The console's one table of keys: an action has one key in every view (`n` creates,
`e` edits, `delete` deletes, `r` refreshes, `d` downloads, `s` saves a CSV, `f` goes to
the search form...). Views build their BINDINGS from it with `bindings`."""

from __future__ import annotations

from dataclasses import dataclass

from textual.binding import Binding


@dataclass(frozen=True)
class Key:
    """One action: the key, the method it runs (`action_<name>`), what the footer and `?`
    call it, and its priority for the footer (1 first; 0: only in `?` and the palette)."""

    key: str
    action: str
    description: str
    priority: int


KEYS: dict[str, Key] = {
    "open": Key("enter", "open", "open", 0),
    "create": Key("n", "create", "create", 1),
    "edit": Key("e", "edit", "edit", 1),
    "delete": Key("delete", "delete", "delete", 1),
    "attributes": Key("a", "attributes", "attributes", 1),
    "search": Key("f", "search", "search form", 0),
    "refresh": Key("r", "refresh", "refresh", 0),
    "download": Key("d", "download", "download", 0),
    "csv": Key("s", "csv", "CSV of the result list", 0),
    "image": Key("v", "view_image", "view image", 0),
    "upload": Key("u", "upload", "upload", 0),
    "expiration": Key("x", "expiration", "expiration date", 0),
    "access_control": Key("c", "access_control", "access control ID", 0),
    "merge": Key("m", "merge", "merge into…", 1),
    "issuer": Key("i", "supplement_issuer", "supplement issuer", 0),
    "merged": Key("t", "toggle_merged", "show/hide merged", 0),
    "echo": Key("p", "echo", "C-ECHO (ping)", 1),
    "pause": Key("z", "pause", "pause/resume refresh", 1),
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
                show=key.priority > 0,
                id=f"{prefix}-{name}",
            )
        )
    return out
