"""The AXI4 memory port's adapters (hw/core/memport.py) and bank slaves
(hw/core/axi.py), in Amaranth's simulator against an AXI4 memory model
with latency and back-pressure that checks the master's rules
(hw/sim/tb/axi_model.py)."""

import pytest

pytest.importorskip("amaranth")

from amaranth.hdl import Module  # noqa: E402
from amaranth.lib import wiring  # noqa: E402
from amaranth.lib.wiring import Out  # noqa: E402

from hw.core import axi  # noqa: E402
from hw.core.memport import AxiReader, AxiWriter  # noqa: E402
from hw.sim.tb.axi_model import AxiMemory  # noqa: E402
from hw.sim.tb.blocks import BlockBench, pause, stream_get, stream_put  # noqa: E402

ADDR = 16                      # 64 KiB of memory


class Port(wiring.Component):
    """A writer and a reader sharing one AXI4 port."""

    def __init__(self, width, count_bits=11):
        self.writer = AxiWriter(width, ADDR, count_bits)
        self.reader = AxiReader(width, ADDR, count_bits, depth=8)
        super().__init__({"axi": Out(axi.axi_signature(ADDR, width, 1))})

    def elaborate(self, platform):
        m = Module()
        m.submodules.writer, m.submodules.reader = self.writer, self.reader
        axi.join(m, self.writer.axi, self.axi)
        axi.join(m, self.reader.axi, self.axi)
        return m


