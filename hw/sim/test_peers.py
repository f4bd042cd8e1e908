"""Tests of the DMA test peers (hw.sim.tb.peers), with the root complex as requester.

The shared topology, with a LatencyMemoryEndpoint in place of the stock
memory peer. Completions are checked against the PCIe splitting rules by
an independent checker (check_completions), both as planned (a sweep
without the bus) and as sent on the bus (the peer's trace).
"""

import inspect
import logging

import cocotb
from cocotb.simtime import get_sim_time
from cocotbext.pcie.core.caps import PciCapId
from cocotbext.pcie.core.tlp import CplStatus, Tlp, TlpType

from hw.sim.tb import topology
from hw.sim.tb.peers import LatencyMemoryEndpoint, plan_completions, request_violations
from hw.sim.tb.topology import Topology

BAR32_SIZE = 64 << 10


class PeerTopology(Topology):
    """The shared topology with a LatencyMemoryEndpoint as its memory peer."""

    def __init__(self, dut, peer=None, **kwargs):
        peer = peer if peer is not None else LatencyMemoryEndpoint(bar32_size=BAR32_SIZE)
        if "peer" in inspect.signature(Topology.__init__).parameters:
            super().__init__(dut, peer=peer, **kwargs)
            return
        # Topology without a peer argument: hand it our peer, and keep the
        # BAR it adds for itself from being a second one.
        saved = topology.MemoryEndpoint
        topology.MemoryEndpoint = lambda: peer
        peer.add_mem_region = lambda size: peer.mem
        try:
            super().__init__(dut, **kwargs)
        finally:
            topology.MemoryEndpoint = saved
            del peer.add_mem_region


async def setup(dut, **peer_kwargs):
    peer = LatencyMemoryEndpoint(bar32_size=BAR32_SIZE, **peer_kwargs)
    tb = await PeerTopology.create(dut, peer=peer)
    # Enumeration probes empty slots, and the bus models warn about each probe.
    levels = [(log, log.level) for log in (tb.rc.log, tb.switch.log)]
    for log, _ in levels:
        log.setLevel(logging.ERROR)
    await tb.start()
    for log, level in levels:
        log.setLevel(level)
    assert tb.peer is peer and tb.peer_mem is peer.mem
    return tb, peer, peer.bar_address(0)


async def set_peer_rcb(tb, nbytes):
    """Link Control RCB bit of the memory peer (what system software would set)."""
    ctl = await tb.peer_pci.capability_read_dword(PciCapId.EXP, 0x10)
    ctl = (ctl & ~0x8) | (0x8 if nbytes == 128 else 0)
    await tb.peer_pci.capability_write_dword(PciCapId.EXP, 0x10, ctl & 0xFFFF)
    assert tb.peer.rcb == nbytes


def now_ps():
    """Simulation time in ps, exactly (differences of float ns values are not)."""
    return round(get_sim_time("ps"))


def ns_since(t0_ps):
    return (now_ps() - t0_ps) / 1000


async def expect_failure(coro, message):
    try:
        await coro
    except Exception as e:          # cocotbext raises plain Exceptions
        assert str(e) == message, f"expected {message!r}, got {e!r}"
        return
    raise AssertionError(f"expected the exception {message!r}")


# ---------------------------------------------------------------------------
# An independent statement of the splitting rules


def enabled_span(address, length, first_be, last_be):
    """(address of the first enabled byte, byte count) of a read request."""
    enabled = []
    for dw in range(length):
        be = first_be if dw == 0 else last_be if dw == length - 1 else 0xF
        enabled += [address + 4 * dw + i for i in range(4) if be >> i & 1]
    if not enabled:                  # zero-length read: one byte, at the dword
        return address, 1
    return enabled[0], enabled[-1] - enabled[0] + 1


