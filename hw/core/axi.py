"""AXI4 memory ports: the interface between the endpoint and the memory
behind BAR2 (block RAM here, a DRAM controller on a board), and slaves
that put N dword-wide banks (hw/core/ports.py) behind it.

Signals use AXI4's own names (awvalid, wdata, rlast, ...), so that a
port maps one to one onto a DRAM controller's or a bus model's. Only
INCR bursts of whole beats are used: addresses are beat aligned, sizes
are the full data width, and bursts never cross BURST_BYTES (at most
256 beats and never a 4 KiB boundary, as AXI4 requires).
"""

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.fifo import AsyncFIFO, SyncFIFO
from amaranth.lib.wiring import In, Out

INCR = 0b01
OKAY, SLVERR = 0b00, 0b10


def log2(x):
    return x.bit_length() - 1


def burst_rows(data_width):
    """Beats in the largest aligned burst: 4 KiB, or 256 beats if fewer."""
    return min(4096 // (data_width // 8), 256)


def axi_write_signature(addr_width, data_width, id_width):
    """The write half of an AXI4 port (AW, W, B), seen from the master."""
    return wiring.Signature({
        "awvalid": Out(1), "awready": In(1), "awaddr": Out(addr_width), "awlen": Out(8),
        "awsize": Out(3), "awburst": Out(2), "awid": Out(id_width),
        "wvalid": Out(1), "wready": In(1), "wdata": Out(data_width),
        "wstrb": Out(data_width // 8), "wlast": Out(1),
        "bvalid": In(1), "bready": Out(1), "bresp": In(2), "bid": In(id_width),
    })


def axi_read_signature(addr_width, data_width, id_width):
    """The read half of an AXI4 port (AR, R), seen from the master."""
    return wiring.Signature({
        "arvalid": Out(1), "arready": In(1), "araddr": Out(addr_width), "arlen": Out(8),
        "arsize": Out(3), "arburst": Out(2), "arid": Out(id_width),
        "rvalid": In(1), "rready": Out(1), "rdata": In(data_width), "rresp": In(2),
        "rlast": In(1), "rid": In(id_width),
    })


def axi_signature(addr_width, data_width, id_width):
    """A whole AXI4 port, seen from the master."""
    return wiring.Signature({
        **axi_write_signature(addr_width, data_width, id_width).members,
        **axi_read_signature(addr_width, data_width, id_width).members,
    })


def join(m, master, slave):
    """Connects the members the two ports share by name (a half port to a
    whole one), each in its direction as seen from `master`."""
    for name, member in master.signature.members.items():
        if name in slave.signature.members:
            a, b = getattr(master, name), getattr(slave, name)
            m.d.comb += b.eq(a) if member.flow == Out else a.eq(b)


def join_named(m, master, slave, *, master_prefix="", slave_prefix=""):
    """Connects a whole AXI4 port between two components that name its
    signals with prefixes (the endpoint's m_axi_*, a slave's plain names),
    each signal in its AXI4 direction: what a master drives goes from
    `master` to `slave`."""
    for name, member in axi_signature(1, 8, 1).members.items():
        a, b = getattr(master, master_prefix + name), getattr(slave, slave_prefix + name)
        m.d.comb += b.eq(a) if member.flow == Out else a.eq(b)


def tie_off(m, port, members):
    """Ready signals of an unused half of a port stay low, so nothing moves."""
    for name in members:
        if port.signature.members[name].flow == Out:
            m.d.comb += getattr(port, name).eq(0)


class AxiBankReads(wiring.Component):
    """An AXI4 read slave over a bank read port (hw/core/ports.py): a burst
    reads one row of every bank a beat, its first in the cycle its AR is
    taken; the data, a cycle later, goes to the master at once or waits in
    a small queue (the banks serve others meanwhile)."""

    def __init__(self, addr_width, data_width, id_width, row_bits):
        self.row_bits = row_bits
        self.beat_bits = log2(data_width // 8)
        super().__init__({
            "axi": In(axi_read_signature(addr_width, data_width, id_width)),
            "bank_en": Out(1), "bank_row": Out(row_bits), "bank_data": In(data_width),
        })

    def elaborate(self, platform):
        m = Module()
        a = self.axi
        idw = len(a.arid)
        m.submodules.q = q = SyncFIFO(width=len(a.rdata) + 1 + idw, depth=4)
        active = Signal()
        row = Signal(self.row_bits)
        left = Signal(8)                   # beats after this one
        rid = Signal.like(a.arid)
        inflight, in_last, in_id = Signal(), Signal(), Signal.like(a.arid)
        room = Signal()
        m.d.comb += room.eq(q.level + inflight < 3)
        # A burst's first row is read in the cycle its AR is taken when idle.
        ar_row = a.araddr[self.beat_bits:]
        direct = ~active & a.arvalid & room
        issue = active & room
        m.d.comb += a.arready.eq(~active | (issue & (left == 0)))
        m.d.sync += [inflight.eq(issue | direct),
                     in_last.eq(Mux(direct, a.arlen == 0, left == 0)),
                     in_id.eq(Mux(direct, a.arid, rid))]
        with m.If(issue):
            m.d.sync += [row.eq(row + 1), left.eq(left - 1)]
            with m.If(left == 0):
                m.d.sync += active.eq(0)
        with m.If(a.arvalid & a.arready):      # after: a new burst wins
            m.d.sync += rid.eq(a.arid)
            with m.If(direct):
                m.d.sync += [active.eq(a.arlen != 0), row.eq(ar_row + 1),
                             left.eq(a.arlen - 1)]
            with m.Else():
                m.d.sync += [active.eq(1), row.eq(ar_row), left.eq(a.arlen)]
        # The data goes to R at once when nothing waits before it and the
        # master takes it; else into the queue, which R then shows.
        fresh = Cat(self.bank_data, in_last, in_id)
        m.d.comb += [
            self.bank_en.eq(issue | direct), self.bank_row.eq(Mux(direct, ar_row, row)),
            a.rvalid.eq(q.r_rdy | inflight),
            Cat(a.rdata, a.rlast, a.rid).eq(Mux(q.r_rdy, q.r_data, fresh)), a.rresp.eq(OKAY),
            q.w_en.eq(inflight & (q.r_rdy | ~a.rready)), q.w_data.eq(fresh),
            q.r_en.eq(a.rready),
        ]
        return m


class AxiBankWrites(wiring.Component):
    """An AXI4 write slave over a bank write port: a beat a cycle into one
    row of every bank, with its strobes; B once the last beat is in."""

    def __init__(self, addr_width, data_width, id_width, row_bits):
        self.row_bits = row_bits
        self.beat_bits = log2(data_width // 8)
        super().__init__({
            "axi": In(axi_write_signature(addr_width, data_width, id_width)),
            "bank_en": Out(1), "bank_row": Out(row_bits),
            "bank_data": Out(data_width), "bank_be": Out(data_width // 8),
        })

    def elaborate(self, platform):
        m = Module()
        a = self.axi
        active = Signal()
        row = Signal(self.row_bits)
        wid = Signal.like(a.awid)
        b_valid, b_id = Signal(), Signal.like(a.bid)
        b_free = ~b_valid | a.bready
        m.d.comb += [a.wready.eq(active & b_free),
                     a.awready.eq(~active | (a.wvalid & a.wready & a.wlast))]
        take = a.wvalid & a.wready
        with m.If(take):
            m.d.sync += row.eq(row + 1)
            with m.If(a.wlast):
                m.d.sync += active.eq(0)
        with m.If(a.awvalid & a.awready):      # after: a new burst wins
            m.d.sync += [active.eq(1), row.eq(a.awaddr[self.beat_bits:]), wid.eq(a.awid)]
        with m.If(b_free):
            m.d.sync += [b_valid.eq(take & a.wlast), b_id.eq(wid)]
        m.d.comb += [
            self.bank_en.eq(take), self.bank_row.eq(row),
            self.bank_data.eq(a.wdata), self.bank_be.eq(a.wstrb),
            a.bvalid.eq(b_valid), a.bid.eq(b_id), a.bresp.eq(OKAY),
        ]
        return m


def same_row(row, lanes):
    """A bank row vector with every bank at `row` (an aligned beat)."""
    return Cat(*([row] * lanes))


ADDRESS_FIELDS = ("addr", "len", "size", "burst")


class AxiArbiter(wiring.Component):
    """Two AXI4 masters onto one slave. AW and AR are taken in turn (round
    robin), each with the master's number as the ID's top bit: AW into a
    register, AR straight through; R and B go back by that bit; W follows
    AW's order, a burst at a time."""

    def __init__(self, addr_width, data_width, id_width):
        sig = axi_signature(addr_width, data_width, id_width)
        super().__init__({
            "m0": In(sig), "m1": In(sig),
            "s": Out(axi_signature(addr_width, data_width, id_width + 1)),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.wroute = wroute = SyncFIFO(width=1, depth=8)
        aw_to = self._address(m, "aw", room=wroute.w_rdy)
        m.d.comb += [wroute.w_en.eq(aw_to["load"]), wroute.w_data.eq(aw_to["who"])]
        self._address_through(m, "ar")
        self._write_data(m, wroute)
        self._respond(m, "r", ("data", "resp", "last"))
        self._respond(m, "b", ("resp",))
        return m

    def _address(self, m, ch, room=1):
        """AW or AR: the next request into the output register once it is
        free, from the master whose turn it is if both ask."""
        s, ms = self.s, (self.m0, self.m1)
        valid, ready = f"{ch}valid", f"{ch}ready"
        out_valid = getattr(s, valid)
        last = Signal()                    # master granted last
        want = [getattr(x, valid) for x in ms]
        who = Signal()
        m.d.comb += who.eq(Mux(want[0] & want[1], ~last, want[1]))
        free = (~out_valid | getattr(s, ready)) & room
        load = free & (want[0] | want[1])
        for k, x in enumerate(ms):
            m.d.comb += getattr(x, ready).eq(free & (who == k))
        with m.If(free):
            m.d.sync += out_valid.eq(load)
        with m.If(load):
            m.d.sync += last.eq(who)
            for f in ADDRESS_FIELDS:
                m.d.sync += getattr(s, ch + f).eq(Mux(who, getattr(ms[1], ch + f),
                                                      getattr(ms[0], ch + f)))
            m.d.sync += getattr(s, ch + "id").eq(Cat(Mux(who, getattr(ms[1], ch + "id"),
                                                         getattr(ms[0], ch + "id")), who))
        return {"load": load, "who": who}

    def _address_through(self, m, ch):
        """AR: the request passes in the cycle it comes (a read's latency is
        what a completer is judged by), from the master whose turn it is if
        both ask; the choice holds until the slave takes it."""
        s, ms = self.s, (self.m0, self.m1)
        want = [getattr(x, f"{ch}valid") for x in ms]
        last, pending, held = Signal(), Signal(), Signal()   # held: who, while pending
        who = Signal()
        m.d.comb += who.eq(Mux(pending, held, Mux(want[0] & want[1], ~last, want[1])))
        out_valid, out_ready = getattr(s, f"{ch}valid"), getattr(s, f"{ch}ready")
        m.d.comb += out_valid.eq(want[0] | want[1])
        for k, x in enumerate(ms):
            m.d.comb += getattr(x, f"{ch}ready").eq(out_ready & (who == k))
        for f in ADDRESS_FIELDS:
            m.d.comb += getattr(s, ch + f).eq(Mux(who, getattr(ms[1], ch + f),
                                                  getattr(ms[0], ch + f)))
        m.d.comb += getattr(s, ch + "id").eq(Cat(Mux(who, getattr(ms[1], ch + "id"),
                                                     getattr(ms[0], ch + "id")), who))
        m.d.sync += [pending.eq(out_valid & ~out_ready), held.eq(who)]
        with m.If(out_valid & out_ready):
            m.d.sync += last.eq(who)

    def _write_data(self, m, wroute):
        s, ms = self.s, (self.m0, self.m1)
        k = wroute.r_data[0]
        for f in ("wdata", "wstrb", "wlast"):
            m.d.comb += getattr(s, f).eq(Mux(k, getattr(ms[1], f), getattr(ms[0], f)))
        m.d.comb += s.wvalid.eq(wroute.r_rdy & Mux(k, ms[1].wvalid, ms[0].wvalid))
        for j, x in enumerate(ms):
            m.d.comb += x.wready.eq(wroute.r_rdy & (k == j) & s.wready)
        m.d.comb += wroute.r_en.eq(s.wvalid & s.wready & s.wlast)

    def _respond(self, m, ch, fields):
        s, ms = self.s, (self.m0, self.m1)
        sid = getattr(s, ch + "id")
        k = sid[-1]
        for j, x in enumerate(ms):
            m.d.comb += [getattr(x, ch + "valid").eq(getattr(s, ch + "valid") & (k == j)),
                         getattr(x, ch + "id").eq(sid[:-1]),
                         *(getattr(x, ch + f).eq(getattr(s, ch + f)) for f in fields)]
        # Ready only with valid: the ID means nothing without it (and may be
        # undriven in simulation).
        m.d.comb += getattr(s, ch + "ready").eq(
            getattr(s, ch + "valid") & Mux(k, getattr(ms[1], ch + "ready"),
                                           getattr(ms[0], ch + "ready")))


# The payload of each channel, crossed as one AsyncFIFO word.
CHANNEL_FIELDS = {
    "aw": ("addr", "len", "size", "burst", "id"),
    "w": ("data", "strb", "last"),
    "ar": ("addr", "len", "size", "burst", "id"),
    "b": ("resp", "id"),
    "r": ("data", "resp", "last", "id"),
}


class AxiClockCrossing(wiring.Component):
    """An AXI4 port from one clock domain to another: the endpoint's memory
    port (`up`, a slave in the PCIe user clock: 250 MHz on the VCU118, 125
    MHz on the Artix-7 boards) onto a DRAM controller's AXI4 slave (`down`,
    a master in the controller's UI clock: 300 MHz, 100 MHz), the same
    widths on both sides.

    Each channel crosses in an amaranth.lib.fifo.AsyncFIFO: AW, W and AR
    are written in `up` and read in `down`; B and R are written in `down`
    and read in `up`. A FIFO's w_rdy is the channel's ready on its writing
    side, its r_rdy the valid on its reading side and its r_data the
    payload, which holds while valid and not ready (the slot is not
    rewritten until read), so AXI's handshake rules hold on both sides:
    no valid depends on a ready.

    `down_ready` (a level in `down`: the controller has calibrated) holds
    AW, W and AR valid low on `down` while it is 0; requests wait in the
    FIFOs (and, once those are full, the endpoint waits on their ready).
    It must not fall once up: that would drop a valid before its
    handshake (MIG's init_calib_complete only rises).

    Depths: every FIFO is `depth` entries, a power of two (AsyncFIFO's
    rule). A beat written on one side is seen on the other after a
    register and two synchroniser stages, and its slot seen free again
    as long after it is read, so W and R stream a beat a cycle once
    `depth` covers that round trip, under 8 beats at both boards' clock
    ratios; 16 leaves room. The R FIFO need not hold a whole burst (up
    to 256 beats): when it is full, rready holds the controller back
    (MIG keeps read data in its own buffer), nothing is lost. AW, AR and
    B take `depth` too: their entries are a burst each, and FIFOs this
    shallow go in distributed RAM, 32 or 64 entries a LUT, so fewer
    would cost no less.

    Resets follow AsyncFIFO's rule: each FIFO is reset from its write
    domain (`up`'s reset empties AW, W and AR; `down`'s empties B and R),
    its read side following through a reset synchroniser. Bursts in
    flight in the controller when only `up` is reset would answer after
    it, so a board resets both sides together: the reset that resets the
    endpoint resets the controller too (its sys_rst), and the endpoint is
    held in reset until the controller is ready. Then no stale response
    crosses.
    """

    def __init__(self, addr_width, data_width, id_width, *, up="sync", down="mem", depth=16):
        if depth < 2 or depth & (depth - 1):
            raise ValueError(f"depth {depth}: use a power of two of at least 2 (AsyncFIFO)")
        self.up_domain, self.down_domain, self.depth = up, down, depth
        sig = axi_signature(addr_width, data_width, id_width)
        super().__init__({"up": In(sig), "down": Out(sig), "down_ready": In(1)})

    def elaborate(self, platform):
        m = Module()
        up, down = self.up_domain, self.down_domain
        for ch in ("aw", "w", "ar"):
            self._cross(m, ch, self.up, self.down, up, down, gate=self.down_ready)
        for ch in ("b", "r"):
            self._cross(m, ch, self.down, self.up, down, up)
        return m

    def _cross(self, m, ch, src, dst, w_domain, r_domain, gate=1):
        """Channel `ch` from port `src` (written in `w_domain`) to port
        `dst` (read in `r_domain`); `gate` low holds dst's valid low."""
        fifo = AsyncFIFO(width=sum(len(getattr(src, ch + f)) for f in CHANNEL_FIELDS[ch]),
                         depth=self.depth, w_domain=w_domain, r_domain=r_domain,
                         exact_depth=True)
        m.submodules[ch] = fifo
        m.d.comb += [
            fifo.w_en.eq(getattr(src, ch + "valid")),
            getattr(src, ch + "ready").eq(fifo.w_rdy),
            fifo.w_data.eq(Cat(*(getattr(src, ch + f) for f in CHANNEL_FIELDS[ch]))),
            getattr(dst, ch + "valid").eq(fifo.r_rdy & gate),
            fifo.r_en.eq(getattr(dst, ch + "ready") & gate),
            Cat(*(getattr(dst, ch + f) for f in CHANNEL_FIELDS[ch])).eq(fifo.r_data),
        ]
