"""The `pacs-console` command line: `serve` refusing bad configs and busy ports with one
line and exit status 2, `serve` on the embedded defaults, and `echo` (plus DCMTK's
echoscu) against a running archive."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.archive import Archive
from core.config import DEFAULT_PORT, parse
from tests.conftest import (
    archive_port,
    dcmtk_env,
    free_port,
    listening_addresses,
    make_config_text,
)


def pacs_console(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run `pacs-console ARGS` to completion."""
    return subprocess.run(
        [sys.executable, "-m", "tui.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def port_is_free(port: int) -> bool:
    """Whether the archive could bind 127.0.0.1:`port` now (it uses SO_REUSEADDR too)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def assert_refused(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    """Exit status 2, exactly one line on stderr that contains every fragment."""
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("pacs-console: ")
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Archive]:
    """An in-process archive (AE DCM4CHEE on 127.0.0.1, SQLite)."""
    config = parse(make_config_text(tmp_path, f"sqlite:///{tmp_path / 'a.db'}", free_port()))
    archive = Archive(config)
    archive.start()
    try:
        yield archive
    finally:
        archive.stop(grace=5)


AE_TABLE = "[[ae]]\ntitle = 'DCM4CHEE'\nhost = '127.0.0.1'\nport = {port}\n"
BAD_CONFIGS = {
    "unknown key": (
        "[network]\nmax_assocs = 3\n" + AE_TABLE,
        ["network.max_assocs", "unknown key"],
    ),
    "wrong type": (
        "[network]\nmax_associations = 'many'\n" + AE_TABLE,
        ["network.max_associations", "'many'"],
    ),
    "invalid AE title": (
        AE_TABLE.replace("DCM4CHEE", "THIS_IS_TOO_LONG_X"),
        ["ae[0].title", "'THIS_IS_TOO_LONG_X'"],
    ),
    "duplicate AE title": (
        AE_TABLE + AE_TABLE.replace("{port}", "1"),
        ["ae[1].title", "duplicate AE title 'DCM4CHEE'"],
    ),
    "invalid TOML": ("[network\n" + AE_TABLE, ["not valid TOML"]),
}


@pytest.mark.parametrize("case", list(BAD_CONFIGS))
def test_serve_refuses_a_bad_config(tmp_path: Path, case: str) -> None:
    """A config with a problem: exit 2, one line naming file and key/value, nothing
    started (no listener, no data folder, no database)."""
    port = free_port()
    template, fragments = BAD_CONFIGS[case]
    config = tmp_path / "config.toml"
    config.write_text(template.format(port=port))
    result = pacs_console("serve", "--config", str(config), cwd=tmp_path)
    assert_refused(result, str(config), *fragments)
    assert listening_addresses(port) == set()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.toml"]


@pytest.mark.parametrize("make", ["missing", "directory"])
def test_serve_refuses_an_unreadable_config(tmp_path: Path, make: str) -> None:
    """A config file that is missing or is a folder: exit 2, one line naming it."""
    config = tmp_path / "config.toml"
    if make == "directory":
        config.mkdir()
    result = pacs_console("serve", "--config", str(config), cwd=tmp_path)
    assert_refused(result, str(config), "cannot read the config file")
    assert not (tmp_path / "pacs-data").exists()


def test_serve_refuses_a_port_in_use(tmp_path: Path) -> None:
    """Another program listens on the AE's port: exit 2, one line naming address, port and
    AE; the data folder (database, storage) is not even created."""
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        config = tmp_path / "config.toml"
        config.write_text(f"[[ae]]\ntitle = 'DCM4CHEE'\nhost = '127.0.0.1'\nport = {port}\n")
        result = pacs_console("serve", "--config", str(config), cwd=tmp_path)
    assert_refused(result, f"127.0.0.1:{port}", "DCM4CHEE", "in use")
    assert not (tmp_path / "pacs-data").exists()


def test_serve_refuses_an_unreachable_database(tmp_path: Path) -> None:
    """A PostgreSQL URL nobody answers: exit 2, one line naming the database URL, and the
    port it had bound is released."""
    port = free_port()
    url = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/none"
    config = tmp_path / "config.toml"
    config.write_text(
        f'[database]\nurl = "{url}"\n[hl7]\nport = 0\n'
        f"[[ae]]\ntitle = 'DCM4CHEE'\nhost = '127.0.0.1'\nport = {port}\n"
    )
    result = pacs_console("serve", "--config", str(config), cwd=tmp_path)
    assert_refused(result, f"database {url}: ")
    assert port_is_free(port)


def test_serve_refuses_a_storage_folder_it_cannot_create_before_touching_the_database(
    tmp_path: Path,
) -> None:
    """A storage path below a regular file: exit 2, one line naming the folder, printed
    before anything of the database (no migration lines, no database file created)."""
    port = free_port()
    (tmp_path / "not-a-folder").write_text("")
    config = tmp_path / "config.toml"
    config.write_text(
        f'[database]\nurl = "sqlite:///{tmp_path / "archive.db"}"\n[hl7]\nport = 0\n'
        f'[storage]\npath = "{tmp_path / "not-a-folder" / "fs1"}"\n'
        f"[[ae]]\ntitle = 'DCM4CHEE'\nhost = '127.0.0.1'\nport = {port}\n"
    )
    result = pacs_console("serve", "--config", str(config), cwd=tmp_path)
    assert_refused(result, str(tmp_path / "not-a-folder" / "fs1"), "cannot create")
    assert not (tmp_path / "archive.db").exists()
    assert port_is_free(port)


def test_serve_without_config_uses_the_embedded_defaults(
    tmp_path: Path, bind_localhost: Path
) -> None:
    """No --config: AE DCM4CHEE on port 11112 and data under ./pacs-data, all printed at
    start; it answers C-ECHO and stops cleanly on SIGTERM. (Run with a preloaded shim that
    moves the default all-interfaces bind to 127.0.0.1; if 11112 is taken on this machine,
    the refusal must name it instead.)"""
    env = {**os.environ, "LD_PRELOAD": str(bind_localhost)}
    if not port_is_free(DEFAULT_PORT):
        result = pacs_console("serve", cwd=tmp_path, env=env)
        assert_refused(result, f"0.0.0.0:{DEFAULT_PORT}", "DCM4CHEE")
        return
    proc = subprocess.Popen(
        [sys.executable, "-m", "tui.cli", "serve"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while "0100007F" not in listening_addresses(DEFAULT_PORT):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no listener on 11112 within 30 s"
            time.sleep(0.05)
        assert listening_addresses(DEFAULT_PORT) == {"0100007F"}
        echo = pacs_console("echo", f"DCM4CHEE@127.0.0.1:{DEFAULT_PORT}", cwd=tmp_path)
        assert echo.returncode == 0, echo.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    data = tmp_path / "pacs-data"
    assert "device pacs-console (embedded defaults)" in out
    assert f"AE DCM4CHEE on 0.0.0.0:{DEFAULT_PORT}" in out
    assert f"database sqlite:///{data / 'archive.db'}" in out
    assert f"storage fs1 at {data / 'fs1'}" in out
    assert (data / "archive.db").is_file()
    assert (data / "fs1").is_dir()


def test_echo_succeeds_against_a_running_archive(tmp_path: Path, running: Archive) -> None:
    """`pacs-console echo DCM4CHEE@127.0.0.1:PORT` exits 0 and says who answered."""
    port = archive_port(running)
    result = pacs_console("echo", f"DCM4CHEE@127.0.0.1:{port}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"DCM4CHEE@127.0.0.1:{port} answered in ")
    assert not (tmp_path / "pacs-data").exists()


def test_echo_to_an_unknown_called_ae_fails_with_the_reason(
    tmp_path: Path, running: Archive
) -> None:
    """A called AE title the archive does not serve: exit 1, the rejection reason."""
    port = archive_port(running)
    result = pacs_console("echo", f"NOBODY@127.0.0.1:{port}", cwd=tmp_path)
    assert result.returncode == 1
    assert "rejected the association permanently: called AE title not recognised" in (result.stderr)


def test_echo_to_a_closed_port_fails_with_the_reason(tmp_path: Path) -> None:
    """Nothing listens: exit 1, the connection error."""
    port = free_port()
    result = pacs_console("echo", f"DCM4CHEE@127.0.0.1:{port}", cwd=tmp_path)
    assert result.returncode == 1
    assert f"cannot connect to 127.0.0.1:{port}: Connection refused" in result.stderr


@pytest.mark.parametrize(
    "peer",
    ["DCM4CHEE", "DCM4CHEE@127.0.0.1", "DCM4CHEE@127.0.0.1:port", "@127.0.0.1:104", "A@h:99999"],
)
def test_echo_with_a_malformed_peer_is_a_usage_error(tmp_path: Path, peer: str) -> None:
    """A peer argument that is not AET@HOST:PORT: exit 2, one line quoting it."""
    assert_refused(pacs_console("echo", peer, cwd=tmp_path), repr(peer), "AET@HOST:PORT")


def test_dcmtk_echoscu_reaches_the_archive(running: Archive, dcmtk) -> None:
    """DCMTK's `echoscu -aec DCM4CHEE` gets an answer; with an unknown called AE title it
    reports the rejection."""
    port = str(archive_port(running))
    echoscu = dcmtk("echoscu")
    ok = subprocess.run(
        [echoscu, "-aec", "DCM4CHEE", "127.0.0.1", port],
        env=dcmtk_env(),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert ok.returncode == 0, ok.stderr
    rejected = subprocess.run(
        [echoscu, "-aec", "NOBODY", "127.0.0.1", port],
        env=dcmtk_env(),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert rejected.returncode != 0
    assert "Called AE Title Not Recognized" in rejected.stderr


def test_console_script_is_installed() -> None:
    """`pip install .` puts the `pacs-console` entry point beside the interpreter."""
    script = Path(sys.executable).parent / "pacs-console"
    result = subprocess.run(
        [str(script), "--help"], capture_output=True, text=True, timeout=60, check=True
    )
    assert "serve" in result.stdout
    assert "echo" in result.stdout
