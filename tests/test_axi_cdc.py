"""The AXI4 clock-domain crossing (hw/core/axi.py AxiClockCrossing) in
Amaranth's simulator, with two clocks at the boards' ratios: a master in
the `up` domain (the endpoint's side) writes and reads bursts through it
into an AXI4 memory model in the `down` domain (the DRAM controller's
side) with latency and back-pressure, which checks the master's rules on
`down` (hw/sim/tb/axi_model.py). The master here checks the slave's rules
on `up`: B and R hold valid and payload until taken."""

import pytest

pytest.importorskip("amaranth")

from hw.core import axi  # noqa: E402
from hw.sim.tb.axi_model import AxiMemory  # noqa: E402
from hw.sim.tb.blocks import BlockBench  # noqa: E402

ADDR = 16                      # 64 KiB of memory
ID = 4

# (up ns, down ns, data width): the endpoint's user clock, the controller's UI clock.
VCU118 = (4.0, 3.333, 512)     # 250 MHz onto DDR4's 300 MHz
FURY = (8.0, 10.0, 128)        # 125 MHz onto DDR3's 100 MHz


def two_clocks(dut, up_ns, down_ns, seed):
    """A bench with `up` for the master and the default domain for the memory
    model (which ticks it); run()'s cycles count the down clock."""
    return BlockBench(dut, seed=seed, period=down_ns * 1e-9, clocks={"up": up_ns * 1e-9})


def crossing(width, depth=16):
    return axi.AxiClockCrossing(ADDR, width, ID, up="up", down="sync", depth=depth)


class Master:
    """An AXI4 master in the `up` domain. Bursts appended to `write_log`
    (address, len, id, beats of (data, strobe)) are written and those
    appended to `read_log` (address, len, id, the data expected beat by
    beat) read; AW, W, B, AR and R each run on their own, valid up after
    random pauses (`busy`), ready up at random. B and R are checked in the
    order asked: the crossing keeps each channel's order, and so does the
    memory model."""

    def __init__(self, bench, port, busy):
        self.bench, self.port, self.busy = bench, port, busy
        self.beat = len(port.wdata) // 8
        self.aw_sent, self.w_beats, self.b_ids = [], 0, []
        self.ar_sent, self.r_beats = [], 0
        self.write_log, self.read_log = [], []

    async def idle(self, ctx):
        while self.bench.rng.random() < self.busy:
            await ctx.tick("up")

    async def offer(self, ctx, ch, **fields):
        """One handshake on AW, W or AR, valid held until ready."""
        p = self.port
        await self.idle(ctx)
        for name, value in fields.items():
            ctx.set(getattr(p, ch + name), value)
        ctx.set(getattr(p, ch + "valid"), 1)
        await ctx.tick("up").until(getattr(p, ch + "ready"))
        ctx.set(getattr(p, ch + "valid"), 0)

    async def take(self, ctx, ch, fields):
        """One handshake on B or R, ready up at random; a valid must stay up
        with its payload unchanged until taken."""
        p, rng = self.port, self.bench.rng
        valid, ready = getattr(p, ch + "valid"), getattr(p, ch + "ready")
        held = None
        while True:
            r = rng.random() >= self.busy
            ctx.set(ready, r)
            _, _, v, *vals = await ctx.tick("up").sample(
                valid, *(getattr(p, ch + f) for f in fields))
            assert held is None or (v and vals == held), \
                f"{ch.upper()}: dropped or changed before its handshake" \
                f" ({held} -> {vals if v else 'not valid'})"
            if v and r:
                ctx.set(ready, 0)
                return dict(zip(fields, vals))
            held = vals if v else None

    def start(self):
        size = self.beat.bit_length() - 1

        def address_walk(ch, log, sent, mark):
            """AW or AR: each burst of `log` as it is appended; `mark` of it to `sent`."""
            async def walk(ctx):
                k = 0
                while True:
                    while k >= len(log):
                        await ctx.tick("up")
                    addr, length, ident, _ = log[k]
                    await self.offer(ctx, ch, addr=addr, len=length, size=size,
                                     burst=axi.INCR, id=ident)
                    sent.append(mark(k, ident))
                    k += 1
            return walk

        aw_walk = address_walk("aw", self.write_log, self.aw_sent, lambda k, ident: ident)
        ar_walk = address_walk("ar", self.read_log, self.ar_sent, lambda k, ident: k)

        async def w_walk(ctx):
            k = 0
            while True:
                while k >= len(self.write_log):
                    await ctx.tick("up")
                beats = self.write_log[k][3]
                for j, (data, strb) in enumerate(beats):
                    await self.offer(ctx, "w", data=data, strb=strb, last=j == len(beats) - 1)
                    self.w_beats += 1
                k += 1

        async def b_take(ctx):
            while True:
                got = await self.take(ctx, "b", ("id", "resp"))
                assert len(self.b_ids) < len(self.aw_sent), "B before its AW"
                want = self.aw_sent[len(self.b_ids)]
                assert got == {"id": want, "resp": axi.OKAY}, \
                    f"B {len(self.b_ids)}: {got}, want id {want}"
                self.b_ids.append(got["id"])


        async def r_take(ctx):
            k = 0
            while True:
                while k >= len(self.ar_sent):
                    await ctx.tick("up")
                addr, length, ident, want = self.read_log[k]
                for j in range(length + 1):
                    got = await self.take(ctx, "r", ("data", "last", "id", "resp"))
                    where = f"read {k} ({addr:#x}+{length + 1} beats) beat {j}"
                    assert got["id"] == ident and got["resp"] == axi.OKAY, \
                        f"{where}: id {got['id']} resp {got['resp']}, want id {ident}"
                    assert got["last"] == (j == length), f"{where}: rlast {got['last']}"
                    assert got["data"] == want[j], f"{where}: data differs"
                    self.r_beats += 1
                k += 1

        for fn in (aw_walk, w_walk, b_take, ar_walk, r_take):
            self.bench.background(fn)


