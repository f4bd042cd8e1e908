"""Performance of the endpoint, measured at its hard-IP interface.

Requests are queued straight into the hard-IP model's CQ source and the CC
sink never stalls, so the figures are the endpoint's, not the simulated
link's. Each figure is printed beside the limit the interface format sets
for the same data width and payload size. Results go to the JSON file
named by P2P_DAX_BENCH_OUT. Nothing here asserts a timed figure.
"""

import json
import os
import time

import cocotb

from hw.sim.tb.peers import LatencyMemoryEndpoint
from hw.sim.tb.perf import (BusProbe, measure_dma_reads, measure_dma_writes,
                            measure_read_latency, measure_read_throughput, measure_writes)
from hw.sim.tb.topology import Topology


@cocotb.test()
async def bench(dut):
    peer = LatencyMemoryEndpoint(size=1 << 20)
    tb = await Topology.create(dut, peer=peer)
    await tb.start()
    ep = tb.a
    cq = BusProbe(ep.clk, "a_s_axis_cq", dut)
    cc = BusProbe(ep.clk, "a_m_axis_cc", dut)
    t0 = time.monotonic()          # speed: from here, with the probes' cycle count
    await ep.set_mps(1024)
    result = {"data_width": tb.params.data_width, "bytes_per_clk_bus": tb.params.data_width // 8}
    result["writes"] = [await measure_writes(tb, ep, cq, size, 200)
                        for size in (64, 256, 1024)]
    result["read_latency"] = await measure_read_latency(tb, ep, cq, cc)
    result["reads_4k"] = [await measure_read_throughput(tb, ep, cc, mps)
                          for mps in (256, 1024)]
    rq = BusProbe(ep.clk, "a_m_axis_rq", dut)
    big = min(1 << 20, tb.params.mem_size)     # a descriptor stays within the memory
    result["dma_writes"] = [await measure_dma_writes(tb, ep, rq, size, count, mps)
                            for size, count, mps in ((4096, 16, 256), (65536, 8, 256),
                                                     (big, 2, 1024))]
    rc = BusProbe(ep.clk, "a_s_axis_rc", dut)
    result["dma_reads"] = [await measure_dma_reads(tb, ep, rc, size, count, latency)
                           for latency in (0, 500, 1000)
                           for size, count in ((4096, 16), (65536, 4), (big, 1))]
    wall = time.monotonic() - t0
    tlps = cq.packets + cc.packets + rq.packets + rc.packets
    result["simulation"] = {"wall_s": round(wall, 2), "cycles": cq.cycle,
                            "cycles_per_s": round(cq.cycle / wall),
                            "tlps_per_s": round(tlps / wall, 1)}
    out = os.environ.get("P2P_DAX_BENCH_OUT")
    if out:
        with open(out, "w") as f:
            json.dump(result, f, indent=1)
    tb.log.warning("bench: %s", json.dumps(result))