def check_completions(req, cpls, mps, rcb, split=None):
    """Assert that completions [(dwords, byte count, lower address, status)] answer `req` legally.

    req: (dword-aligned address, dwords, first BE, last BE).
    """
    address, length, first_be, last_be = req
    first_byte, total = enabled_span(*req)
    what = f"read of {length} DW at {address:#x} BE {first_be:x}/{last_be:x}, MPS {mps}, RCB {rcb}"
    start, sent = address, 0
    for k, (ndw, byte_count, lower, status) in enumerate(cpls):
        assert status == CplStatus.SC, what
        stop = start + 4 * ndw
        last = k == len(cpls) - 1
        assert 0 < 4 * ndw <= mps, f"{what}: completion {k} carries {4 * ndw} bytes"
        assert byte_count == total - sent, f"{what}: completion {k} Byte Count {byte_count}, " \
            f"want {total - sent}"
        want_lower = (first_byte if k == 0 else start) & 0x7F
        assert lower == want_lower, f"{what}: completion {k} Lower Address {lower:#x}, " \
            f"want {want_lower:#x}"
        if not last:
            assert stop % rcb == 0, f"{what}: completion {k} ends at {stop:#x}, off the RCB"
            if split == "rcb":
                assert stop - rcb <= start, \
                    f"{what}: completion {k} [{start:#x}, {stop:#x}) spans an RCB boundary"
            if split == "max":
                assert stop + rcb - start > mps, f"{what}: completion {k} could be longer"
        sent += stop - max(start, first_byte)
        start = stop
    assert start == address + 4 * length, f"{what}: completions end at {start:#x}"
    assert sent >= total, what


def traced_reads(trace):
    """[(read request, [its completions as (dwords, byte count, lower address, status)])].

    Tags are reused, so a completion belongs to the last request with its tag.
    """
    reads, by_tag = [], {}
    for _, kind, t in trace:
        if kind == "read":
            by_tag[t.tag] = (t, [])
            reads.append(by_tag[t.tag])
        elif kind == "cpl":
            by_tag[t.tag][1].append((t.length, t.byte_count, t.lower_address, t.status))
    return reads


def check_traced(peer, split=None):
    """Every read in the peer's trace was answered, legally."""
    for req, cpls in traced_reads(peer.trace):
        check_completions((req.address, req.length, req.first_be, req.last_be), cpls,
                          peer.mps, peer.rcb, split)


# ---------------------------------------------------------------------------


@cocotb.test()
async def test_split_rules(dut):
    """plan_completions obeys the rules at every alignment, size, MPS, RCB and mode."""
    req = Tlp()
    n = 0
    sizes = [1, 2, 3, 4, 5, 63, 64, 65, 127, 128, 129, 255, 256, 257, 1000, 2048, 4093, 4096]
    offsets = [edge + k for edge in (0, 64, 128, 192, 256) for k in range(-4, 4) if edge + k >= 0]
    for mps in (128, 256, 512, 1024):
        for rcb in (64, 128):
            for split in ("max", "rcb", "random"):
                for offset in offsets:
                    for size in sizes:
                        addr = 0x10000 + offset
                        if (addr & 0xFFF) + size > 0x1000:
                            size = 0x1000 - (addr & 0xFFF)
                        req.set_addr_be(addr, size)
                        plan = plan_completions(req.address, req.length, req.first_be,
                                                req.last_be, mps, rcb, split)
                        cpls = [(ndw, bc, la, CplStatus.SC) for _, ndw, bc, la in plan]
                        check_completions((req.address, req.length, req.first_be, req.last_be),
                                          cpls, mps, rcb, split)
                        n += 1
    # Zero-length read, and byte enables with holes (a QW-aligned 2-dword read).
    for split in ("max", "rcb", "random"):
        for req_t in [(0x40, 1, 0x0, 0x0), (0x40, 1, 0x9, 0x0), (0x48, 2, 0x1, 0x8),
                      (0x7C, 1, 0x6, 0x0)]:
            plan = plan_completions(*req_t, 256, 64, split)
            check_completions(req_t, [(ndw, bc, la, CplStatus.SC) for _, ndw, bc, la in plan],
                              256, 64, split)
    assert plan_completions(0x40, 1, 0x9, 0x0, 256, 64)[0][2] == 4
    assert plan_completions(0x40, 1, 0x0, 0x0, 256, 64)[0][2:] == (1, 0x40)
    assert n > 10_000
    # "max" matches cocotbext's own completer: 4 KiB at MPS 256 is 16 completions.
    assert len(plan_completions(0x0, 1024, 0xF, 0xF, 256, 128, "max")) == 16
    assert len(plan_completions(0x0, 1024, 0xF, 0xF, 256, 64, "rcb")) == 64


