"""Endpoint tests: enumeration, BAR0 registers, BAR2 memory, error handling.

Every test runs in the shared topology (hw.sim.tb.topology) and ends with the
interface checker's verdict on every completion the endpoints sent.
Set P2P_DAX_FULL=1 for the exhaustive sweeps (every length 1..4096 at
every alignment); the default sweep is a quick subset.
"""

import os

import cocotb
from cocotb.triggers import ClockCycles
from cocotbext.pcie.core.tlp import CplStatus, TlpType

from hw.spec import regmap
from hw.sim.tb.requests import (MESSAGES, clear_counters, counters, counters_at_once, inject,
                                nonposted, random_pauses)
from hw.sim.tb.topology import Topology
from hw.spec.usp import ReqType

FULL = os.environ.get("P2P_DAX_FULL") == "1"


class Scoreboard:
    """What BAR2's memory must hold (offsets below MEM_SIZE only).

    Only bytes written during the test are known: tests share one
    simulation, so memory holds what earlier tests left there.
    """

    def __init__(self, mem_size):
        self.size = mem_size
        self.mem = {}

    def _inside(self, offset, length):
        assert 0 <= offset and offset + length <= self.size, \
            f"{offset:#x}+{length} is beyond the memory ({self.size:#x} bytes)"

    def write(self, offset, data):
        self._inside(offset, len(data))
        for i, b in enumerate(data):
            self.mem[offset + i] = b

    def read(self, offset, length):
        self._inside(offset, length)
        return bytes(self.mem[offset + i] for i in range(length))

    def mismatch(self, offset, got):
        """Index of the first known byte that differs from `got`, or None."""
        self._inside(offset, len(got))
        for i, b in enumerate(got):
            want = self.mem.get(offset + i)
            if want is not None and want != b:
                return i
        return None


async def check_roundtrip(tb, ep, board, offset, length):
    data = tb.rng.randbytes(length)
    await ep.bar2.write(offset, data)
    board.write(offset, data)
    got = await ep.bar2.read(offset, length)
    want = board.read(offset, length)
    assert got == want, (f"BAR2 read at {offset:#x}+{length} differs from what was written: "
                         f"first difference at byte {next(i for i in range(length) if got[i] != want[i])}")


# ---------------------------------------------------------------------------
# Enumeration, config space and registers


@cocotb.test()
async def test_enumeration(dut):
    """Both endpoints enumerate with the BARs as designed, and say so in BAR0."""
    tb = await Topology.create(dut)
    await tb.start()
    p = tb.params
    for ep in tb.endpoints:
        pci = ep.pci
        assert (pci.vendor_id, pci.device_id) == (regmap.PCI_VENDOR_ID, regmap.PCI_DEVICE_ID)
        # BAR0: 32-bit, non-prefetchable memory; BAR2: 64-bit, prefetchable.
        assert pci.bar_size[0] == p.bar0_size and pci.bar[0] & 0xF == 0x0
        assert pci.bar_size[2] == p.bar2_size and pci.bar[2] & 0xF == 0xC
        assert pci.bar_size[2] >= regmap.BAR2_MIN_SIZE and pci.bar_addr[2] % (2 << 20) == 0
        # The RTL reports the same sizes as the configuration space.
        bar2 = await ep.read_reg("BAR2_SIZE_LO") | await ep.read_reg("BAR2_SIZE_HI") << 32
        mem = await ep.read_reg("MEM_SIZE_LO") | await ep.read_reg("MEM_SIZE_HI") << 32
        caps = await ep.read_reg("CAPS")
        assert bar2 == pci.bar_size[2]
        assert mem == p.mem_size
        assert caps & 1 == 0, "CAPS bit 0 is reserved"
        caps = regmap.by_name()["CAPS"].unpack(caps)
        assert caps["data_width_log2"] == p.data_width.bit_length() - 1
    tb.assert_clean()


