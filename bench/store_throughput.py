"""C-STORE throughput: DCMTK storescu over 1 and 4 parallel associations, against
`pacs-console serve`, DCMTK's storescp writing to a folder (the raw limit of this machine)
and, when installed, Orthanc — in one run, side by side, as ratios.

    python bench/store_throughput.py [--small N] [--large N] [--postgres URL] [--repeat N]
                                     [--baseline CHECKOUT] [--rules]

`--baseline` also measures the archive of another checkout (e.g. a `git worktree` of the
previous commit) in the same rounds, so a change's effect shows as a ratio of one run.
`--rules` also measures the archive with an export rule and an [ian] destination that
every object meets (their tasks due in an hour: the cost on the store path is measured).
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from statistics import median

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


Figures = dict[str, tuple[float, float]]


# ext4 without a journal (this VM's root filesystem) will not reuse an inode freed in the
# last 30 s: allocating a new one scans past every such inode, so creating files right
# after a mass delete costs several times the kernel CPU (perf: `recently_deleted`).
RECENTLY_DELETED_S = 31


def clear(workdir: Path) -> None:
    """Remove what an earlier run left, and wait until ext4 reuses its inodes again."""
    if workdir.exists():
        shutil.rmtree(workdir)
        time.sleep(RECENTLY_DELETED_S)


def settle() -> None:
    """Write out everything still in the page cache: the writeback a peer leaves behind
    (storescp never syncs) would otherwise be paid by the next peer measured."""
    os.sync()


def run(
    peers: dict[str, Callable[[Path], Peer]], data: dict[str, list[Path]], repeat: int = 3
) -> list[tuple[str, int, Figures, list[float]]]:
    """For every data set and association count, `repeat` rounds of a fresh start of every
    peer in turn: the figures are each peer's median, and pacs-console's ratio to the first
    peer (storescp) is also kept per round, since this machine's speed drifts between
    runs and a round measures both within seconds."""
    rows = []
    work = OUT / "work" / "store"
    clear(work)
    for n, (label, paths) in enumerate(data.items()):
        megabytes = sum(p.stat().st_size for p in paths) / 1e6
        for assocs in (1, 4):
            dirs = split(paths, assocs, work / "split" / f"{n}-{assocs}")
            seconds: dict[str, list[float]] = {name: [] for name in peers}
            for round_ in range(repeat):
                for name, start in peers.items():
                    settle()
                    # Files are only deleted at the end of the run (see RECENTLY_DELETED_S).
                    peer = start(work / f"{name}-{len(paths)}-{assocs}-{round_}")
                    try:
                        seconds[name].append(storescu(peer.port, peer.called, dirs))
                    finally:
                        peer.stop()
                    rate = len(paths) / seconds[name][-1]
                    print(f"  {label}, {assocs} assoc, {name}: {rate:7.0f} inst/s")
            reference = next(iter(peers))
            ratios = [
                ref / ours
                for ref, ours in zip(seconds[reference], seconds["pacs-console"], strict=True)
            ]
            figures = {
                name: (len(paths) / median(s), megabytes / median(s)) for name, s in seconds.items()
            }
            rows.append((label, assocs, figures, ratios))
    shutil.rmtree(work)
    return rows


def report(rows: list[tuple[str, int, Figures, list[float]]]) -> None:
    """Print the table: median instances/s and MB/s, pacs-console's ratio to each reference
    (of the medians), and the median and range of its per-round ratio to storescp."""
    names = list(rows[0][2])
    print()
    head = f"{'data set':24} {'assoc':>5}"
    for name in names:
        head += f" | {name + ' inst/s':>20} {'MB/s':>7}"
    head += " | ratios (pacs-console / reference)"
    print(head)
    for label, assocs, figures, ratios in rows:
        line = f"{label:24} {assocs:>5}"
        for name in names:
            inst, mb = figures[name]
            line += f" | {inst:>20.0f} {mb:>7.1f}"
        ours = figures["pacs-console"][0]
        line += " | " + ", ".join(
            f"{ours / figures[n][0]:.2f}x {n}" for n in names if n != "pacs-console"
        )
        if len(ratios) > 1:
            line += (
                f" (rounds vs {names[0]}: median {median(ratios):.2f}x,"
                f" {min(ratios):.2f}-{max(ratios):.2f}x)"
            )
        print(line)


# An export rule and IAN for every object, to a peer that is never called in a run.
FORWARDING = """
[[remote_ae]]
title = "NOWHERE"
host = "127.0.0.1"
port = 9
[[exporter]]
id = "NOWHERE"
kind = "dicom"
destination = "NOWHERE"
[[export_rule]]
name = "Everything"
entity = "series"
exporters = ["NOWHERE"]
conditions = { Modality = "CT|MR", SOPClassUID = '!1\\.2' }
delay = "PT1H"
[ian]
destinations = ["NOWHERE"]
delay = "PT1H"
"""


def peers(
    postgres: str | None = None, baseline: Path | None = None, rules: bool = False
) -> dict[str, Callable[[Path], Peer]]:
    """storescp, pacs-console (SQLite; also PostgreSQL when given), the baseline checkout's
    pacs-console when given, pacs-console with export rules when asked, and Orthanc if
    installed."""
    found: dict[str, Callable[[Path], Peer]] = {
        "storescp": start_storescp,
        "pacs-console": start_archive,
    }
    if baseline:
        found["baseline"] = lambda w: start_archive(w, repo=baseline)
    if rules:
        found["pacs-console (rules)"] = lambda w: start_archive(w, extra=FORWARDING)
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
    parser.add_argument("--repeat", type=int, default=3, help="rounds per figure (median)")
    parser.add_argument(
        "--baseline", type=Path, metavar="CHECKOUT", help="also measure this checkout's archive"
    )
    parser.add_argument(
        "--rules", action="store_true", help="also measure with an export rule and IAN"
    )
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error(f"--repeat must be at least 1 (got {args.repeat})")
    print("C-STORE throughput (DCMTK storescu, TCP_NODELAY=1)")
    if args.baseline and not (args.baseline / "tui" / "cli.py").is_file():
        parser.error(f"--baseline {args.baseline}: not a pacs-console checkout")
    report(
        run(
            peers(args.postgres, args.baseline, args.rules),
            datasets(args.small, args.large),
            args.repeat,
        )
    )


if __name__ == "__main__":
    main()
