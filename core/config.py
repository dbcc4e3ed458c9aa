"""Load and validate config.toml (see config.toml.example for every setting).

Every problem becomes a ConfigError whose message is one line naming the file, the key
and the value, so that the command line can print it and exit with status 2.
"""

from __future__ import annotations

import logging
import os
import threading
import tomllib
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ByteSize,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

DEFAULT_PORT = 11112
DEFAULT_DATA_DIR = "pacs-data"


class ConfigError(Exception):
    """A configuration problem, described in one line."""


class View(StrEnum):
    """Query/retrieve views of dcm4chee: which instances (rejected or not) an AE shows."""

    REGULAR = "regular"
    AS_RECEIVED = "as_received"
    IOCM_QUALITY = "iocm_quality"
    IOCM_PAT_SAFETY = "iocm_pat_safety"
    IOCM_WRONG_MWL = "iocm_wrong_mwl"
    IOCM_EXPIRED = "iocm_expired"


class Service(StrEnum):
    """DIMSE services an archive AE can offer (Verification is always offered)."""

    STORAGE = "storage"
    QUERY = "query"
    RETRIEVE = "retrieve"


def _check_ae_title(value: str) -> str:
    # PS3.5 AE VR: at most 16 characters, no backslash or control characters, not blank.
    if not value.strip():
        raise ValueError("AE title must not be empty")
    if len(value) > 16:
        raise ValueError("AE title longer than 16 characters")
    if "\\" in value or any(ord(c) < 0x20 or ord(c) > 0x7E for c in value):
        raise ValueError("AE title has a backslash or a non-printable character")
    return value.strip()