@cocotb.test()
async def test_registers(dut):
    """ID, version, scratch with byte enables, read-only registers, CFG, counters."""
    tb = await Topology.create(dut)
    await tb.start()
    ep = tb.a
    assert await ep.read_reg("ID") == regmap.MAGIC
    assert await ep.read_reg("VERSION") == regmap.by_name()["VERSION"].reset
    for value in (0x00000000, 0xFFFFFFFF, 0xA5A5A5A5, 0x12345678):
        await ep.write_reg("SCRATCH", value)
        assert await ep.read_reg("SCRATCH") == value
    # Byte writes land in the right byte only.
    base = regmap.offset("SCRATCH")
    await ep.write_reg("SCRATCH", 0)
    await ep.bar0.write(base + 2, b"\x5a")
    assert await ep.read_reg("SCRATCH") == 0x005A0000
    # Each endpoint has its own scratch register.
    await tb.b.write_reg("SCRATCH", 0xB0B0B0B0)
    assert await ep.read_reg("SCRATCH") == 0x005A0000
    # Read-only registers ignore writes.
    await ep.write_reg("ID", 0)
    assert await ep.read_reg("ID") == regmap.MAGIC
    # A multi-dword read returns the registers in order; unmapped space reads 0.
    raw = await ep.bar0.read(0, 16)
    assert int.from_bytes(raw[0:4], "little") == regmap.MAGIC
    assert int.from_bytes(raw[12:16], "little") == 0x005A0000
    assert await ep.bar0.read_dword(0x800) == 0
    # CFG reports what the host configured.
    for mps in (128, 256, 512):
        for rcb in (64, 128):
            await ep.set_mps(mps)
            await ep.set_rcb(rcb)
            await ClockCycles(ep.clk, 4)
            cfg = await ep.read_reg("CFG")
            assert 128 << (cfg & 7) == mps, f"CFG {cfg:#x} for MPS {mps}"
            assert (cfg >> 8) & 1 == (rcb == 128), f"CFG {cfg:#x} for RCB {rcb}"
    # Statistics count and clear.
    await ep.write_reg("CTRL", 1)
    await ep.bar2.write(0, b"abcd")
    await ep.bar2.read(0, 4)
    assert await ep.read_reg("STAT_WRITES") == 1
    reads = await ep.read_reg("STAT_READS")
    assert reads >= 2      # the BAR2 read and the register reads so far
    await ep.write_reg("CTRL", 1)
    assert await ep.read_reg("STAT_WRITES") == 0
    tb.assert_clean()


# ---------------------------------------------------------------------------
# BAR2 memory


def sweep_lengths(rng):
    """The lengths where splitting, dword alignment and the completion
    boundary change what the endpoint does, and 8 random ones (another set
    with each seed); every length with P2P_DAX_FULL=1."""
    if FULL:
        return list(range(1, 4097))
    edges = {1, 2, 3, 4, 5, 7, 8, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129,
             255, 256, 257, 511, 512, 513, 1023, 1024, 1025, 2047, 2048, 2049, 4095, 4096}
    return sorted(edges | {rng.randrange(1, 4097) for _ in range(8)})


@cocotb.test()
async def test_bar2_lengths_alignments(dut):
    """Writes and reads of lengths 1..4096 at every alignment mod 4."""
    tb = await Topology.create(dut)
    await tb.start()
    ep = tb.a
    board = Scoreboard(tb.params.mem_size)
    lengths = sweep_lengths(tb.rng)
    for length in lengths:
        for align in range(4):
            base = tb.rng.randrange(0, tb.params.mem_size - 8192) & ~0xFFF
            await check_roundtrip(tb, ep, board, base + align + (length % 8) * 4, length)
    tb.log.info("BAR2 sweep: %d lengths x 4 alignments", len(lengths))
    tb.assert_clean()


@cocotb.test()
async def test_bar2_random_traffic(dut):
    """Random writes and reads across all of BAR2's memory, with idle cycles
    on CQ and backpressure on CC, on both endpoints at once."""
    tb = await Topology.create(dut)
    await tb.start()
    for ep in tb.endpoints:
        ep.pause(cq=random_pauses(tb.rng, 0.3), cc=random_pauses(tb.rng, 0.4))

    async def traffic(ep, count):
        board = Scoreboard(tb.params.mem_size)
        for _ in range(count):
            length = tb.rng.choice([tb.rng.randrange(1, 64), tb.rng.randrange(1, 4097)])
            offset = tb.rng.randrange(0, tb.params.mem_size - length)
            data = tb.rng.randbytes(length)
            await ep.bar2.write(offset, data)
            board.write(offset, data)
            # Read a window around it: covers neighbours written earlier too.
            lo = max(0, offset - tb.rng.randrange(0, 64))
            hi = min(tb.params.mem_size, offset + length + tb.rng.randrange(0, 64))
            got = await ep.bar2.read(lo, hi - lo)
            bad = board.mismatch(lo, got)
            assert bad is None, f"endpoint {ep.inst}: read {lo:#x}+{hi - lo} wrong at byte {bad}"
    count = 40 if not FULL else 400
    t_a = cocotb.start_soon(traffic(tb.a, count))
    t_b = cocotb.start_soon(traffic(tb.b, count))
    await t_a
    await t_b
    for ep in tb.endpoints:
        ep.pause()
    tb.assert_clean()


