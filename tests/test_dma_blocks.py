"""The DMA engine's blocks one at a time, in Amaranth's simulator
(hw/sim/tb/blocks.py); the cocotb benches (hw/sim/test_dma.py and the
random traffic) test the engine whole against the bus models."""

import pytest

pytest.importorskip("amaranth")

from amaranth.hdl import Module  # noqa: E402
from amaranth.lib import wiring  # noqa: E402

from hw.core.dma.reads import (CompletionReceiver, ReadRequester, RqArbiter,  # noqa: E402
                               TagTable)
from hw.core.dma.sequencer import Sequencer  # noqa: E402
from hw.core.dma.writes import TlpSplitter, WindowReader, WritePacker  # noqa: E402
from hw.sim.tb.axi_model import AxiMemory  # noqa: E402
from hw.sim.tb.blocks import (BlockBench, int_to_words, pause, sample,  # noqa: E402
                              stream_get, stream_put, words_to_int)
from hw.spec import regmap, usp  # noqa: E402
from hw.spec.usp import CplStatus, ReqType  # noqa: E402

DmaStatus = regmap.DmaStatus


def byte_at(addr):
    """What the BAR2 model holds at a byte address."""
    return (addr * 7 + (addr >> 8) * 13) & 0xFF


def dword_at(dw):
    return int.from_bytes(bytes(byte_at(dw * 4 + k) for k in range(4)), "little")


# -- Write direction -------------------------------------------------------


