"""`make bench`: the endpoint's performance in simulation, as JSON.

    python -m hw.sim.bench [--data-width W ...] [-o FILE]

For each data width: BAR2 write throughput (payload bytes per clock for
64, 256 and 1024-byte writes, with CQ stall cycles), BAR2 read latency
(cycles from a read's last CQ beat to its first CC beat), 4 KiB read
completion throughput at MPS 256 and 1024, and the wall-clock speed of
the simulation. Each throughput figure comes with the limit the interface
format sets for the same width and payload size, and their ratio.
"""

import argparse
import json
import os
import sys
import tempfile

from hw.params import EndpointParams
from hw.sim.tb.runner import run


def bench(width):
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "bench.json")
        run("test_perf", EndpointParams(data_width=width), extra_env={"P2P_DAX_BENCH_OUT": out})
        with open(out) as f:
            return json.load(f)


def main(argv=None):
    ap = argparse.ArgumentParser(description="Benchmark the endpoint in simulation (JSON).")
    ap.add_argument("--data-width", type=int, action="append", choices=(64, 128, 256, 512),
                    help="width to measure (repeatable; default all four)")
    ap.add_argument("-o", "--output", help="also write the JSON to this file")
    args = ap.parse_args(argv)
    results = [bench(w) for w in (args.data_width or (64, 128, 256, 512))]
    text = json.dumps(results, indent=1)
    print(text)
    if args.output:
        with open(args.output, "w") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