@cocotb.test()
async def test_bar2_beyond_memory(dut):
    """Where a BAR is larger than its memory, nothing aliases: reads beyond
    MEM_SIZE complete with Unsupported Request and no data, writes there are
    dropped and counted in ERR_UNBACKED_DROPPED, and memory is untouched."""
    tb = await Topology.create(dut)
    await tb.start()
    p = tb.params
    ep = tb.a
    if p.mem_size == p.bar2_size:
        tb.log.info("memory fills the BAR: nothing lies beyond it")
        return
    await clear_counters(ep)
    board = Scoreboard(p.mem_size)
    await check_roundtrip(tb, ep, board, 0x40, 64)
    await ep.bar2.write(p.mem_size + 0x40, tb.rng.randbytes(64))
    await ep.bar2.write(p.bar2_size - 8, tb.rng.randbytes(8))
    assert board.mismatch(0x40, await ep.bar2.read(0x40, 64)) is None
    assert board.mismatch(p.mem_size - 8, await ep.bar2.read(p.mem_size - 8, 8)) is None
    for offset in (p.mem_size, p.mem_size + 0x44, p.bar2_size - 4):
        cpl = await nonposted(tb, ep, ReqType.MEM_READ, address=ep.bar2_addr + offset,
                              dw_count=1, bar_id=2)
        assert (cpl.status, cpl.length) == (CplStatus.UR, 0), (hex(offset), cpl.status)
        assert cpl.byte_count == 4, cpl.byte_count
    c = await counters_at_once(ep)   # clear_counters' check and this read count in STAT_READS
    got = {k: c[k] for k in ("ERR_UNBACKED_DROPPED", "ERR_UR", "STAT_WRITES", "STAT_READS")}
    assert got == {"ERR_UNBACKED_DROPPED": 2, "ERR_UR": 3, "STAT_WRITES": 1,
                   "STAT_READS": 1 + 3 + 1}, got
    tb.assert_clean()


@cocotb.test()
async def test_read_completion_rules(dut):
    """4 KiB and odd-sized reads under every MPS and both RCBs: the checker
    asserts the split rules on every completion."""
    tb = await Topology.create(dut)
    await tb.start()
    ep = tb.a
    board = Scoreboard(tb.params.mem_size)
    data = tb.rng.randbytes(16384)
    await ep.bar2.write(0, data)
    board.write(0, data)
    for mps in (128, 256, 512, 1024):
        for rcb in (64, 128):
            await ep.set_mps(mps)
            await ep.set_rcb(rcb)
            await ClockCycles(ep.clk, 4)
            for offset, length in [(0, 4096), (4, 4092), (0x7C, 4096 - 0x7C), (0x41, 777),
                                   (0x3F, 130), (0x1001, 4095), (0x2002, 1), (0x2FFF, 1)]:
                got = await ep.bar2.read(offset, length)
                assert got == board.read(offset, length), f"MPS {mps} RCB {rcb} read {offset:#x}+{length}"
    tb.assert_clean()


@cocotb.test()
async def test_zero_length(dut):
    """Zero-length read: one dword, byte count 1. Zero-length write: no change."""
    tb = await Topology.create(dut)
    await tb.start()
    ep = tb.a
    await ep.bar2.write(0x100, b"\x11\x22\x33\x44")
    assert await ep.bar2.read(0x100, 0) == b""          # the checker verifies the completion
    await ep.bar2.write(0x100, b"")
    assert await ep.bar2.read(0x100, 4) == b"\x11\x22\x33\x44"
    tb.assert_clean()


@cocotb.test()
async def test_peer_to_peer(dut):
    """The memory peer, as a bus master, writes and reads endpoint A's BAR2
    and copies A's BAR2 into B's: device to device through the switch."""
    tb = await Topology.create(dut)
    await tb.start()
    a, b, peer = tb.a, tb.b, tb.peer
    at_a, at_b = tb.params.mem_size // 4, tb.params.mem_size // 2
    data = tb.rng.randbytes(8192)
    await peer.mem_write(a.bar2_addr + at_a, data)
    assert await peer.mem_read(a.bar2_addr + at_a, len(data)) == data
    for off in range(0, len(data), 1024):
        chunk = await peer.mem_read(a.bar2_addr + at_a + off, 1024)
        await peer.mem_write(b.bar2_addr + at_b + off, chunk)
    assert await b.bar2.read(at_b, len(data)) == data     # checked by the host
    tb.assert_clean()


