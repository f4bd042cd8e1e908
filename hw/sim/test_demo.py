"""The `make sim` story: what a newcomer should see the endpoint do.

Writes a plain-text report to the file named by P2P_DAX_REPORT; hw.sim.demo
prints it. Every "match" line is an assertion that passed.
"""

import os
import time

import cocotb
from cocotb.triggers import ClockCycles
from cocotb.utils import get_sim_time

from hw.spec import regmap
from hw.sim.tb.requests import nonposted
from hw.sim.tb.perf import BusProbe, measure_read_latency, measure_read_throughput, \
    measure_writes
from hw.sim.tb.topology import Topology
from hw.spec.usp import ReqType


def kib(n):
    return f"{n // 1024} KiB" if n < (1 << 20) else f"{n >> 20} MiB"


@cocotb.test()
async def demo(dut):
    report = []
    say = report.append
    wall0 = time.monotonic()
    tb = await Topology.create(dut)
    await tb.start()
    a, b, peer = tb.a, tb.b, tb.peer
    p = tb.params

    say("Topology")
    say("  " + tb.describe()[0])
    say("Enumerated devices")
    report.extend("  " + line.strip() for line in tb.describe()[1:])

    await tb.set_mps(256)
    await ClockCycles(a.clk, 4)
    ident = await a.read_reg("ID")
    ver = await a.read_reg("VERSION")
    cfg = await a.read_reg("CFG")
    assert ident == regmap.MAGIC
    say("Registers of endpoint A (BAR0)")
    say(f"  ID {ident:#010x}  version {ver >> 16}.{(ver >> 8) & 0xFF}.{ver & 0xFF}  "
        f"BAR2 {kib(p.bar2_size)} backed by {kib(p.mem_size)}"
        f"{' (beyond it: UR)' if p.mem_size < p.bar2_size else ''}  "
        f"MPS {128 << (cfg & 7)} B  RCB {128 if cfg >> 8 & 1 else 64} B")

    say("Transfers (each read back and compared byte for byte)")
    data = tb.rng.randbytes(64 * 1024)
    await a.bar2.write(0, data)
    assert await a.bar2.read(0, len(data)) == data
    say(f"  host -> endpoint A BAR2      {kib(len(data))} written by the CPU, read back: match")
    chunk = tb.rng.randbytes(8192)
    await peer.mem_write(a.bar2_addr + 0x20000, chunk)
    assert await a.bar2.read(0x20000, len(chunk)) == chunk
    say(f"  memory peer -> A BAR2        {kib(len(chunk))} written peer to peer through the switch: match")
    for off in range(0, len(chunk), 1024):
        part = await peer.mem_read(a.bar2_addr + 0x20000 + off, 1024)
        await peer.mem_write(b.bar2_addr + 0x30000 + off, part)
    assert await b.bar2.read(0x30000, len(chunk)) == chunk
    say(f"  A BAR2 -> B BAR2             {kib(len(chunk))} copied by the memory peer (A's RTL "
        "completes the peer's reads): match")
    big = tb.rng.randbytes(64 * 1024)
    await a.bar2.write(0x10000, big)
    t0 = get_sim_time("ns")
    n = await a.dma_submit(0x10000, b.bar2_addr + 0x8000, len(big), ident=1)
    ident, status = await a.dma_wait(n)
    t1 = get_sim_time("ns")
    assert status == regmap.DmaStatus.OK and await b.bar2.read(0x8000, len(big)) == big
    say(f"  A BAR2 -> B BAR2 (DMA)       {kib(len(big))} written by A's DMA engine into B's BAR2: "
        f"match ({len(big) / (t1 - t0):.2f} GB/s over the simulated link)")
    assert await a.pci.alloc_irq_vectors(1, 1) == 1
    irq = a.pci.msi_vectors[0].event
    irq.clear()
    n = await a.dma_submit(0x30000, b.bar2_addr + 0x8000, len(big), from_bus=True, irq=True,
                           ident=2)
    ident, status = await a.dma_wait(n)
    assert status == regmap.DmaStatus.OK and await a.bar2.read(0x30000, len(big)) == big
    await ClockCycles(a.clk, 200)
    assert irq.is_set()
    say(f"  B BAR2 -> A BAR2 (DMA)       {kib(len(big))} read by A's DMA engine, B's RTL "
        "completing the reads: match; MSI-X vector 0 received by the root complex")
    if p.mem_size < p.bar2_size:
        await a.bar2.write(p.mem_size + 0x100, b"beyond")
        assert await a.bar2.read(0x100, 6) == data[0x100:0x106]
        cpl = await nonposted(tb, a, ReqType.MEM_READ, address=a.bar2_addr + p.mem_size,
                              dw_count=1)
        assert cpl.status.name == "UR"
        say(f"  BAR2 beyond MEM_SIZE         a write at {p.mem_size:#x} + 0x100 dropped "
            f"(ERR_UNBACKED_DROPPED {await a.read_reg('ERR_UNBACKED_DROPPED')}), "
            f"0x100 unchanged; a read there -> completion status {cpl.status.name}")

    say("Requests the endpoint does not support")
    for req_type, kw in [(ReqType.IO_READ, dict(address=0x10, bar_id=0)),
                         (ReqType.MEM_FETCH_ADD, dict(address=a.bar2_addr, dw_count=1, data=bytes(4))),
                         (ReqType.MEM_READ_LOCKED, dict(address=a.bar2_addr, dw_count=1))]:
        cpl = await nonposted(tb, a, req_type, **kw)
        say(f"  {req_type.name:<16} -> completion status {cpl.status.name}")
    say(f"  counted in ERR_UR: {await a.read_reg('ERR_UR')}")

    say("Performance of endpoint A at the hard-IP interface "
        f"({p.data_width} bits = {p.data_width // 8} B per clock)")
    cq = BusProbe(a.clk, "a_s_axis_cq", dut)
    cc = BusProbe(a.clk, "a_m_axis_cc", dut)
    await tb.set_mps(1024)
    for size in (256, 1024):
        w = await measure_writes(tb, a, cq, size, 100)
        say(f"  BAR2 write {size:4d} B   {w['payload_bytes_per_clk']:6.2f} B/clk = "
            f"{w['ratio']:.3f} of the format limit {w['limit_bytes_per_clk']:.2f}; "
            f"CQ stalled {w['cq_stall_cycles']} cycles")
    lat = await measure_read_latency(tb, a, cq, cc, samples=4)
    say(f"  BAR2 read latency     {lat['cycles_min']} cycles from the request's last CQ beat "
        f"to the first CC beat (goal <= {lat['goal_cycles']})")
    r = await measure_read_throughput(tb, a, cc, 256, count=8)
    say(f"  BAR2 read 4 KiB, MPS 256  {r['payload_bytes_per_clk']:6.2f} B/clk = {r['ratio']:.3f} "
        f"of the completion format limit {r['limit_bytes_per_clk']:.2f}")

    await ClockCycles(a.clk, 10)
    tb.assert_clean()
    checked = sum(ep.checker.completions for ep in tb.endpoints)
    dma_checked = sum(ep.req_checker.rq_requests + ep.req_checker.rc_completions for ep in tb.endpoints)
    say("Checks")
    say(f"  {checked} completions from A and B checked against the PCIe completion rules "
        "(MPS, RCB, byte count, lower address, IDs, status): 0 violations")
    say(f"  {dma_checked} DMA requests and completions checked against the requester rules "
        "(MPS, MRRS, 4 KiB, byte enables, tags, bus mastering): 0 violations")
    wall = time.monotonic() - wall0
    cycles = get_sim_time("ns") * 250e6 / 1e9
    tlps = sum(ep.checker.requests + ep.checker.completions + ep.req_checker.rq_requests
               + ep.req_checker.rc_completions for ep in tb.endpoints)
    say("Simulation speed (wall clock, 2 endpoints + bus models)")
    say(f"  {cycles / wall:,.0f} clock cycles/s, {tlps / wall:,.0f} TLPs/s "
        f"({cycles:,.0f} cycles and {tlps:,} TLPs at the endpoints in {wall:.1f} s)")
    out = os.environ.get("P2P_DAX_REPORT")
    if out:
        with open(out, "w") as f:
            f.write("\n".join(report) + "\n")
