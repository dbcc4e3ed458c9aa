"""Edit config.toml in place: add, change or remove a `[[remote_ae]]` entry.

The file keeps its comments, blank lines and order (tomlkit edits the parsed document,
not a re-rendering of the settings). Every edit is validated as a whole file with
core.config.parse before anything is written, so a bad value (or an exporter left without
its remote AE) is refused with the key named and the file untouched. The new text is
written aside, fsynced and renamed over the file: a serving process's ConfigWatcher never
reads half a file.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import tomlkit
from tomlkit.container import Container
from tomlkit.items import AoT, Comment, Item, Table, Whitespace
from tomlkit.toml_document import TOMLDocument

from core.config import Config, ConfigError, load, parse, restart_needed
from core.services.context import ServiceContext

SECTION = "remote_ae"
FIELDS = ("title", "host", "port")


def add_remote_ae(path: Path, entry: Mapping[str, Any]) -> Config:
    """Append a remote AE (`title`, `host`, `port`) after the last one; returns the
    saved configuration."""
    doc = _read(path)
    table = tomlkit.table()
    for key in FIELDS:
        table[key] = _value(key, entry.get(key, ""))
    tables = _tables(doc)
    if tables is None:
        _end_with_blank_line(_last_container(doc))
        doc.append(SECTION, tomlkit.aot())
        tables = _tables(doc)
        assert tables is not None
    else:
        # Comments after the last entry introduce what follows the list: keep them there.
        last = tables[-1].value
        trailing = _pop_trailing(last)
        _end_with_blank_line(last)
        _append(table.value, trailing)
    tables.append(table)
    return _save(path, doc)


def update_remote_ae(path: Path, title: str, entry: Mapping[str, Any]) -> Config:
    """Change the remote AE called `title` in place (its comments stay); returns the
    saved configuration."""
    doc = _read(path)
    tables, index = _find(path, doc, title)
    table = tables[index]
    for key in FIELDS:
        if key in entry:
            table[key] = _value(key, entry[key])
    return _save(path, doc)


def delete_remote_ae(path: Path, title: str) -> Config:
    """Remove the remote AE called `title` with the comments inside its table; comments
    after it (about what follows) stay. Returns the saved configuration."""
    doc = _read(path)
    tables, index = _find(path, doc, title)
    # Text after an entry's last key introduces what comes next: it outlives the entry.
    trailing = _pop_trailing(tables[index].value)
    if index > 0:
        # What introduced the deleted entry goes with it.
        previous = tables[index - 1].value
        _pop_trailing(previous)
        _append(previous, trailing)
        del tables[index]
    else:
        # Before the first entry is the end of the section above (maybe a comment about
        # the whole list): keep it, adding comments that introduced the next entry.
        before = _container_before(doc, SECTION)
        last = len(tables) == 1
        if last:
            if _is_last(doc, SECTION):
                # Nothing follows to be introduced: the file ends where the text above does.
                trailing = [item for item in trailing if isinstance(item, Comment)]
            doc.remove(SECTION)
        else:
            del tables[index]
            if not any(isinstance(item, Comment) for item in trailing):
                trailing = []
        if before is not None and (trailing or last):
            _pop_trailing_whitespace(before)
            _append(before, trailing)
    return _save(path, doc)


def apply_remote_aes(services: ServiceContext, saved: Config) -> None:
    """Use the remote AEs of a saved configuration in this process at once (C-MOVE
    destinations read `services.config`); other processes follow the file with their
    ConfigWatcher."""
    services.config = services.config.model_copy(update={"remote_ae": saved.remote_ae})


# -- the document ---------------------------------------------------------------------


def _read(path: Path) -> TOMLDocument:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file: {exc.strerror}") from None
    try:
        return tomlkit.parse(text)
    except tomlkit.exceptions.TOMLKitError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


def _value(key: str, value: Any) -> Any:
    # Values come as typed in a form: a port of digits is written as a TOML integer; any
    # other text is written as it is, for the validation to name.
    text = str(value).strip()
    if key == "port" and text.isdigit():
        return int(text)
    return text


def _tables(doc: TOMLDocument) -> AoT | None:
    item = doc.get(SECTION)
    if item is None:
        return None
    if not isinstance(item, AoT):
        raise ConfigError(f"{SECTION} is not written as [[{SECTION}]] tables; edit it by hand")
    return item


def _find(path: Path, doc: TOMLDocument, title: str) -> tuple[AoT, int]:
    """The [[remote_ae]] tables and the index of the one called `title`."""
    tables = _tables(doc)
    for i, table in enumerate(tables or []):
        if str(table.get("title", "")).strip() == title:
            assert tables is not None
            return tables, i
    raise ConfigError(f"{path}: no [[{SECTION}]] with title {title!r}")


def _pop_trailing(container: Container) -> list[Item]:
    """Remove and return the blank lines and comments after the container's last key."""
    body = container.body
    trailing: list[Item] = []
    while body and body[-1][0] is None and isinstance(body[-1][1], Whitespace | Comment):
        trailing.insert(0, body.pop()[1])
    return trailing


def _append(container: Container, items: list[Item]) -> None:
    for item in items:
        container.append(None, item)


def _pop_trailing_whitespace(container: Container) -> None:
    body = container.body
    while body and body[-1][0] is None and isinstance(body[-1][1], Whitespace):
        body.pop()


def _end_with_blank_line(container: Container | None) -> None:
    if container is None:
        return
    _pop_trailing_whitespace(container)
    container.append(None, tomlkit.nl())


def _last_container(doc: TOMLDocument) -> Container | None:
    """Where the document ends: its last table (or last table of a list of tables)."""
    for _, item in reversed(doc.body):
        if isinstance(item, Table):
            return item.value
        if isinstance(item, AoT) and item.body:
            return item.body[-1].value
        if isinstance(item, Whitespace | Comment):
            continue
        return None
    return None


def _is_last(doc: TOMLDocument, key: str) -> bool:
    names = [name.key for name, _ in doc.body if name is not None]
    return bool(names) and names[-1] == key


def _container_before(doc: TOMLDocument, key: str) -> Container | None:
    """The table that ends right before `key`'s tables (where text before them lives)."""
    previous: Container | None = None
    for name, item in doc.body:
        if name is not None and name.key == key:
            return previous
        if isinstance(item, Table):
            previous = item.value
        elif isinstance(item, AoT) and item.body:
            previous = item.body[-1].value
    return previous


def _save(path: Path, doc: TOMLDocument) -> Config:
    text = tomlkit.dumps(doc)
    config = parse(text, source=str(path), base=path.resolve().parent)
    aside = path.with_name(f".{path.name}.saving")
    try:
        mode = path.stat().st_mode & 0o7777
        with aside.open("w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(aside, mode)
        os.replace(aside, path)
    except OSError as exc:
        aside.unlink(missing_ok=True)
        raise ConfigError(f"{path}: cannot save: {exc.strerror or exc}") from None
    return config.model_copy(update={"source": path})


def pending_restart(services: ServiceContext) -> list[str]:
    """Settings changed in the config file since the archive started that only a restart
    applies (empty without a config file). Raises ConfigError for a file that does not
    load."""
    source = services.config.source
    if source is None:
        return []
    return restart_needed(services.config, load(source))
