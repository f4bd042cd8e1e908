"""The 7-series shim's blocks in Amaranth's simulator. The repacker
(hw.phy.s7.Repack): random packets with every header size change
(3 <-> 4 DWs), starting at DW 0 or mid-beat, with random gaps on both
sides, must come out whole, in order, payload byte-swapped, with their
headers captured. S7Receive and S7Transmit: TLPs built and read back
through the header tables of hw/spec/pcie.py."""

import random

import pytest

pytest.importorskip("amaranth")

from amaranth.sim import Simulator  # noqa: E402

from hw.phy.s7 import Repack  # noqa: E402


def swap(dw):
    return int.from_bytes(dw.to_bytes(4, "little"), "big")


def packets(rng, n, count):
    for _ in range(count):
        hin, hout = rng.choice([3, 4]), rng.choice([3, 4])
        words = [rng.getrandbits(32) for _ in range(hin + rng.randrange(0, 3 * n + 2))]
        lo = rng.choice([0, 2]) if n == 4 else 0
        yield hin, hout, lo, words


def run_repack(n, seed, count=60):
    rng = random.Random(seed)
    pkts = list(packets(rng, n, count))
    dut = Repack(n)
    got = []

    async def source(ctx):
        for hin, hout, lo, words in pkts:
            pos, first = 0, True
            while pos < len(words):
                start = lo if first else 0
                take = min(n - start, len(words) - pos)
                data = 0
                for i in range(take):
                    data |= words[pos + i] << (32 * (start + i))
                ctx.set(dut.i_data, data)
                ctx.set(dut.i_lo, start)
                ctx.set(dut.i_cnt, take)
                ctx.set(dut.i_sop, first)
                ctx.set(dut.i_eop, pos + take == len(words))
                ctx.set(dut.i_hin, hin)
                ctx.set(dut.i_hout, hout)
                while rng.random() < 0.3:
                    ctx.set(dut.i_valid, 0)
                    await ctx.tick()
                ctx.set(dut.i_valid, 1)
                await ctx.tick().until(dut.i_fire)
                pos, first = pos + take, False
            ctx.set(dut.i_valid, 0)

    async def sink(ctx):
        out, beats = [], 0
        while len(got) < len(pkts):
            ready = rng.random() < 0.7
            ctx.set(dut.o_ready, ready)
            await ctx.delay(1e-9)
            if ctx.get(dut.o_valid) and ready:
                assert ctx.get(dut.o_beat) == min(beats, 2)
                if beats == 0:
                    out_hdr = [ctx.get(h) for h in dut.hdr]
                    hout = ctx.get(dut.hout)
                data, cnt = ctx.get(dut.o_data), ctx.get(dut.o_cnt)
                out += [(data >> (32 * i)) & 0xFFFFFFFF for i in range(cnt)]
                beats += 1
                if ctx.get(dut.o_last):
                    got.append((out_hdr, hout, out))
                    out, beats = [], 0
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(source)
    sim.add_testbench(sink)
    sim.run_until(1e-8 * 20000)
    assert len(got) == len(pkts), f"{len(got)} of {len(pkts)} packets came out"
    for k, ((hin, hout, lo, words), (hdr, hout_got, out)) in enumerate(zip(pkts, got)):
        assert hout_got == hout, k
        assert hdr[:hin] == words[:hin], f"packet {k}: header captured wrong"
        assert len(out) == hout + len(words) - hin, f"packet {k}: {len(out)} DWs out"
        assert out[hout:] == [swap(w) for w in words[hin:]], f"packet {k}: payload differs"


@pytest.mark.parametrize("n", [2, 4])
@pytest.mark.parametrize("seed", [1, 2])
def test_repack(n, seed):
    run_repack(n, seed)


# -- S7Receive and S7Transmit: one TLP each way, decoded from the tables ----


from hw.params import EndpointParams  # noqa: E402
from hw.phy.s7 import S7Receive, S7Transmit  # noqa: E402
from hw.sim.tb.blocks import BlockBench, int_to_words, sample, words_to_int  # noqa: E402
from hw.spec import pcie, s7_stream, usp  # noqa: E402
from hw.spec.usp import CplStatus, RcErrorCode, ReqType  # noqa: E402

IDS = 0x0308                    # bus 0, device 1, function 0


def header(table, **fields):
    value = pcie.pack(table, **fields)
    return [(value >> 32 * i) & 0xFFFF_FFFF for i in range(pcie.HEADER_DWORDS)]


