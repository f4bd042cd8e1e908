"""DMA engine tests: BAR2 -> bus (memory writes), peer to peer and to host memory.

Data is checked byte for byte where it lands: endpoint B's BAR2 (read back
by the host), the memory peer's BAR (its memory object) and host memory
(the root complex's memory pool).
"""

import os

import cocotb
from cocotb.triggers import ClockCycles

from hw.spec import pcie, regmap
from hw.sim.tb.runner import applicable
from hw.sim.tb.topology import Topology, params_from_env

FULL = os.environ.get("P2P_DAX_FULL") == "1"
OK = regmap.DmaStatus.OK
async def fill_bar2(ep, tb, offset, length):
    data = tb.rng.randbytes(length)
    await ep.bar2.write(offset, data)
    return data


@cocotb.test()
async def test_dma_write_to_peer_endpoint(dut):
    """Endpoint A writes from its BAR2 into endpoint B's BAR2 (peer to peer)."""
    tb = await Topology.create(dut)
    await tb.start()
    a, b = tb.a, tb.b
    data = await fill_bar2(a, tb, 0x1000, 8192)
    n = await a.dma_submit(0x1000, b.bar2_addr + 0x4000, len(data), ident=0x77)
    ident, status = await a.dma_wait(n)
    assert (ident, status) == (0x77, OK)
    assert await b.bar2.read(0x4000, len(data)) == data
    tb.assert_clean()


@cocotb.test()
async def test_dma_write_alignments(dut):
    """Any length and any alignment at either end, several descriptors queued,
    to the memory peer and to host memory."""
    tb = await Topology.create(dut)
    await tb.start()
    a = tb.a
    host = tb.rc.mem_pool.alloc_region(1 << 20)
    host_base = host.get_absolute_address(0)
    peer_base = tb.peer_pci.bar_addr[0]
    rng = tb.rng
    cases = []
    lengths = [1, 2, 3, 4, 5, 7, 63, 64, 65, 127, 128, 129, 255, 256, 257, 1000, 4095, 4096, 4097,
               rng.randrange(1, 20000), rng.randrange(1, 70000)]
    if FULL:
        lengths += [rng.randrange(1, 1 << 20) for _ in range(20)]
    for i, length in enumerate(lengths):
        local = rng.randrange(0, tb.params.mem_size - length - 8) if length < tb.params.mem_size // 2 \
            else rng.randrange(0, 8)
        to_host = i % 2 == 0 or length > (1 << 19)
        space = (1 << 20) - length - 8
        bus_off = rng.randrange(0, space) if space > 0 else 0
        cases.append((local, to_host, bus_off, length))
    # Queue up to 8 descriptors at a time.
    for start in range(0, len(cases), 8):
        batch = cases[start:start + 8]
        expect = []
        for local, to_host, bus_off, length in batch:
            data = await fill_bar2(a, tb, local, length)
            bus = (host_base if to_host else peer_base) + bus_off
            expect.append((await a.dma_submit(local, bus, length, ident=length & 0xFFFF),
                           to_host, bus_off, data))
        for n, to_host, bus_off, data in expect:
            ident, status = await a.dma_wait(n)
            assert status == OK, f"descriptor {n}: {status!r}"
            got = bytes(host[bus_off:bus_off + len(data)]) if to_host else \
                bytes(tb.peer_mem[bus_off:bus_off + len(data)])
            assert got == data, (f"descriptor {n} ({len(data)} bytes to "
                                 f"{'host' if to_host else 'peer'} +{bus_off:#x}): first bad byte "
                                 f"{next(i for i in range(len(data)) if got[i] != data[i])}")
    tb.assert_clean()


