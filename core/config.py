"""Load and validate config.toml (see config.toml.example for every setting).

Every problem becomes a ConfigError whose message is one line naming the file, the key
and the value, so that the command line can print it and exit with status 2.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import tomllib
from collections.abc import Callable
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ByteSize,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydicom.datadict import keyword_dict

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
    # Storage Commitment Push Model: N-ACTION as SCP, N-EVENT-REPORT as SCU.
    STGCMT = "stgcmt"
    # Modality Worklist C-FIND.
    MWL = "mwl"
    # Modality Performed Procedure Step N-CREATE/N-SET.
    MPPS = "mpps"
    # Unified Procedure Step Push, Pull, Watch and Event.
    UPS = "ups"


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
    services: tuple[Service, ...] = (
        Service.STORAGE,
        Service.QUERY,
        Service.RETRIEVE,
        Service.STGCMT,
        Service.MPPS,
    )


class RemoteAEConfig(_Section):
    title: AETitle
    host: str
    port: Port


class WebAuth(StrEnum):
    """How a DICOMweb peer is authenticated."""

    NONE = "none"
    BASIC = "basic"
    BEARER = "bearer"


class WebAppConfig(_Section):
    """A DICOMweb peer (a STOW-RS export target): its base URL (the STOW-RS service is
    `{url}/studies`) and how to authenticate."""

    name: str = Field(min_length=1)
    url: str
    auth: WebAuth = WebAuth.NONE
    username: str = ""
    password: str = ""
    token: str = ""
    # Verify the peer's TLS certificate (https URLs); false accepts any certificate.
    tls_verify: bool = True

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("web app url must start with http:// or https://")
        return value.rstrip("/")


class ExporterKind(StrEnum):
    DICOM = "dicom"
    STOW_RS = "stow-rs"


class ExporterConfig(_Section):
    """An exporter: C-STORE to a remote AE (kind dicom, destination = its AE title) or
    STOW-RS to a web app (kind stow-rs, destination = its name)."""

    id: str = Field(min_length=1)
    kind: ExporterKind
    destination: str = Field(min_length=1)
    # The archive AE that calls the destination ("" = the first [[ae]]), as dcm4chee's
    # exporter "AE Title".
    ae_title: str = ""
    # Remote AE asked for storage commitment after each export ("" = none).
    stgcmt_scp: str = ""
    # Remote AEs sent an Instance Availability Notification after each export.
    ian_destinations: tuple[str, ...] = ()


class QueueName(StrEnum):
    """dcm4chee's queues: the work of each kind of task is queued in one of these."""

    EXPORT = "Export"
    RETRIEVE = "Retrieve"
    STGCMT_SCP = "StgCmtSCP"
    STGCMT_SCU = "StgCmtSCU"
    IAN_SCU = "IANSCU"
    MPPS_SCU = "MPPSSCU"
    DIFF_TASKS = "DiffTasks"
    STGVER_TASKS = "StgVerTasks"
    REJECTION = "Rejection"
    # Not dcm4chee's: an attached console's C-ECHO, sent by the serving node.
    VERIFICATION = "Verification"
    # Not dcm4chee's (it sends them at once): the N-EVENT-REPORTs of UPS work items to
    # their subscribers.
    UPS_EVENT = "UPSEventSCU"


_ISO_DURATION = re.compile(r"P(?=\d|T\d)(\d+(\.\d+)?[YMWD])*(T(\d+(\.\d+)?[HMS])+)?")


def _check_duration(value: Any) -> Any:
    # pydantic reads ISO 8601 durations (and others): accept only those, said plainly.
    if isinstance(value, int | float) or (
        isinstance(value, str) and not _ISO_DURATION.fullmatch(value)
    ):
        raise ValueError("not an ISO 8601 duration such as PT30S, PT0.5S, PT10M or P1D")
    return value


# ISO 8601 durations ("PT30S", "PT0.5S", "P1D"), read by pydantic as a timedelta.
Duration = Annotated[timedelta, BeforeValidator(_check_duration)]


class QueueConfig(_Section):
    """A queue's settings; the defaults are dcm4chee's for every queue."""

    name: QueueName
    max_parallel: int = Field(default=1, ge=1, le=1000)
    max_retries: int = Field(default=10, ge=0)
    retry_delay: Duration = timedelta(seconds=30)
    # Percent: each retry waits this much of the previous delay.
    retry_delay_multiplier: int = Field(default=200, ge=0)
    max_retry_delay: Duration = timedelta(minutes=10)
    # COMPLETED tasks are deleted after this long (the others stay until deleted).
    purge_completed_after: Duration = timedelta(days=1)
    paused: bool = False


