"""The endpoint's gateware blocks one at a time, in Amaranth's simulator
(hw/sim/tb/blocks.py), each against its own interface; the cocotb
benches in hw/sim/ test them together against the bus models."""


import pytest

pytest.importorskip("amaranth")

from hw.bar_endpoint import register_constants  # noqa: E402
from hw.core import ports  # noqa: E402
from hw.core.completer import Completer  # noqa: E402
from hw.core.control import DevctlPoller, DmaQueue  # noqa: E402
from hw.core.dispatch import Dispatcher  # noqa: E402
from hw.core.ingress import Ingress  # noqa: E402
from hw.core.msix import MsixSender  # noqa: E402
from hw.core.storage import EventCounters, MemoryBanks, RegisterFile  # noqa: E402
from hw.params import EndpointParams  # noqa: E402
from hw.sim.tb.axi_model import AxiMemory  # noqa: E402
from hw.sim.tb.blocks import (BlockBench, axis_put, int_to_words, pause,  # noqa: E402
                              sample, stream_get, stream_put, words_to_int)
from hw.spec import pcie, regmap, usp  # noqa: E402
from hw.spec.usp import CplStatus, ReqType  # noqa: E402

REGS = regmap.by_name()


def cq_descriptor(req_type, dw_addr, dw_count, bar_id=2, tag=0, requester_id=0x0100):
    return usp.pack_descriptor(usp.CQ_DESCRIPTOR, usp.CQ_DESCRIPTOR_DWORDS,
                               req_type=req_type, address=dw_addr, dw_count=dw_count % 1024,
                               bar_id=bar_id, tag=tag, requester_id=requester_id)


def word(space, dw_addr):
    """What the bank models hold at a dword address (space 0: BAR0, 2: BAR2)."""
    return (dw_addr * 0x9E3779B1 + space * 0x1234567) & 0xFFFF_FFFF


def payload_bytes(dw_count, fbe, lbe):
    """Byte enables of each payload dword of a request."""
    return [fbe if j == 0 else lbe if j == dw_count - 1 else 0xF for j in range(dw_count)]


# -- Ingress ---------------------------------------------------------------


@pytest.mark.parametrize("width", [64, 256])
def test_ingress_stores_and_forwards_whole_packets(width):
    """Packets leave whole, in order, only once their last beat is in, with
    a discontinue anywhere in them marking the packet, and one longer than
    the largest request marked malformed."""
    p = EndpointParams(data_width=width, max_payload_supported=128)
    n, sb = p.lanes, usp.sideband(width)
    bench = BlockBench(Ingress(p), seed=width)
    dut, rng = bench.dut, bench.rng
    limit = 4 + p.max_payload_supported // 4
    sent = []
    for k in range(40):
        length = rng.choice([rng.randrange(4, limit + 1), rng.randrange(limit + 1, limit + 9)])
        words = cq_descriptor(ReqType.MEM_WRITE, 0x100 + k, length - 4) + \
            [rng.getrandbits(32) for _ in range(length - 4)]
        sent.append((words, rng.random() < 0.2, length > limit))
    complete_in = [0]

    @bench.testbench
    async def source(ctx):
        for words, disc, _ in sent:
            beats = [words[i:i + n] for i in range(0, len(words), n)]
            disc_beat = rng.randrange(len(beats)) if disc else -1
            for i, beat in enumerate(beats):
                await pause(ctx, rng, 0.3)
                user = 0xF << sb.cq_first_be | 0xF << sb.cq_last_be \
                    | (i == disc_beat) << sb.cq_discontinue
                await axis_put(ctx, dut.cq, words_to_int(beat), (1 << len(beat)) - 1,
                               i == len(beats) - 1, user)
            complete_in[0] += 1

    got = []

    @bench.testbench
    async def sink(ctx):
        words, flags = [], set()
        while len(got) < len(sent):
            await pause(ctx, rng, 0.3)
            beat = await stream_get(ctx, dut.o)
            if not words and not flags:
                assert complete_in[0] > len(got), "a packet left before its last beat came in"
            words += int_to_words(beat.data, bin(beat.keep).count("1"))
            flags.add((beat.discard, beat.over))
            if beat.last:
                assert len(flags) == 1, "the verdict changed inside a packet"
                got.append((words, *flags.pop()))
                words = []

    bench.run(cycles=20_000)
    for k, ((words, disc, over), (out, discard, over_out)) in enumerate(zip(sent, got)):
        assert over_out == over, f"packet {k}: over {over_out}, expected {over}"
        assert discard == (disc or over), f"packet {k}: discard {discard}"
        if not over:
            assert out == words, f"packet {k}: data differs"