async def rx_packet(ctx, dut, words, n, bar=None):
    """One TLP onto m_axis_rx, not straddled."""
    beats = [words[i:i + n] for i in range(0, len(words), n)]
    for i, beat in enumerate(beats):
        user = s7_stream.bar_hit(bar)
        if n == 4:
            user |= (s7_stream.PRESENT if i == 0 else 0) << s7_stream.TUSER_SOF_SHIFT
            if i == len(beats) - 1:
                user |= (s7_stream.PRESENT | (4 * len(beat) - 1)) << s7_stream.TUSER_EOF_SHIFT
        ctx.set(dut.m_axis_rx_tvalid, 1)
        ctx.set(dut.m_axis_rx_tdata, words_to_int(beat))
        ctx.set(dut.m_axis_rx_tkeep, (1 << 4 * len(beat)) - 1)
        ctx.set(dut.m_axis_rx_tlast, i == len(beats) - 1)
        ctx.set(dut.m_axis_rx_tuser, user)
        await ctx.tick().until(dut.m_axis_rx_tready)
    ctx.set(dut.m_axis_rx_tvalid, 0)


async def take(ctx, valid, ready, tdata, tkeep, tlast, n):
    """One packet from a stream whose tkeep has a bit per DW (n DWs a beat)."""
    ctx.set(ready, 1)
    words = []
    while True:
        v, d, k, last = await sample(ctx, valid, tdata, tkeep, tlast)
        if v:
            words += int_to_words(d, bin(k).count("1"))
            if last:
                ctx.set(ready, 0)
                return words


@pytest.mark.parametrize("n", [2, 4])
def test_s7_receive(n):
    """A memory read becomes its CQ descriptor (waiting for a non-posted
    credit); a completion its RC descriptor, with the 12-bit Lower Address
    rebuilt from where the read ends."""
    p = EndpointParams(data_width=32 * n, hard_ip="s7")
    bench = BlockBench(S7Receive(p))
    dut = bench.dut

    @bench.testbench
    async def test(ctx):
        read = header(pcie.REQUEST, fmt=pcie.FMT_4DW, type=pcie.TlpType.MEM, length=16,
                      first_be=0xE, last_be=0x3, tag=0x21, requester_id=0x0100,
                      address_hi=0x1, address_lo=0x2345_6780 >> 2, tc=2)
        ctx.set(dut.pcie_cq_np_req, 1)              # one credit
        await ctx.tick()
        ctx.set(dut.pcie_cq_np_req, 0)
        await rx_packet(ctx, dut, read, n, bar=2)
        got = await take(ctx, dut.s_axis_cq_tvalid, dut.s_axis_cq_tready, dut.s_axis_cq_tdata,
                         dut.s_axis_cq_tkeep, dut.s_axis_cq_tlast, n)
        cq = usp.unpack_descriptor(usp.CQ_DESCRIPTOR, got[:4])
        assert (cq["address"] << 2, cq["dw_count"], cq["req_type"], cq["tag"], cq["bar_id"],
                cq["requester_id"], cq["tc"]) == (0x1_2345_6780, 16, ReqType.MEM_READ, 0x21, 2,
                                                 0x0100, 2)
        assert cq["bar_aperture"] == (p.bar2_size - 1).bit_length()
        # A completion of 8 bytes; the read it answers ends at 0x80 (the table).
        ctx.set(dut.end, 0x080)
        cpl = header(pcie.COMPLETION, fmt=pcie.FMT_DATA, type=pcie.TlpType.CPL, length=2,
                     byte_count=8, status=CplStatus.SC, completer_id=0x0400,
                     requester_id=IDS, tag=0x21, lower_address=0x78)[:3] + [0x1111, 0x2222]
        await rx_packet(ctx, dut, cpl, n)
        got = await take(ctx, dut.s_axis_rc_tvalid, dut.s_axis_rc_tready, dut.s_axis_rc_tdata,
                         dut.s_axis_rc_tkeep, dut.s_axis_rc_tlast, n)
        rc = usp.unpack_descriptor(usp.RC_DESCRIPTOR, got[:3])
        assert (rc["lower_address"], rc["byte_count"], rc["dw_count"], rc["tag"],
                rc["error_code"], rc["request_completed"]) == \
            (0x078, 8, 2, 0x21, RcErrorCode.NORMAL_TERMINATION, 1)
        assert got[3:] == [swap(0x1111), swap(0x2222)], "payload DWs in US+ byte order"
        assert ctx.get(dut.end_tag) == 0x21

    bench.run(cycles=300)


async def usp_packet(ctx, dut, prefix, words, n, user=0):
    """One packet onto the endpoint-side stream m_axis_<prefix>_*."""
    beats = [words[i:i + n] for i in range(0, len(words), n)]
    sig = {k: getattr(dut, f"m_axis_{prefix}_{k}") for k in
           ("tvalid", "tdata", "tkeep", "tlast", "tuser", "tready")}
    for i, beat in enumerate(beats):
        ctx.set(sig["tvalid"], 1)
        ctx.set(sig["tdata"], words_to_int(beat))
        ctx.set(sig["tkeep"], (1 << len(beat)) - 1)
        ctx.set(sig["tlast"], i == len(beats) - 1)
        ctx.set(sig["tuser"], user)
        await ctx.tick().until(sig["tready"])
    ctx.set(sig["tvalid"], 0)


