"""`make bench`: the endpoint's performance in simulation, as JSON.

    python -m hw.sim.bench [--data-width W ...] [-o FILE]

For each data width: BAR2 write throughput (payload bytes per clock for
64, 256 and 1024-byte writes, with CQ stall cycles), BAR2 read latency
(cycles from a read's last CQ beat to its first CC beat), 4 KiB read
completion throughput at MPS 256 and 1024, and the wall-clock speed of
the simulation. Each throughput figure comes with the limit the interface
format sets for the same width and payload size, and their ratio.

Each width is measured twice: with BAR2 in block RAM ("bram"), and with
BAR2 behind the endpoint's AXI4 memory port against a DRAM-like model
("dram": every read request and write response held DRAM_LATENCY
cycles, hw/sim/tb/memory.py).

Beside them ("boards"), each board's link and the limit its DRAM sets
(hw/flow/dram.py): what the chips carry (reads and writes share it) and
what the controller's AXI4 port carries each way, as ratios to the link.
The output is {"boards": [...], "runs": [...]}.
"""

import argparse
import json
import os
import sys
import tempfile

from hw.params import EndpointParams
from hw.sim.tb.memory import MemoryModel
from hw.sim.tb.runner import run

DRAM_LATENCY = 150
MEMORIES = {
    "bram": ({}, None),
    "dram": ({"memory": "axi", "mem_size": 2 << 20}, MemoryModel(latency=DRAM_LATENCY)),
}


def bench(width, memory="bram"):
    kw, model = MEMORIES[memory]
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "bench.json")
        run("test_perf", EndpointParams(data_width=width, **kw), memory=model,
            extra_env={"P2P_DAX_BENCH_OUT": out})
        with open(out) as f:
            result = json.load(f)
    result["memory"] = memory if model is None else f"{memory}, latency {model.latency} cycles"
    return result


def board_limits():
    """Each board's link against its DRAM, in Gb/s of payload."""
    from hw.flow import boards
    out = []
    for b in boards.BOARDS.values():
        d = b.dram
        out.append({"board": b.name, "link_gbps": round(b.link_gbps, 2), "dram": d.summary(),
                    "dram_gbps": round(d.peak_gbps, 2), "dram_axi_gbps": round(d.axi_gbps, 2),
                    "dram_to_link": round(d.peak_gbps / b.link_gbps, 3)})
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description="Benchmark the endpoint in simulation (JSON).")
    ap.add_argument("--data-width", type=int, action="append", choices=(64, 128, 256, 512),
                    help="width to measure (repeatable; default all four)")
    ap.add_argument("--memory", action="append", choices=tuple(MEMORIES),
                    help="BAR2's memory (repeatable; default both)")
    ap.add_argument("-o", "--output", help="also write the JSON to this file")
    args = ap.parse_args(argv)
    results = [bench(w, mem) for w in (args.data_width or (64, 128, 256, 512))
               for mem in (args.memory or tuple(MEMORIES))]
    text = json.dumps({"boards": board_limits(), "runs": results}, indent=1)
    print(text)
    if args.output:
        with open(args.output, "w") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
