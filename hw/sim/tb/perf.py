"""Measurements at the endpoint's hard-IP interface, for the performance
bench (hw/sim/test_perf.py) and the `make sim` story: a probe that counts
beats and stalls on one AXI-Stream bus, and the measurements of writes,
read latency, read throughput and the DMA engine's writes and reads. Each
figure comes with the limit the interface format sets; nothing asserts a
timed figure.
"""

import cocotb
from cocotb.triggers import ClockCycles, RisingEdge

from hw.spec import regmap
from hw.sim.tb.requests import cq_request
from hw.spec.usp import ReqType


class BusProbe:
    """Counts cycles, handshakes and stalls on one AXI-Stream interface."""

    def __init__(self, clk, bus_prefix, dut):
        self.clk = clk
        self.valid = getattr(dut, f"{bus_prefix}_tvalid")
        self.ready = getattr(dut, f"{bus_prefix}_tready")
        self.last = getattr(dut, f"{bus_prefix}_tlast")
        self.cycle = 0
        self.beats = []          # cycle of every accepted beat
        self.lasts = []          # cycle of every accepted last beat
        self.firsts = []         # cycle of every accepted first beat
        self.stalls = 0          # cycles with valid and not ready
        self.packets = 0         # packets since the probe started (never reset)
        self._in_pkt = False
        cocotb.start_soon(self._run())

    async def _run(self):
        while True:
            await RisingEdge(self.clk)
            self.cycle += 1
            v, r = self.valid.value, self.ready.value
            if not (v.is_resolvable and r.is_resolvable):
                continue
            if v and r:
                self.beats.append(self.cycle)
                if not self._in_pkt:
                    self.firsts.append(self.cycle)
                self._in_pkt = not self.last.value
                if self.last.value:
                    self.lasts.append(self.cycle)
                    self.packets += 1
            elif v and not r:
                self.stalls += 1

    def reset(self):
        self.beats.clear()
        self.lasts.clear()
        self.firsts.clear()
        self.stalls = 0


