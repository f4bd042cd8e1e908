"""Unit tests of single gateware blocks in Amaranth's simulator: a bench
that owns the clock and a cycle limit, and drivers for the blocks' streams.

    bench = BlockBench(Dispatcher(p))

    @bench.testbench
    async def source(ctx):
        await stream_put(ctx, bench.dut.i, beat)

    bench.run(cycles=5_000)      # fails if a testbench has not finished by then

The cocotb benches (hw/sim/) test the whole endpoint against bus models;
these test one block against its own interface, in seconds.
"""

import random

from amaranth.sim import Simulator

PERIOD = 1e-8


class BlockBench:
    """`period` clocks the default domain (run()'s cycles count it);
    `clocks` adds other domains: {domain: period}."""

    def __init__(self, dut, *, seed=0, period=PERIOD, clocks=None):
        self.dut = dut
        self.rng = random.Random(seed)
        self.sim = Simulator(dut)
        self.sim.add_clock(period)
        for domain, other in (clocks or {}).items():
            self.sim.add_clock(other, domain=domain)
        self._pending = set()

    def testbench(self, fn):
        """Adds `fn(ctx)`; run() waits for it to return."""
        name = fn.__name__
        self._pending.add(name)

        async def wrapped(ctx):
            await fn(ctx)
            self._pending.discard(name)
        self.sim.add_testbench(wrapped)
        return fn

    def background(self, fn):
        """Adds `fn(ctx)`, an endless process (a model, a monitor)."""
        self.sim.add_testbench(fn, background=True)
        return fn

    def run(self, cycles=10_000):
        expired = []

        async def watchdog(ctx):
            for _ in range(cycles):
                await ctx.tick()
            expired.append(True)
        self.sim.add_testbench(watchdog, background=True)
        while self.sim.advance():
            if expired:
                raise AssertionError(f"not finished after {cycles} cycles: "
                                     f"{', '.join(sorted(self._pending))}")


async def stream_put(ctx, stream, payload):
    """Offers one payload on a stream (amaranth.lib.stream) until taken."""
    ctx.set(stream.valid, 1)
    ctx.set(stream.payload, payload)
    await ctx.tick().until(stream.ready)
    ctx.set(stream.valid, 0)


async def stream_get(ctx, stream):
    """Takes one payload from a stream."""
    ctx.set(stream.ready, 1)
    payload, = await ctx.tick().sample(stream.payload).until(stream.valid)
    ctx.set(stream.ready, 0)
    return payload


async def axis_put(ctx, axis, tdata, tkeep, tlast, tuser=0):
    """Offers one AXI4-Stream beat until taken."""
    ctx.set(axis.tvalid, 1)
    ctx.set(axis.tdata, tdata)
    ctx.set(axis.tkeep, tkeep)
    ctx.set(axis.tlast, tlast)
    ctx.set(axis.tuser, tuser)
    await ctx.tick().until(axis.tready)
    ctx.set(axis.tvalid, 0)


async def sample(ctx, *signals):
    """The values of `signals` at the next clock edge."""
    _clock, _reset, *values = await ctx.tick().sample(*signals)
    return values


async def pause(ctx, rng, busy):
    """Idles for a random number of cycles (each with probability `busy`)."""
    while rng.random() < busy:
        await ctx.tick()


def words_to_int(words, offset=0):
    """Dwords as one integer, the first at dword `offset`."""
    return sum(w << 32 * (offset + i) for i, w in enumerate(words))


def int_to_words(value, count):
    return [(value >> 32 * i) & 0xFFFF_FFFF for i in range(count)]