AETitle = Annotated[str, AfterValidator(_check_ae_title)]
Port = Annotated[int, Field(ge=1, le=65535)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DeviceConfig(_Section):
    name: str = "pacs-console"


class DatabaseConfig(_Section):
    url: str = f"sqlite:///{DEFAULT_DATA_DIR}/archive.db"

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        if not value.startswith(("sqlite://", "postgresql")):
            raise ValueError("database url must start with sqlite:// or postgresql+psycopg://")
        return value


class StorageConfig(_Section):
    id: str = Field(default="fs1", min_length=1, max_length=64)
    path: str = f"{DEFAULT_DATA_DIR}/fs1"
    # dcm4chee's storage threshold: below this much free space objects are refused.
    min_free_space: ByteSize = ByteSize(1 << 30)


def _default_processes() -> int:
    return min(os.cpu_count() or 1, 4)


class NetworkConfig(_Section):
    # Worker processes serving associations (0: threads of the main process only).
    processes: int = Field(default_factory=_default_processes, ge=0, le=64)
    max_associations: int = Field(default=50, ge=1, le=10000)
    max_pdu_length: int = Field(default=1048576, ge=4096, le=67108864)
    acse_timeout: float = Field(default=30.0, gt=0)
    dimse_timeout: float = Field(default=60.0, gt=0)
    idle_timeout: float = Field(default=300.0, gt=0)
    # Connections of one serving process still to send their A-ASSOCIATE-RQ.
    max_pending_connections: int = Field(default=200, ge=1, le=100000)
    connect_timeout: float = Field(default=10.0, gt=0)


class LogConfig(_Section):
    level: str = "INFO"

    @field_validator("level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        if value.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError("log level must be DEBUG, INFO, WARNING or ERROR")
        return value.upper()


class ConsoleConfig(_Section):
    # Rows per page of the console's result tables (studies, patients...).
    page_size: int = Field(default=50, ge=1, le=1000)


class AEConfig(_Section):
    title: AETitle
    host: str = "0.0.0.0"
    port: Port = DEFAULT_PORT
    view: View = View.REGULAR
    services: tuple[Service, ...] = (Service.STORAGE, Service.QUERY, Service.RETRIEVE)


class RemoteAEConfig(_Section):
    title: AETitle
    host: str
    port: Port


class ExporterKind(StrEnum):
    DICOM = "dicom"
    STOW_RS = "stow-rs"


class ExporterConfig(_Section):
    """An exporter: C-STORE to a remote AE (kind dicom, destination = its AE title) or
    STOW-RS (destination = the base URL)."""

    id: str = Field(min_length=1)
    kind: ExporterKind
    destination: str = Field(min_length=1)


def _default_aes() -> tuple[AEConfig, ...]:
    return (AEConfig(title="DCM4CHEE"),)


class Config(_Section):
    """The whole configuration; relative paths are already resolved."""

    device: DeviceConfig = DeviceConfig()
    database: DatabaseConfig = DatabaseConfig()
    storage: StorageConfig = StorageConfig()
    network: NetworkConfig = NetworkConfig()
    log: LogConfig = LogConfig()
    console: ConsoleConfig = ConsoleConfig()
    ae: tuple[AEConfig, ...] = Field(default_factory=_default_aes, min_length=1)
    remote_ae: tuple[RemoteAEConfig, ...] = ()
    exporter: tuple[ExporterConfig, ...] = ()
    source: Path | None = Field(default=None, exclude=True)

    @model_validator(mode="after")
    def _unique_titles(self) -> Config:
        for section, items in (("ae", self.ae), ("remote_ae", self.remote_ae)):
            seen: set[str] = set()
            for i, item in enumerate(items):
                if item.title in seen:
                    raise ValueError(f"{section}[{i}].title: duplicate AE title {item.title!r}")
                seen.add(item.title)
        ids: set[str] = set()
        for i, exporter in enumerate(self.exporter):
            if exporter.id in ids:
                raise ValueError(f"exporter[{i}].id: duplicate exporter id {exporter.id!r}")
            ids.add(exporter.id)
            if exporter.kind == ExporterKind.DICOM and self.remote(exporter.destination) is None:
                raise ValueError(
                    f"exporter[{i}].destination: {exporter.destination!r} is not a remote_ae"
                )
        return self

    def archive_ae(self, title: str) -> AEConfig | None:
        """The archive AE with this title, if the device serves it."""
        return next((ae for ae in self.ae if ae.title == title), None)

    def remote(self, title: str) -> RemoteAEConfig | None:
        """The configured remote AE with this title, if any."""
        return next((r for r in self.remote_ae if r.title == title), None)


def _resolve_paths(raw: dict[str, Any], base: Path) -> dict[str, Any]:
    """Make relative storage and SQLite paths relative to `base` (the config file's folder)."""
    storage = dict(raw.get("storage") or {})
    path = Path(storage.get("path", StorageConfig().path))
    storage["path"] = str(path if path.is_absolute() else (base / path))
    raw["storage"] = storage
    database = dict(raw.get("database") or {})
    url = str(database.get("url", DatabaseConfig().url))
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/") and url != "sqlite://":
        rel = url[len(prefix) :]
        if rel and rel != ":memory:":
            url = prefix + str(base / rel)
    database["url"] = url
    raw["database"] = database
    return raw


def _one_line(error: ValidationError, source: str) -> str:
    errors = error.errors()
    # A failed item also fails its list's length check: count only the innermost problems.
    errors = [
        e
        for e in errors
        if not any(o is not e and o["loc"][: len(e["loc"])] == e["loc"] for o in errors)
    ]
    first = errors[0]
    loc = first["loc"]
    key = ""
    for part in loc:
        key += f"[{part}]" if isinstance(part, int) else (f".{part}" if key else str(part))
    more = len(errors) - 1
    tail = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    if first["type"] == "extra_forbidden":
        return f"{source}: {key}: unknown key{tail}"
    msg = first["msg"].removeprefix("Value error, ")
    if first["type"] == "missing":
        return f"{source}: {key}: required key is missing{tail}"
    if msg.startswith(("ae[", "remote_ae[", "exporter[")):
        return f"{source}: {msg}{tail}"
    return f"{source}: {key}: {msg} (value {first.get('input')!r}){tail}"


def parse(text: str, source: str = "config.toml", base: Path | None = None) -> Config:
    """Validate TOML text; relative paths are resolved against `base` (default: cwd)."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    raw = _resolve_paths(raw, base or Path.cwd())
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_one_line(exc, source)) from None


def load(path: str | Path | None) -> Config:
    """Load the config file at `path`, or the embedded defaults when `path` is None."""
    if path is None:
        return parse("", source="(embedded defaults)")
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read the config file: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{file}: cannot read the config file: not UTF-8 text") from None
    config = parse(text, source=str(file), base=file.resolve().parent)
    return config.model_copy(update={"source": file})


# Settings a running archive takes from a changed config file; all others need a restart.
RELOADABLE = frozenset({"remote_ae"})


def restart_needed(running: Config, saved: Config) -> list[str]:
    """The settings of `saved` that differ from the `running` archive's and take effect
    only after a restart (ports, AEs, database, storage...), as dotted keys: e.g.
    `["ae", "network.max_associations"]`."""
    now, then = running.model_dump(), saved.model_dump()
    changed = []
    for section in now.keys() | then.keys():
        if section in RELOADABLE or now.get(section) == then.get(section):
            continue
        old, new = now.get(section), then.get(section)
        if isinstance(old, dict) and isinstance(new, dict):
            changed += [
                f"{section}.{k}" for k in old.keys() | new.keys() if old.get(k) != new.get(k)
            ]
        else:
            changed.append(section)
    return sorted(changed)


class ConfigWatcher:
    """Follows the config file of a running archive: changes that are safe while running
    (remote AEs: move destinations and other peers) are applied through `apply`; the
    others are logged as needing a restart. Polls the file's modification time."""

    def __init__(
        self,
        current: Callable[[], Config],
        apply: Callable[[Config], None],
        interval: float = 2.0,
    ) -> None:
        self._current = current
        self._apply = apply
        self._interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        source = current().source
        self._path = source
        self._mtime = self._stat()

    def _stat(self) -> float | None:
        try:
            return self._path.stat().st_mtime if self._path else None
        except OSError:
            return None

    def start(self) -> None:
        if self._path is None:
            return
        self._thread = threading.Thread(target=self._run, name="config-watch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            mtime = self._stat()
            if mtime is not None and mtime != self._mtime:
                self._mtime = mtime
                self.check()

    def check(self) -> None:
        """Load the file now and apply what can be applied."""
        log = logging.getLogger("pacs")
        current = self._current()
        try:
            loaded = load(self._path)
        except ConfigError as exc:
            log.warning("config not reloaded: %s", exc)
            return
        pending = restart_needed(current, loaded)
        if pending:
            log.warning(
                "%s changed in settings that take effect after a restart: %s",
                self._path,
                ", ".join(pending),
            )
        if loaded.remote_ae != current.remote_ae:
            self._apply(current.model_copy(update={"remote_ae": loaded.remote_ae}))
            log.info("remote AEs reloaded from %s", self._path)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