def beats(nbytes, width):
    return -(-nbytes // (width // 8))


async def measure_writes(tb, ep, cq, size, count):
    """Back-to-back writes of `size` bytes: payload bytes per clock."""
    width = tb.params.data_width
    src = ep.model.cq_source
    src.queue_occupancy_limit_frames = -1
    frames = [cq_request(ep, ReqType.MEM_WRITE, address=ep.bar2_addr + (i * size) % (1 << 20),
                         dw_count=size // 4, last_be=0xF if size > 4 else 0,
                         data=bytes([i & 0xFF]) * size) for i in range(count)]
    await ClockCycles(ep.clk, 10)
    cq.reset()
    for f in frames:
        src.send_nowait(f)
    while len(cq.lasts) < count:
        await RisingEdge(ep.clk)
    cycles = cq.lasts[-1] - cq.firsts[0] + 1
    per_clk = size * count / cycles
    limit = size / beats(16 + size, width)
    return {"size": size, "count": count, "cycles": cycles,
            "payload_bytes_per_clk": round(per_clk, 3),
            "limit_bytes_per_clk": round(limit, 3),
            "ratio": round(per_clk / limit, 4),
            "cq_stall_cycles": cq.stalls}


async def measure_read_latency(tb, ep, cq, cc, samples=16):
    """Cycles from the last CQ beat of a read to the first CC beat."""
    lat = []
    await ClockCycles(ep.clk, 200)       # unloaded: nothing queued ahead of the read
    for i in range(samples):
        cq.reset()
        cc.reset()
        tag = await tb.rc.alloc_tag()
        await ep.model.cq_source.send(cq_request(ep, ReqType.MEM_READ, address=ep.bar2_addr + 64 * i,
                                                 dw_count=1, tag=tag))
        cpl = await tb.rc.recv_cpl(tag, 10_000, "ns")
        tb.rc.release_tag(tag)
        assert cpl is not None
        lat.append(cc.firsts[0] - cq.lasts[0])
    return {"cycles_min": min(lat), "cycles_max": max(lat), "samples": lat, "goal_cycles": 8}


async def measure_read_throughput(tb, ep, cc, mps, count=24, size=4096):
    """4 KiB reads back to back: completion payload bytes per clock on CC."""
    width = tb.params.data_width
    await ep.set_mps(mps)
    await ClockCycles(ep.clk, 4)
    ep.model.cc_sink.queue_occupancy_limit_frames = -1
    src = ep.model.cq_source
    src.queue_occupancy_limit_frames = -1
    tags = [await tb.rc.alloc_tag() for _ in range(count)]

    async def drain(tag):
        got = 0
        while got < size:
            cpl = await tb.rc.recv_cpl(tag, 1_000_000, "ns")
            assert cpl is not None, "completion missing"
            got += len(cpl.get_data()) - (cpl.lower_address & 3)
        tb.rc.release_tag(tag)

    drains = [cocotb.start_soon(drain(t)) for t in tags]
    cc.reset()
    for i, tag in enumerate(tags):
        src.send_nowait(cq_request(ep, ReqType.MEM_READ, address=ep.bar2_addr + i * size,
                                   dw_count=size // 4, last_be=0xF, tag=tag))
    for d in drains:
        await d
    cpls = count * (size // mps)
    cycles = cc.lasts[cpls - 1] - cc.firsts[0] + 1
    per_clk = size * count / cycles
    limit = mps / beats(12 + mps, width)
    return {"mps": mps, "size": size, "count": count, "cycles": cycles,
            "completions": len(cc.lasts),
            "payload_bytes_per_clk": round(per_clk, 3),
            "limit_bytes_per_clk": round(limit, 3),
            "ratio": round(per_clk / limit, 4)}


async def measure_dma_writes(tb, ep, rq, size, count, mps):
    """DMA BAR2 -> host memory in steady state: `count` descriptors of `size`
    bytes queued while bus mastering is off, then released at once."""
    width = tb.params.data_width
    await ep.set_mps(mps)
    ep.model.rq_sink.queue_occupancy_limit_frames = -1      # the sink never stalls
    host = tb.rc.mem_pool.alloc_region(size)
    await ep.pci.set_master(False)
    await ClockCycles(ep.clk, 8)
    first = None
    for i in range(count):
        n = await ep.dma_submit((i * size) % tb.params.mem_size, host.get_absolute_address(0), size)
        first = n if first is None else first
    rq.reset()
    await ep.pci.set_master(True)
    for i in range(count):
        assert (await ep.dma_wait(first + i, timeout_cycles=50_000_000))[1] == 0
    tlps = count * (size // mps)
    cycles = rq.lasts[tlps - 1] - rq.firsts[0] + 1
    per_clk = size * count / cycles
    limit = mps / beats(16 + mps, width)
    return {"size": size, "count": count, "mps": mps, "cycles": cycles, "tlps": len(rq.lasts),
            "payload_bytes_per_clk": round(per_clk, 3), "limit_bytes_per_clk": round(limit, 3),
            "ratio": round(per_clk / limit, 4)}


async def measure_dma_reads(tb, ep, rc, size, count, latency_ns, mrrs=512):
    """DMA peer -> BAR2 in steady state, the peer answering after `latency_ns`:
    completion payload bytes per clock on RC, from its first beat to its last.
    MRRS 512 (Linux's usual setting): the 32 KiB completion buffer then
    allows 64 reads outstanding."""
    width = tb.params.data_width
    peer = tb.peer
    peer.latency_ns = latency_ns
    await ep.pci.set_readrq((mrrs // 128).bit_length() - 1)
    await ep.write_reg("CTRL", 1)                              # clear counters and peaks
    # The peer's completions: MPS bytes, or the whole request when smaller.
    cpl_size = min(128 << peer.pcie_cap.max_payload_size, mrrs)
    await ep.pci.set_master(False)
    await ClockCycles(ep.clk, 8)
    first = None
    for i in range(count):
        n = await ep.dma_submit((i * size) % tb.params.mem_size, peer.bar_address(0), size,
                                from_bus=True)
        first = n if first is None else first
    rc.reset()
    peer.reset_stats()
    await ep.pci.set_master(True)
    for i in range(count):
        assert (await ep.dma_wait(first + i, timeout_cycles=50_000_000))[1] == 0
    cycles = rc.lasts[-1] - rc.firsts[0] + 1
    per_clk = size * count / cycles
    limit = cpl_size / beats(12 + cpl_size, width)
    ext_tags = await ep.read_reg("CFG") & regmap.by_name()["CFG"].field("ext_tags").mask
    reads_peak = regmap.by_name()["DMA_READS"].unpack(await ep.read_reg("DMA_READS"))["peak"]
    return {"size": size, "count": count, "latency_ns": latency_ns, "completion_size": cpl_size,
            "cycles": cycles, "completions": len(rc.lasts),
            "payload_bytes_per_clk": round(per_clk, 3), "limit_bytes_per_clk": round(limit, 3),
            "ratio": round(per_clk / limit, 4),
            "mrrs": mrrs, "tags": 256 if ext_tags else 32,
            "outstanding_peak": reads_peak, "outstanding_peak_at_peer": peer.peak_outstanding}