# ---------------------------------------------------------------------------
# Requests the endpoint does not support


@cocotb.test()
async def test_unsupported_nonposted(dut):
    """I/O, atomics, locked reads and reads of BARs the endpoint lacks get UR."""
    tb = await Topology.create(dut)
    await tb.start()
    ep = tb.a
    await clear_counters(ep)
    base = ep.bar2_addr
    cases = [
        (ReqType.IO_READ, dict(address=0x1000, bar_id=0)),
        (ReqType.IO_WRITE, dict(address=0x1000, bar_id=0, data=b"\x01\x02\x03\x04")),
        (ReqType.MEM_FETCH_ADD, dict(address=base, dw_count=2, first_be=0xF, last_be=0xF,
                                     data=bytes(8))),
        (ReqType.MEM_SWAP, dict(address=base, dw_count=1, data=bytes(4))),
        (ReqType.MEM_CAS, dict(address=base, dw_count=4, last_be=0xF, data=bytes(16))),
        (ReqType.MEM_READ_LOCKED, dict(address=base + 0x11, dw_count=2, first_be=0xE,
                                       last_be=0x7)),
        (ReqType.MEM_READ, dict(address=base, dw_count=4, last_be=0xF, bar_id=4)),
        (ReqType.MEM_READ, dict(address=0xC0000000, dw_count=1, bar_id=6)),  # expansion ROM
    ]
    for req_type, kw in cases:
        cpl = await nonposted(tb, ep, req_type, **kw)
        assert cpl.status == CplStatus.UR, f"{req_type.name}: status {cpl.status}"
        assert cpl.length == 0, f"{req_type.name}: a UR completion carries no data"
        want_type = TlpType.CPL_LOCKED if req_type == ReqType.MEM_READ_LOCKED else TlpType.CPL
        assert cpl.fmt_type == want_type, f"{req_type.name}: {cpl.fmt_type}"
    # Still serving normal requests afterwards.
    await check_roundtrip(tb, ep, Scoreboard(tb.params.mem_size), 0x300, 100)
    c = await counters(ep)
    assert c["ERR_UR"] == len(cases), c
    tb.assert_clean()


@cocotb.test()
async def test_unsupported_posted(dut):
    """Writes to BARs the endpoint lacks and messages are dropped and counted;
    discontinued (poisoned) writes are dropped whole and counted."""
    tb = await Topology.create(dut)
    await tb.start()
    ep = tb.a
    await ep.bar2.write(0, bytes(0x440))
    await clear_counters(ep)
    base = ep.bar2_addr + 0x400
    await inject(ep, ReqType.MEM_WRITE, address=base, dw_count=1, bar_id=4,
                 data=b"\xde\xad\xbe\xef")
    for t in MESSAGES:
        await inject(ep, t, address=base, dw_count=1, data=b"\x01\x02\x03\x04")
    await inject(ep, ReqType.MEM_WRITE, address=base, dw_count=16, last_be=0xF,
                 data=b"\x77" * 64, discontinue=True)
    # Longer than any payload the endpoint accepts (the hard IP would call
    # it malformed): dropped whole, and the endpoint does not hang on it.
    dw = tb.params.max_payload_supported // 4 + 64
    await inject(ep, ReqType.MEM_WRITE, address=base - 0x400, dw_count=dw,
                 last_be=0xF, data=b"\x66" * (4 * dw))
    # Memory is untouched and the endpoint keeps serving requests.
    assert await ep.bar2.read(0, 0x440) == bytes(0x440)
    c = await counters(ep)
    assert c["ERR_POSTED_DROPPED"] == 4, c
    assert c["ERR_POISONED_DROPPED"] == 1, c
    assert c["ERR_MALFORMED_DROPPED"] == 1, c
    assert c["STAT_WRITES"] == 0, c
    await check_roundtrip(tb, ep, Scoreboard(tb.params.mem_size), 0x300, 200)
    tb.assert_clean()


