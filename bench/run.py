"""All benchmarks in one run, side by side with the references (DCMTK's storescp, and
Orthanc when installed: Debian package orthanc): C-STORE throughput, C-FIND latency at
10,000 studies, C-MOVE throughput, export throughput of a 1,000-instance study, Modality
Worklist C-FIND latency at 10,000 items (beside DCMTK's wlmscpfs), HL7 orders into the
worklist (messages/s, no reference), queue operations at
100,000 tasks (SQLite, and PostgreSQL at console_paging.PG_URL). Prints
figures and ratios; it is not a test.

    python bench/run.py [--quick]
"""

from __future__ import annotations

import argparse

import export_throughput
import find_latency
import hl7_orders
import move_throughput
import mwl_find
import queue_operations
import store_throughput


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller data sets (a smoke run)")
    args = parser.parse_args()
    small, large, studies, queries = (200, 40, 500, 50) if args.quick else (1000, 200, 10_000, 200)
    exported, tasks, repeat = (100, 5000, 1) if args.quick else (1000, 100_000, 3)
    print("C-STORE throughput (DCMTK storescu, TCP_NODELAY=1)")
    stores = store_throughput.run(store_throughput.peers(), store_throughput.datasets(small, large))
    print("\nC-FIND latency")
    finds = find_latency.run(studies, queries)
    print("\nC-MOVE throughput")
    moves = move_throughput.run(200, 64, 3)
    print("\nExport throughput")
    exports = export_throughput.run(exported, 512, repeat)
    print("\nModality Worklist C-FIND latency")
    items = 500 if args.quick else 10_000
    worklists = mwl_find.run_all(items, 20 if args.quick else 100)
    print("\nHL7 orders into the worklist")
    orders = 200 if args.quick else 2000
    hl7 = hl7_orders.run(orders)
    print("\nQueue operations")
    queues = queue_operations.run_all(tasks, 5)
    store_throughput.report(stores)
    find_latency.report(finds, studies)
    move_throughput.report(moves, 200, 64)
    export_throughput.report(exports)
    mwl_find.report(worklists, items)
    hl7_orders.report(hl7, orders)
    for label, rows in queues:
        queue_operations.report(label, rows)


if __name__ == "__main__":
    main()