# Where a queue's defaults are not the common ones: a C-ECHO is asked for by someone
# waiting for its answer, several at once, and is not tried again.
QUEUE_DEFAULTS: dict[QueueName, dict[str, int]] = {
    QueueName.VERIFICATION: {"max_parallel": 4, "max_retries": 0},
}


class ExportEntity(StrEnum):
    """What one task of an export rule exports (dcm4chee's Entity of an export rule)."""

    STUDY = "study"
    SERIES = "series"
    INSTANCE = "instance"


class ExportRuleConfig(_Section):
    """An export rule: objects received that meet `conditions` (attribute keyword ->
    regular expression matching a whole value; a leading ! negates) are exported by each
    of `exporters`, one task per `entity`; objects of that entity arriving within `delay`
    join the scheduled task. `aes` limits the rule to objects received by these archive
    AEs (empty: all)."""

    name: str = Field(min_length=1)
    entity: ExportEntity = ExportEntity.STUDY
    exporters: tuple[str, ...] = Field(min_length=1)
    conditions: dict[str, str] = Field(default_factory=dict)
    delay: Duration = timedelta(0)
    aes: tuple[str, ...] = ()


class SPSStatus(StrEnum):
    """Scheduled Procedure Step Status (0040,0020) values dcm4chee keeps."""

    SCHEDULED = "SCHEDULED"
    ARRIVED = "ARRIVED"
    READY = "READY"
    STARTED = "STARTED"
    DEPARTED = "DEPARTED"
    CANCELED = "CANCELED"
    DISCONTINUED = "DISCONTINUED"
    COMPLETED = "COMPLETED"


class MWLConfig(_Section):
    """The Modality Worklist: items whose SPS status is in `hide_statuses` are not
    returned to a query that does not ask for a status (dcm4chee's default)."""

    hide_statuses: tuple[SPSStatus, ...] = (
        SPSStatus.STARTED,
        SPSStatus.DEPARTED,
        SPSStatus.CANCELED,
        SPSStatus.DISCONTINUED,
        SPSStatus.COMPLETED,
    )


class HL7Config(_Section):
    """The HL7 v2 listener (MLLP): ADT updates patients, ORM/OMI orders the worklist."""

    host: str = "0.0.0.0"
    # 0: no HL7 listener.
    port: int = Field(default=2575, ge=0, le=65535)


class MPPSConfig(_Section):
    """Modality Performed Procedure Steps: every N-CREATE and N-SET kept is forwarded,
    as received, to `forward_destinations` (remote AEs; dcm4chee's
    dcmFwdMppsDestination), through the MPPSSCU queue."""

    forward_destinations: tuple[str, ...] = ()


class IANConfig(_Section):
    """Instance Availability Notifications of every received study, to `destinations`
    (remote AEs), `delay` after the last object of the study arrived."""

    destinations: tuple[str, ...] = ()
    delay: Duration = timedelta(minutes=1)


# -- UPS processing (issue 15, part "upsexport"): export via UPS work items --


class WorkitemCode(StrEnum):
    """dcm4chee's Scheduled Workitem Codes (scheme 99DCM4CHEE) of the work items its UPS
    processors carry out: C-STORE, C-MOVE, storage commitment request, IAN."""

    DICOM_EXPORT = "DICOM_EXPORT"
    DICOM_RETRIEVE = "DICOM_RETRIEVE"
    REQUEST_STGCMT = "REQUEST_STGCMT"
    SEND_IAN = "SEND_IAN"


class UPSPriority(StrEnum):
    """Scheduled Procedure Step Priority (0074,1200) of a work item."""

    HIGH = "HIGH"
    MEDIUM = "MEDIUM"
    LOW = "LOW"