def random_burst(rng, beat, lo, hi):
    """(address, len) of a burst within [lo, hi), beat aligned, not across
    4 KiB, at most 256 beats."""
    rows = 4096 // beat
    addr = rng.randrange(lo, hi, beat)
    room = min(rows - addr % 4096 // beat, 256)
    length = rng.choice([1, min(2, room), room, rng.randrange(1, room + 1),
                         rng.randrange(1, room + 1)])
    return addr, length - 1


def write_burst(rng, model, beat, addr, length):
    """Random data and strobes for a burst, applied to `model`: its beats."""
    beats = []
    for k in range(length + 1):
        data = rng.getrandbits(8 * beat)
        strb = rng.choice([(1 << beat) - 1, rng.getrandbits(beat), rng.getrandbits(beat), 0])
        base = addr + k * beat
        for j in range(beat):
            if strb >> j & 1:
                model[base + j] = data >> 8 * j & 0xFF
        beats.append((data, strb))
    return beats


def read_expect(model, beat, addr, length):
    return [int.from_bytes(model[addr + k * beat:addr + (k + 1) * beat], "little")
            for k in range(length + 1)]


def watch_down(bench, dut, stalled):
    """Records every down cycle in which AW, W or AR is valid while
    down_ready is low (the crossing must hold them back)."""
    async def monitor(ctx):
        d = dut.down
        while True:
            _, _, ready, *valids = await ctx.tick().sample(dut.down_ready, d.awvalid,
                                                           d.wvalid, d.arvalid)
            if not ready and any(valids):
                stalled.append(valids)
    bench.background(monitor)


@pytest.mark.parametrize("clocks,depth,latency,busy", [
    (VCU118, 16, 20, 0.3),
    (FURY, 16, 5, 0.5),
    (VCU118, 2, 1, 0.1),           # the smallest FIFOs: full and empty all the time
    ((4.0, 10.0, 256), 4, 40, 0.0),  # a slow memory: the master waits on ready
], ids=["vcu118", "fury", "vcu118-depth2", "slow-down-depth4"])
def test_bursts_cross_both_ways(clocks, depth, latency, busy):
    """Random write bursts with random strobes into the lower half of a
    memory whose upper half holds random data, while reads of the upper
    half run at the same time; then every burst written is read back.
    Every byte read equals a byte-wise model, every burst has one B with
    its AW's id, every R beat the id of its AR and rlast only on its last
    beat, and the memory model finds no broken AXI rule on `down`."""
    up_ns, down_ns, width = clocks
    beat = width // 8
    size = 1 << ADDR
    bench = two_clocks(crossing(width, depth), up_ns, down_ns, seed=width + depth + latency)
    dut, rng = bench.dut, bench.rng
    mem = AxiMemory(bench, dut.down, size=size, latency=latency, busy=busy)
    model = bytearray(rng.getrandbits(8) for _ in range(size))
    mem.mem[:] = model
    stalled = []
    watch_down(bench, dut, stalled)

    master = Master(bench, dut.up, busy)
    writes, reads = [], []
    for _ in range(30):
        addr, length = random_burst(rng, beat, 0, size // 2)
        writes.append((addr, length, rng.getrandbits(ID), write_burst(rng, model, beat, addr,
                                                                      length)))
    for _ in range(20):
        addr, length = random_burst(rng, beat, size // 2, size)
        reads.append((addr, length, rng.getrandbits(ID), read_expect(model, beat, addr, length)))
    master.write_log, master.read_log = writes, list(reads)
    master.start()

    @bench.testbench
    async def main(ctx):
        ctx.set(dut.down_ready, 1)
        while len(master.b_ids) < len(writes) or master.r_beats < sum(r[1] + 1 for r in reads):
            await ctx.tick("up")
        # All written: read every burst back, in the order written.
        for addr, length, ident, _ in writes:
            master.read_log.append((addr, length, ident, read_expect(model, beat, addr, length)))
        while master.r_beats < sum(r[1] + 1 for r in master.read_log):
            await ctx.tick("up")
        for _ in range(50):           # nothing more comes back
            await ctx.tick("up")
        assert ctx.get(dut.up.bvalid) == 0 and ctx.get(dut.up.rvalid) == 0

    bench.run(cycles=200_000)
    assert len(master.aw_sent) == len(master.b_ids) == len(writes)
    assert master.b_ids == [w[2] for w in writes]
    assert mem.bursts == {"write": len(writes), "read": len(master.read_log)}
    assert bytes(mem.mem) == bytes(model)
    assert not stalled


@pytest.mark.parametrize("clocks", [VCU118, FURY], ids=["vcu118", "fury"])
def test_nothing_reaches_memory_until_down_ready(clocks):
    """With down_ready low, write and read bursts are queued on `up` (the
    FIFOs fill, then the master waits on ready) and for hundreds of
    cycles no AW, W or AR is valid on `down` and the memory sees nothing.
    Once down_ready rises they all complete, with the right data."""
    up_ns, down_ns, width = clocks
    beat = width // 8
    size = 1 << ADDR
    bench = two_clocks(crossing(width), up_ns, down_ns, seed=width)
    dut, rng = bench.dut, bench.rng
    mem = AxiMemory(bench, dut.down, size=size, latency=10, busy=0.2)
    model = bytearray(rng.getrandbits(8) for _ in range(size))
    mem.mem[:] = model
    before = bytes(model)
    stalled = []
    watch_down(bench, dut, stalled)

    master = Master(bench, dut.up, 0.0)
    writes = []
    for k in range(20):
        addr, length = random_burst(rng, beat, 0, size // 2)
        writes.append((addr, length, k % (1 << ID), write_burst(rng, model, beat, addr, length)))
    reads = []
    for k in range(20):
        addr, length = random_burst(rng, beat, size // 2, size)
        reads.append((addr, length, k % (1 << ID), read_expect(model, beat, addr, length)))
    master.write_log, master.read_log = writes, reads
    master.start()

    @bench.testbench
    async def main(ctx):
        for _ in range(500):
            await ctx.tick()
        # Queued: the FIFOs are full (16 bursts, 16 beats); nothing out.
        assert len(master.aw_sent) == 16 and len(master.ar_sent) == 16
        assert master.w_beats == 16
        assert master.b_ids == [] and master.r_beats == 0
        assert mem.bursts == {"write": 0, "read": 0} and bytes(mem.mem) == before
        assert not stalled, f"valid on down while not ready: {stalled[:3]}"
        # The down side's level, set between its edges.
        ctx.set(dut.down_ready, 1)
        while len(master.b_ids) < len(writes) or \
                master.r_beats < sum(r[1] + 1 for r in reads):
            await ctx.tick()

    bench.run(cycles=100_000)
    assert master.b_ids == [w[2] for w in writes]
    assert mem.bursts == {"write": len(writes), "read": len(reads)}
    assert bytes(mem.mem) == bytes(model)
    assert not stalled


@pytest.mark.parametrize("clocks", [VCU118, FURY], ids=["vcu118", "fury"])
def test_streams_a_beat_a_cycle(clocks):
    """With neither side waiting, 4 KiB write bursts and then read bursts
    cross at a beat a cycle of the slower clock (the default depth covers
    the FIFOs' round trip; 4 would not, at about 0.8)."""
    up_ns, down_ns, width = clocks
    beat = width // 8
    rows = 4096 // beat
    bench = two_clocks(crossing(width), up_ns, down_ns, seed=2)
    dut, rng = bench.dut, bench.rng
    AxiMemory(bench, dut.down, size=1 << ADDR, latency=1, busy=0.0)
    model = bytearray(1 << ADDR)
    master = Master(bench, dut.up, 0.0)
    n = 8
    for k in range(n):
        master.write_log.append((k * 4096, rows - 1, k, write_burst(rng, model, beat, k * 4096,
                                                                    rows - 1)))
    master.start()
    slow = max(up_ns, down_ns) / up_ns          # up cycles in a slower-clock cycle
    rates = {}

    @bench.testbench
    async def main(ctx):
        ctx.set(dut.down_ready, 1)
        cycles = 0
        while len(master.b_ids) < n:
            await ctx.tick("up")
            cycles += 1
        rates["write"] = n * rows / (cycles / slow)
        for k in range(n):
            master.read_log.append((k * 4096, rows - 1, k,
                                    read_expect(model, beat, k * 4096, rows - 1)))
        cycles = 0
        while master.r_beats < n * rows:
            await ctx.tick("up")
            cycles += 1
        rates["read"] = n * rows / (cycles / slow)

    bench.run(cycles=50_000)
    assert min(rates.values()) > 0.95, rates