@cocotb.test()
async def test_poison_marks_its_own_tlp(dut):
    """A clean write with a poisoned write right behind it: the clean one is
    written, the poisoned one dropped. At 128 bits on 7-series the poisoned
    TLP starts in the beat where the clean one ends (straddled), and the
    beat's err_fwd must not be taken for the clean one."""
    tb = await Topology.create(dut)
    await tb.start()
    ep = tb.a
    await ep.bar2.write(0, bytes(0x400))
    await clear_counters(ep)
    cases = (1, 2, 5, 6)                  # payloads that end in a beat's first half
    for i, dws in enumerate(cases):
        clean = bytes([0x10 + i]) * (4 * dws)
        # No await between the two: they queue back to back on the link.
        await inject(ep, ReqType.MEM_WRITE, address=ep.bar2_addr + 0x40 * i, dw_count=dws,
                     last_be=0xF if dws > 1 else 0, data=clean)
        await inject(ep, ReqType.MEM_WRITE, address=ep.bar2_addr + 0x200 + 0x40 * i,
                     dw_count=4, last_be=0xF, data=b"\xee" * 16, discontinue=True)
    await ClockCycles(ep.clk, 200)
    for i, dws in enumerate(cases):
        assert await ep.bar2.read(0x40 * i, 4 * dws) == bytes([0x10 + i]) * (4 * dws), dws
    assert await ep.bar2.read(0x200, 0x100) == bytes(0x100)
    c = await counters(ep)
    assert c["STAT_WRITES"] == len(cases), c
    assert c["ERR_POISONED_DROPPED"] == len(cases), c
    tb.assert_clean()


@cocotb.test()
async def test_overlength_edges(dut):
    """The largest payload exactly is written; one dword more, in the length
    field or in the payload, and the write is dropped whole and counted once,
    wherever the excess falls in the last beat (N = dwords per beat)."""
    tb = await Topology.create(dut)
    await tb.start()
    ep = tb.a
    limit = tb.params.max_payload_supported // 4       # payload dwords
    lanes = tb.params.data_width // 32
    span = 4 * (limit + 64) + 64                      # past the longest bad write
    await ep.bar2.write(0, bytes(2 * span))
    await clear_counters(ep)
    # (Length field, payload dwords): both over, by 1, N - 1, N and 64
    # dwords; the length over with the payload at the limit; the payload
    # over with the length at the limit (and a short length field).
    bad = [(limit + k, limit + k) for k in sorted({1, lanes - 1, lanes, 64}) if k]
    bad += [(limit + 1, limit), (limit, limit + 1), (4, limit + 1)]
    for i, (length, payload) in enumerate(bad):
        await inject(ep, ReqType.MEM_WRITE, address=ep.bar2_addr + 4 * i, dw_count=length,
                     last_be=0xF, data=bytes([0x60 + i]) * (4 * payload))
    # Writes of exactly the limit, at every dword offset across the banks.
    board = Scoreboard(tb.params.mem_size)
    for k in range(lanes):
        data = tb.rng.randbytes(4 * limit)
        await inject(ep, ReqType.MEM_WRITE, address=ep.bar2_addr + span + 4 * k,
                     dw_count=limit, last_be=0xF, data=data)
        board.write(span + 4 * k, data)
    assert await ep.bar2.read(0, span) == bytes(span), "an over-length write reached memory"
    got = await ep.bar2.read(span, 4 * (limit + lanes - 1))
    assert got == board.read(span, 4 * (limit + lanes - 1)), \
        "a write of the largest payload differs"
    c = await counters(ep)
    assert c["ERR_MALFORMED_DROPPED"] == len(bad), c
    assert c["STAT_WRITES"] == lanes, c
    assert c["ERR_POSTED_DROPPED"] == c["ERR_POISONED_DROPPED"] == 0, c
    tb.assert_clean()


@cocotb.test()
async def test_np_flow_control(dut):
    """More reads than the non-posted queue holds, with CC stalled: the
    endpoint withholds credit instead of blocking writes behind them."""
    tb = await Topology.create(dut)
    await tb.start()
    ep = tb.a
    board = Scoreboard(tb.params.mem_size)
    ep.hold_completions(True)
    reads = [cocotb.start_soon(ep.bar2.read(i * 64, 64)) for i in range(24)]
    await ClockCycles(ep.clk, 200)
    # Writes still go through while reads wait for credit.
    data = tb.rng.randbytes(256)
    await ep.bar2.write(0x8000, data)
    board.write(0x8000, data)
    ep.hold_completions(False)
    for r in reads:
        await r
    assert await ep.bar2.read(0x8000, 256) == data
    tb.assert_clean()