def run_beats(n, first, count, lane0, data, be):
    """A write run as its beats: lane 0 of beat 0 at the dword at or below
    `first` that is lane0 mod N; lanes outside the run disabled."""
    t0 = first - ((first - lane0) % n)
    beats = -(-(first - t0 + count) // n)
    out = []
    for k in range(beats):
        d = b = 0
        for j in range(n):
            i = t0 + k * n + j - first
            if 0 <= i < count:
                d |= data[i] << 32 * j
                b |= be[i] << 4 * j
        out.append({"data": d, "be": b, "last": k == beats - 1})
    return out


@pytest.mark.parametrize("width,latency,busy", [(64, 1, 0.0), (128, 30, 0.3),
                                                (256, 7, 0.5), (512, 100, 0.2)])
def test_runs_written_and_read_back_at_any_alignment(width, latency, busy):
    """Runs of dwords at random addresses, alignments and lengths (across
    4 KiB and burst limits) written with random byte enables, then read
    back with random leads: the memory holds what a byte-wise model does,
    every beat read back has the run's dwords where the lead puts them,
    and the model finds no broken AXI rule. A run past the top of memory
    wraps to its start."""
    n = width // 32
    bench = BlockBench(Port(width), seed=width + latency)
    dut, rng = bench.dut, bench.rng
    mem = AxiMemory(bench, dut.axi, size=1 << ADDR, latency=latency, busy=busy)
    model = bytearray(1 << ADDR)
    runs = []
    for _ in range(24):
        count = rng.choice([1, 2, n - 1 or 1, n, n + 1, rng.randrange(1, 300), 1024])
        first = rng.randrange(0, (1 << ADDR) // 4 - count)
        if rng.random() < 0.3:                    # straddle a 4 KiB boundary
            first = (rng.randrange(1, 15) << 10) - rng.randrange(1, min(count, 64) + 1)
        runs.append((first, count, rng.randrange(n)))
    runs.append(((1 << ADDR) // 4 - 5, 40, rng.randrange(n)))    # wraps past the top
    words = (1 << ADDR) // 4

    @bench.testbench
    async def writes(ctx):
        for first, count, lane0 in runs:
            data = [rng.getrandbits(32) for _ in range(count)]
            be = [rng.choice([0xF, 0xF, rng.getrandbits(4)]) for _ in range(count)]
            for i in range(count):
                for b in range(4):
                    if be[i] >> b & 1:
                        model[(first + i) % words * 4 + b] = data[i] >> 8 * b & 0xFF
            await stream_put(ctx, dut.writer.cmd, {"first": first, "count": count,
                                                   "lane0": lane0})
            for beat in run_beats(n, first, count, lane0, data, be):
                await pause(ctx, rng, busy)
                await stream_put(ctx, dut.writer.beats, beat)
        while not ctx.get(dut.writer.idle):
            await ctx.tick()
        assert ctx.get(dut.writer.done) == len(runs) % 256
        assert mem.mem == model

        for first, count, _ in runs:
            lead = rng.randrange(0, 4)
            beats = -(-(lead + count) // n)
            await stream_put(ctx, dut.reader.cmd, {"first": first, "count": count,
                                                   "lead": lead, "beats": beats})
            for k in range(beats):
                await pause(ctx, rng, busy)
                got = await stream_get(ctx, dut.reader.out)
                assert got.last == (k == beats - 1)
                for j in range(n):
                    i = k * n + j - lead
                    if 0 <= i < count:
                        addr = (first + i) % words * 4
                        want = int.from_bytes(model[addr:addr + 4], "little")
                        assert (got.data >> 32 * j) & 0xFFFF_FFFF == want, \
                            f"run {first:#x}+{count} lead {lead}: beat {k} lane {j}"
        assert ctx.get(dut.reader.idle)

    bench.run(cycles=200_000)
    assert mem.bursts["write"] >= len(runs) and mem.bursts["read"] >= len(runs)


def test_reader_stop_drains_what_it_asked_for():
    """A stop in the middle of long reads drops them, takes every R beat
    already asked for, and the next command reads the right data."""
    width, n = 128, 4
    bench = BlockBench(Port(width), seed=3)
    dut = bench.dut
    mem = AxiMemory(bench, dut.axi, size=1 << ADDR, latency=40, busy=0.2)
    for i in range(len(mem.mem)):
        mem.mem[i] = (i * 7 + 3) & 0xFF

    @bench.testbench
    async def reads(ctx):
        for first in (0x10, 0x400):
            await stream_put(ctx, dut.reader.cmd, {"first": first, "count": 1024, "lead": 0,
                                                   "beats": 1024 // n})
        for _ in range(3):
            await stream_get(ctx, dut.reader.out)
        ctx.set(dut.reader.stop, 1)
        await ctx.tick()
        ctx.set(dut.reader.stop, 0)
        while not ctx.get(dut.reader.idle):
            await ctx.tick()
        await stream_put(ctx, dut.reader.cmd, {"first": 0x101, "count": 3, "lead": 1,
                                               "beats": 1})
        got = await stream_get(ctx, dut.reader.out)
        for j in range(1, 4):
            addr = (0x100 + j) * 4
            assert (got.data >> 32 * j) & 0xFFFF_FFFF == \
                int.from_bytes(mem.mem[addr:addr + 4], "little")
        assert ctx.get(dut.reader.idle)

    bench.run(cycles=50_000)


class TwoPorts(wiring.Component):
    """Two writer/reader pairs through an AxiArbiter onto one port."""

    def __init__(self, width):
        self.width = width
        self.ports = [Port(width), Port(width)]
        super().__init__({"axi": Out(axi.axi_signature(ADDR, width, 2))})

    def elaborate(self, platform):
        m = Module()
        m.submodules.arbiter = arb = axi.AxiArbiter(ADDR, self.width, 1)
        for k, port in enumerate(self.ports):
            m.submodules[f"port{k}"] = port
            axi.join(m, port.axi, getattr(arb, f"m{k}"))
        wiring.connect(m, arb.s, wiring.flipped(self.axi))
        return m


@pytest.mark.parametrize("width", [64, 256])
def test_two_masters_share_one_port(width):
    """Both masters write and read their own halves of memory at once; each
    reads back its own data, and every R and B beat reaches the master that
    asked (an ID bit per master)."""
    n = width // 32
    bench = BlockBench(TwoPorts(width), seed=width)
    dut, rng = bench.dut, bench.rng
    AxiMemory(bench, dut.axi, size=1 << ADDR, latency=9, busy=0.3)
    half = (1 << ADDR) // 8                  # dwords per master

    for k, port in enumerate(dut.ports):
        @bench.testbench
        async def master(ctx, k=k, port=port):
            runs, model = [], {}
            for _ in range(12):
                count = rng.randrange(1, 200)
                first = k * half + rng.randrange(0, half - count)
                data = [rng.getrandbits(32) for _ in range(count)]
                model.update({first + i: d for i, d in enumerate(data)})
                lane0 = rng.randrange(n)
                await stream_put(ctx, port.writer.cmd,
                                 {"first": first, "count": count, "lane0": lane0})
                for beat in run_beats(n, first, count, lane0, data, [0xF] * count):
                    await stream_put(ctx, port.writer.beats, beat)
                runs.append((first, count))
            while not ctx.get(port.writer.idle):
                await ctx.tick()
            for first, count in runs:
                beats = -(-count // n)
                await stream_put(ctx, port.reader.cmd, {"first": first, "count": count,
                                                        "lead": 0, "beats": beats})
                got = []
                for _ in range(beats):
                    beat = (await stream_get(ctx, port.reader.out)).data
                    got += [beat >> 32 * j & 0xFFFF_FFFF for j in range(n)]
                assert got[:count] == [model[first + i] for i in range(count)], \
                    f"master {k} run {first:#x}"

    bench.run(cycles=100_000)
