"""C-STORE throughput: DCMTK storescu over 1 and 4 parallel associations, against
`pacs-console serve`, DCMTK's storescp writing to a folder (the raw limit of this machine)
and, when installed, Orthanc — in one run, side by side, as ratios.

    python bench/store_throughput.py [--small N] [--large N] [--postgres URL]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from common import (
    OUT,
    Peer,
    ct_series,
    fresh_schema,
    orthanc_binary,
    split,
    start_archive,
    start_orthanc,
    start_storescp,
    storescu,
)


def datasets(small: int, large: int) -> dict[str, list[Path]]:
    """Generated once per run: small = 64x64 CT, large = 512x512 16-bit CT."""
    return {
        f"{small} small (64x64)": ct_series(OUT / "data" / "small", small, 64, 10, 2),
        f"{large} large (512x512)": ct_series(OUT / "data" / "large", large, 512, 1, 2, seed=1),
    }


def run(
    peers: dict[str, Callable[[Path], Peer]], data: dict[str, list[Path]]
) -> list[tuple[str, int, dict[str, tuple[float, float]]]]:
    """For every data set and association count, a fresh start of every peer."""
    rows = []
    for label, paths in data.items():
        megabytes = sum(p.stat().st_size for p in paths) / 1e6
        for assocs in (1, 4):
            dirs = split(paths, assocs, OUT / "split")
            figures: dict[str, tuple[float, float]] = {}
            for name, start in peers.items():
                peer = start(OUT / "work" / name)
                try:
                    seconds = storescu(peer.port, peer.called, dirs)
                finally:
                    peer.stop()
                figures[name] = (len(paths) / seconds, megabytes / seconds)
                print(f"  {label}, {assocs} assoc, {name}: {len(paths) / seconds:7.0f} inst/s")
            rows.append((label, assocs, figures))
    return rows


def report(rows: list[tuple[str, int, dict[str, tuple[float, float]]]]) -> None:
    """Print the table: instances/s, MB/s and pacs-console's ratio to each reference."""
    names = list(rows[0][2])
    print()
    head = f"{'data set':24} {'assoc':>5}"
    for name in names:
        head += f" | {name + ' inst/s':>20} {'MB/s':>7}"
    head += " | ratios (pacs-console / reference)"
    print(head)
    for label, assocs, figures in rows:
        line = f"{label:24} {assocs:>5}"
        for name in names:
            inst, mb = figures[name]
            line += f" | {inst:>20.0f} {mb:>7.1f}"
        ours = figures["pacs-console"][0]
        ratios = ", ".join(f"{ours / figures[n][0]:.2f}x {n}" for n in names if n != "pacs-console")
        print(line + " | " + ratios)


def peers(postgres: str | None = None) -> dict[str, Callable[[Path], Peer]]:
    """storescp, pacs-console (SQLite; also PostgreSQL when given) and Orthanc if installed."""
    found: dict[str, Callable[[Path], Peer]] = {
        "storescp": start_storescp,
        "pacs-console": start_archive,
    }
    if postgres:
        found["pacs-console (pg)"] = lambda w: start_archive(w, fresh_schema(postgres))
    if orthanc_binary():
        found["orthanc"] = start_orthanc
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=1000)
    parser.add_argument("--large", type=int, default=200)
    parser.add_argument("--postgres", metavar="URL", help="also measure on this PostgreSQL")
    args = parser.parse_args()
    print("C-STORE throughput (DCMTK storescu, TCP_NODELAY=1)")
    report(run(peers(args.postgres), datasets(args.small, args.large)))


if __name__ == "__main__":
    main()
