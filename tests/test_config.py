"""config.toml: the commented example, validation errors as one line, relative paths."""

from __future__ import annotations

import os
import tomllib
from datetime import timedelta
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
    ExportRuleConfig,
    QueueConfig,
    QueueName,
    RemoteAEConfig,
    UPSOnStoreConfig,
    UPSProcessingRuleConfig,
    WebAppConfig,
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
    defaults (so its 'default' comments cannot drift from the code); its [[queue]] sample
    shows the queue defaults."""
    copy = tmp_path / "config.toml"
    copy.write_text(EXAMPLE.read_text())
    example = load(copy)
    defaults = parse("", base=tmp_path)
    machine_dependent = {
        "remote_ae": True,
        "web_app": True,
        "exporter": True,
        "queue": True,
        "export_rule": True,
        "ups_processing_rule": True,
        "ups_on_store": True,
        "network": {"processes"},
    }
    assert example.model_dump(exclude=machine_dependent) == defaults.model_dump(
        exclude=machine_dependent
    )
    assert defaults.network.processes == min(os.cpu_count() or 1, 4)
    assert [r.title for r in example.remote_ae] == ["STORESCP"]
    assert [q.name for q in example.queue] == ["Export"]
    assert example.queues() == defaults.queues()


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
        elif name == "web_app":
            assert all(set(w) == _fields(WebAppConfig) for w in raw["web_app"])
        elif name == "exporter":
            assert all(set(e) == _fields(ExporterConfig) for e in raw["exporter"])
        elif name == "queue":
            assert all(set(q) == _fields(QueueConfig) for q in raw["queue"])
        elif name == "export_rule":
            assert all(set(r) == _fields(ExportRuleConfig) for r in raw["export_rule"])
        elif name == "ups_processing_rule":
            rules = raw["ups_processing_rule"]
            assert all(set(r) == _fields(UPSProcessingRuleConfig) for r in rules)
        elif name == "ups_on_store":
            assert all(set(r) == _fields(UPSOnStoreConfig) for r in raw["ups_on_store"])
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


_PEER = "[[remote_ae]]\ntitle = 'P'\nhost = 'h'\nport = 1\n"


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
        (
            "[[exporter]]\nid = 'X'\nkind = 'dicom'\ndestination = 'NOWHERE'\n",
            "exporter[0].destination: 'NOWHERE' is not a remote_ae (exporter 'X')",
        ),
        (
            "[[exporter]]\nid = 'W'\nkind = 'stow-rs'\ndestination = 'NOWEB'\n",
            "exporter[0].destination: 'NOWEB' is not a web_app (exporter 'W')",
        ),
        (
            f"{_PEER}[[exporter]]\nid = 'X'\nkind = 'dicom'\ndestination = 'P'\n"
            "stgcmt_scp = 'GONE'\n",
            "exporter[0].stgcmt_scp: 'GONE' is not a remote_ae (exporter 'X')",
        ),
        (
            f"{_PEER}[[exporter]]\nid = 'X'\nkind = 'dicom'\ndestination = 'P'\n"
            "ian_destinations = ['P', 'GONE']\n",
            "exporter[0].ian_destinations: 'GONE' is not a remote_ae (exporter 'X')",
        ),
        (
            f"{_PEER}[[exporter]]\nid = 'X'\nkind = 'dicom'\ndestination = 'P'\n"
            "ae_title = 'NOTOURS'\n",
            "exporter[0].ae_title: 'NOTOURS' is not an archive ae (exporter 'X')",
        ),
        (
            f"{_PEER}[[exporter]]\nid = 'X'\nkind = 'dicom'\ndestination = 'P'\n"
            "[[exporter]]\nid = 'X'\nkind = 'dicom'\ndestination = 'P'\n",
            "exporter[1].id: duplicate exporter id 'X'",
        ),
        ("[[web_app]]\nname = 'W'\nurl = 'ftp://h'\n", "web_app[0].url: "),
        (
            "[[web_app]]\nname = 'W'\nurl = 'http://h'\nauth = 'basic'\npassword = 'secret'\n",
            "web_app[0].username: auth basic needs a username",
        ),
        (
            "[[web_app]]\nname = 'W'\nurl = 'http://h'\nauth = 'bearer'\n",
            "web_app[0].token: auth bearer needs a token",
        ),
        ("[[web_app]]\nname = 'W'\nurl = 'http://h'\nauth = 'kerberos'\n", "web_app[0].auth: "),
        ("[[queue]]\nname = 'Exports'\n", "queue[0].name: Input should be 'Export'"),
        ("[[queue]]\nname = 'Exports'\n", "(value 'Exports')"),
        (
            "[[queue]]\nname = 'Export'\nretry_delay = '30s'\n",
            "queue[0].retry_delay: not an ISO 8601 duration such as PT30S",
        ),
        (
            "[[queue]]\nname = 'Export'\nmax_retry_delay = 600\n",
            "queue[0].max_retry_delay: not an ISO 8601 duration",
        ),
        ("[[queue]]\nname = 'Export'\nmax_parallel = 0\n", "queue[0].max_parallel: "),
        ("[[queue]]\nname = 'IANSCU'\nspeed = 1\n", "queue[0].speed: unknown key"),
        (
            "[[queue]]\nname = 'Export'\n[[queue]]\nname = 'Export'\n",
            "queue[1].name: duplicate queue 'Export'",
        ),
        (
            "[[ups_processing_rule]]\nid = 'R'\nscheduled_workitem_code = 'EXPORT'\n",
            "ups_processing_rule[0].scheduled_workitem_code: Input should be 'DICOM_EXPORT'",
        ),
        (
            "[[ups_processing_rule]]\nid = 'R'\nscheduled_workitem_code = 'DICOM_EXPORT'\n"
            "destination = 'GONE'\n",
            "ups_processing_rule[0].destination: 'GONE' is not a remote_ae"
            " (UPS processing rule 'R')",
        ),
        (
            f"{_PEER}[[ups_processing_rule]]\nid = 'R'\n"
            "scheduled_workitem_code = 'DICOM_RETRIEVE'\ndestination = 'P'\n",
            "ups_processing_rule[0].destination: 'P' is not an archive ae",
        ),
        (
            f"{_PEER}[mpps]\nforward_destinations = ['P', 'GONE']\n",
            "mpps.forward_destinations: 'GONE' is not a remote_ae",
        ),
        (
            "[[ups_processing_rule]]\nid = 'R'\nscheduled_workitem_code = 'SEND_IAN'\n"
            "[[ups_processing_rule]]\nid = 'R'\nscheduled_workitem_code = 'SEND_IAN'\n",
            "ups_processing_rule[1].id: duplicate rule id 'R'",
        ),
        (
            "[[ups_processing_rule]]\nid = 'R'\nscheduled_workitem_code = 'SEND_IAN'\n"
            "polling_interval = 60\n",
            "ups_processing_rule[0].polling_interval: not an ISO 8601 duration",
        ),
        (
            "[[ups_on_store]]\nid = 'S'\nscheduled_workitem_code = 'DICOM_EXPORT'\n"
            "conditions = { Modaliti = 'CT' }\n",
            "ups_on_store[0].conditions.Modaliti: not a DICOM attribute keyword",
        ),
        (
            "[[ups_on_store]]\nid = 'S'\nscheduled_workitem_code = 'DICOM_EXPORT'\n"
            "instance_uid_based_on_name = '{StudyUID}'\n",
            "ups_on_store[0].instance_uid_based_on_name: {StudyUID} is not a DICOM attribute",
        ),
        (
            "[[ups_on_store]]\nid = 'S'\nscheduled_workitem_code = 'DICOM_EXPORT'\n"
            "include_input_information = 'ALWAYS'\n",
            "ups_on_store[0].include_input_information: Input should be 'NO'",
        ),
    ],
)
def test_invalid_config_is_one_line_naming_file_and_key(text: str, expected: str) -> None:
    """Every validation problem is a ConfigError of one line: file, key, and (for a wrong
    value) the value itself."""
    with pytest.raises(ConfigError) as caught:
        parse(text, source="/etc/pacs/config.toml")
    message = str(caught.value)
    assert "\n" not in message
    assert "secret" not in message
    assert message.startswith("/etc/pacs/config.toml: ")
    assert expected in message


def test_exporters_and_web_apps_load() -> None:
    """A stow-rs exporter names a web app; a dicom exporter a remote AE, with its
    commitment SCP and IAN destinations."""
    config = parse(
        _PEER + "[[web_app]]\nname = 'WEB'\nurl = 'https://h/dicom-web/'\nauth = 'bearer'\n"
        "token = 't'\ntls_verify = false\n"
        "[[exporter]]\nid = 'S'\nkind = 'stow-rs'\ndestination = 'WEB'\n"
        "[[exporter]]\nid = 'D'\nkind = 'dicom'\ndestination = 'P'\nstgcmt_scp = 'P'\n"
        "ian_destinations = ['P']\nae_title = 'DCM4CHEE'\n"
    )
    web = config.web("WEB")
    assert web is not None and web.url == "https://h/dicom-web" and not web.tls_verify
    exporter = config.exporter_by_id("D")
    assert exporter is not None and exporter.ian_destinations == ("P",)
    assert config.exporter_by_id("nope") is None


def test_queue_settings_override_dcm4chees_defaults() -> None:
    """Every queue has dcm4chee's defaults; a [[queue]] table overrides those it sets,
    durations in ISO 8601 (fractions of a second allowed)."""
    queues = parse(
        "[[queue]]\nname = 'Retrieve'\nmax_parallel = 4\nretry_delay = 'PT0.5S'\n"
        "max_retry_delay = 'PT1H'\npurge_completed_after = 'P7D'\npaused = true\n"
    ).queues()
    assert [q.value for q in queues] == [
        "Export",
        "Retrieve",
        "StgCmtSCP",
        "StgCmtSCU",
        "IANSCU",
        "MPPSSCU",
        "DiffTasks",
        "StgVerTasks",
        "Rejection",
        "Verification",
        "UPSEventSCU",
    ]
    # Not dcm4chee's: an attached console's C-ECHO, several at once, never retried.
    verification = queues[QueueName.VERIFICATION]
    assert (verification.max_parallel, verification.max_retries) == (4, 0)
    retrieve = queues[QueueName.RETRIEVE]
    assert retrieve.max_parallel == 4 and retrieve.paused
    assert retrieve.retry_delay == timedelta(seconds=0.5)
    assert retrieve.max_retry_delay == timedelta(hours=1)
    assert retrieve.purge_completed_after == timedelta(days=7)
    assert retrieve.max_retries == 10 and retrieve.retry_delay_multiplier == 200
    export = queues[QueueName.EXPORT]
    assert (export.max_parallel, export.max_retries, export.retry_delay_multiplier) == (1, 10, 200)
    assert export.retry_delay == timedelta(seconds=30)
    assert export.max_retry_delay == timedelta(minutes=10)
    assert export.purge_completed_after == timedelta(days=1)
    assert not export.paused


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
    path.write_text(
        '[[ae]]\ntitle = "DCM4CHEE"\nport = 11112\n\n'
        '[[remote_ae]]\ntitle = "PEER"\nhost = "127.0.0.1"\nport = 104\n'
        '[[web_app]]\nname = "WEB"\nurl = "http://127.0.0.1:8042/dicom-web"\n'
        '[[exporter]]\nid = "FWD"\nkind = "stow-rs"\ndestination = "WEB"\n'
    )
    with caplog.at_level("INFO", logger="pacs"):
        watcher.check()
    assert current[0].web("WEB") is not None
    assert current[0].exporter_by_id("FWD") is not None
    assert any("exporter, web_app reloaded" in r.getMessage() for r in caplog.records)
    assert any("after a restart: ae" in r.getMessage() for r in caplog.records)
