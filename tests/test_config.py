"""config.toml: the commented example, validation errors as one line, relative paths."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from core.config import (
    AEConfig,
    Config,
    ConfigError,
    ConfigWatcher,
    ExporterConfig,
    RemoteAEConfig,
    load,
    parse,
    restart_needed,
)

EXAMPLE = Path(__file__).resolve().parents[1] / "config.toml.example"


def _fields(model: type[BaseModel]) -> set[str]:
    return {name for name, info in model.model_fields.items() if not info.exclude}


def test_example_loads_and_documents_the_embedded_defaults(tmp_path: Path) -> None:
    """The example is valid, and apart from its [[remote_ae]] sample and the number of
    worker processes (the default follows the CPU count) its values are the embedded
    defaults (so its 'default' comments cannot drift from the code)."""
    copy = tmp_path / "config.toml"
    copy.write_text(EXAMPLE.read_text())
    example = load(copy)
    defaults = parse("", base=tmp_path)
    machine_dependent = {"remote_ae": True, "exporter": True, "network": {"processes"}}
    assert example.model_dump(exclude=machine_dependent) == defaults.model_dump(
        exclude=machine_dependent
    )
    assert defaults.network.processes == min(os.cpu_count() or 1, 4)
    assert [r.title for r in example.remote_ae] == ["STORESCP"]


def test_example_sets_every_field_of_every_section() -> None:
    """Every field of the configuration models appears as a key in the example."""
    raw: dict[str, Any] = tomllib.loads(EXAMPLE.read_text())
    assert set(raw) == _fields(Config)
    for name, info in Config.model_fields.items():
        if info.exclude:
            continue
        model = info.annotation
        if name == "ae":
            assert all(set(ae) == _fields(AEConfig) for ae in raw["ae"])
        elif name == "remote_ae":
            assert all(set(r) == _fields(RemoteAEConfig) for r in raw["remote_ae"])
        elif name == "exporter":
            assert all(set(e) == _fields(ExporterConfig) for e in raw["exporter"])
        else:
            assert isinstance(model, type) and issubclass(model, BaseModel)
            assert set(raw[name]) == _fields(model), name


def test_example_comments_every_key() -> None:
    """Each key line in the example follows a comment line (what it does, its values)."""
    lines = EXAMPLE.read_text().splitlines()
    for i, line in enumerate(lines):
        if line and not line.startswith(("#", "[")):
            assert lines[i - 1].startswith("#"), f"no comment above {line!r}"


def test_relative_paths_are_relative_to_the_config_folder(tmp_path: Path) -> None:
    """Storage path and SQLite file given relatively land beside the config file, not in
    the current folder; absolute paths stay as they are."""
    folder = tmp_path / "etc"
    folder.mkdir()
    config = folder / "config.toml"
    config.write_text('[database]\nurl = "sqlite:///db/a.db"\n[storage]\npath = "data"\n')
    loaded = load(config)
    assert loaded.database.url == f"sqlite:///{folder / 'db' / 'a.db'}"
    assert loaded.storage.path == str(folder / "data")
    config.write_text(f'[storage]\npath = "{tmp_path / "abs"}"\n')
    assert load(config).storage.path == str(tmp_path / "abs")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[network]\nmax_assocs = 3\n", "network.max_assocs: unknown key"),
        ("[archive]\nname = 'x'\n", "archive: unknown key"),
        ("[[ae]]\ntitle = 'A'\nlisten = 1\n", "ae[0].listen: unknown key"),
        (
            "[network]\nmax_associations = 'many'\n",
            "network.max_associations: Input should be a valid integer",
        ),
        ("[[ae]]\ntitle = 'A'\nport = 70000\n", "ae[0].port: "),
        ("[[ae]]\ntitle = 'THIS_IS_TOO_LONG_X'\n", "ae[0].title: AE title longer than 16"),
        ("[[ae]]\ntitle = ''\n", "ae[0].title: AE title must not be empty"),
        ("[[ae]]\ntitle = 'A\\\\B'\n", "ae[0].title: AE title has a backslash"),
        ("[[ae]]\ntitle = 'A'\n[[ae]]\ntitle = 'A'\nport = 1\n", "duplicate AE title 'A'"),
        (
            "[[remote_ae]]\ntitle = 'P'\nhost = 'h'\nport = 1\n"
            "[[remote_ae]]\ntitle = 'P'\nhost = 'h'\nport = 2\n",
            "remote_ae[1].title: duplicate AE title 'P'",
        ),
        ("[[ae]]\nport = 104\n", "ae[0].title: required key is missing"),
        ("[[ae]]\ntitle = 'A'\nview = 'everything'\n", "ae[0].view: "),
        ("[database]\nurl = 'mysql://db'\n", "database.url: "),
        ("[log]\nlevel = 'LOUD'\n", "log.level: "),
        ("[console]\npage_size = 0\n", "console.page_size: "),
        ("[network\nx = 1\n", "not valid TOML"),
    ],
)
def test_invalid_config_is_one_line_naming_file_and_key(text: str, expected: str) -> None:
    """Every validation problem is a ConfigError of one line: file, key, and (for a wrong
    value) the value itself."""
    with pytest.raises(ConfigError) as caught:
        parse(text, source="/etc/pacs/config.toml")
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("/etc/pacs/config.toml: ")
    assert expected in message


def test_console_page_size() -> None:
    """[console] page_size sets the rows per page of result tables; 50 without it."""
    assert parse("[console]\npage_size = 20\n").console.page_size == 20
    assert parse("").console.page_size == 50


def test_wrong_value_is_quoted_in_the_message() -> None:
    """A wrong value is repeated in the message so the administrator can find it."""
    with pytest.raises(ConfigError, match=r"ae\[0\]\.port: .*\(value 70000\)$"):
        parse("[[ae]]\ntitle = 'A'\nport = 70000\n", source="c.toml")


@pytest.mark.parametrize("make", ["missing", "directory", "not-utf8"])
def test_unreadable_file_is_one_line(tmp_path: Path, make: str) -> None:
    """A missing file, a folder, or a file that is not UTF-8 text: one line with the path."""
    path = tmp_path / "config.toml"
    if make == "directory":
        path.mkdir()
    elif make == "not-utf8":
        path.write_bytes(b"\xff\xfe[device]\n")
    with pytest.raises(ConfigError) as caught:
        load(path)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: cannot read the config file: ")


def test_restart_needed_names_the_changed_settings_a_restart_applies(tmp_path: Path) -> None:
    """Ports, AEs and network settings need a restart; remote AEs do not; the watcher of a
    running archive applies the remote AEs and logs the rest by key."""
    text = '[network]\nmax_associations = 50\n\n[[ae]]\ntitle = "DCM4CHEE"\nport = 11112\n'
    running = parse(text, base=tmp_path)
    changed = text.replace("11112", "11115").replace("= 50", "= 60")
    changed += '\n[[remote_ae]]\ntitle = "PEER"\nhost = "127.0.0.1"\nport = 104\n'
    assert restart_needed(running, parse(changed, base=tmp_path)) == [
        "ae",
        "network.max_associations",
    ]
    only_remote = text + '\n[[remote_ae]]\ntitle = "PEER"\nhost = "127.0.0.1"\nport = 104\n'
    assert restart_needed(running, parse(only_remote, base=tmp_path)) == []


def test_config_watcher_applies_remote_aes_and_logs_what_needs_a_restart(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[[ae]]\ntitle = "DCM4CHEE"\nport = 11112\n')
    current = [load(path)]
    watcher = ConfigWatcher(lambda: current[0], lambda config: current.__setitem__(0, config))
    path.write_text(
        '[[ae]]\ntitle = "DCM4CHEE"\nport = 11113\n\n'
        '[[remote_ae]]\ntitle = "PEER"\nhost = "127.0.0.1"\nport = 104\n'
    )
    with caplog.at_level("INFO", logger="pacs"):
        watcher.check()
    assert current[0].remote("PEER") is not None
    assert current[0].ae[0].port == 11112  # the port waits for a restart
    assert any("after a restart: ae" in r.getMessage() for r in caplog.records)