@cocotb.test()
async def test_dma_bad_descriptors(dut):
    """Refused descriptors end with BAD_DESCRIPTOR (empty, too long, or
    reaching past the memory behind BAR2, either way); the engine goes on."""
    tb = await Topology.create(dut)
    await tb.start()
    a, b = tb.a, tb.b
    mem = tb.params.mem_size
    bad = regmap.DmaStatus.BAD_DESCRIPTOR
    n0 = await a.dma_submit(0, b.bar2_addr, 0, ident=1)
    n1 = await a.dma_submit(0, b.bar2_addr, regmap.DMA_MAX_LENGTH + 1, ident=2)
    n4 = await a.dma_submit(mem - 0x100, b.bar2_addr, 0x101, ident=4)
    n5 = await a.dma_submit(mem - 0x100, b.bar2_addr, 0x101, from_bus=True, ident=5)
    data = await fill_bar2(a, tb, 0x200, 300)
    n2 = await a.dma_submit(0x200, b.bar2_addr + 0x900, 300, ident=3)
    assert await a.dma_wait(n0) == (1, bad)
    assert await a.dma_wait(n1) == (2, bad)
    assert await a.dma_wait(n4) == (4, bad)
    assert await a.dma_wait(n5) == (5, bad)
    assert await a.dma_wait(n2) == (3, OK)
    assert await b.bar2.read(0x900, 300) == data
    tb.assert_clean()


@cocotb.test()
async def test_dma_waits_for_bus_master(dut):
    """Nothing is sent while bus mastering is off; the descriptor goes once it is on."""
    tb = await Topology.create(dut)
    await tb.start()
    a, b = tb.a, tb.b
    await b.bar2.write(0x3000, bytes(256))
    data = await fill_bar2(a, tb, 0x100, 256)
    await a.pci.set_master(False)
    n = await a.dma_submit(0x100, b.bar2_addr + 0x3000, 256)
    await ClockCycles(a.clk, 500)
    assert await a.read_reg("DMA_DONE") == n, "a descriptor ended with bus mastering off"
    assert await b.bar2.read(0x3000, 256) == bytes(256)
    await a.pci.set_master(True)
    assert await a.dma_wait(n) == (0, OK)
    assert await b.bar2.read(0x3000, 256) == data
    tb.assert_clean()


# ---------------------------------------------------------------------------
# Read direction: bus -> BAR2


@cocotb.test()
async def test_dma_read_from_peer_endpoint(dut):
    """Endpoint A reads endpoint B's BAR2 into its own: B's RTL completes A's reads."""
    tb = await Topology.create(dut)
    await tb.start()
    a, b = tb.a, tb.b
    data = await fill_bar2(b, tb, 0x2000, 8192 + 5)
    n = await a.dma_submit(0x10003, b.bar2_addr + 0x2000, len(data), from_bus=True, ident=9)
    assert await a.dma_wait(n) == (9, OK)
    assert await a.bar2.read(0x10003, len(data)) == data
    tb.assert_clean()


@cocotb.test()
async def test_dma_read_alignments(dut):
    """Reads of any length at any alignment at either end from host memory and
    the memory peer, with write descriptors mixed in: results come in order."""
    tb = await Topology.create(dut)
    await tb.start()
    a = tb.a
    rng = tb.rng
    host = tb.rc.mem_pool.alloc_region(1 << 20)
    host_base = host.get_absolute_address(0)
    peer_base = tb.peer_pci.bar_addr[0]
    lengths = [1, 2, 3, 4, 5, 63, 64, 65, 511, 512, 513, 4095, 4096, 4097,
               rng.randrange(1, 20000), rng.randrange(1, 60000)]
    if FULL:
        lengths += [rng.randrange(1, 1 << 17) for _ in range(20)]
    for start in range(0, len(lengths), 6):
        pending = []
        for i, length in enumerate(lengths[start:start + 6]):
            src = rng.randbytes(length)
            bus_off = rng.randrange(0, (1 << 20) - length)
            # Descriptors of a group are checked after the group: their
            # destinations must not overlap.
            local = 0
            for _ in range(100):
                if length >= tb.params.mem_size:
                    break
                local = rng.randrange(0, tb.params.mem_size - length)
                taken = [(l, len(s)) for _, _, l, s in pending if l is not None]
                taken.append((0x3F000, 100))        # the write's source, below
                if all(local + length <= l or l + n <= local for l, n in taken):
                    break
            if i % 2:
                host[bus_off:bus_off + length] = src
                bus = host_base + bus_off
            else:
                tb.peer_mem[bus_off:bus_off + length] = src
                bus = peer_base + bus_off
            n = await a.dma_submit(local, bus, length, from_bus=True, ident=i)
            pending.append((n, i, local, src))
            if i == 2:     # a write in between
                out = await fill_bar2(a, tb, 0x3F000, 100)
                w = await a.dma_submit(0x3F000, host_base + 0xF0000, 100, ident=0xAA)
                pending.append((w, 0xAA, None, out))
        for n, ident, local, src in pending:
            assert await a.dma_wait(n) == (ident, OK), f"descriptor {n}"
            if local is None:
                assert bytes(host[0xF0000:0xF0000 + len(src)]) == src
            else:
                got = await a.bar2.read(local, len(src))
                assert got == src, (f"descriptor {n}: {len(src)} bytes to {local:#x}: first "
                                    f"bad byte {next(i for i in range(len(src)) if got[i] != src[i])}")
    tb.assert_clean()


