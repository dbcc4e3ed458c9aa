"""C-MOVE throughput: one study (default 200 CT instances, 64x64) moved with DCMTK's
movescu to DCMTK's storescp, from `pacs-console serve` and, when installed, from Orthanc,
side by side; each run timed from movescu's start to its exit.

    python bench/move_throughput.py [--instances N] [--size N] [--runs N]
"""

from __future__ import annotations

import argparse
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from common import (
    DCMTK,
    ENV,
    OUT,
    Peer,
    ct_series,
    orthanc_binary,
    split,
    start_archive,
    start_orthanc,
    start_storescp,
    storescu,
)
from pydicom import dcmread


def movescu(peer: Peer, destination: str, study_uid: str) -> float:
    """Move a study with DCMTK's movescu; seconds."""
    start = time.perf_counter()
    result = subprocess.run(
        [
            str(DCMTK / "movescu"),
            "-S",
            "-aet",
            "BENCH",
            "-aec",
            peer.called,
            "-aem",
            destination,
            "-k",
            "QueryRetrieveLevel=STUDY",
            "-k",
            f"StudyInstanceUID={study_uid}",
            "127.0.0.1",
            str(peer.port),
        ],
        env=ENV,
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"movescu failed: {result.stderr.strip()[:500]}")
    return seconds


def run(instances: int, size: int, runs: int) -> dict[str, tuple[float, float]]:
    """Best of `runs` moves from each peer: {peer: (instances/s, MB/s)}."""
    files = ct_series(OUT / "data" / f"move{instances}x{size}", instances, size, 1, 2, seed=3)
    study_uid = dcmread(files[0], stop_before_pixels=True).StudyInstanceUID
    megabytes = sum(p.stat().st_size for p in files) / 1e6
    destination = start_storescp(OUT / "work" / "move-storescp")
    target = {destination.called: ("127.0.0.1", destination.port)}
    remote = (
        f'[[remote_ae]]\ntitle = "{destination.called}"\nhost = "127.0.0.1"\n'
        f"port = {destination.port}\n"
    )
    starts: dict[str, Callable[[Path], Peer]] = {
        "pacs-console": lambda w: start_archive(w, extra=remote)
    }
    if orthanc_binary():
        starts["orthanc"] = lambda w: start_orthanc(w, target)
    results = {}
    try:
        for name, start in starts.items():
            peer = start(OUT / "work" / f"move-{name}")
            try:
                storescu(peer.port, peer.called, split(files, 1, OUT / "split-move"))
                best = min(movescu(peer, destination.called, study_uid) for _ in range(runs))
            finally:
                peer.stop()
            results[name] = (instances / best, megabytes / best)
            print(f"  {name}: {instances / best:.0f} instances/s")
    finally:
        destination.stop()
    return results


def report(results: dict[str, tuple[float, float]], instances: int, size: int) -> None:
    """Print instances/s and MB/s per peer and pacs-console's ratio to Orthanc."""
    print(f"\nC-MOVE of one {instances}-instance study ({size}x{size}) to storescp")
    for name, (per_second, mb) in results.items():
        print(f"  {name:<14} {per_second:7.0f} instances/s {mb:7.1f} MB/s")
    if "orthanc" in results:
        ratio = results["pacs-console"][0] / results["orthanc"][0]
        print(f"  ratio pacs-console / orthanc: {ratio:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=200)
    parser.add_argument("--size", type=int, default=64, help="rows = columns (16-bit pixels)")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    report(run(args.instances, args.size, args.runs), args.instances, args.size)


if __name__ == "__main__":
    main()