@cocotb.test()
async def test_write_read_back(dut):
    """Data written through the switch reads back, in both BARs and every split mode."""
    tb, peer, base = await setup(dut, latency_ns=200)
    rng = tb.rng
    peer.trace = []
    assert peer.bar_address(2) == tb.peer_pci.bar_addr[2]
    assert tb.peer_pci.bar[0] & 0xF == 0xC and tb.peer_pci.bar_size[0] == len(peer.mem)
    for split in ("max", "rcb", "random"):
        peer.split = split
        for offset, size in [(0, 4), (3, 1), (0x101, 7), (0x3FE, 300), (0x1F80, 0x1000),
                             (0x7FFD, 5000), (0xFFF00 - 3, 0x100)]:
            data = rng.randbytes(size)
            await tb.rc.mem_write(base + offset, data)
            assert await tb.rc.mem_read(base + offset, size) == data, (split, offset, size)
            assert peer.mem[offset:offset + size] == data
        for offset, size in [(0, 16), (0x7FF, 2000)]:
            data = rng.randbytes(size)
            await tb.rc.mem_write(peer.bar_address(2) + offset, data)
            assert await tb.rc.mem_read(peer.bar_address(2) + offset, size) == data
            assert peer.mem32[offset:offset + size] == data
    # As a bus master it is still the stock model: it writes and reads endpoint A's BAR2.
    data = rng.randbytes(600)
    await peer.mem_write(tb.a.bar2_addr + 0x3000 + 1, data)
    assert await peer.mem_read(tb.a.bar2_addr + 0x3000 + 1, len(data)) == data
    # Every completion on the bus was legal for its request.
    check_traced(peer)
    assert peer.reads == len(traced_reads(peer.trace)) > 0
    assert peer.writes > 0 and peer.completions > peer.reads
    await peer.idle()
    assert peer.outstanding == 0
    peer.assert_clean()


@cocotb.test()
async def test_latency(dut):
    """A read takes latency_ns longer per latency_ns, set at run time."""
    tb, peer, base = await setup(dut)
    await tb.rc.mem_write(base, bytes(range(64)))
    took = {}
    for latency in (0, 500, 1000, 0):
        peer.latency_ns = latency
        t0 = now_ps()
        assert await tb.rc.mem_read(base, 64) == bytes(range(64))
        took[latency] = ns_since(t0)
    tb.log.info("read of 64 bytes took %s ns", took)
    assert took[0] > 0
    for lo, hi in [(0, 500), (500, 1000)]:
        extra = took[hi] - took[lo]
        assert hi - lo <= extra <= hi - lo + 10, \
            f"latency {lo} -> {hi} ns: the read took {extra} ns longer"
    peer.assert_clean()


@cocotb.test()
async def test_split_rcb(dut):
    """split="rcb": a 4 KiB read comes back as one completion per RCB, data intact."""
    tb, peer, base = await setup(dut, split="rcb", latency_ns=100)
    data = tb.rng.randbytes(0x2000)
    peer.mem[0:0x2000] = data
    for rcb in (64, 128):
        await set_peer_rcb(tb, rcb)
        peer.trace = []
        assert await tb.rc.mem_read(base + 0x1000, 0x1000) == data[0x1000:0x2000]
        ((req, cpls),) = traced_reads(peer.trace)
        assert len(cpls) == 0x1000 // rcb, f"RCB {rcb}: {len(cpls)} completions"
        check_traced(peer, "rcb")
        # Unaligned: the first and last completions are partial.
        peer.trace = []
        assert await tb.rc.mem_read(base + 0x1003, 0xFF0) == data[0x1003:0x1FF3]
        ((req, cpls),) = traced_reads(peer.trace)
        assert len(cpls) == 0x1000 // rcb
        assert cpls[0][1:3] == (0xFF0, 0x03) and cpls[1][2] == rcb & 0x7F
        check_traced(peer, "rcb")
    # "max" for comparison: MPS-sized pieces.
    peer.split = "max"
    peer.trace = []
    assert await tb.rc.mem_read(base + 0x1000, 0x1000) == data[0x1000:0x2000]
    ((req, cpls),) = traced_reads(peer.trace)
    assert len(cpls) == 0x1000 // peer.mps
    check_traced(peer, "max")
    peer.assert_clean()