@cocotb.test()
async def test_dma_read_latency_and_faults(dut):
    """A peer with completion latency, random splits and shuffled completions;
    UR and CA answers end a descriptor with that status and the next one works."""
    from hw.sim.tb.peers import LatencyMemoryEndpoint
    peer = LatencyMemoryEndpoint(size=1 << 20, latency_ns=1000, split="random",
                                 reorder=True, cpl_gap_ns=8, seed=3)
    tb = await Topology.create(dut, peer=peer)
    await tb.start()
    a = tb.a
    base = peer.bar_address(0)
    data = tb.rng.randbytes(40000)
    peer.mem[0x1001:0x1001 + len(data)] = data
    n = await a.dma_submit(0x2002, base + 0x1001, len(data), from_bus=True, ident=1)
    assert await a.dma_wait(n) == (1, OK)
    assert await a.bar2.read(0x2002, len(data)) == data
    assert peer.peak_outstanding > 1, "reads were not overlapped"
    for kind, status in (("ur", regmap.DmaStatus.UNSUPPORTED_REQUEST),
                         ("ca", regmap.DmaStatus.COMPLETER_ABORT)):
        peer.clear_faults()
        peer.add_fault(0x30000, 0x30100, kind)
        n = await a.dma_submit(0, base + 0x2F000, 0x2000, from_bus=True, ident=2)
        assert await a.dma_wait(n) == (2, status)
    peer.clear_faults()
    n = await a.dma_submit(0x100, base + 0x1001, 64, from_bus=True, ident=3)
    assert await a.dma_wait(n) == (3, OK)
    assert await a.bar2.read(0x100, 64) == data[:64]
    tb.assert_clean()


@cocotb.test()
async def test_dma_backpressure(dut):
    """Both directions at once with random backpressure on RQ and random idle
    cycles on RC (and on CQ/CC): data intact, every beat held while stalled."""
    tb = await Topology.create(dut)
    await tb.start()
    a, b = tb.a, tb.b
    rng = tb.rng

    def pauses(busy):
        while True:
            yield rng.random() < busy

    a.pause(rq=pauses(0.4), rc=pauses(0.3))
    b.pause(cq=pauses(0.3), cc=pauses(0.3))
    pending = []
    for i in range(8):
        length = rng.randrange(1, 9000)
        # Within 256 KiB, the smallest memory of the variants: A reads into
        # [0, 0x22400) and writes from [0x28000, 0x3A400); B serves reads
        # from [0x20000, 0x2A400) and takes writes into [0x30000, 0x3A400).
        local = rng.randrange(0, 0x20000)
        bus_off = rng.randrange(0, 0x8000)
        if i % 2:
            src = await fill_bar2(b, tb, 0x20000 + bus_off, length)
            n = await a.dma_submit(local, b.bar2_addr + 0x20000 + bus_off, length,
                                   from_bus=True, ident=i)
            pending.append((n, i, "read", local, src))
            # a read lands in A's BAR2: keep later descriptors off that range
        else:
            src = await fill_bar2(a, tb, 0x28000 + (i * 0x2400), length)
            n = await a.dma_submit(0x28000 + (i * 0x2400), b.bar2_addr + 0x30000 + bus_off,
                                   length, ident=i)
            pending.append((n, i, "write", 0x30000 + bus_off, src))
        ident, status = await a.dma_wait(pending[-1][0])
        assert (ident, status) == (i, OK), f"descriptor {i}: {status!r}"
        n, i_, kind, where, src = pending[-1]
        got = await (a.bar2.read(where, len(src)) if kind == "read" else b.bar2.read(where, len(src)))
        assert got == src, f"{kind} {i}: {len(src)} bytes differ"
    for ep in (a, b):
        ep.pause()
    tb.assert_clean()


