"""The blocks' side of the AXI4 memory port: runs of dwords at any dword
address, moved as aligned AXI4 bursts.

The endpoint's blocks see data as beats of N = width/32 lanes, lane 0 of
a beat at some dword address t, any alignment (a TLP's payload starts
wherever its address puts it). Memory is rows of N dwords: a beat at t
spans row t/N (lanes from t mod N up) and the next row. Both adapters
turn one into the other with the previous row or beat held in a
register, so a run costs a beat a cycle and at most one cycle more:

* AxiWriter: a command (first dword, dword count, lane 0's alignment)
  and the run's beats, each lane with its byte enables, become AW
  bursts and W beats; `done` counts the commands whose bursts all have
  their B response (for ordering: see Completer).
* AxiReader: a command (first dword, dword count, `lead` dwords of
  output before the first, beats) becomes AR bursts, and the R beats
  return as output beats, lane `lead` of the first holding the first
  dword. Lanes outside the run are undefined.

Commands split into bursts at BURST_BYTES boundaries (hw/core/axi.py);
both sides of each adapter compute the same split, so W beats carry
wlast and R beats are counted without looking at rlast.
"""

from amaranth.hdl import Cat, Const, Module, Mux, ResetInserter, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from hw.core.axi import INCR, axi_read_signature, axi_write_signature, burst_rows, log2


def write_command(addr_bits, count_bits, lanes):
    return data.StructLayout({"first": addr_bits, "count": count_bits,
                              "lane0": max(log2(lanes), 1)})


def read_command(addr_bits, count_bits, lanes, lead_bits):
    return data.StructLayout({"first": addr_bits, "count": count_bits,
                              "lead": lead_bits, "beats": count_bits})