@cocotb.test()
async def test_concurrent_reorder(dut):
    """Reads overlap instead of queueing, and with reorder they complete out of order."""
    tb, peer, base = await setup(dut, latency_ns=1000)
    data = tb.rng.randbytes(0x10000)
    peer.mem[0:0x10000] = data
    count, size = 8, 0x400

    async def burst():
        t0 = now_ps()
        reads = [cocotb.start_soon(tb.rc.mem_read(base + k * 0x1000 + 4 * k, size))
                 for k in range(count)]
        for k, task in enumerate(reads):
            got = await task
            assert got == data[k * 0x1000 + 4 * k:][:size], f"read {k}"
        return ns_since(t0)

    # In order: all eight in flight at once, in well under twice the latency.
    peer.trace = []
    took = await burst()
    assert peer.peak_outstanding == count, peer.peak_outstanding
    assert took < 2 * peer.latency_ns, f"{count} reads took {took} ns"
    order = [t.tag for _, kind, t in peer.trace if kind == "cpl" and t.byte_count == size]
    assert order == [req.tag for req, _ in traced_reads(peer.trace)]

    # Reordered, and paced: the first completions leave in another order than
    # the requests came, and the completions of different requests interleave
    # (eight requests, each sending for 750 ns, all starting within 1000 ns).
    peer.reorder, peer.reorder_ns, peer.split, peer.cpl_gap_ns = True, 1000, "rcb", 50
    peer.reset_stats()
    peer.trace = []
    took = await burst()
    assert peer.peak_outstanding > 1
    assert took < peer.latency_ns + peer.reorder_ns + (size // peer.rcb) * peer.cpl_gap_ns + 100
    requests = [req.tag for req, _ in traced_reads(peer.trace)]
    order = [t.tag for _, kind, t in peer.trace if kind == "cpl" and t.byte_count == size]
    assert sorted(order) == sorted(requests) and order != requests, (order, requests)
    tags = [t.tag for _, kind, t in peer.trace if kind == "cpl"]
    interleaved = any(tags[i] != tags[i + 1] and tags[i] in tags[i + 2:]
                      for i in range(len(tags) - 1))
    tb.log.info("%d reads took %s ns; first completions in order %s for requests %s",
                count, took, order, requests)
    assert interleaved, tags
    check_traced(peer)
    await peer.idle()
    peer.assert_clean()


@cocotb.test()
async def test_faults(dut):
    """UR and CA ranges fail reads and swallow writes; the bytes around them work."""
    tb, peer, base = await setup(dut, latency_ns=300)
    data = tb.rng.randbytes(0x3000)
    peer.mem[0:0x3000] = data
    peer.add_fault(0x1000, 0x1100, "ur")
    peer.add_fault(0x2400, 0x2401, "ca")
    peer.log.setLevel(logging.ERROR)     # cocotbext warns of every CA completion it sends
    peer.trace = []
    # (Reads within one 4 KiB page: the root complex splits at 4 KiB boundaries.)
    await expect_failure(tb.rc.mem_read(base + 0x10FF, 1), "Unsuccessful completion")
    await expect_failure(tb.rc.mem_read(base + 0x1050, 0x101), "Unsuccessful completion")
    await expect_failure(tb.rc.mem_read(base + 0x23FE, 3), "Unsuccessful completion")
    assert peer.faulted_reads == 3
    # The bytes next to the faulty ranges read fine (0x2401 shares a dword with the CA byte).
    assert await tb.rc.mem_read(base + 0xF00, 0x100) == data[0xF00:0x1000]
    assert await tb.rc.mem_read(base + 0x1100, 0x10) == data[0x1100:0x1110]
    assert await tb.rc.mem_read(base + 0x23FE, 2) == data[0x23FE:0x2400]
    assert await tb.rc.mem_read(base + 0x2401, 3) == data[0x2401:0x2404]
    # The error completions: one each, no data, the request's byte count and first byte.
    bad = [t for _, kind, t in peer.trace if kind == "cpl" and t.status != CplStatus.SC]
    assert [(t.fmt_type, t.status, t.byte_count, t.lower_address) for t in bad] == [
        (TlpType.CPL, CplStatus.UR, 1, 0x7F),
        (TlpType.CPL, CplStatus.UR, 0x101, 0x50),
        (TlpType.CPL, CplStatus.CA, 3, 0x7E),
    ]
    # A read across a page boundary: the root complex splits it, only the faulty half fails.
    peer.trace = []
    await expect_failure(tb.rc.mem_read(base + 0xFF0, 0x20), "Unsuccessful completion")
    statuses = [[c[3] for c in cpls] for _, cpls in traced_reads(peer.trace)]
    assert statuses == [[CplStatus.SC], [CplStatus.UR]], statuses
    # Writes touching a faulty range vanish; the memory keeps its bytes.
    dropped = peer.dropped_writes
    await tb.rc.mem_write(base + 0x10FC, b"\xAA" * 8)
    await tb.rc.mem_write(base + 0x2400, b"\xBB")
    await tb.rc.mem_write(base + 0x2404, b"\xCC")
    await tb.rc.mem_read(base, 4)    # writes are posted: let them land before the faults go
    peer.clear_faults()
    assert await tb.rc.mem_read(base + 0x10FC, 8) == data[0x10FC:0x1104]
    assert await tb.rc.mem_read(base + 0x2400, 5) == data[0x2400:0x2404] + b"\xCC"
    assert peer.dropped_writes == dropped + 2
    peer.assert_clean()


@cocotb.test()
async def test_drop_timeout(dut):
    """A "drop" range never completes: the requester's timeout fires."""
    tb, peer, base = await setup(dut, latency_ns=100)
    peer.add_fault(0x4000, 0x5000, "drop")
    t0 = now_ps()
    await expect_failure(tb.rc.mem_read(base + 0x4800, 64, timeout=3000, timeout_unit="ns"),
                         "Timeout")
    assert ns_since(t0) >= 3000
    assert peer.dropped_reads == 1 and peer.outstanding == 0
    # The peer still answers elsewhere, and there once the fault is gone.
    assert await tb.rc.mem_read(base + 0x3FF0, 16, timeout=3000, timeout_unit="ns") == \
        bytes(peer.mem[0x3FF0:0x4000])
    peer.clear_faults()
    assert await tb.rc.mem_read(base + 0x4800, 64, timeout=3000, timeout_unit="ns") == \
        bytes(peer.mem[0x4800:0x4840])
    peer.assert_clean()


@cocotb.test()
async def test_malformed_requests(dut):
    """Requests a completer must not get are recorded (a DMA test's assert_clean fails)."""
    tb, peer, base = await setup(dut)
    rc = tb.rc
    peer.log.setLevel(logging.ERROR)     # the warnings this test provokes
    # A write with more payload than the peer's MPS (the root complex never sends one).
    req = Tlp()
    req.fmt_type = TlpType.MEM_WRITE_64 if base >> 32 else TlpType.MEM_WRITE
    req.requester_id = rc.pcie_id
    req.set_addr_be_data(base + 0x800, bytes(2 * peer.mps))
    await rc.perform_posted_operation(req)
    # A 3-dword read with a hole in its first byte enables.
    req = Tlp()
    req.fmt_type = TlpType.MEM_READ_64 if base >> 32 else TlpType.MEM_READ
    req.requester_id = rc.pcie_id
    req.set_addr_be(base + 0x100, 12)
    req.first_be = 0x5
    cpls = await rc.perform_nonposted_operation(req, timeout=1000, timeout_unit="ns")
    assert cpls and cpls[0].status == CplStatus.SC
    await rc.mem_read(base, 4)
    assert len(peer.violations) == 2, peer.violations
    assert "MPS" in peer.violations[0] and "non-contiguous" in peer.violations[1]
    try:
        peer.assert_clean()
    except AssertionError as e:
        assert "malformed" in str(e)
    else:
        raise AssertionError("assert_clean passed with violations")
    peer.violations.clear()
    # What the bus cannot carry: a request across a 4 KiB boundary.
    req = Tlp()
    req.fmt_type = TlpType.MEM_READ
    req.set_addr_be(0x1FFC, 8)
    assert any("4 KiB" in v for v in request_violations(req, 256))
    req.set_addr_be(0x1FF8, 8)
    assert request_violations(req, 256) == []
    peer.assert_clean()