@cocotb.test()
async def test_dma_read_unclaimed_address(dut):
    """A read of a bus address no device claims ends with UR; the next works."""
    tb = await Topology.create(dut)
    await tb.start()
    a, b = tb.a, tb.b
    n = await a.dma_submit(0, 0x7000_0000_0000, 256, from_bus=True, ident=5)
    assert await a.dma_wait(n) == (5, regmap.DmaStatus.UNSUPPORTED_REQUEST)
    data = await fill_bar2(b, tb, 0x100, 256)
    n = await a.dma_submit(0x200, b.bar2_addr + 0x100, 256, from_bus=True, ident=6)
    assert await a.dma_wait(n) == (6, OK)
    assert await a.bar2.read(0x200, 256) == data
    tb.assert_clean()


@cocotb.test()
async def test_dma_read_timeout(dut):
    """A peer that never completes: the descriptor ends with TIMEOUT, the tags
    come back, and later transfers (needing every tag several times) work."""
    from hw.sim.tb.peers import LatencyMemoryEndpoint
    peer = LatencyMemoryEndpoint(size=1 << 20, latency_ns=200)
    tb = await Topology.create(dut, peer=peer)
    await tb.start()
    a = tb.a
    base = peer.bar_address(0)
    await a.write_reg("DMA_TIMEOUT", 2000)
    peer.add_fault(0x8000, 0x9000, "drop")
    for i in range(3):
        n = await a.dma_submit(0, base + 0x7000, 0x3000, from_bus=True, ident=i)
        assert await a.dma_wait(n) == (i, regmap.DmaStatus.TIMEOUT)
        forget_timed_out_reads(a)
    peer.clear_faults()
    # 32 KiB of completions queue for 4096 cycles at 64 bits: no timeouts here.
    await a.write_reg("DMA_TIMEOUT", 100_000)
    data = tb.rng.randbytes(300 * 512 + 7)       # more requests than tags
    peer.mem[0x20000:0x20000 + len(data)] = data
    n = await a.dma_submit(0x5, base + 0x20000, len(data), from_bus=True, ident=7)
    assert await a.dma_wait(n) == (7, OK)
    assert await a.bar2.read(0x5, len(data)) == data
    # A completion that comes after its request timed out is ignored.
    await a.write_reg("DMA_TIMEOUT", 2000)
    await a.bar2.write(0x40, bytes(64))
    peer.mem[0x100:0x140] = b"late" * 16
    peer.latency_ns = 20_000
    n = await a.dma_submit(0x40, base + 0x100, 64, from_bus=True, ident=8)
    assert await a.dma_wait(n) == (8, regmap.DmaStatus.TIMEOUT)
    await peer.idle()                          # the late completion has been sent
    await ClockCycles(a.clk, 100)
    assert await a.bar2.read(0x40, 64) == bytes(64), "a late completion was written"
    forget_timed_out_reads(a)
    peer.latency_ns = 0
    n = await a.dma_submit(0x40, base + 0x20000, 64, from_bus=True, ident=9)
    assert await a.dma_wait(n) == (9, OK)
    assert await a.bar2.read(0x40, 64) == data[:64]
    await peer.idle()
    tb.assert_clean()