def test_ingress_non_posted_credit():
    """Credit is given while the credits out, the requests in the FIFO and
    those the completer holds leave room in its queue, never beyond."""
    p = EndpointParams(data_width=128, np_queue_depth=4)
    bench = BlockBench(Ingress(p))
    dut = bench.dut

    async def grants(ctx, cycles):
        count = 0
        for _ in range(cycles):
            count += ctx.get(dut.np_req)
            await ctx.tick()
        return count

    @bench.testbench
    async def hard_ip(ctx):
        assert await grants(ctx, 50) == 4, "an idle endpoint gives its queue's depth"
        for tag in range(4):                    # the hard IP spends the 4 credits
            desc = cq_descriptor(ReqType.MEM_READ, 0x40, 1, tag=tag)
            await axis_put(ctx, dut.cq, words_to_int(desc), 0xF, 1)
        assert await grants(ctx, 50) == 0, "4 requests in the FIFO leave no room"
        ctx.set(dut.np_queued, 2)               # the completer took two of them
        for _ in range(2):
            ctx.set(dut.np_taken, 1)
            await ctx.tick()
        ctx.set(dut.np_taken, 0)
        assert await grants(ctx, 50) == 0, "two in the FIFO, two queued: still full"
        ctx.set(dut.np_queued, 0)               # ... and answered them
        assert await grants(ctx, 50) == 2

    bench.run(cycles=2_000)


# -- Dispatcher ------------------------------------------------------------