class UPSProcessingRuleConfig(_Section):
    """A UPS processing rule (dcm4chee's UPSProcessingRule): every `polling_interval`,
    SCHEDULED work items due now with `scheduled_workitem_code` (and the station name and
    labels given) are claimed, at most `max_parallel` at a time, by the archive AE
    `ae_title` and carried out as a task of the queue of their kind. `destination` is the
    AE of the processor URI (dcm4chee's `storescu:STORESCP`): the work item's Destination
    AE (Output Destination Sequence) takes precedence. A work item that fails is CANCELED;
    up to `max_retries` times a replacement is scheduled `retry_delay` later."""

    id: str = Field(min_length=1)
    scheduled_workitem_code: WorkitemCode
    destination: str = ""
    ae_title: str = ""
    scheduled_station_name: str = ""
    procedure_step_label: str = ""
    worklist_label: str = ""
    max_parallel: int = Field(default=1, ge=1, le=100)
    polling_interval: Duration = timedelta(minutes=1)
    # A failed work item is replaced by a new SCHEDULED one this many times at most.
    max_retries: int = Field(default=0, ge=0)
    retry_delay: Duration = timedelta(minutes=1)
    # Percent: each replacement waits this much of the previous delay.
    retry_delay_multiplier: int = Field(default=100, ge=0)


class IncludeInputInformation(StrEnum):
    """dcm4chee's UPSOnStore.IncludeInputInformation: whether a stored object is added to
    the work item of its rule, and what happens once that one is no longer SCHEDULED."""

    NO = "NO"
    SINGLE = "SINGLE"
    APPEND = "APPEND"
    SINGLE_OR_CREATE = "SINGLE_OR_CREATE"
    APPEND_OR_CREATE = "APPEND_OR_CREATE"


class UPSScope(StrEnum):
    """Scope of Accumulation (DCM 113705) of a work item created on store: what of its
    input a processor acts on ("" = the instances referenced)."""

    NONE = ""
    STUDY = "study"
    SERIES = "series"


_FORMAT_FIELD = re.compile(r"\{([^{}]*)\}")


class UPSOnStoreConfig(_Section):
    """A UPS on store rule (dcm4chee's UPSOnStore): an object received that meets
    `conditions` (as an export rule's) makes a SCHEDULED work item, whose UID is derived
    from `instance_uid_based_on_name` (keywords in braces, with the rule's id), or is
    added to it as input information while it is SCHEDULED (postponing its start to
    `start_delay` after the last object)."""

    id: str = Field(min_length=1)
    conditions: dict[str, str] = Field(default_factory=dict)
    aes: tuple[str, ...] = ()
    scheduled_workitem_code: WorkitemCode
    destination: str = ""
    scheduled_station_name: str = ""
    procedure_step_label: str = ""
    worklist_label: str = ""
    priority: UPSPriority = UPSPriority.MEDIUM
    start_delay: Duration = timedelta(0)
    include_input_information: IncludeInputInformation = IncludeInputInformation.APPEND
    instance_uid_based_on_name: str = "{StudyInstanceUID}"
    scope_of_accumulation: UPSScope = UPSScope.NONE

    @field_validator("instance_uid_based_on_name")
    @classmethod
    def _keywords(cls, value: str) -> str:
        for keyword in _FORMAT_FIELD.findall(value):
            if keyword_dict.get(keyword) is None:
                raise ValueError(f"{{{keyword}}} is not a DICOM attribute keyword")
        return value


def _check_condition(key: str, pattern: str) -> str | None:
    """What is wrong with one condition of an export rule, or None."""
    if keyword_dict.get(key) is None:
        return "not a DICOM attribute keyword"
    try:
        re.compile(pattern.removeprefix("!"))
    except re.error as exc:
        return f"not a regular expression ({exc})"
    return None