def collect_tx(bench, dut, packets):
    """Takes every packet off s_axis_tx into `packets`."""
    @bench.background
    async def sink(ctx):
        ctx.set(dut.s_axis_tx_tready, 1)
        words = []
        while True:
            v, d, k, last = await sample(ctx, dut.s_axis_tx_tvalid, dut.s_axis_tx_tdata,
                                         dut.s_axis_tx_tkeep, dut.s_axis_tx_tlast)
            if v:
                words += int_to_words(d, bin(k).count("1") // 4)
                if last:
                    packets.append(words)
                    words = []


async def next_packet(ctx, packets, count):
    while len(packets) < count:
        await ctx.tick()
    return packets[count - 1]


@pytest.mark.parametrize("n", [2, 4])
def test_s7_transmit(n):
    """A CC descriptor becomes a completion header, an RQ write above 4 GiB
    a 4-DW request header and below it a 3-DW one, and the MSI-X message a
    one-DW memory write; reads record where they end."""
    p = EndpointParams(data_width=32 * n, hard_ip="s7")
    bench = BlockBench(S7Transmit(p))
    dut = bench.dut
    sb = usp.sideband(p.data_width)
    packets, recorded = [], []
    collect_tx(bench, dut, packets)

    @bench.background
    async def ends(ctx):
        while True:
            en, tag, end = await sample(ctx, dut.end_en, dut.end_tag, dut.end)
            if en:
                recorded.append((tag, end))

    @bench.testbench
    async def test(ctx):
        ctx.set(dut.ids, IDS)
        cc = usp.pack_descriptor(usp.CC_DESCRIPTOR, 3, lower_address=0x44, byte_count=12,
                                 dw_count=3, status=CplStatus.SC, requester_id=0x0100,
                                 tag=7, tc=1)
        await usp_packet(ctx, dut, "cc", cc + [1, 2, 3], n)
        got = await next_packet(ctx, packets, 1)
        h = pcie.unpack(pcie.COMPLETION, words_to_int(got[:3]))
        assert (h["fmt"], h["type"], h["length"], h["byte_count"], h["lower_address"],
                h["tag"], h["requester_id"], h["completer_id"], h["tc"]) == \
            (pcie.FMT_DATA, pcie.TlpType.CPL, 3, 12, 0x44, 7, 0x0100, IDS, 1)
        assert got[3:] == [swap(1), swap(2), swap(3)]
        for k, (addr, dws) in enumerate(((0x2_0000_1000, 4), (0x8000_2000, 3))):
            rq = usp.pack_descriptor(usp.RQ_DESCRIPTOR, 4, address=addr >> 2, dw_count=1,
                                     req_type=ReqType.MEM_WRITE, tag=3)
            user = 0xF << sb.rq_first_be
            await usp_packet(ctx, dut, "rq", rq + [0xAB], n, user)
            got = await next_packet(ctx, packets, 2 + k)
            h = pcie.unpack(pcie.REQUEST, words_to_int(got[:dws]))
            address = (h["address_hi"] << 32 | h["address_lo"] << 2) if dws == 4 \
                else h["address32"] << 2
            assert (h["fmt"], h["type"], h["length"], h["first_be"], h["requester_id"],
                    address) == (pcie.FMT_DATA | (pcie.FMT_4DW if dws == 4 else 0),
                                 pcie.TlpType.MEM, 1, 0xF, IDS, addr)
            assert got[dws:] == [swap(0xAB)]
        rd = usp.pack_descriptor(usp.RQ_DESCRIPTOR, 4, address=0x1000 >> 2, dw_count=4,
                                 req_type=ReqType.MEM_READ, tag=9)
        await usp_packet(ctx, dut, "rq", rd, n, 0xF << sb.rq_first_be | 0x1 << sb.rq_last_be)
        await next_packet(ctx, packets, 4)
        assert recorded == [(9, 0x1000 + 13 & 0xFFF)], "the read ends after 13 bytes"
        ctx.set(dut.cfg_interrupt_msixenable, 1)
        ctx.set(dut.cfg_interrupt_msix_int, 1)
        ctx.set(dut.cfg_interrupt_msix_address, 0xFEE0_1000)
        ctx.set(dut.cfg_interrupt_msix_data, 0x55)
        await ctx.tick()
        ctx.set(dut.cfg_interrupt_msix_int, 0)
        got = await next_packet(ctx, packets, 5)
        h = pcie.unpack(pcie.REQUEST, words_to_int(got[:3]))
        assert (h["fmt"], h["length"], h["address32"] << 2, got[3:]) == \
            (pcie.FMT_DATA, 1, 0xFEE0_1000, [swap(0x55)])

    bench.run(cycles=400)