def write_beat(data_width):
    return data.StructLayout({"data": data_width, "be": data_width // 8, "last": 1})


def read_beat(data_width):
    return data.StructLayout({"data": data_width, "last": 1})


def _rows(m, first, count, logn, name):
    """(first row, rows) of the run of `count` dwords from `first`. Rows
    past the top of the address space wrap to row 0."""
    rows = Signal(len(count) + 1, name=f"{name}_rows")
    m.d.comb += rows.eq(((first[:logn] + count - 1) >> logn) + 1 if logn else count)
    return first[logn:], rows


def _fanout(m, cmd, layout, depth_a, depth_b, name, *, reset=None):
    """Two queues fed by one command stream: each consumer pops its own.
    `reset` empties both (and refuses commands meanwhile)."""
    qa = SyncFIFO(width=layout.size, depth=depth_a)
    qb = SyncFIFO(width=layout.size, depth=depth_b)
    wrap = (lambda q: q) if reset is None else ResetInserter(reset)
    m.submodules[f"{name}_a"], m.submodules[f"{name}_b"] = wrap(qa), wrap(qb)
    refuse = Const(0) if reset is None else reset
    m.d.comb += [cmd.ready.eq(qa.w_rdy & qb.w_rdy & ~refuse),
                 qa.w_en.eq(cmd.valid & cmd.ready), qb.w_en.eq(cmd.valid & cmd.ready),
                 qa.w_data.eq(cmd.payload), qb.w_data.eq(cmd.payload)]
    return qa, qb


class BurstIssuer(wiring.Component):
    """Splits runs of rows into aligned bursts, one address phase a cycle:
    `addr`/`len` valid until `ready`; `end` on the last burst of a run."""

    def __init__(self, row_bits, count_bits, data_width):
        self.rows = burst_rows(data_width)
        super().__init__({
            "run": In(stream.Signature(data.StructLayout({"first": row_bits,
                                                          "rows": count_bits}))),
            "valid": Out(1), "ready": In(1), "row": Out(row_bits), "len": Out(8),
            "end": Out(1),
            "drop": In(1),     # no new run; the burst shown goes out, then no more
        })

    def elaborate(self, platform):
        m = Module()
        row = Signal.like(self.row)
        left = Signal.like(self.run.payload.rows)      # rows of the run not asked for
        active = Signal()
        room = Signal(range(self.rows + 1))            # rows to the next boundary
        m.d.comb += room.eq(self.rows - (row & (self.rows - 1)))
        take = Signal.like(left)
        m.d.comb += take.eq(Mux(left < room, left, room))
        m.d.comb += [self.valid.eq(active), self.row.eq(row), self.len.eq(take - 1),
                     self.end.eq(take == left)]
        done = self.valid & self.ready & self.end
        m.d.comb += self.run.ready.eq((~active | done) & ~self.drop)
        with m.If(self.valid & self.ready):
            m.d.sync += [row.eq(row + take), left.eq(left - take)]
            with m.If(self.end | self.drop):
                m.d.sync += active.eq(0)
        with m.If(self.run.valid & self.run.ready):
            m.d.sync += [active.eq(1), row.eq(self.run.payload.first),
                         left.eq(self.run.payload.rows)]
        return m


def _address_phase(m, q, layout, port, ch, data_width, axi_id, gate=1):
    """AW or AR (`ch`): the bursts of the commands in queue `q`, sent while
    `gate` allows. Returns the BurstIssuer (its `drop` is the caller's)."""
    c = data.View(layout, q.r_data)
    logn = log2(data_width // 32)
    first, rows = _rows(m, c.first, c.count, logn, ch)
    m.submodules[ch] = issuer = BurstIssuer(len(first), len(rows), data_width)
    field = lambda name: getattr(port, ch + name)       # noqa: E731
    m.d.comb += [
        issuer.run.valid.eq(q.r_rdy), q.r_en.eq(issuer.run.ready),
        issuer.run.payload.first.eq(first), issuer.run.payload.rows.eq(rows),
        field("valid").eq(issuer.valid & gate), issuer.ready.eq(field("ready") & gate),
        field("addr").eq(Cat(Const(0, log2(data_width // 8)), issuer.row)),
        field("len").eq(issuer.len), field("size").eq(log2(data_width // 8)),
        field("burst").eq(INCR), field("id").eq(axi_id),
    ]
    return issuer


class AxiWriter(wiring.Component):
    def __init__(self, data_width, addr_width, count_bits, *, id_width=1, axi_id=0,
                 max_bursts=64):
        self.w, self.n = data_width, data_width // 32
        self.addr_width, self.count_bits = addr_width, count_bits
        self.axi_id, self.max_bursts = axi_id, max_bursts
        dw_bits = addr_width - 2
        self.cmd_layout = write_command(dw_bits, count_bits, self.n)
        super().__init__({
            "cmd": In(stream.Signature(self.cmd_layout)),
            "beats": In(stream.Signature(write_beat(data_width))),
            "axi": Out(axi_write_signature(addr_width, data_width, id_width)),
            "done": Out(8),                # commands whose bursts are all acknowledged
            "idle": Out(1),                # no command queued, moving or unacknowledged
        })

    def elaborate(self, platform):
        m = Module()
        qa, qb = _fanout(m, self.cmd, self.cmd_layout, 2, 4, "cmdq")
        # Beats queue on their own, so that a source can hand over a
        # command and its first beat in the same cycle.
        layout = write_beat(self.w)
        m.submodules.beatq = bq = SyncFIFO(width=layout.size, depth=4)
        beats = stream.Signature(layout).flip().create()
        m.d.comb += [bq.w_data.eq(self.beats.payload), bq.w_en.eq(self.beats.valid),
                     self.beats.ready.eq(bq.w_rdy),
                     beats.payload.eq(bq.r_data), beats.valid.eq(bq.r_rdy),
                     bq.r_en.eq(beats.ready)]
        busy_w = self._address(m, qa)
        busy_d = self._data(m, qb, beats)
        m.d.comb += self.idle.eq(~qa.r_rdy & ~qb.r_rdy & ~bq.r_rdy & ~busy_w & ~busy_d)
        return m

    def _address(self, m, q):
        """AW: a command's bursts; B: counted back, `done` per command."""
        a = self.axi
        outstanding = Signal(range(self.max_bursts + 1))
        aw = _address_phase(m, q, self.cmd_layout, a, "aw", self.w, self.axi_id,
                            gate=outstanding < self.max_bursts)
        m.submodules.ends = ends = SyncFIFO(width=1, depth=self.max_bursts)
        m.d.comb += [
            aw.drop.eq(0),
            ends.w_en.eq(a.awvalid & a.awready), ends.w_data.eq(aw.end),
            a.bready.eq(1), ends.r_en.eq(a.bvalid),
        ]
        sent, back = a.awvalid & a.awready, a.bvalid
        m.d.sync += outstanding.eq(outstanding + sent - back)
        with m.If(back & ends.r_data):
            m.d.sync += self.done.eq(self.done + 1)
        return aw.valid | (outstanding != 0)

    def _data(self, m, q, i):
        """W: each command's beats rotated to rows; the row a beat leaves
        half-filled goes out with the next beat, or alone after the last."""
        n, w, logn, a = self.n, self.w, log2(self.n), self.axi
        c = data.View(self.cmd_layout, q.r_data)
        rot = Signal(max(logn, 1))
        skip = Signal()                    # beat 0 fills no row of its own
        left = Signal(self.count_bits + 1)   # rows still to send
        row = Signal(len(c.first) - logn + 1)
        active, first, tail = Signal(), Signal(), Signal()
        prev_d, prev_be = Signal(w), Signal(w // 8)
        first_row, rows = _rows(m, c.first, c.count, logn, "w")
        lane0 = c.lane0 if logn else Const(0, 1)

        # Beat rotated so that lane k sits at position (k + rot) mod N:
        # positions from rot up belong to this row, those below to the next.
        shift = Signal(range(n + 1))
        m.d.comb += shift.eq(n - rot)
        rd = Signal(w)
        rbe = Signal(w // 8)
        m.d.comb += [rd.eq(Cat(i.payload.data, i.payload.data).bit_select(shift * 32, w)),
                     rbe.eq(Cat(i.payload.be, i.payload.be).bit_select(shift * 4, w // 8))]
        hi = Signal(n)
        for b in range(n):
            m.d.comb += hi[b].eq(b >= rot)
        hi_be = Cat(*(hi[b].replicate(4) for b in range(n)))
        hi_d = Cat(*(hi[b].replicate(32) for b in range(n)))

        # Before the last beat: a row a beat (none for a skipped beat 0, nor
        # past the run). After it (`tail`): the half row held, then rows of
        # nothing if the beats fell short, so a burst always ends.
        emit = active & (left != 0) & Mux(tail, 1, i.valid & ~(first & skip))
        m.d.comb += [
            a.wvalid.eq(emit),
            a.wdata.eq(Mux(tail, prev_d, (rd & hi_d) | prev_d)),
            a.wstrb.eq(Mux(tail, prev_be, (rbe & hi_be) | prev_be)),
            a.wlast.eq((left == 1) | (row[:log2(burst_rows(w))] == burst_rows(w) - 1)),
            i.ready.eq(active & ~tail & ((first & skip) | (left == 0) | a.wready)),
        ]
        sent = a.wvalid & a.wready
        taken = i.valid & i.ready
        left_after = left - sent
        ending = active & (left_after == 0) & (tail | (taken & i.payload.last))
        with m.If(sent):
            m.d.sync += [left.eq(left_after), row.eq(row + 1)]
        with m.If(taken):
            m.d.sync += [first.eq(0), prev_d.eq(rd & ~hi_d), prev_be.eq(rbe & ~hi_be)]
            with m.If(i.payload.last):
                m.d.sync += tail.eq(1)
        with m.If(tail & sent):
            m.d.sync += [prev_d.eq(0), prev_be.eq(0)]
        with m.If(ending):
            m.d.sync += active.eq(0)
        load = q.r_rdy & (~active | ending)
        m.d.comb += q.r_en.eq(load)
        with m.If(load):                   # last: a new command wins
            m.d.sync += [active.eq(1), first.eq(1), tail.eq(0), rot.eq(lane0),
                         skip.eq((c.first[:logn] < lane0) if logn else 0),
                         left.eq(rows), row.eq(first_row),
                         prev_d.eq(0), prev_be.eq(0)]
        return active


class AxiReader(wiring.Component):
    def __init__(self, data_width, addr_width, count_bits, *, lead_bits=3, id_width=1,
                 axi_id=0, depth=4):
        self.w, self.n = data_width, data_width // 32
        self.count_bits, self.axi_id, self.depth = count_bits, axi_id, depth
        self.cmd_layout = read_command(addr_width - 2, count_bits, self.n, lead_bits)
        super().__init__({
            "cmd": In(stream.Signature(self.cmd_layout)),
            "out": Out(stream.Signature(read_beat(data_width))),
            "axi": Out(axi_read_signature(addr_width, data_width, id_width)),
            "stop": In(1),                 # drop the commands; drain what was asked
            "idle": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        self.draining = Signal()
        qa, qb = _fanout(m, self.cmd, self.cmd_layout, 2, self.depth, "cmdq",
                         reset=self.stop | self.draining)
        asked = self._address(m, qa)
        busy = self._data(m, qb, asked)
        m.d.comb += self.idle.eq(~qa.r_rdy & ~qb.r_rdy & ~busy)
        return m

    def _address(self, m, q):
        """AR: a command's bursts. Returns rows asked for and not yet returned."""
        a = self.axi
        ar = _address_phase(m, q, self.cmd_layout, a, "ar", self.w, self.axi_id)
        m.d.comb += ar.drop.eq(self.stop | self.draining)
        asked = Signal(24)
        m.d.sync += asked.eq(asked + Mux(a.arvalid & a.arready, a.arlen + 1, 0)
                             - (a.rvalid & a.rready))
        return asked

    def _data(self, m, q, asked):
        """R: rows in, output beats out. Output beat k is rows (k, k + 1) of
        the command's virtual rows shifted by `s` lanes; rows outside the
        run are not read (zero). Returns busy."""
        n, logn, a = self.n, log2(self.n), self.axi
        c = data.View(self.cmd_layout, q.r_data)
        vbits = self.count_bits + 1
        active, draining = Signal(), self.draining
        v, v_first, v_last, v_end = (Signal(vbits, name=x) for x in
                                     ("v", "v_first", "v_last", "v_end"))
        s = Signal(range(n + 1))           # shift in lanes: 1..N (N: no second row)
        prev = Signal(self.w)

        rot = Signal(max(logn, 1))
        m.d.comb += rot.eq((c.first - c.lead)[:logn] if logn else 0)
        c_first = (rot + c.lead) >> logn
        c_last = (rot + c.lead + c.count - 1) >> logn
        c_two = rot != 0                   # output beats take two rows
        load = Signal()
        step_last = Signal()
        m.d.comb += [load.eq(q.r_rdy & (~active | step_last) & ~self.stop & ~draining),
                     q.r_en.eq(load)]
        self._rows_out(m, active, v, v_first, v_last, v_end, s, prev, step_last)
        with m.If(load):
            m.d.sync += [active.eq(1), s.eq(Mux(c_two, rot, n)), prev.eq(0),
                         v_first.eq(c_first), v_last.eq(c_last),
                         v_end.eq(c.beats - 1 + c_two),
                         # Row 0 not read: nothing to hold, start at row 1.
                         v.eq(c_two & (c_first != 0))]
        with m.Elif(step_last):
            m.d.sync += active.eq(0)
        # Stop: drop the command under way, take the rows still to come.
        with m.If(self.stop):
            m.d.sync += [active.eq(0), draining.eq(1)]
        with m.Elif(draining & (asked == 0) & ~a.arvalid):
            m.d.sync += draining.eq(0)
        return active | draining | (asked != 0)

    def _rows_out(self, m, active, v, v_first, v_last, v_end, s, prev, step_last):
        """A virtual row a cycle: held (row 0 of a two-row shift) or joined
        with the one held into an output beat."""
        n, w, a, o = self.n, self.w, self.axi, self.out
        from_r = (v >= v_first) & (v <= v_last)
        row = Mux(from_r, a.rdata, 0)
        prime = (s != n) & (v == 0)        # row 0 of a two-row shift: held only
        have = ~from_r | a.rvalid
        step = active & have & (prime | o.ready)
        m.d.comb += [
            o.valid.eq(active & have & ~prime),
            o.payload.data.eq(Cat(prev, row).bit_select(s * 32, w)),
            o.payload.last.eq(v == v_end),
            step_last.eq(step & (v == v_end)),
            a.rready.eq(Mux(self.draining | self.stop, 1,
                            active & from_r & (prime | o.ready))),
        ]
        with m.If(step):
            m.d.sync += [v.eq(v + 1), prev.eq(row)]