def dispatcher_requests(rng, p):
    """A mix of writes (some flagged), reads and other non-posted requests,
    and BAR2 writes and reads beyond its memory."""
    out = []
    for tag in range(60):
        kind = rng.choice(["write", "write", "write", "read", "io", "cas", "flagged",
                           "far_write", "far_read"])
        bar = rng.choice([0, 2, 2]) if kind not in ("io", "far_write", "far_read") \
            else 2 if kind.startswith("far") else rng.choice([0, 1])
        space = (p.bar0_size if bar == 0 else p.bar2_size) // 4
        length = rng.randrange(1, 40)
        addr = rng.randrange(0, min(space, 4096) - length)
        if kind.startswith("far"):
            addr = rng.randrange(p.mem_size // 4, space - length)
        fbe = rng.randrange(16)
        lbe = rng.randrange(1, 16) if length > 1 else 0
        out.append(dict(kind=kind, bar=bar, addr=addr, length=length, fbe=fbe, lbe=lbe,
                        tag=tag, data=[rng.getrandbits(32) for _ in range(length)]))
    return out


@pytest.mark.parametrize("width", [64, 128, 512])
def test_dispatcher(width):
    """Served writes reach memory (BAR2, over AXI4 with latency and
    back-pressure) or the register banks (BAR0) at their dword addresses
    with their byte enables, flagged ones nowhere; non-posted requests are
    queued with the completion each needs and the number of BAR2 writes
    before them; BAR2 beyond its memory: writes dropped, reads answered UR;
    every request is counted once."""
    p = EndpointParams(data_width=width)
    n = p.lanes
    bench = BlockBench(Dispatcher(p), seed=width)
    dut, rng = bench.dut, bench.rng
    mem = AxiMemory(bench, dut.mem, size=p.bar2_size, latency=12, busy=0.3, reads=False)
    reqs = dispatcher_requests(rng, p)
    types = {"write": ReqType.MEM_WRITE, "flagged": ReqType.MEM_WRITE, "read": ReqType.MEM_READ,
             "io": ReqType.IO_READ, "cas": ReqType.MEM_CAS, "far_write": ReqType.MEM_WRITE,
             "far_read": ReqType.MEM_READ}
    nonposted_kinds = ("read", "io", "cas", "far_read")

    @bench.testbench
    async def source(ctx):
        for r in reqs:
            posted = r["kind"] in ("write", "flagged", "far_write")
            words = cq_descriptor(types[r["kind"]], r["addr"], r["length"], bar_id=r["bar"],
                                  tag=r["tag"]) + (r["data"] if posted else [])
            beats = [words[i:i + n] for i in range(0, len(words), n)]
            for i, beat in enumerate(beats):
                await pause(ctx, rng, 0.2)
                await stream_put(ctx, dut.i, {
                    "data": words_to_int(beat), "keep": (1 << len(beat)) - 1,
                    "last": i == len(beats) - 1, "first_be": r["fbe"], "last_be": r["lbe"],
                    "discard": r["kind"] == "flagged", "over": 0})

    queued = []

    @bench.testbench
    async def completer(ctx):
        while len(queued) < sum(r["kind"] in nonposted_kinds for r in reqs):
            await pause(ctx, rng, 0.5)
            queued.append(await stream_get(ctx, dut.np))

    written = {0: {}, 2: {}}
    events = {name: 0 for name in ports.ALL_COUNTERS.members}

    @bench.background
    async def monitor(ctx):
        w = dut.write
        while True:
            en, bar0, be, data, rows, ev = await sample(ctx,
                w.en, w.bar0, w.be, w.data, w.row, dut.events)
            for name in ev.shape().members:
                events[name] += getattr(ev, name)
            assert not (en and not bar0), "a BAR2 write reached the register banks"
            for b in range(n):
                for byte in range(4):
                    if en and be >> (4 * b + byte) & 1:
                        addr = (rows[b] * n + b) * 4 + byte
                        written[0][addr] = data >> (32 * b + 8 * byte) & 0xFF

    bar2_writes = sum(r["kind"] == "write" and r["bar"] == 2 for r in reqs)

    @bench.testbench
    async def drained(ctx):
        while ctx.get(dut.mem_done) != bar2_writes:
            await ctx.tick()

    bench.run(cycles=30_000)
    written[2] = {a: v for a, v in enumerate(mem.mem) if v}
    expected = {0: {}, 2: {}}
    for r in reqs:
        if r["kind"] == "write":
            for j, (value, be) in enumerate(zip(r["data"], payload_bytes(r["length"], r["fbe"],
                                                                         r["lbe"]))):
                for byte in range(4):
                    if be >> byte & 1:
                        expected[r["bar"]][(r["addr"] + j) * 4 + byte] = value >> 8 * byte & 0xFF
    expected[2] = {a: v for a, v in expected[2].items() if v}
    assert written == expected
    nonposted = [r for r in reqs if r["kind"] in nonposted_kinds]
    for r, q in zip(nonposted, queued):
        before = reqs[:reqs.index(r)]
        assert q.ticket == sum(b["kind"] == "write" and b["bar"] == 2 for b in before) % 256
        read = r["kind"] in ("read", "far_read")
        assert (q.kind, q.tag, q.dw_addr, q.dw_count, q.fbe, q.lbe, q.bar0) == \
            (ports.NP_READ if r["kind"] == "read" else ports.NP_UR, r["tag"], r["addr"],
             r["length"], r["fbe"], r["lbe"], r["bar"] == 0), r
        assert (q.bc_fixed, q.bc) == ((0, 4) if read else (1, 4) if r["kind"] == "io"
                                      else (1, 2 * r["length"])), r
    count = {kind: sum(r["kind"] == kind for r in reqs) for kind in types}
    assert events == {"stat_writes": count["write"], "err_poisoned_dropped": count["flagged"],
                      "stat_reads": count["read"],
                      "err_ur": count["io"] + count["cas"] + count["far_read"],
                      "err_posted_dropped": 0, "err_malformed_dropped": 0, "stat_cpls": 0,
                      "err_unbacked_dropped": count["far_write"]}


# -- Completer -------------------------------------------------------------


def completer_requests(rng):
    out = []
    for tag in range(40):
        kind = rng.choice(["read", "read", "read", "ur"])
        length = rng.choice([1, 1, rng.randrange(1, 300)])
        fbe = rng.randrange(16) if length == 1 else rng.randrange(1, 16)
        lbe = 0 if length == 1 else rng.randrange(1, 16)
        out.append(dict(kind=ports.NP_READ if kind == "read" else ports.NP_UR, bar0=rng.random() < 0.2,
                        dw_addr=rng.randrange(0, 1 << 14), dw_count=length, fbe=fbe, lbe=lbe,
                        req_id=rng.getrandbits(16), tag=tag, func=0, tc=rng.randrange(8),
                        attr=rng.randrange(8), locked=0, bc_fixed=kind == "ur" and
                        rng.random() < 0.5, bc=4))
    return out


def read_bytes(r):
    """(Byte Count of a whole read, offset of its first byte) per the PCIe rules."""
    if r["dw_count"] == 1 and r["fbe"] == 0:
        return 1, 0
    lead = (r["fbe"] & -r["fbe"]).bit_length() - 1
    last = r["fbe"] if r["dw_count"] == 1 else r["lbe"]
    return (r["dw_count"] - 1) * 4 + last.bit_length() - lead, lead


def check_completions(p, r, cpls, mps, rcb):
    total, lead = read_bytes(r)
    if r["kind"] == ports.NP_UR:
        (desc, data), = cpls
        assert (desc["status"], desc["dw_count"], data) == (CplStatus.UR, 0, [])
        assert desc["byte_count"] == (r["bc"] if r["bc_fixed"] else total)
        assert desc["lower_address"] == (0 if r["bc_fixed"] else (r["dw_addr"] * 4 + lead) & 0x7F)
        return
    addr, bc, payload = r["dw_addr"], total, []
    for k, (desc, data) in enumerate(cpls):
        assert desc["status"] == CplStatus.SC and desc["byte_count"] == bc
        assert desc["lower_address"] == (addr * 4 + (lead if k == 0 else 0)) & 0x7F
        assert desc["dw_count"] == len(data) and 0 < len(data) <= mps // 4
        assert (desc["requester_id"], desc["tag"], desc["tc"], desc["attr"]) == \
            (r["req_id"], r["tag"], r["tc"], r["attr"])
        addr += len(data)
        if k < len(cpls) - 1:
            assert addr * 4 % rcb == 0, "a completion other than the last ends off the RCB"
        bc -= len(data) * 4 - (lead if k == 0 else 0)
        payload += data
    assert bc <= 0, "the last completion's Byte Count is more than it carries"
    space, size = (0, p.bar0_size) if r["bar0"] else (2, p.bar2_size)
    assert payload == [word(space, (r["dw_addr"] + j) % (size // 4))
                       for j in range(r["dw_count"])]


def filled_memories(bench, p, latency):
    """AXI4 memory models behind the completer's two read ports, each dword
    holding word(space, its address)."""
    mems = []
    for port, space, size in ((bench.dut.mem, 2, p.bar2_size), (bench.dut.regs, 0, p.bar0_size)):
        mem = AxiMemory(bench, port, size=size, latency=latency, busy=0.2, writes=False)
        mem.mem[:] = b"".join(word(space, a).to_bytes(4, "little") for a in range(size // 4))
        mems.append(mem)
    return mems


@pytest.mark.parametrize("width", [64, 256])
@pytest.mark.parametrize("mps_code,rcb_128", [(0, 0), (1, 1)])
def test_completer(width, mps_code, rcb_128):
    """Reads are answered with the banks' data, split at the RCB and Max
    Payload Size with the Byte Count and Lower Address the rules give;
    unsupported requests with one UR completion."""
    p = EndpointParams(data_width=width)
    bench = BlockBench(Completer(p), seed=width + mps_code)
    dut, rng = bench.dut, bench.rng
    reqs = completer_requests(rng)
    filled_memories(bench, p, latency=rng.choice([1, 40]))

    @bench.testbench
    async def queue(ctx):
        ctx.set(dut.max_payload, mps_code)
        ctx.set(dut.rcb_128, rcb_128)
        for r in reqs:
            await pause(ctx, rng, 0.3)
            await stream_put(ctx, dut.np, r)

    cpls, done = [], set()

    @bench.testbench
    async def cc(ctx):
        words = []
        while len(done) < len(reqs):
            ready = rng.random() < 0.7
            ctx.set(dut.cc.tready, ready)
            valid, data, keep, last = await sample(ctx, 
                dut.cc.tvalid, dut.cc.tdata, dut.cc.tkeep, dut.cc.tlast)
            if valid and ready:
                words += int_to_words(data, bin(keep).count("1"))
                if last:
                    desc = usp.unpack_descriptor(usp.CC_DESCRIPTOR, words[:3])
                    cpls.append((desc, words[3:]))
                    words = []
                    carried = desc["dw_count"] * 4 - (desc["lower_address"] & 3)
                    if desc["status"] != CplStatus.SC or desc["byte_count"] <= carried:
                        done.add(desc["tag"])

    bench.run(cycles=60_000)
    for r in reqs:
        check_completions(p, r, [c for c in cpls if c[0]["tag"] == r["tag"]],
                          usp.mps_bytes(mps_code), usp.rcb_bytes(rcb_128))


def test_completer_reads_memory_after_the_writes_before_it():
    """A read whose ticket counts a BAR2 write not yet in memory waits:
    no AR until `mem_done` reaches the ticket; a register read does not."""
    p = EndpointParams(data_width=128)
    bench = BlockBench(Completer(p), seed=5)
    dut = bench.dut
    mem, _ = filled_memories(bench, p, latency=3)
    read = completer_requests(bench.rng)[0] | dict(kind=ports.NP_READ, bar0=0, dw_count=4,
                                                    fbe=0xF, lbe=0xF)

    @bench.testbench
    async def test(ctx):
        ctx.set(dut.mem_done, 0xFF)
        ctx.set(dut.cc.tready, 1)
        await stream_put(ctx, dut.np, read | dict(ticket=0))      # 0xFF - 0 < 0: waits
        await stream_put(ctx, dut.np, read | dict(bar0=1, tag=1, ticket=0))
        for _ in range(60):
            await ctx.tick()
        assert mem.bursts["read"] == 0 and not ctx.get(dut.cc.tvalid)
        ctx.set(dut.mem_done, 0)
        valid, = await sample(ctx, dut.cc.tvalid)
        while not valid:
            valid, = await sample(ctx, dut.cc.tvalid)
        assert mem.bursts["read"] == 1

    bench.run(cycles=300)


# -- Storage ---------------------------------------------------------------


async def bank_write(ctx, port, n, dw_addr, value, be=0xF, bar0=True):
    """Writes one dword through a bank write port (the others' enables off)."""
    b, row = dw_addr % n, dw_addr // n
    ctx.set(port.en, 1)
    ctx.set(port.bar0, bar0)
    ctx.set(port.row[b], row)
    ctx.set(port.data, value << 32 * b)
    ctx.set(port.be, be << 4 * b)
    await ctx.tick()
    ctx.set(port.en, 0)
    ctx.set(port.be, 0)


async def bank_read(ctx, port, n, dw_addr):
    b = dw_addr % n
    ctx.set(port.en, 1)
    ctx.set(port.row[b], dw_addr // n)
    await ctx.tick()
    ctx.set(port.en, 0)
    return ctx.get(port.data) >> 32 * b & 0xFFFF_FFFF


@pytest.mark.parametrize("width", [64, 256])
def test_register_file(width):
    """Stored registers keep what is written (the bits they store, byte by
    byte), others read their sources or constants, writes to read-only
    registers change nothing, and strobe registers pulse their strobe."""
    p = EndpointParams(data_width=width)
    n = p.lanes
    constants = register_constants(p)
    bench = BlockBench(RegisterFile(p, constants))
    dut = bench.dut

    def dw(name):
        return REGS[name].offset // 4

    @bench.testbench
    async def host(ctx):
        await bank_write(ctx, dut.write, n, dw("SCRATCH"), 0x1234_5678)
        await bank_write(ctx, dut.write, n, dw("SCRATCH"), 0xAB, be=0x1)
        assert await bank_read(ctx, dut.read, n, dw("SCRATCH")) == 0x1234_56AB
        await bank_write(ctx, dut.write, n, dw("SCRATCH"), 0, bar0=False)   # BAR2: not here
        assert await bank_read(ctx, dut.read, n, dw("SCRATCH")) == 0x1234_56AB
        await bank_write(ctx, dut.write, n, dw("MSIX_VEC1_ADDR_LO"), 0xFFFF_FFFF)
        assert await bank_read(ctx, dut.read, n, dw("MSIX_VEC1_ADDR_LO")) == 0xFFFF_FFFC
        assert await bank_read(ctx, dut.read, n, dw("MSIX_VEC1_CTRL")) == 1     # reset: masked
        await bank_write(ctx, dut.write, n, dw("CAPS"), 0)
        assert await bank_read(ctx, dut.read, n, dw("CAPS")) == constants["CAPS"]
        assert await bank_read(ctx, dut.read, n, dw("ID")) == regmap.MAGIC
        ctx.set(dut.dma_done, 77)
        assert await bank_read(ctx, dut.read, n, dw("DMA_DONE")) == 77
        assert await bank_read(ctx, dut.read, n, dw("DMA_ABORT")) == 0
        assert await bank_read(ctx, dut.read, n, 0x3FF0) == 0                # no register
        for name, strobe, value in (("CTRL", "clear_counters", 1), ("DMA_SUBMIT", "submit", 0),
                                    ("DMA_ABORT", "abort", 0)):
            b = dw(name) % n
            ctx.set(dut.write.row[b], dw(name) // n)
            ctx.set(dut.write.data, value << 32 * b)
            ctx.set(dut.write.be, 0xF << 4 * b)
            ctx.set(dut.write.en, 1)
            assert ctx.get(getattr(dut, strobe)) == 1, name
            ctx.set(dut.write.en, 0)
            assert ctx.get(getattr(dut, strobe)) == 0, name
        ctx.set(dut.write.en, 1)                # CTRL with bit 0 clear: no strobe
        ctx.set(dut.write.data, 0)
        b = dw("CTRL") % n
        ctx.set(dut.write.row[b], dw("CTRL") // n)
        ctx.set(dut.write.be, 0xF << 4 * b)
        assert ctx.get(dut.clear_counters) == 0

    bench.run(cycles=200)


async def axi_write(ctx, port, addr, data, strb):
    """One beat written over an AXI4 slave port; returns once B is back."""
    for name, value in (("awaddr", addr), ("awlen", 0), ("awsize", 4), ("awburst", 1),
                        ("awvalid", 1), ("wdata", data), ("wstrb", strb), ("wlast", 1),
                        ("wvalid", 1), ("bready", 1)):
        ctx.set(getattr(port, name), value)
    aw = w = False
    while not (aw and w):
        _, _, awready, wready = await ctx.tick().sample(port.awready, port.wready)
        aw, w = aw or awready, w or wready
        ctx.set(port.awvalid, not aw)
        ctx.set(port.wvalid, not w)
    await ctx.tick().until(port.bvalid)


async def axi_read(ctx, port, addr):
    for name, value in (("araddr", addr), ("arlen", 0), ("arsize", 4), ("arburst", 1),
                        ("arvalid", 1), ("rready", 1)):
        ctx.set(getattr(port, name), value)
    await ctx.tick().until(port.arready)
    ctx.set(port.arvalid, 0)
    data, = await ctx.tick().sample(port.rdata).until(port.rvalid)
    return data


def test_memory_banks_over_axi():
    """BAR2's block RAM behind its AXI4 slave: a beat written with byte
    strobes changes only those bytes, and a BAR larger than the memory
    mirrors it. (Bursts at full rate: the cocotb suite and make bench.)"""
    p = EndpointParams(data_width=128, mem_size=64 << 10)
    bench = BlockBench(MemoryBanks(p))
    dut = bench.dut

    @bench.testbench
    async def test(ctx):
        await axi_write(ctx, dut.axi, 0x100 * 4, 0xCAFE_F00D << 32 | 0x1234, 0xFF)
        await axi_write(ctx, dut.axi, 0x100 * 4, 0xAB << 40, 1 << 5)
        assert int_to_words(await axi_read(ctx, dut.axi, 0x100 * 4), 4) == \
            [0x1234, 0xCAFE_AB0D, 0, 0]
        assert int_to_words(await axi_read(ctx, dut.axi, p.mem_size + 0x100 * 4), 4)[0] == 0x1234
        assert await axi_read(ctx, dut.axi, 0x200 * 4) == 0

    bench.run(cycles=200)


def test_event_counters():
    bench = BlockBench(EventCounters())
    dut = bench.dut

    @bench.testbench
    async def test(ctx):
        for _ in range(5):
            ctx.set(dut.inc.stat_reads, 1)
            await ctx.tick()
        ctx.set(dut.inc.stat_reads, 0)
        assert (ctx.get(dut.stat_reads), ctx.get(dut.stat_writes)) == (5, 0)
        ctx.set(dut.inc.stat_reads, 1)
        ctx.set(dut.clear, 1)                   # clear wins over a count
        await ctx.tick()
        assert ctx.get(dut.stat_reads) == 0

    bench.run(cycles=50)


# -- Control ---------------------------------------------------------------


def test_dma_queue():
    """Staged descriptors are offered in order with the fields DMA_CONTROL
    packs; a full queue counts the overflow; results land in their slots;
    an abort marks exactly the descriptors queued before it."""
    bench = BlockBench(DmaQueue(local_bits=21))
    dut = bench.dut
    ctl = REGS["DMA_CONTROL"]

    async def submit(ctx, k, length=0x100):
        ctx.set(dut.dma_local, 0x40 * k)
        ctx.set(dut.dma_bus_lo, 0x1000_0000 + k)
        ctx.set(dut.dma_bus_hi, 0x2)
        ctx.set(dut.dma_length, length)
        ctx.set(dut.dma_control, ctl.pack(from_bus=k & 1, irq=1, vector=k % 4, id=0x100 + k))
        ctx.set(dut.submit, 1)
        await ctx.tick()
        ctx.set(dut.submit, 0)

    @bench.testbench
    async def test(ctx):
        for k in range(regmap.DMA_QUEUE_DEPTH + 1):
            await submit(ctx, k)
        assert (ctx.get(dut.dma_submitted), ctx.get(dut.dma_err_overflow)) == (16, 1)
        assert ctx.get(dut.dma_submit) == 0
        assert REGS["DMA_STATE"].unpack(ctx.get(dut.dma_state))["busy"] == 1
        ctx.set(dut.abort, 1)
        await ctx.tick()
        ctx.set(dut.abort, 0)
        ctx.set(dut.desc.ready, 1)
        for k in range(3):                      # 3 leave; 13 remain marked
            d = await sample(ctx, dut.desc.valid, dut.desc.local, dut.desc.bus, dut.desc.id,
                             dut.desc.vector, dut.desc.from_bus, dut.desc.abort)
            assert d == [1, 0x40 * k, 0x2_1000_0000 + k, 0x100 + k, k % 4, k & 1, 1]
        ctx.set(dut.desc.ready, 0)
        await submit(ctx, 99, length=regmap.DMA_MAX_LENGTH + 1)
        ctx.set(dut.desc.ready, 1)
        marked = []
        while ctx.get(dut.desc.valid):
            length, abort = await sample(ctx, dut.desc.length, dut.desc.abort)
            marked.append(abort)
        assert marked == [1] * 13 + [0], "only those queued before the abort"
        assert length == 0, "a length over DMA_MAX_LENGTH must not wrap into a valid one"
        for k, status in enumerate([regmap.DmaStatus.OK, regmap.DmaStatus.TIMEOUT]):
            ctx.set(dut.result.valid, 1)
            ctx.set(dut.result.id, 0x200 + k)
            ctx.set(dut.result.status, status)
            await ctx.tick()
        ctx.set(dut.result.valid, 0)
        assert ctx.get(dut.dma_done) == 2
        assert REGS["DMA_RESULT1"].unpack(ctx.get(dut.dma_result1)) == \
            {"id": 0x201, "status": regmap.DmaStatus.TIMEOUT, "seq": 1}

    bench.run(cycles=500)


def test_devctl_poller():
    """Device Control is read every 256 cycles, the read held until done."""
    bench = BlockBench(DevctlPoller())
    dut = bench.dut

    @bench.testbench
    async def hard_ip(ctx):
        for ext_tags in (1, 0):
            cycles = 0
            while not ctx.get(dut.read):
                await ctx.tick()
                cycles += 1
            assert cycles in (256, 257) and ctx.get(dut.addr) == usp.DEVICE_CONTROL_DWORD
            for _ in range(3):                  # the hard IP takes its time
                await ctx.tick()
                assert ctx.get(dut.read) == 1
            ctx.set(dut.read_data, pcie.pack(pcie.DEVICE_CONTROL, ext_tag=ext_tags))
            ctx.set(dut.done, 1)
            await ctx.tick()
            ctx.set(dut.done, 0)
            assert (ctx.get(dut.read), ctx.get(dut.ext_tags)) == (0, ext_tags)

    bench.run(cycles=1_000)


def test_msix_sender():
    """An event sets its vector's pending bit and the message goes out with
    the vector's address and data; a masked vector stays pending (as the
    PBA shows) until unmasked; a message the hard IP fails is sent again."""
    bench = BlockBench(MsixSender(4))
    dut = bench.dut

    async def message(ctx, fail=False):
        """Waits for the next message; answers sent (or fail). Returns (address, data)."""
        await ctx.tick().until(dut.cfg_int)
        sent = (ctx.get(dut.cfg_address), ctx.get(dut.cfg_data))
        await ctx.tick().repeat(3)
        ctx.set(dut.cfg_fail if fail else dut.cfg_sent, 1)
        await ctx.tick()
        ctx.set(dut.cfg_fail if fail else dut.cfg_sent, 0)
        return sent

    async def event(ctx, vector):
        ctx.set(dut.event, 1)
        ctx.set(dut.event_vector, vector)
        await ctx.tick()
        ctx.set(dut.event, 0)

    @bench.testbench
    async def hard_ip(ctx):
        for v in range(4):
            ctx.set(dut.addr[v], 0xFEE0_0000 + 0x10 * v)
            ctx.set(dut.data[v], 0x40 + v)
        ctx.set(dut.masked, 0b0100)
        ctx.set(dut.cfg_enable, 1)
        await event(ctx, 1)
        assert await message(ctx) == (0xFEE0_0010, 0x41)
        await event(ctx, 2)                     # masked: waits, pending
        await ctx.tick().repeat(10)
        assert ctx.get(dut.pending) == 0b0100 and not ctx.get(dut.cfg_int)
        ctx.set(dut.masked, 0)
        assert await message(ctx, fail=True) == (0xFEE0_0020, 0x42)
        assert await message(ctx) == (0xFEE0_0020, 0x42), "a failed message is sent again"
        assert ctx.get(dut.pending) == 0 and ctx.get(dut.sent_count) == 2
        ctx.set(dut.cfg_enable, 0)              # MSI-X off: events are not kept
        await event(ctx, 3)
        assert ctx.get(dut.pending) == 0

    bench.run(cycles=500)
