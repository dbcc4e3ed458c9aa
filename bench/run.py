"""All benchmarks in one run, side by side with the references (DCMTK's storescp, and
Orthanc when installed: Debian package orthanc): C-STORE throughput, C-FIND latency at
10,000 studies, C-MOVE throughput. Prints figures and ratios; it is not a test.

    python bench/run.py [--quick]
"""

from __future__ import annotations

import argparse

import find_latency
import move_throughput
import store_throughput


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller data sets (a smoke run)")
    args = parser.parse_args()
    small, large, studies, queries = (200, 40, 500, 50) if args.quick else (1000, 200, 10_000, 200)
    print("C-STORE throughput (DCMTK storescu, TCP_NODELAY=1)")
    stores = store_throughput.run(store_throughput.peers(), store_throughput.datasets(small, large))
    print("\nC-FIND latency")
    finds = find_latency.run(studies, queries)
    print("\nC-MOVE throughput")
    moves = move_throughput.run(200, 64, 3)
    store_throughput.report(stores)
    find_latency.report(finds, studies)
    move_throughput.report(moves, 200, 64)


if __name__ == "__main__":
    main()