@cocotb.test(skip=not applicable(params_from_env(), ["test_dma_read_discontinued"]))
async def test_dma_read_discontinued(dut):
    """A completion the hard IP discontinues (corrupt data in its buffer)
    ends its descriptor POISONED; the request's later completions are
    ignored, its tag comes back after resting, and later reads work."""
    from hw.sim.tb.peers import LatencyMemoryEndpoint
    peer = LatencyMemoryEndpoint(size=1 << 20, latency_ns=200, split="random", seed=5)
    tb = await Topology.create(dut, peer=peer)
    await tb.start()
    a = tb.a
    base = peer.bar_address(0)
    await a.write_reg("DMA_TIMEOUT", 2000)
    data = tb.rng.randbytes(0x3000)
    peer.mem[0x1000:0x4000] = data
    await a.bar2.write(0x8000, bytes(0x3000))
    a.model.discontinue_completions(1)
    n = await a.dma_submit(0x8000, base + 0x1000, 0x3000, from_bus=True, ident=1)
    assert await a.dma_wait(n) == (1, regmap.DmaStatus.POISONED)
    await peer.idle()
    for i in range(2, 4):
        n = await a.dma_submit(0x10000, base + 0x1000, 0x3000, from_bus=True, ident=i)
        assert await a.dma_wait(n) == (i, OK)
        assert await a.bar2.read(0x10000, 0x3000) == data
    await peer.idle()
    tb.assert_clean()


@cocotb.test()
async def test_dma_read_tags(dut):
    """Up to 256 reads outstanding with Extended Tag Field Enable set, 32 (tags
    0-31, checked on every request) once the host clears it."""
    from cocotbext.pcie.core.caps import PciCapId
    from hw.sim.tb.peers import LatencyMemoryEndpoint
    peer = LatencyMemoryEndpoint(size=1 << 20, latency_ns=4000, seed=5)
    tb = await Topology.create(dut, peer=peer)
    await tb.start()
    a = tb.a
    base = peer.bar_address(0)
    regs = regmap.by_name()
    devctl = await a.pci.capability_read_word(PciCapId.EXP, 0x8)
    # MRRS 128 bytes: 256 reads fit in the 32 KiB completion buffer.
    devctl = pcie.replace(pcie.DEVICE_CONTROL, devctl, max_read_req=0)
    await a.pci.capability_write_word(PciCapId.EXP, 0x8, devctl)
    for ext in (True, False):
        await a.pci.capability_write_word(PciCapId.EXP, 0x8, pcie.replace(
            pcie.DEVICE_CONTROL, devctl, ext_tag=ext))
        await ClockCycles(a.clk, 600)           # the endpoint polls Device Control
        assert regs["CFG"].unpack(await a.read_reg("CFG"))["ext_tags"] == ext
        await a.write_reg("CTRL", 1)            # clear counters, and the peak
        data = tb.rng.randbytes(40 << 10)       # 320 reads of 128 bytes: more than 256 tags
        peer.mem[0x10000:0x10000 + len(data)] = data
        peer.reset_stats()
        n = await a.dma_submit(0x3, base + 0x10000, len(data), from_bus=True, ident=ext)
        assert await a.dma_wait(n, timeout_cycles=400_000) == (ext, OK)
        assert await a.bar2.read(0x3, len(data)) == data
        peak = regs["DMA_READS"].unpack(await a.read_reg("DMA_READS"))["peak"]
        limit = 256 if ext else 32
        assert limit // 2 < peak <= limit, f"extended tags {ext}: peak {peak} of {limit} tags"
        assert limit // 2 < peer.peak_outstanding <= peak, "the peer saw fewer reads at once"
    tb.assert_clean()


