"""HL7 orders into the worklist: ORM^O01 NW messages per second over MLLP into MWL items,
on `pacs-console serve` with SQLite and with PostgreSQL. Each message is a new order of a
new patient (patient created, MWL item created, ACK AA awaited before the next message of
that connection): first N messages over one connection in sequence, then N more over 4
connections in parallel (N/4 each). The client is python-hl7's asyncio MLLP client. The
MWL items are counted afterwards (every order must be there).

No reference is measured beside it: no other HL7 receiver that writes a worklist is
installed on this machine (dcm4chee-arc itself is not).

    python bench/hl7_orders.py [--messages N] [--postgres URL]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import hl7
from common import OUT, Peer, free_port, fresh_schema, start_archive
from hl7.mllp import open_hl7_connection
from sqlalchemy import create_engine, text

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
MODALITIES = ("CT", "MR", "CR", "US")


def order(run: str, n: int) -> hl7.Message:
    """ORM^O01 NW/SC: a new patient and one scheduled step, every ID given."""
    modality = MODALITIES[n % len(MODALITIES)]
    ids = f"{run}{n:06d}"
    obr = ["OBR", "1", f"PL{ids}", f"FI{ids}", "P1^Procedure^L^PR1^Protocol^L"]
    obr += [""] * 13 + [f"A{ids}", f"RP{ids}", f"S{ids}", "", "", "", modality]
    segments = [
        f"MSH|^~\\&|RIS|HOSP|PACS|HOSP|20260101120000||ORM^O01^ORM_O01|{ids}|P|2.5",
        f"PID|1||P{ids}^^^HOSP||Bench^Patient{n}||19700101|F",
        "PV1|1|O",
        f"ORC|NW|PL{ids}|FI{ids}||SC||^^^20261205{8 + n % 10:02d}0000^^R",
        "|".join(obr),
        f"ZDS|1.2.826.0.1.3680043.10.543.{ord(run[0])}.{n + 1}^PACS^Application^DICOM",
    ]
    return hl7.parse("\r".join(segments))


async def _send_all(port: int, messages: list[hl7.Message]) -> None:
    """Send `messages` over one connection, each after the ACK of the one before."""
    reader, writer = await open_hl7_connection("127.0.0.1", port)
    try:
        for message in messages:
            writer.writemessage(message)
            await writer.drain()
            ack = await reader.readmessage()
            code = str(ack["MSA.F1"])
            if code != "AA":
                raise RuntimeError(f"message {message['MSH.F10']}: {code} {ack['MSA.F3']}")
    finally:
        writer.close()
        await writer.wait_closed()


async def _send(port: int, messages: list[hl7.Message], connections: int) -> float:
    """Seconds to send `messages` over `connections` parallel connections."""
    shares = [messages[i::connections] for i in range(connections)]
    start = time.perf_counter()
    await asyncio.gather(*(_send_all(port, share) for share in shares))
    return time.perf_counter() - start


def _items(db_url: str) -> int:
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT count(*) FROM mwl_item")).scalar_one())
    finally:
        engine.dispose()


def measure(name: str, db_url: str | None, messages: int) -> dict[str, float]:
    """Start an archive, send the orders, return {case: messages/s}."""
    workdir = OUT / "work" / f"hl7-{name}"
    hl7_port = free_port()
    extra = f'\n[hl7]\nhost = "127.0.0.1"\nport = {hl7_port}\n'
    peer: Peer = start_archive(workdir, db_url, extra)
    figures = {}
    try:
        for label, run, connections in (("1 connection", "S", 1), ("4 connections", "P", 4)):
            batch = [order(run, n) for n in range(messages)]
            seconds = asyncio.run(_send(hl7_port, batch, connections))
            figures[label] = messages / seconds
            print(f"  {name}, {label}: {messages} orders in {seconds:.1f} s")
    finally:
        peer.stop()
    url = db_url or f"sqlite:///{workdir / 'pacs-data' / 'archive.db'}"
    found = _items(url)
    if found != 2 * messages:
        raise RuntimeError(f"{name}: {found} MWL items, expected {2 * messages}")
    return figures


def run(messages: int, postgres: str = PG_URL) -> dict[str, dict[str, float]]:
    """Measure on SQLite, and on a fresh schema of `postgres` unless it is ''."""
    results = {"SQLite": measure("sqlite", None, messages)}
    if postgres:
        results["PostgreSQL"] = measure("postgresql", fresh_schema(postgres), messages)
    return results


def report(results: dict[str, dict[str, float]], messages: int) -> None:
    """Print messages/s per database and case."""
    print(f"\nHL7 ORM^O01 NW -> MWL items over MLLP, {messages} orders per case (messages/s)")
    cases = list(next(iter(results.values())))
    print(f"{'database':<12}" + "".join(f" | {case:>14}" for case in cases))
    for name, figures in results.items():
        print(f"{name:<12}" + "".join(f" | {figures[case]:>14.0f}" for case in cases))
    print("(no reference: no other HL7 order receiver is installed on this machine)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--postgres", default=PG_URL, help="PostgreSQL URL ('' to skip)")
    args = parser.parse_args()
    report(run(args.messages, args.postgres), args.messages)


if __name__ == "__main__":
    main()
