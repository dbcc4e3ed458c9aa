"""Faults of the real serving node running real exports (issue 14, outcome 9): `serve`
killed with SIGKILL while five export tasks run finishes them after its restart; two
`serve` nodes on one PostgreSQL drain 1,000 export tasks, each run exactly once.

Tasks are scheduled from the test process through core.services on the serving node's
config and database, as an attached console does. The target is a pynetdicom storage SCP
on 127.0.0.1 that counts what it receives per SOP Instance UID. (A target that is down,
retried with growing delays, is tests/core/test_outbound.py's.)
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pydicom import Dataset
from pydicom.uid import generate_uid

from core.archive import Archive
from core.config import load
from core.db.models import TaskStatus
from core.services import outbound, tasks
from core.services.context import ServiceContext
from core.services.tasks import TaskFilter, TaskRow
from tests import dicomgen
from tests.conftest import Served, dcmtk_env, free_port, listening_addresses, make_config_text
from tests.core.export_support import exporter, study_datasets
from tests.core.retrieve_support import Destination, remote_ae
from tests.core.store_support import store

HOST = socket.gethostname()


def node_config(tmp_path: Path, db_url: str, port: int, target: Destination, parallel: int) -> str:
    """A serving node on 127.0.0.1:`port` with the exporter TO_SCP to `target`, running
    up to `parallel` exports at once; every node of a test shares database and storage."""
    return make_config_text(
        tmp_path,
        db_url,
        port,
        remote_ae(target.title, target.port)
        + exporter("TO_SCP", "dicom", target.title)
        + f'\n[[queue]]\nname = "Export"\nmax_parallel = {parallel}\n'
        + "\n[network]\nprocesses = 1\n",
    )


def attach(node: Served) -> ServiceContext:
    """The node's database and storage, as an attached console opens them."""
    return Archive(load(node.config)).attach()


@pytest.fixture
def target() -> Iterator[Callable[..., Destination]]:
    """Start pynetdicom storage SCPs (Destination: `delay` seconds per C-STORE)."""
    started: list[Destination] = []

    def start(delay: float = 0.0) -> Destination:
        scp = Destination(title="STORESCP", delay=delay).start()
        assert scp.server is not None
        # 2 nodes x max_parallel associations, and those still being released.
        scp.server.ae.maximum_associations = 32
        started.append(scp)
        return scp

    yield start
    for scp in started:
        scp.stop()


def received(scp: Destination) -> Counter[str]:
    """How many times each SOP Instance UID reached the target."""
    return Counter(r.dataset.SOPInstanceUID for r in list(scp.received))


