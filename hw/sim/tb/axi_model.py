"""An AXI4 memory slave for the block benches (Amaranth's simulator), with
latency and back-pressure, that checks the rules a master must keep.

    mem = AxiMemory(bench, dut.axi, size=1 << 16, latency=20, busy=0.3)

Rules checked (AXI4, ARM IHI 0022): a valid signal stays up with its
payload unchanged until its handshake; bursts are INCR of whole beats,
at most 256 beats, never across a 4 KiB boundary, beat aligned; W beats
carry wlast on the burst's last beat and only there. A broken rule fails
the bench with the channel and the values.
"""

import collections

from hw.sim.tb.blocks import pause


class AxiMemory:
    def __init__(self, bench, port, *, size, latency=1, busy=0.0, writes=True, reads=True):
        self.bench, self.port, self.size = bench, port, size
        self.latency, self.busy = latency, busy
        self.mem = bytearray(size)
        self.beat = len(port.wdata) // 8 if writes else len(port.rdata) // 8
        self.errors = []
        self.bursts = {"write": 0, "read": 0}
        self._w_bursts = collections.deque()
        self._b = collections.deque()
        self._r_bursts = collections.deque()
        self.now = 0
        bench.background(self._clock)
        if writes:
            bench.background(self._aw)
            bench.background(self._w)
            bench.background(self._bresp)
        if reads:
            bench.background(self._ar)
            bench.background(self._r)

    def _check_burst(self, kind, addr, length, size, burst):
        nbytes = (length + 1) * self.beat
        if size != self.beat.bit_length() - 1 or burst != 1:
            self.errors.append(f"{kind}: size {size} burst {burst}: not INCR of whole beats")
        if addr % self.beat:
            self.errors.append(f"{kind}: address {addr:#x} not beat aligned")
        if addr // 4096 != (addr + nbytes - 1) // 4096:
            self.errors.append(f"{kind}: burst {addr:#x}+{nbytes} crosses 4 KiB")
        assert not self.errors, self.errors

    async def _clock(self, ctx):
        while True:
            await ctx.tick()
            self.now += 1

    async def _until(self, ctx, when):
        while self.now < when:
            await ctx.tick()

    async def _handshake(self, ctx, valid, ready, payload):
        """Waits for valid, ready up at random; checks that a valid stays up
        with its payload unchanged until taken. Returns the payload."""
        rng = self.bench.rng
        held = None
        while True:
            r = rng.random() >= self.busy
            ctx.set(ready, r)
            _, _, v, *vals = await ctx.tick().sample(valid, *payload)
            if held is not None and (not v or vals != held):
                self.errors.append(f"{valid.name}: dropped or changed before its handshake"
                                   f" ({held} -> {vals if v else 'not valid'})")
            assert not self.errors, self.errors
            if v and r:
                ctx.set(ready, 0)
                return vals
            held = vals if v else None

    async def _address(self, ctx, ch):
        """The next burst on AW or AR (`ch`), checked: (address, len, id)."""
        field = lambda name: getattr(self.port, ch + name)      # noqa: E731
        addr, length, size, burst, ident = await self._handshake(
            ctx, field("valid"), field("ready"),
            tuple(field(f) for f in ("addr", "len", "size", "burst", "id")))
        self._check_burst(ch.upper(), addr, length, size, burst)
        self.bursts["write" if ch == "aw" else "read"] += 1
        return addr, length, ident

    async def _aw(self, ctx):
        while True:
            self._w_bursts.append(await self._address(ctx, "aw"))

    async def _w(self, ctx):
        p = self.port
        while True:
            while not self._w_bursts:
                await ctx.tick()
            addr, length, bid = self._w_bursts.popleft()
            for k in range(length + 1):
                data, strb, last = await self._handshake(ctx, p.wvalid, p.wready,
                                                         (p.wdata, p.wstrb, p.wlast))
                if last != (k == length):
                    self.errors.append(f"W: wlast {last} on beat {k} of {length + 1}")
                assert not self.errors, self.errors
                base = (addr + k * self.beat) % self.size
                for j in range(self.beat):
                    if strb >> j & 1:
                        self.mem[base + j] = data >> 8 * j & 0xFF
            self._b.append((self.now + self.latency, bid))

    async def _bresp(self, ctx):
        p = self.port
        while True:
            while not self._b:
                await ctx.tick()
            when, bid = self._b.popleft()
            await self._until(ctx, when)
            ctx.set(p.bvalid, 1)
            ctx.set(p.bid, bid)
            await ctx.tick().until(p.bready)
            ctx.set(p.bvalid, 0)

    async def _ar(self, ctx):
        while True:
            addr, length, rid = await self._address(ctx, "ar")
            self._r_bursts.append((addr, length, rid, self.now + self.latency))

    async def _r(self, ctx):
        p, rng = self.port, self.bench.rng
        while True:
            while not self._r_bursts:
                await ctx.tick()
            addr, length, rid, when = self._r_bursts.popleft()
            await self._until(ctx, when)
            for k in range(length + 1):
                await pause(ctx, rng, self.busy)
                base = (addr + k * self.beat) % self.size
                ctx.set(p.rdata, int.from_bytes(self.mem[base:base + self.beat], "little"))
                ctx.set(p.rlast, k == length)
                ctx.set(p.rid, rid)
                ctx.set(p.rvalid, 1)
                await ctx.tick().until(p.rready)
                ctx.set(p.rvalid, 0)