@cocotb.test()
async def test_dma_msix(dut):
    """MSI-X delivered at the root complex: a descriptor with irq raises its
    vector after its data is in host memory; none without irq; a masked
    vector (or a masked function) holds the message, shows it in the PBA
    and sends it once unmasked."""
    from cocotbext.pcie.core.caps import PciCapId
    tb = await Topology.create(dut)
    await tb.start()
    a = tb.a
    vectors = regmap.MSIX_VECTORS
    assert await a.pci.alloc_irq_vectors(vectors, vectors) == vectors
    host = tb.rc.mem_pool.alloc_region(1 << 16)
    host_base = host.get_absolute_address(0)
    seen = []                                   # vectors, in arrival order
    at_arrival = []                             # host memory when each arrived

    for v in range(vectors):
        async def handler(v=v):
            seen.append(v)
            at_arrival.append(bytes(host[0:0x2000]))
        a.pci.request_irq(v, handler)

    async def settle():
        await ClockCycles(a.clk, 400)

    # The table holds what the host wrote; reserved bits read as zero.
    vec0 = a.pci.msi_vectors[0]
    assert await a.read_reg("MSIX_VEC0_ADDR_LO") == vec0.addr & 0xFFFF_FFFC
    assert await a.read_reg("MSIX_VEC0_DATA") == vec0.data
    await a.write_reg("MSIX_VEC3_CTRL", 0xFFFF_FFFF)
    assert await a.read_reg("MSIX_VEC3_CTRL") == 1
    await a.write_reg("MSIX_VEC3_CTRL", 0)

    # Each vector, with its data in host memory before its message.
    for v in range(vectors):
        data = await fill_bar2(a, tb, 0x1000, 0x2000)
        n = await a.dma_submit(0x1000, host_base, 0x2000, irq=True, vector=v, ident=v)
        assert await a.dma_wait(n) == (v, OK)
        await settle()
        assert seen == [v], f"vector {v}: interrupts seen {seen}"
        assert at_arrival[0] == data, f"vector {v}: the interrupt overtook the data"
        seen.clear()
        at_arrival.clear()

    # No irq flag, no interrupt.
    n = await a.dma_submit(0x1000, host_base, 64, ident=9)
    assert await a.dma_wait(n) == (9, OK)
    await settle()
    assert not seen

    # A masked vector: pending in the PBA, sent when unmasked.
    await a.write_reg("MSIX_VEC2_CTRL", 1)
    n = await a.dma_submit(0x1000, host_base, 64, from_bus=True, irq=True, vector=2, ident=10)
    assert await a.dma_wait(n) == (10, OK)
    await settle()
    assert not seen
    assert await a.read_reg("MSIX_PBA") == 1 << 2
    await a.write_reg("MSIX_VEC2_CTRL", 0)
    await settle()
    assert seen == [2]
    assert await a.read_reg("MSIX_PBA") == 0
    seen.clear()

    # The function mask holds every vector.
    ctrl = await a.pci.capability_read_word(PciCapId.MSIX, 2)
    await a.pci.capability_write_word(PciCapId.MSIX, 2, ctrl | 0x4000)
    for v in (0, 1):
        n = await a.dma_submit(0x1000, host_base, 64, irq=True, vector=v, ident=11 + v)
        assert await a.dma_wait(n) == (11 + v, OK)
    await settle()
    assert not seen
    assert await a.read_reg("MSIX_PBA") == 0b11
    await a.pci.capability_write_word(PciCapId.MSIX, 2, ctrl & ~0x4000)
    await settle()
    assert sorted(seen) == [0, 1]
    assert await a.read_reg("MSIX_PBA") == 0
    tb.assert_clean()


# ---------------------------------------------------------------------------
# DMA_ABORT


ABORTED = regmap.DmaStatus.ABORTED


def _field(value, register, name):
    return regmap.by_name()[register].unpack(value)[name]


async def _irq_log(ep):
    """Every MSI-X vector of `ep` enabled; returns the list its messages append to."""
    vectors = regmap.MSIX_VECTORS
    assert await ep.pci.alloc_irq_vectors(vectors, vectors) == vectors
    seen = []
    for v in range(vectors):
        async def handler(v=v):
            seen.append(v)
        ep.pci.request_irq(v, handler)
    return seen