def wait_until(predicate: Callable[[], object], timeout: float, what: str) -> None:
    """Poll `predicate` until it holds; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        time.sleep(0.05)


def batch_tasks(services: ServiceContext, batch: str) -> list[TaskRow]:
    """Every task of `batch`."""
    return tasks.page(services, TaskFilter(batch_id=batch), limit=100_000)


@pytest.mark.timeout(120)
def test_serve_killed_while_five_exports_run_finishes_them_after_restart(
    db_url: str, tmp_path: Path, serve: Callable[..., Served], target: Callable[..., Destination]
) -> None:
    """SIGKILL of `serve` while its five export tasks are IN PROCESS, part sent: started
    again on the same config, it schedules them again at once (their node is a gone
    process of this host and device) and each completes; every instance of the five
    studies is then at the target."""
    scp = target(delay=0.2)  # slow on purpose: the five tasks are surely mid-way
    port = free_port()
    config = node_config(tmp_path, db_url, port, scp, parallel=5)
    first = serve(config, port)
    services = attach(first)
    try:
        studies = [study_datasets(2, 4) for _ in range(5)]
        for ds in (ds for datasets in studies for ds in datasets):
            store(services, ds)
        batch, pks = outbound.schedule_export(
            services, "TO_SCP", [outbound.Entity(d[0].StudyInstanceUID) for d in studies]
        )
        study_of = {ds.SOPInstanceUID: ds.StudyInstanceUID for d in studies for ds in d}

        def all_five_mid_way() -> bool:
            arrived = {study_of[uid] for uid in received(scp)}
            running = [t for t in batch_tasks(services, batch) if t.status == "IN PROCESS"]
            return len(arrived) == 5 and len(running) == 5

        wait_until(all_five_mid_way, 20, "five exports IN PROCESS, each with instances sent")
        first.proc.kill()
        first.stop()  # reaps it: its pid is gone, as after a crash
        sent_before = sum(received(scp).values())
        assert sent_before < 40
        killed = batch_tasks(services, batch)
        assert {t.status for t in killed} == {TaskStatus.IN_PROCESS}
        assert {t.claimed_by for t in killed} == {f"pacs-console@{HOST}:{first.proc.pid}"}
        # Its serving process closes the listening socket once it sees its parent gone.
        wait_until(lambda: not listening_addresses(port), 10, f"port {port} released")

        second = serve(config, port)
        # Well within the 60 s lease: the restart recovery, not a lease, runs them again.
        wait_until(
            lambda: all(t.status == "COMPLETED" for t in batch_tasks(services, batch)),
            30,
            "the five exports COMPLETED after the restart",
        )
        done = batch_tasks(services, batch)
        assert sorted(t.pk for t in done) == sorted(pks)
        for task in done:
            assert task.claimed_by == f"pacs-console@{HOST}:{second.proc.pid}"
            assert (task.completed, task.failed, task.num_failures) == (8, 0, 0)
            assert task.outcome_message == "8 of 8 instances exported to STORESCP"
        # Nothing lost: every instance is at the target. Those sent before the kill are
        # sent again by the task's second run, which exports its whole study: duplicates
        # at the target are expected (C-STORE of the same instance again is what dcm4chee
        # does too when it runs an interrupted export task again).
        counts = received(scp)
        assert set(counts) == set(study_of)
        assert max(counts.values()) <= 2
        assert second.stop()[0] == 0
    finally:
        services.db.dispose()


@pytest.mark.timeout(180)
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_two_nodes_on_postgresql_run_each_of_1000_export_tasks_once(
    db_url: str,
    tmp_path: Path,
    serve: Callable[..., Served],
    target: Callable[..., Destination],
    dcmtk: Callable[[str], str],
) -> None:
    """Two `serve` nodes (one device, one database, one storage) drain a batch of 1,000
    export tasks of one instance each: every task COMPLETED, every instance received
    exactly once, and both nodes ran tasks (a done task's row names its node)."""
    scp = target()
    ports = [free_port(), free_port()]
    nodes = [serve(node_config(tmp_path, db_url, p, scp, parallel=4), p) for p in ports]
    folder = tmp_path / "instances"
    datasets = many_instances(folder, studies=4, per_study=250)
    started = time.monotonic()
    subprocess.run(
        [dcmtk("storescu"), "-aec", "DCM4CHEE", "127.0.0.1", str(ports[0]), "+sd", str(folder)],
        env=dcmtk_env(),
        check=True,
        capture_output=True,
    )
    stored_in = time.monotonic() - started
    services = attach(nodes[0])
    try:
        entities = [
            outbound.Entity(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
            for ds in datasets
        ]
        started = time.monotonic()
        batch, pks = outbound.schedule_export(services, "TO_SCP", entities)
        assert len(pks) == 1000
        completed = TaskFilter(batch_id=batch, status=TaskStatus.COMPLETED)
        wait_until(lambda: tasks.count(services, completed) == 1000, 120, "1,000 COMPLETED")
        drained_in = time.monotonic() - started
        done = batch_tasks(services, batch)
        assert len(done) == 1000
        assert all(t.num_failures == 0 and t.completed == 1 for t in done)
        counts = received(scp)
        assert counts == Counter({ds.SOPInstanceUID: 1 for ds in datasets})
        by_node = Counter(t.claimed_by for t in done)
        assert set(by_node) == {f"pacs-console@{HOST}:{n.proc.pid}" for n in nodes}
        print(
            f"\n1,000 instances stored in {stored_in:.1f} s; 1,000 export tasks drained by "
            f"2 nodes in {drained_in:.1f} s ({1000 / drained_in:.0f} tasks/s); "
            f"per node: {sorted(by_node.values())}"
        )
    finally:
        services.db.dispose()


def many_instances(folder: Path, studies: int, per_study: int) -> list[Dataset]:
    """`studies` x `per_study` small CT instances (one series per study), written into
    `folder`."""
    out = []
    for s in range(studies):
        study_uid, series_uid = generate_uid(), generate_uid()
        for i in range(per_study):
            ds = dicomgen.ct(study_uid, series_uid, size=8, InstanceNumber=i + 1, seed=s)
            dicomgen.save(ds, folder / f"{s}-{i}.dcm")
            out.append(ds)
    return out
