"""The `pacs-console` command line.

`serve` and `echo` never import textual: a headless archive does not need it. The
console (`pacs-console`, `pacs-console console --attach`) imports it when it starts.
Exit status: 0 success, 1 a failed operation (echo), 2 bad usage, config or start-up.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import signal
import sys
import threading
from pathlib import Path

from core.config import Config, ConfigError, load

PROG = "pacs-console"
_PEER = re.compile(r"^(?P<aet>[^@]{1,16})@(?P<host>\[[^\]]+\]|[^:]+):(?P<port>\d{1,5})$")


def _fail(message: str, status: int = 2) -> int:
    print(f"{PROG}: {message}", file=sys.stderr)
    return status


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config",
        metavar="FILE",
        default=argparse.SUPPRESS,
        help="config.toml (default: embedded defaults, data under ./pacs-data)",
    )
    parser = argparse.ArgumentParser(
        prog=PROG, parents=[common], description="A DICOM archive with a terminal console."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("serve", parents=[common], help="run the archive headless until SIGTERM/SIGINT")
    echo = sub.add_parser(
        "echo", parents=[common], help="send C-ECHO to AET@HOST:PORT (exit 0 when it answers)"
    )
    echo.add_argument("peer", metavar="AET@HOST:PORT")
    echo.add_argument(
        "--calling-aet", default=None, help="our AE title (default: the first archive AE)"
    )
    console = sub.add_parser(
        "console", parents=[common], help="the console (the default command); see --attach"
    )
    console.add_argument(
        "--attach",
        action="store_true",
        help="open the database and storage of a running `serve` instead of starting one",
    )
    return parser


def _load(args: argparse.Namespace) -> Config:
    return load(getattr(args, "config", None))


def _describe(config: Config) -> str:
    lines = [f"device {config.device.name}" + ("" if config.source else " (embedded defaults)")]
    for ae in config.ae:
        services = ", ".join(s.value for s in ae.services)
        lines.append(f"  AE {ae.title} on {ae.host}:{ae.port} ({services}; view {ae.view.value})")
    if config.hl7.port:
        lines.append(f"  HL7 on {config.hl7.host}:{config.hl7.port} (MLLP)")
    workers = config.network.processes
    lines.append(
        f"  {workers} worker process{'es' if workers != 1 else ''} and an index writer"
        if workers
        else "  associations served by this process"
    )
    lines.append(f"  database {config.database.url}")
    lines.append(f"  storage {config.storage.id} at {config.storage.path}")
    return "\n".join(lines)


def _serve(config: Config) -> int:
    from core.archive import Archive
    from core.net.server import StartupError
    from core.serving import LOG_FORMAT

    logging.basicConfig(level=config.log.level, format=LOG_FORMAT, stream=sys.stderr)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    archive = Archive(config)
    try:
        archive.start()
    except StartupError as exc:
        return _fail(str(exc))
    print(f"{PROG} serving: {_describe(config)}", flush=True)
    stop.wait()
    logging.getLogger(PROG).info("stopping: finishing in-flight operations")
    archive.stop()
    logging.getLogger(PROG).info("stopped")
    return 0


def _log_to_file(config: Config) -> tuple[Path, int]:
    """In the console the terminal belongs to the UI: logs (and worker processes' stderr)
    go to pacs-console.log beside the storage folder. Returns the log's path and a
    descriptor of the terminal's stderr, for messages after the UI has ended."""
    path = Path(config.storage.path).resolve().parent / "pacs-console.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    terminal = os.dup(2)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 2)
    os.close(fd)
    from core.serving import LOG_FORMAT

    logging.basicConfig(level=config.log.level, format=LOG_FORMAT, stream=sys.stderr, force=True)
    return path, terminal


def _console(config: Config, attach: bool) -> int:
    from core.archive import Archive
    from core.net.server import StartupError

    archive = Archive(config)
    terminal = None
    try:
        if attach:
            archive.attach()
        else:
            log_path, terminal = _log_to_file(config)
            archive.start()
            logging.getLogger(PROG).info("serving: %s", _describe(config))
    except StartupError as exc:
        if terminal is not None:
            os.dup2(terminal, 2)
        return _fail(str(exc))
    assert archive.services is not None
    # Textual draws on sys.__stderr__: give it the terminal while fd 2 is the log.
    screen = sys.__stderr__
    if terminal is not None:
        sys.__stderr__ = os.fdopen(terminal, "w", closefd=False)
    try:
        # Imported once the archive runs (its serving processes never load textual), and
        # inside the try: a console that cannot load must still stop the archive.
        from tui.app import PacsConsole

        PacsConsole(archive.services, None if attach else archive).run()
    finally:
        if terminal is not None:
            # The screen is cleared: say why the terminal waits (running tasks and
            # transfers are given time to finish).
            stopping = f"{PROG}: stopping: finishing in-flight operations and tasks\n"
            os.write(terminal, stopping.encode())
        archive.stop()
        if terminal is not None:
            sys.__stderr__ = screen
            os.dup2(terminal, 2)
    if not attach:
        print(f"{PROG}: stopped; the log is {log_path}")
    return 0


def _echo(config: Config, args: argparse.Namespace) -> int:
    from core.services.verification import echo

    match = _PEER.match(args.peer)
    if not match or not 0 < int(match["port"]) < 65536:
        return _fail(f"peer {args.peer!r} is not AET@HOST:PORT")
    calling = args.calling_aet or config.ae[0].title
    if len(calling) > 16:
        return _fail(f"calling AE title {calling!r} is longer than 16 characters")
    result = echo(
        match["host"].strip("[]"), int(match["port"]), match["aet"], calling, config.network
    )
    print(
        result.detail if result.ok else f"{PROG}: C-ECHO failed: {result.detail}",
        file=sys.stdout if result.ok else sys.stderr,
    )
    return 0 if result.ok else 1


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `pacs-console` command."""
    args = _parser().parse_args(argv)
    try:
        config = _load(args)
    except ConfigError as exc:
        return _fail(str(exc))
    if args.command == "serve":
        return _serve(config)
    if args.command == "echo":
        return _echo(config, args)
    return _console(config, attach=getattr(args, "attach", False))


if __name__ == "__main__":
    sys.exit(main())
