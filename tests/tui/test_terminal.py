"""`pacs-console` in a real terminal (a pseudo-terminal): the console draws on the
terminal while the archive's log (and its worker processes') goes to pacs-console.log,
ctrl+q stops both, and the last line names the log."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

from tests.conftest import free_port, make_config_text


def read_until(fd: int, needle: bytes, timeout: float = 30) -> bytes:
    """Terminal output up to and including `needle`."""
    seen = b""
    deadline = time.monotonic() + timeout
    while needle not in seen:
        left = deadline - time.monotonic()
        assert left > 0, f"{needle!r} never appeared; the terminal showed {seen[-2000:]!r}"
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            try:
                seen += os.read(fd, 65536)
            except OSError:  # the child closed the terminal
                break
    return seen


def start_console(tmp_path: Path, rows: int, columns: int) -> tuple[subprocess.Popen[bytes], int]:
    """`pacs-console` (archive in-process, one worker process) in a pseudo-terminal of
    `rows` x `columns` cells of 10x20 pixels; returns the process and the controller side."""
    port = free_port()
    config = tmp_path / "config.toml"
    url = f"sqlite:///{tmp_path / 'archive.db'}"
    config.write_text(make_config_text(tmp_path, url, port, "\n[network]\nprocesses = 1\n"))
    controller, terminal = pty.openpty()
    size = struct.pack("HHHH", rows, columns, columns * 10, rows * 20)
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, size)
    # A 256-colour terminal (no COLORTERM=truecolor), as many SSH sessions are.
    env = {k: v for k, v in os.environ.items() if k != "COLORTERM"}
    env["TERM"] = "xterm-256color"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tui.cli", "--config", str(config)],
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        cwd=tmp_path,
        env=env,
        start_new_session=True,
    )
    os.close(terminal)
    return proc, controller


def test_console_draws_on_the_terminal_and_logs_to_a_file(tmp_path: Path) -> None:
    proc, controller = start_console(tmp_path, 24, 80)
    try:
        screen = read_until(controller, b"Configuration")
        os.write(controller, b"\x11")  # ctrl+q; no association is open, so no question
        tail = read_until(controller, b"the log is")
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(controller)
    # Colours are drawn from the 256-colour palette, never as 24-bit RGB.
    assert b"[38;5;" in screen
    assert b"[38;2;" not in screen and b"[48;2;" not in screen
    tail = tail.replace(b"\r\n", b"")
    assert b"pacs-console: stopping: finishing in-flight operations and tasks" in tail
    assert str(tmp_path / "pacs-console.log").encode() in tail
    log = (tmp_path / "pacs-console.log").read_text()
    assert "index writer started" in log and "DCM4CHEE" in log


def test_console_starts_on_a_terminal_reporting_no_size(tmp_path: Path) -> None:
    """A terminal that reports 0x0 cells (textual-image would divide by the column
    count): the console draws (Textual assumes 80x25), runs and quits."""
    proc, controller = start_console(tmp_path, 0, 0)
    try:
        read_until(controller, b"Configuration")
        read_until(controller, b"no matches")  # the Studies list has been read
        # It reads keys too: `:patients` (typed in one burst) switches to the Patients tab.
        os.write(controller, b":patients\r")
        read_until(controller, b"Patient ID")
        os.write(controller, b"\x11")
        read_until(controller, b"the log is")
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(controller)
    assert "Traceback" not in (tmp_path / "pacs-console.log").read_text()