@cocotb.test()
async def test_dma_abort_queued(dut):
    """DMA_ABORT with a read hung (its peer never answers, the timeout far
    off) and descriptors of both directions behind it, in the engine and in
    the submit queue: all end ABORTED in order with their interrupts and
    DMA_DONE catches up with DMA_SUBMITTED; a completion that comes after
    the abort is ignored, even with a newer read outstanding; later
    descriptors move their data."""
    from hw.sim.tb.peers import LatencyMemoryEndpoint
    peer = LatencyMemoryEndpoint(size=1 << 20, latency_ns=200)
    tb = await Topology.create(dut, peer=peer)
    await tb.start()
    a = tb.a
    base = peer.bar_address(0)
    host = tb.rc.mem_pool.alloc_region(1 << 16)
    host_base = host.get_absolute_address(0)
    seen = await _irq_log(a)
    await a.write_reg("DMA_TIMEOUT", 1 << 24)       # the abort ends the hung read, not this
    peer.add_fault(0x8000, 0x9000, "drop")

    async def hung_read_and(count):
        """A read that never ends (interrupt on vector 1), then `count` small
        descriptors, reads and writes, the last with an interrupt on vector 2."""
        first = await a.dma_submit(0x10000, base + 0x7000, 0x3000, from_bus=True, irq=True,
                                   vector=1, ident=0x100)
        for i in range(1, count + 1):
            irq = i == count
            if i % 2:
                await a.dma_submit(0x30000 + 64 * i, host_base + 64 * i, 64, irq=irq,
                                   vector=2, ident=0x100 + i)
            else:
                await a.dma_submit(0x20000 + 64 * i, base + 0x20000 + 64 * i, 64,
                                   from_bus=True, irq=irq, vector=2, ident=0x100 + i)
        await ClockCycles(a.clk, 2000)
        assert await a.read_reg("DMA_DONE") == first, "a descriptor ended behind the hung read"
        assert _field(await a.read_reg("DMA_READS"), "DMA_READS", "now") > 0
        assert not seen
        return first

    async def abort(first, count):
        assert await a.dma_abort() == first + count + 1
        for k in range(max(0, count + 1 - regmap.DMA_RESULTS), count + 1):
            assert await a.dma_wait(first + k) == (0x100 + k, ABORTED), f"descriptor {k}"
        state = await a.read_reg("DMA_STATE")
        assert not _field(state, "DMA_STATE", "busy")
        assert _field(await a.read_reg("DMA_READS"), "DMA_READS", "now") == 0
        await ClockCycles(a.clk, 400)
        assert sorted(set(seen)) == [1, 2], f"interrupts seen: {seen}"
        seen.clear()
        await peer.idle()                          # completions of the reads that were answered
        await ClockCycles(a.clk, 200)
        forget_timed_out_reads(a)                  # the hard IP's own timeout, for the hung ones

    # Every descriptor in the engine.
    first = await hung_read_and(7)
    await abort(first, 7)
    # As many as the engine holds, the rest (4) in the submit queue.
    depth = regmap.DMA_QUEUE_DEPTH
    count = depth + 3
    first = await hung_read_and(count)
    assert await a.read_reg("DMA_SUBMIT") == depth - (count + 1 - depth)
    await abort(first, count)

    # A completion that comes after the abort lands nowhere: not in the
    # aborted read's place, nor in that of a newer read outstanding meanwhile.
    peer.clear_faults()
    await a.bar2.write(0x40, bytes(64))
    peer.mem[0x100:0x140] = b"late" * 16
    newer = tb.rng.randbytes(64)
    peer.mem[0x200:0x240] = newer
    peer.latency_ns = 20_000
    reads = peer.reads
    n = await a.dma_submit(0x40, base + 0x100, 64, from_bus=True, ident=0x200)
    for _ in range(100):
        if peer.reads > reads:
            break
        await ClockCycles(a.clk, 16)
    assert peer.reads > reads, "the read did not reach the peer"
    assert await a.dma_abort() == n + 1
    assert await a.dma_wait(n) == (0x200, ABORTED)
    n = await a.dma_submit(0x1000, base + 0x200, 64, from_bus=True, ident=0x201)
    await peer.idle()
    await ClockCycles(a.clk, 200)
    assert await a.dma_wait(n) == (0x201, OK)
    assert await a.bar2.read(0x40, 64) == bytes(64), "a completion after the abort was written"
    assert await a.bar2.read(0x1000, 64) == newer

    # Descriptors after the abort run normally.
    peer.latency_ns = 0
    data = await fill_bar2(a, tb, 0x3000, 5000)
    n = await a.dma_submit(0x3000, host_base + 0x3, len(data), ident=0x300)
    assert await a.dma_wait(n) == (0x300, OK)
    assert bytes(host[0x3:0x3 + len(data)]) == data
    data = tb.rng.randbytes(9000)
    peer.mem[0x40001:0x40001 + len(data)] = data
    n = await a.dma_submit(0x8002, base + 0x40001, len(data), from_bus=True, ident=0x301)
    assert await a.dma_wait(n) == (0x301, OK)
    assert await a.bar2.read(0x8002, len(data)) == data
    await peer.idle()
    tb.assert_clean()