@pytest.mark.parametrize("mps_code", [0, 2])
def test_tlp_splitter(mps_code):
    """TLPs cover the descriptor's bytes in order, none crossing an MPS
    boundary, with byte enables and payload indexes that match."""
    bench = BlockBench(TlpSplitter(128), seed=mps_code)
    dut, rng = bench.dut, bench.rng
    mps = 128 << mps_code
    cmds = [(rng.getrandbits(40), rng.choice([1, 2, 3, 5, rng.randrange(1, 9000)]), k % 16)
            for k in range(30)]

    @bench.testbench
    async def source(ctx):
        ctx.set(dut.max_payload, mps_code)
        for bus, length, slot in cmds:
            await stream_put(ctx, dut.writes, {"bus": bus, "length": length, "slot": slot})

    @bench.testbench
    async def sink(ctx):
        for bus, length, slot in cmds:
            addr, pidx, left = bus, 0, length
            words = ((bus % 4 + length + 3) // 4 + 3) // 4
            while left:
                await pause(ctx, rng, 0.3)
                t = await stream_get(ctx, dut.tlps)
                size = min(left, mps - addr % mps)
                first, end = addr % 4, (addr + size - 1) % 4
                dw = (first + size + 3) // 4
                fbe, lbe = (0xF << first) & 0xF, 0xF >> (3 - end)
                assert (t.addr, t.dw, t.pidx, t.words, t.slot, t.last) == \
                    (addr, dw, pidx, words, slot, size == left)
                assert (t.fbe, t.lbe) == ((fbe & lbe, 0) if dw == 1 else (fbe, lbe))
                addr, pidx, left = addr + size, pidx + dw, left - size

    bench.run(cycles=20_000)


@pytest.mark.parametrize("width", [64, 256])
def test_window_reader(width):
    """Payload words are BAR2's bytes from the command's dword plus shift,
    whatever memory's latency and back-pressure and the consumer's pace; a
    stop in the middle of a command drops it, and the next reads right."""
    lb = 17
    bench = BlockBench(WindowReader(width, lb), seed=width)
    dut, rng = bench.dut, bench.rng
    mem = AxiMemory(bench, dut.mem, size=1 << lb, latency=rng.choice([1, 30]), busy=0.3,
                    writes=False)
    mem.mem[:] = bytes(byte_at(a) for a in range(1 << lb))
    cmds = [(rng.randrange(0, 1 << 14), rng.randrange(4), rng.randrange(1, 20)) for _ in range(20)]

    @bench.testbench
    async def source(ctx):
        for dw, shift, words in cmds:
            await stream_put(ctx, dut.windows, {"dw": dw, "shift": shift, "words": words})

    async def check(ctx, dw, shift, i):
        got = await stream_get(ctx, dut.words)
        start = dw * 4 + shift + i * width // 8
        want = int.from_bytes(bytes(byte_at(start + k) for k in range(width // 8)), "little")
        assert got == want, f"command {dw:#x}+{shift}, word {i}"

    @bench.testbench
    async def sink(ctx):
        for dw, shift, words in cmds:
            for i in range(words):
                await pause(ctx, rng, 0.3)
                await check(ctx, dw, shift, i)
        # A long command stopped after a few words.
        await stream_put(ctx, dut.windows, {"dw": 0x40, "shift": 1, "words": 300})
        for i in range(3):
            await check(ctx, 0x40, 1, i)
        ctx.set(dut.stop, 1)
        await ctx.tick()
        ctx.set(dut.stop, 0)
        await stream_put(ctx, dut.windows, {"dw": 0x123, "shift": 2, "words": 4})
        for i in range(4):
            await check(ctx, 0x123, 2, i)

    bench.run(cycles=40_000)


def write_tlps(rng, count):
    """TLPs of descriptors as the splitter makes them (MPS 256), and each
    descriptor's payload dwords."""
    out = []
    for slot in range(count):
        bus, length = rng.getrandbits(32), rng.randrange(1, 700)
        payload = [rng.getrandbits(32) for _ in range((bus % 4 + length + 3) // 4)]
        addr, pidx, left = bus, 0, length
        while left:
            size = min(left, 256 - addr % 256)
            dw = (addr % 4 + size + 3) // 4
            out.append(({"addr": addr, "dw": dw, "fbe": 0xF, "lbe": 0xF if dw > 1 else 0,
                         "pidx": pidx, "words": None, "last": size == left, "slot": slot},
                        payload))
            addr, pidx, left = addr + size, pidx + dw, left - size
    return out


@pytest.mark.parametrize("width", [64, 128, 512])
def test_write_packer(width):
    """Each packet is its TLP's RQ descriptor followed by its slice of the
    payload, beats and keep as the format sets, the sequence number naming
    its slot; no packet starts while bus mastering is off."""
    n = width // 32
    bench = BlockBench(WritePacker(width), seed=width)
    dut, rng = bench.dut, bench.rng
    tlps = write_tlps(rng, 6)
    descs = []
    for t, payload in tlps:
        if not descs or descs[-1] is not payload:
            descs.append(payload)
        t["words"] = (len(payload) + n - 1) // n

    @bench.testbench
    async def splitter(ctx):
        for t, _ in tlps:
            await stream_put(ctx, dut.tlps, t)

    @bench.testbench
    async def reader(ctx):
        for payload in descs:
            padded = payload + [0] * (-len(payload) % n)
            for i in range(0, len(padded), n):
                await pause(ctx, rng, 0.3)
                await stream_put(ctx, dut.words, words_to_int(padded[i:i + n]))

    @bench.testbench
    async def rq(ctx):
        ctx.set(dut.bus_master, 0)
        for _ in range(30):
            assert not ctx.get(dut.packet.tvalid), "a packet offered with bus mastering off"
            await ctx.tick()
        ctx.set(dut.bus_master, 1)
        for t, payload in tlps:
            words, beats = [], 0
            while True:
                ready = rng.random() < 0.7
                ctx.set(dut.packet.tready, ready)
                valid, data, keep, last = await sample(ctx, dut.packet.tvalid, dut.packet.tdata,
                                                       dut.packet.tkeep, dut.packet.tlast)
                if valid and ready:
                    words += int_to_words(data, bin(keep).count("1"))
                    beats += 1
                    if last:
                        break
            hdr = usp.unpack_descriptor(usp.RQ_DESCRIPTOR, words[:4])
            assert (hdr["address"] << 2, hdr["dw_count"], hdr["req_type"]) == \
                (t["addr"] & ~3, t["dw"], ReqType.MEM_WRITE)
            assert words[4:] == payload[t["pidx"]:t["pidx"] + t["dw"]]
            assert beats == (4 + t["dw"] + n - 1) // n

    bench.run(cycles=30_000)


def test_rq_arbiter_keeps_packets_whole():
    """A read request never goes inside a write packet; both streams come
    out whole and in their order."""
    width, n = 128, 4
    bench = BlockBench(RqArbiter(width), seed=5)
    dut, rng = bench.dut, bench.rng
    reads = [{"addr": 0x1000 * k, "dw": 16, "tag": k, "fbe": 0xF, "lbe": 0xF} for k in range(30)]
    packets = [[rng.getrandbits(32) for _ in range(4 * rng.randrange(1, 6))] for _ in range(30)]
    for words in packets:                       # each starts with a write header
        words[:4] = usp.replace_field(usp.RQ_DESCRIPTOR, words[:4], "req_type", ReqType.MEM_WRITE)

    @bench.testbench
    async def requester(ctx):
        ctx.set(dut.bus_master, 1)
        for r in reads:
            await pause(ctx, rng, 0.5)
            await stream_put(ctx, dut.request, r)

    @bench.testbench
    async def packer(ctx):
        for words in packets:
            for i in range(0, len(words), n):
                ctx.set(dut.packet_mid, i != 0)
                ctx.set(dut.packet.tvalid, 1)
                ctx.set(dut.packet.tdata, words_to_int(words[i:i + n]))
                ctx.set(dut.packet.tkeep, 0xF)
                ctx.set(dut.packet.tlast, i + n == len(words))
                await ctx.tick().until(dut.packet.tready)
            ctx.set(dut.packet.tvalid, 0)
            ctx.set(dut.packet_mid, 0)
            await pause(ctx, rng, 0.5)

    got_reads, got_packets = [], []

    @bench.testbench
    async def rq(ctx):
        inside = []
        while len(got_reads) < len(reads) or len(got_packets) < len(packets):
            ready = rng.random() < 0.7
            ctx.set(dut.rq.tready, ready)
            valid, data, keep, last = await sample(ctx, dut.rq.tvalid, dut.rq.tdata,
                                                   dut.rq.tkeep, dut.rq.tlast)
            if not (valid and ready):
                continue
            words = int_to_words(data, bin(keep).count("1"))
            hdr = usp.unpack_descriptor(usp.RQ_DESCRIPTOR, words + [0] * 4)
            if not inside and hdr["req_type"] == ReqType.MEM_READ:
                assert last, "a read request is one beat at 128 bits"
                got_reads.append(hdr["tag"])
                continue
            inside += words
            if last:
                got_packets.append(inside)
                inside = []

    bench.run(cycles=20_000)
    assert got_reads == [r["tag"] for r in reads]
    assert got_packets == packets


# -- Read direction --------------------------------------------------------


@pytest.mark.parametrize("mrrs_code", [0, 2])
def test_read_requester(mrrs_code):
    """Reads split at MRRS-aligned addresses, each with the tag the table
    offers and the BAR2 base of its bus page; no read while the credit it
    needs is not free; the last one of a descriptor says so."""
    bench = BlockBench(ReadRequester(21, cpl_credits=64), seed=mrrs_code)
    dut, rng = bench.dut, bench.rng
    mrrs = 128 << mrrs_code
    cmds = [(rng.getrandbits(32), rng.randrange(1, 3000), rng.randrange(1 << 20), k)
            for k in range(8)]

    @bench.testbench
    async def sequencer(ctx):
        ctx.set(dut.max_read_req, mrrs_code)
        for bus, length, local, slot in cmds:
            await stream_put(ctx, dut.reads, {"bus": bus, "length": length, "local": local,
                                              "slot": slot})

    @bench.testbench
    async def table_and_arbiter(ctx):
        ctx.set(dut.tags.ready, 1)
        held = 0                                 # credits reserved
        for bus, length, local, slot in cmds:
            addr, left = bus, length
            while left:
                size = min(left, mrrs - addr % mrrs)
                dw = (addr % 4 + size + 3) // 4
                tag = rng.randrange(256)
                ctx.set(dut.tags.tag, tag)
                ctx.set(dut.tags.credits, held)
                ctx.set(dut.request.ready, 1)
                if held + (dw + 3) // 4 > 64:    # no room: the request must wait
                    for _ in range(5):
                        assert not (await sample(ctx, dut.request.valid))[0]
                    held = 0
                    ctx.set(dut.tags.credits, held)
                r, info, issued = await ctx.tick().sample(dut.request.payload, dut.tags.info,
                                                          dut.issued).until(dut.request.valid)
                assert (r.addr, r.dw, r.tag) == (addr, dw, tag)
                assert (info.lbase, info.slot, info.credits) == \
                    ((local + addr - bus - addr % 4096) % (1 << 21), slot, (dw + 3) // 4)
                assert (issued.valid, issued.slot, issued.all) == (1, slot, size == left)
                held += (dw + 3) // 4
                addr, left = addr + size, left - size
        ctx.set(dut.request.ready, 0)

    bench.run(cycles=20_000)


class ReadSide(wiring.Component):
    """The tag table and the completion receiver, joined as in the engine."""

    def __init__(self, width, local_bits):
        self.table = TagTable(local_bits, 2048)
        self.receiver = CompletionReceiver(width, local_bits)
        super().__init__({})

    def elaborate(self, platform):
        m = Module()
        m.submodules.table, m.submodules.receiver = self.table, self.receiver
        wiring.connect(m, self.receiver.tags, self.table.lookup)
        return m


def bus_byte(addr):
    return (addr * 31 + (addr >> 7) + 5) & 0xFF


def completions(rng, tag, addr, length, rcb=64):
    """RC packets (dwords) answering one read: split at RCB multiples."""
    out, left = [], length
    while left:
        size = min(left, rcb - addr % rcb + rcb * rng.randrange(3))
        first_dw, dw = addr // 4, (addr % 4 + size + 3) // 4
        desc = usp.pack_descriptor(usp.RC_DESCRIPTOR, usp.RC_DESCRIPTOR_DWORDS,
                                   lower_address=addr & 0xFFF, byte_count=left, dw_count=dw,
                                   status=CplStatus.SC, tag=tag)
        payload = [int.from_bytes(bytes(bus_byte((first_dw + j) * 4 + k) for k in range(4)),
                                  "little") for j in range(dw)]
        out.append(desc + payload)
        addr, left = addr + size, left - size
    return out


@pytest.mark.parametrize("width", [64, 256])
def test_completions_land_in_bar2(width):
    """Completions of several reads, split and interleaved, write exactly
    the requested bytes at their places in BAR2 (whatever the memory's
    latency and back-pressure), and each read ends once, with its slot,
    only after memory has acknowledged its writes."""
    n, lb = width // 32, 21
    bench = BlockBench(ReadSide(width, lb), seed=width)
    side, rng = bench.dut, bench.rng
    table, rx = side.table, side.receiver
    mem = AxiMemory(bench, rx.mem, size=1 << lb, latency=25, busy=0.3, reads=False)
    untouched = 0x5A
    mem.mem[:] = bytes([untouched]) * (1 << lb)
    reads = []
    for k in range(12):
        addr = rng.getrandbits(32)
        length = rng.randrange(1, min(513, 4096 - addr % 4096 + 1))
        reads.append({"addr": addr, "length": length, "local": rng.randrange(0, 1 << 20),
                      "slot": k})
    ended = []

    @bench.testbench
    async def requester_and_bus(ctx):
        ctx.set(table.ext_tags, 1)
        ctx.set(table.timeout, 1 << 20)
        await ctx.tick().until(table.alloc.ready)
        pending = []
        for r in reads:
            tag = ctx.get(table.alloc.tag)
            ctx.set(table.alloc.take, 1)
            ctx.set(table.alloc.info, {"lbase": (r["local"] - r["addr"] % 4096) % (1 << lb),
                                       "slot": r["slot"], "credits": 1})
            await ctx.tick()
            pending.append(completions(rng, tag, r["addr"], r["length"]))
        ctx.set(table.alloc.take, 0)
        while any(pending):                      # interleave, each read in order
            packet = rng.choice([p for p in pending if p]).pop(0)
            beats = [packet[i:i + n] for i in range(0, len(packet), n)]
            for i, beat in enumerate(beats):
                ctx.set(rx.rc.tvalid, 1)
                ctx.set(rx.rc.tdata, words_to_int(beat))
                ctx.set(rx.rc.tkeep, (1 << len(beat)) - 1)
                ctx.set(rx.rc.tlast, i == len(beats) - 1)
                await ctx.tick().until(rx.rc.tready)
            ctx.set(rx.rc.tvalid, 0)
            await pause(ctx, rng, 0.3)
        while len(ended) < len(reads):
            await ctx.tick()

    @bench.background
    async def ends(ctx):
        while True:
            end, = await sample(ctx, table.ended)
            if end.valid:
                r = reads[end.slot]
                assert all(mem.mem[r["local"] + i] == bus_byte(r["addr"] + i)
                           for i in range(r["length"])), f"read {end.slot} ended before its data"
                ended.append((end.slot, end.error))

    bench.run(cycles=40_000)
    expected = bytearray([untouched]) * (1 << lb)
    for r in reads:
        for i in range(r["length"]):
            expected[r["local"] + i] = bus_byte(r["addr"] + i)
    assert mem.mem == expected
    assert sorted(ended) == sorted((r["slot"], DmaStatus.OK) for r in reads)


def test_tag_timeout_and_rest():
    """A read with no completion ends TIMEOUT after `timeout` cycles; its
    tag comes back only after resting as long again. Without Extended Tag
    Field Enable only tags below 32 are given."""
    bench = BlockBench(TagTable(21, 2048))
    dut = bench.dut

    @bench.testbench
    async def test(ctx):
        ctx.set(dut.timeout, 600)
        await ctx.tick().until(dut.alloc.ready)
        given = []
        for _ in range(32):
            given.append(ctx.get(dut.alloc.tag))
            ctx.set(dut.alloc.take, 1)
            ctx.set(dut.alloc.info, {"slot": 3, "credits": 2})
            await ctx.tick()
        ctx.set(dut.alloc.take, 0)
        assert sorted(given) == list(range(32))
        assert not ctx.get(dut.alloc.ready), "tag 32 and up need Extended Tag Field Enable"
        assert ctx.get(dut.alloc.credits) == 64 and ctx.get(dut.reads_out) == 32
        timeouts, cycles = 0, 0
        while timeouts < 32:
            end = (await sample(ctx, dut.ended))[0]
            cycles += 1
            if end.valid:
                assert (end.slot, end.error) == (3, DmaStatus.TIMEOUT)
                assert cycles > 600 - 32, "timed out early"
                timeouts += 1
        assert ctx.get(dut.reads_out) == 0 and ctx.get(dut.alloc.credits) == 0
        assert not ctx.get(dut.alloc.ready), "a timed-out tag rests first"
        await ctx.tick().until(dut.alloc.ready)
        assert cycles > 600, "rested for less than the timeout"

    bench.run(cycles=5_000)


# -- Sequencer -------------------------------------------------------------


def test_sequencer_ends_descriptors_in_order():
    """Results come in submission order with the status each earned: a
    write once the hard IP reports its last packet, a refused one at its
    turn, a read with the first error of its requests, and everything
    held ABORTED after an abort."""
    bench = BlockBench(Sequencer(128, 21))
    dut = bench.dut
    descs = [dict(bus=0x1000, length=100, from_bus=0), dict(bus=0x2000, length=0, from_bus=0),
             dict(bus=0x3000, length=600, from_bus=1), dict(bus=0x4000, length=64, from_bus=0),
             dict(bus=0x5000, length=64, from_bus=1)]
    results = []

    @bench.background
    async def paths(ctx):
        for s in (dut.windows, dut.writes, dut.reads):
            ctx.set(s.ready, 1)
        ctx.set(dut.packer_idle, 1)
        ctx.set(dut.arbiter_idle, 1)
        while True:
            valid, ident, status = await sample(ctx, dut.result.valid, dut.result.id,
                                                dut.result.status)
            if valid:
                results.append((ident, status))

    async def event(ctx, member, **values):
        ctx.set(member, {"valid": 1, **values})
        await ctx.tick()
        ctx.set(member, {"valid": 0})

    @bench.testbench
    async def test(ctx):
        ctx.set(dut.bus_master, 1)
        for k, d in enumerate(descs):
            ctx.set(dut.desc.valid, 1)
            ctx.set(dut.desc.id, 0x10 + k)
            for name, value in d.items():
                ctx.set(getattr(dut.desc, name), value)
            await ctx.tick().until(dut.desc.ready)
        ctx.set(dut.desc.valid, 0)
        await ctx.tick().repeat(5)
        assert results == [], "nothing ends before the hard IP reports the first write"
        ctx.set(dut.rq_seq_vld0, 1)                 # slot 0's last packet has gone
        ctx.set(dut.rq_seq_num0, 0x20 | 0x10 | 0)
        await ctx.tick()
        ctx.set(dut.rq_seq_vld0, 0)
        await event(ctx, dut.read_issued, slot=2, all=0)
        await event(ctx, dut.read_issued, slot=2, all=1)
        await event(ctx, dut.read_ended, slot=2, error=DmaStatus.UNSUPPORTED_REQUEST)
        await event(ctx, dut.read_ended, slot=2, error=DmaStatus.TIMEOUT)   # the first wins
        await ctx.tick().repeat(5)
        assert results == [(0x10, DmaStatus.OK), (0x11, DmaStatus.BAD_DESCRIPTOR),
                           (0x12, DmaStatus.UNSUPPORTED_REQUEST)]
        assert ctx.get(dut.busy)
        ctx.set(dut.abort, 1)                        # slots 3 and 4 still held
        await ctx.tick()
        ctx.set(dut.abort, 0)
        await ctx.tick().repeat(5)
        assert results[3:] == [(0x13, DmaStatus.ABORTED), (0x14, DmaStatus.ABORTED)]
        assert not ctx.get(dut.aborting) and not ctx.get(dut.busy)

    bench.run(cycles=500)
