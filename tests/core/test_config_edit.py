"""Editing [[remote_ae]] in config.toml: the file keeps every comment, blank line and its
order; a bad value is refused with the key named and the file left as it was."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.config import ConfigError, load
from core.services.config_edit import add_remote_ae, delete_remote_ae, update_remote_ae

HEAD = """\
# pacs-console test configuration
[device]
name = "pacs-test"  # shown in the console

[storage]
path = "fs1"

# Peers of the archive.
"""
FIRST = """\
[[remote_ae]]
# the viewer in room 3
title = "VIEWER"
host = "10.0.0.3"   # fixed address
port = 104

"""
SECOND = """\
[[remote_ae]]
title = "STORESCP"
host = "127.0.0.1"
port = 11113

"""
TAIL = """\
# Exporters come last.
[[exporter]]
id = "TO-VIEWER"
kind = "dicom"
destination = "VIEWER"
"""
ORIGINAL = HEAD + FIRST + SECOND + TAIL


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(ORIGINAL)
    return path


def test_add_goes_after_the_last_remote_ae_and_keeps_everything_else(config_file: Path) -> None:
    """The new entry follows STORESCP; the comment introducing the exporters stays just
    above them; the port typed as text is written as a TOML integer."""
    config = add_remote_ae(config_file, {"title": "PACS2", "host": "10.0.0.9", "port": " 4242 "})
    added = '[[remote_ae]]\ntitle = "PACS2"\nhost = "10.0.0.9"\nport = 4242\n\n'
    assert config_file.read_text() == HEAD + FIRST + SECOND + added + TAIL
    assert [r.title for r in config.remote_ae] == ["VIEWER", "STORESCP", "PACS2"]
    assert config.source == config_file
    assert load(config_file).remote(title="PACS2").port == 4242  # type: ignore[union-attr]


def test_add_to_a_file_without_remote_aes_appends_the_section(tmp_path: Path) -> None:
    """A file with no [[remote_ae]] gets one at its end, after a blank line."""
    path = tmp_path / "config.toml"
    path.write_text(HEAD.removesuffix("# Peers of the archive.\n"))
    add_remote_ae(path, {"title": "PEER", "host": "127.0.0.1", "port": 11113})
    assert path.read_text() == (
        '# pacs-console test configuration\n[device]\nname = "pacs-test"  # shown in the console\n'
        '\n[storage]\npath = "fs1"\n\n[[remote_ae]]\ntitle = "PEER"\nhost = "127.0.0.1"\n'
        "port = 11113\n"
    )


def test_edit_changes_values_in_place_with_their_comments(config_file: Path) -> None:
    """Host and port of VIEWER change; its comment and the inline comment stay."""
    config = update_remote_ae(
        config_file, "VIEWER", {"title": "VIEWER", "host": "10.0.0.4", "port": "105"}
    )
    edited = FIRST.replace('"10.0.0.3"', '"10.0.0.4"').replace("104", "105")
    assert config_file.read_text() == HEAD + edited + SECOND + TAIL
    assert config.remote("VIEWER").host == "10.0.0.4"  # type: ignore[union-attr]


def test_delete_the_last_entry_keeps_the_comment_after_it(config_file: Path) -> None:
    """Deleting STORESCP leaves VIEWER and the exporters' comment as they were."""
    config = delete_remote_ae(config_file, "STORESCP")
    assert config_file.read_text() == HEAD + FIRST + TAIL
    assert [r.title for r in config.remote_ae] == ["VIEWER"]


def test_delete_the_first_entry_keeps_the_comment_above_the_list(tmp_path: Path) -> None:
    """Deleting the first entry removes its own comments; the comment above the list and
    the following entry stay."""
    path = tmp_path / "config.toml"
    path.write_text(HEAD + SECOND + FIRST + TAIL)
    delete_remote_ae(path, "STORESCP")
    assert path.read_text() == HEAD + FIRST + TAIL


def test_delete_the_only_entry_removes_the_section(tmp_path: Path) -> None:
    """With one remote AE (and no exporter using it) the [[remote_ae]] list goes away and
    the file still reads the same elsewhere."""
    path = tmp_path / "config.toml"
    path.write_text(HEAD + SECOND)
    config = delete_remote_ae(path, "STORESCP")
    assert path.read_text() == HEAD
    assert config.remote_ae == ()


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        (
            lambda p: add_remote_ae(p, {"title": "PACS2", "host": "h", "port": "70000"}),
            "remote_ae[2].port: Input should be less than or equal to 65535 (value 70000)",
        ),
        (
            lambda p: add_remote_ae(p, {"title": "PACS2", "host": "h", "port": "eleven"}),
            "remote_ae[2].port: Input should be a valid integer",
        ),
        (
            lambda p: add_remote_ae(p, {"title": "STORESCP", "host": "h", "port": "1"}),
            "remote_ae[2].title: duplicate AE title 'STORESCP'",
        ),
        (
            lambda p: update_remote_ae(p, "VIEWER", {"title": "A-VERY-LONG-AE-TITLE"}),
            "remote_ae[0].title: AE title longer than 16 characters",
        ),
        (
            lambda p: delete_remote_ae(p, "VIEWER"),
            "exporter[0].destination: 'VIEWER' is not a remote_ae",
        ),
        (lambda p: delete_remote_ae(p, "NOBODY"), "no [[remote_ae]] with title 'NOBODY'"),
    ],
    ids=["port-range", "port-text", "duplicate", "long-title", "used-by-exporter", "unknown"],
)
def test_invalid_edits_are_refused_with_the_key_and_the_file_untouched(
    config_file: Path, edit, reason: str
) -> None:
    """Each refusal names the file and the key (or the entry), and nothing is written:
    neither the file nor a file aside."""
    before = config_file.stat().st_mtime_ns
    with pytest.raises(ConfigError) as error:
        edit(config_file)
    assert str(error.value).startswith(f"{config_file}: ")
    assert reason in str(error.value)
    assert config_file.read_text() == ORIGINAL
    assert config_file.stat().st_mtime_ns == before
    assert sorted(p.name for p in config_file.parent.iterdir()) == ["config.toml"]