@cocotb.test()
async def test_dma_abort_write(dut):
    """DMA_ABORT during a long write, with backpressure on RQ: the packet on
    the bus goes out whole (the checkers see no cut packet) and no later one
    goes; it and the descriptor queued behind it end ABORTED; the data that
    arrived is a prefix of whole packets. With bus mastering off, a write
    and a read whose first packets wait are dropped. The next descriptors
    work."""
    tb = await Topology.create(dut)
    await tb.start()
    a, b = tb.a, tb.b
    rng = tb.rng
    length = min(tb.params.mem_size, tb.params.data_width * 512)    # 4096 beats
    host = tb.rc.mem_pool.alloc_region(2 * length)
    host_base = host.get_absolute_address(0)
    host[0:2 * length] = bytes(2 * length)
    src = bytes(x or 1 for x in rng.randbytes(length))   # no zero: zeros are what did not arrive
    await a.bar2.write(0, src)
    await a.write_reg("DMA_TIMEOUT", 1 << 24)

    def pauses(busy):
        while True:
            yield rng.random() < busy

    a.pause(rq=pauses(0.5))
    written = a.req_checker.rq_bytes_written
    n = await a.dma_submit(0, host_base, length, ident=1)
    n2 = await a.dma_submit(0x100, host_base + length, 4096, ident=2)
    for _ in range(2000):
        if host[0]:
            break
        await ClockCycles(a.clk, 8)
    assert host[0] and not host[length - 1], "the abort must come while the write moves"
    assert await a.dma_abort() == n2 + 1
    assert await a.dma_wait(n) == (1, ABORTED)
    assert await a.dma_wait(n2) == (2, ABORTED)
    await ClockCycles(a.clk, 500)                 # whatever was still coming has come
    got = bytes(host[0:length])
    moved = got.find(0)
    tb.log.info("aborted after %d of %d bytes", moved, length)
    assert 0 < moved < length
    assert got[:moved] == src[:moved] and not any(got[moved:]), "not a prefix of the data"
    assert (host_base + moved) % a.mps() == 0, f"{moved} bytes: a packet was cut"
    assert a.req_checker.rq_bytes_written - written == moved
    assert not any(host[length:length + 4096]), "the descriptor behind it moved data"

    # With bus mastering off, a write and a read wait with their first packet
    # not on the bus yet: the abort drops both packets whole.
    await a.pci.set_master(False)
    requests = a.req_checker.rq_requests
    n = await a.dma_submit(0x105, host_base + length + 0x4000, 3000, ident=5)
    n2 = await a.dma_submit(0x30000, b.bar2_addr + 0x4000, 3000, from_bus=True, ident=6)
    await ClockCycles(a.clk, 200)
    assert await a.dma_abort() == n2 + 1
    assert await a.dma_wait(n) == (5, ABORTED)
    assert await a.dma_wait(n2) == (6, ABORTED)
    await a.pci.set_master(True)
    await ClockCycles(a.clk, 200)
    assert a.req_checker.rq_requests == requests, "a packet went out after the abort"

    # The next descriptors, both ways, still under backpressure.
    n = await a.dma_submit(0x105, host_base + length + 0x2001, 5000, ident=3)
    assert await a.dma_wait(n) == (3, OK)
    assert bytes(host[length + 0x2001:length + 0x2001 + 5000]) == src[0x105:0x105 + 5000]
    data = await fill_bar2(b, tb, 0x4000, 3000)
    n = await a.dma_submit(0x20003, b.bar2_addr + 0x4000, 3000, from_bus=True, ident=4)
    assert await a.dma_wait(n) == (4, OK)
    assert await a.bar2.read(0x20003, 3000) == data
    a.pause()
    tb.assert_clean()


def forget_timed_out_reads(ep):
    """What the hard IP does when its completion timeout fires (Endpoint.forget_reads)."""
    ep.forget_reads()