def _default_aes() -> tuple[AEConfig, ...]:
    # dcm4chee's default archive AEs: images on DCM4CHEE, worklists on WORKLIST.
    return (
        AEConfig(title="DCM4CHEE"),
        AEConfig(title="WORKLIST", services=(Service.MWL, Service.MPPS, Service.UPS)),
    )


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
    web_app: tuple[WebAppConfig, ...] = ()
    exporter: tuple[ExporterConfig, ...] = ()
    queue: tuple[QueueConfig, ...] = ()
    export_rule: tuple[ExportRuleConfig, ...] = ()
    ian: IANConfig = IANConfig()
    mpps: MPPSConfig = MPPSConfig()
    mwl: MWLConfig = MWLConfig()
    hl7: HL7Config = HL7Config()
    ups_processing_rule: tuple[UPSProcessingRuleConfig, ...] = ()
    ups_on_store: tuple[UPSOnStoreConfig, ...] = ()
    source: Path | None = Field(default=None, exclude=True)

    @model_validator(mode="after")
    def _unique_titles(self) -> Config:
        for section, items in (("ae", self.ae), ("remote_ae", self.remote_ae)):
            seen: set[str] = set()
            for i, item in enumerate(items):
                if item.title in seen:
                    raise ValueError(f"{section}[{i}].title: duplicate AE title {item.title!r}")
                seen.add(item.title)
        names: set[str] = set()
        for i, app in enumerate(self.web_app):
            if app.name in names:
                raise ValueError(f"web_app[{i}].name: duplicate web app name {app.name!r}")
            names.add(app.name)
            # Named here, not in WebAppConfig: the one-line error must not echo a password.
            if app.auth == WebAuth.BASIC and not app.username:
                raise ValueError(f"web_app[{i}].username: auth basic needs a username")
            if app.auth == WebAuth.BEARER and not app.token:
                raise ValueError(f"web_app[{i}].token: auth bearer needs a token")
        ids: set[str] = set()
        for i, exporter in enumerate(self.exporter):
            if exporter.id in ids:
                raise ValueError(f"exporter[{i}].id: duplicate exporter id {exporter.id!r}")
            ids.add(exporter.id)
            self._check_exporter(i, exporter)
        queues: set[str] = set()
        for i, queue in enumerate(self.queue):
            if queue.name in queues:
                raise ValueError(f"queue[{i}].name: duplicate queue {queue.name.value!r}")
            queues.add(queue.name)
        rules: set[str] = set()
        for i, rule in enumerate(self.export_rule):
            if rule.name in rules:
                raise ValueError(f"export_rule[{i}].name: duplicate rule name {rule.name!r}")
            rules.add(rule.name)
            self._check_export_rule(i, rule)
        for title in self.ian.destinations:
            if self.remote(title) is None:
                raise ValueError(f"ian.destinations: {title!r} is not a remote_ae")
        for title in self.mpps.forward_destinations:
            if self.remote(title) is None:
                raise ValueError(f"mpps.forward_destinations: {title!r} is not a remote_ae")
        self._check_ups_rules()
        return self

    def queues(self) -> dict[QueueName, QueueConfig]:
        """Every queue's settings: dcm4chee's defaults, overridden by `[[queue]]`."""
        given = {queue.name: queue for queue in self.queue}
        return {
            name: given.get(name) or QueueConfig(name=name, **QUEUE_DEFAULTS.get(name, {}))
            for name in QueueName
        }

    def _check_exporter(self, i: int, exporter: ExporterConfig) -> None:
        """Every peer an exporter names must be configured; the error names both."""
        named = f"(exporter {exporter.id!r})"
        if exporter.kind == ExporterKind.DICOM and self.remote(exporter.destination) is None:
            raise ValueError(
                f"exporter[{i}].destination: {exporter.destination!r} is not a remote_ae {named}"
            )
        if exporter.kind == ExporterKind.STOW_RS and self.web(exporter.destination) is None:
            raise ValueError(
                f"exporter[{i}].destination: {exporter.destination!r} is not a web_app {named}"
            )
        if exporter.ae_title and self.archive_ae(exporter.ae_title) is None:
            raise ValueError(
                f"exporter[{i}].ae_title: {exporter.ae_title!r} is not an archive ae {named}"
            )
        if exporter.stgcmt_scp and self.remote(exporter.stgcmt_scp) is None:
            raise ValueError(
                f"exporter[{i}].stgcmt_scp: {exporter.stgcmt_scp!r} is not a remote_ae {named}"
            )
        for title in exporter.ian_destinations:
            if self.remote(title) is None:
                raise ValueError(
                    f"exporter[{i}].ian_destinations: {title!r} is not a remote_ae {named}"
                )

    def _check_export_rule(self, i: int, rule: ExportRuleConfig) -> None:
        """Exporters and archive AEs must exist, conditions must be keyword = regex; the
        error names the rule, the key and the value."""
        named = f"(export rule {rule.name!r})"
        for exporter_id in rule.exporters:
            if self.exporter_by_id(exporter_id) is None:
                raise ValueError(
                    f"export_rule[{i}].exporters: {exporter_id!r} is not an exporter id {named}"
                )
        for title in rule.aes:
            if self.archive_ae(title) is None:
                raise ValueError(f"export_rule[{i}].aes: {title!r} is not an archive ae {named}")
        for key, pattern in rule.conditions.items():
            problem = _check_condition(key, pattern)
            if problem:
                raise ValueError(
                    f"export_rule[{i}].conditions.{key}: {problem} (value {pattern!r}) {named}"
                )

    def _check_ups_rules(self) -> None:
        """UPS processing and on-store rules: unique ids, AEs that exist (a retrieve's
        destination is an archive AE: the objects come here), conditions keyword =
        regex; the error names the rule, the key and the value."""
        ids: set[str] = set()
        for i, rule in enumerate(self.ups_processing_rule):
            where, named = f"ups_processing_rule[{i}]", f"(UPS processing rule {rule.id!r})"
            if rule.id in ids:
                raise ValueError(f"{where}.id: duplicate rule id {rule.id!r}")
            ids.add(rule.id)
            if rule.ae_title and self.archive_ae(rule.ae_title) is None:
                raise ValueError(
                    f"{where}.ae_title: {rule.ae_title!r} is not an archive ae {named}"
                )
            self._check_ups_destination(
                where, named, rule.scheduled_workitem_code, rule.destination
            )
        ids = set()
        for i, store in enumerate(self.ups_on_store):
            where, named = f"ups_on_store[{i}]", f"(UPS on store {store.id!r})"
            if store.id in ids:
                raise ValueError(f"{where}.id: duplicate rule id {store.id!r}")
            ids.add(store.id)
            for title in store.aes:
                if self.archive_ae(title) is None:
                    raise ValueError(f"{where}.aes: {title!r} is not an archive ae {named}")
            self._check_ups_destination(
                where, named, store.scheduled_workitem_code, store.destination
            )
            for key, pattern in store.conditions.items():
                problem = _check_condition(key, pattern)
                if problem:
                    raise ValueError(
                        f"{where}.conditions.{key}: {problem} (value {pattern!r}) {named}"
                    )

    def _check_ups_destination(
        self, where: str, named: str, code: WorkitemCode, destination: str
    ) -> None:
        if not destination:
            return
        if code == WorkitemCode.DICOM_RETRIEVE:
            if self.archive_ae(destination) is None:
                raise ValueError(
                    f"{where}.destination: {destination!r} is not an archive ae {named}"
                )
        elif self.remote(destination) is None:
            raise ValueError(f"{where}.destination: {destination!r} is not a remote_ae {named}")

    def ups_rule(self, rule_id: str) -> UPSProcessingRuleConfig | None:
        """The UPS processing rule with this id, if any."""
        return next((r for r in self.ups_processing_rule if r.id == rule_id), None)

    def ups_on_store_rule(self, rule_id: str) -> UPSOnStoreConfig | None:
        """The UPS on store rule with this id, if any."""
        return next((r for r in self.ups_on_store if r.id == rule_id), None)

    def exporter_by_id(self, exporter_id: str) -> ExporterConfig | None:
        """The configured exporter with this id, if any."""
        return next((e for e in self.exporter if e.id == exporter_id), None)

    def web(self, name: str) -> WebAppConfig | None:
        """The configured web app with this name, if any."""
        return next((w for w in self.web_app if w.name == name), None)

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
    if msg.startswith(
        (
            *("ae[", "remote_ae[", "web_app[", "exporter[", "queue[", "export_rule[", "ian."),
            *("ups_processing_rule[", "ups_on_store["),
        )
    ):
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
# Peers and exporters are looked up when a connection or an export starts, export rules,
# UPS on store rules and IAN destinations when an object is stored, MPPS forward
# destinations at each MPPS, UPS processing rules at each of their polls.
RELOADABLE = frozenset(
    {
        "remote_ae",
        "web_app",
        "exporter",
        "export_rule",
        "ian",
        "mpps",
        "ups_processing_rule",
        "ups_on_store",
    }
)


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
    (remote AEs, web apps, exporters, export rules and IAN) are applied through `apply`; the
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
        reloaded = {
            key: getattr(loaded, key)
            for key in sorted(RELOADABLE)
            if getattr(loaded, key) != getattr(current, key)
        }
        if reloaded:
            # Together: a new exporter may name a remote AE or web app added with it.
            self._apply(current.model_copy(update=reloaded))
            log.info("%s reloaded from %s", ", ".join(reloaded), self._path)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
