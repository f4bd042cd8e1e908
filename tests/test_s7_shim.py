"""The 7-series shim's repacker (hw.phy.s7.Repack), in Amaranth's simulator:
random packets with every header size change (3 <-> 4 DWs), starting at
DW 0 or mid-beat, with random gaps on both sides, must come out whole,
in order, payload byte-swapped, with their headers captured."""

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
