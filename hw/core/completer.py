"""Completer: answers the queued non-posted requests on CC.

A request is split into completions at the Read Completion Boundary, none
carrying more than Max Payload Size (both from the hard IP's
configuration outputs), with Byte Count and Lower Address as the PCIe
rules give them; an unsupported request gets one completion with status
UR and no data.

    queue -> request register R -> S1: a beat of bank reads a cycle
          -> S2: bank data rotated to lanes, the CC descriptor laid over
             the first lanes -> output FIFO -> CC
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from hw.core import layouts, ports
from hw.spec.usp import CplStatus, sideband

NP_READ, NP_UR = ports.NP_READ, ports.NP_UR
EVENTS = ports.counter_events_layout(("STAT_CPLS",))


def _lsb_index(be):
    """Index of the lowest set bit of a 4-bit byte enable (0 when none)."""
    return Mux(be[0], 0, Mux(be[1], 1, Mux(be[2], 2, Mux(be[3], 3, 0))))


def _msb_index(be):
    return Mux(be[3], 3, Mux(be[2], 2, Mux(be[1], 1, 0)))


class Completer(wiring.Component):
    def __init__(self, p):
        self.p = p
        super().__init__({
            "np": In(ports.np_stream_signature(p)),
            "queued": Out(range(p.np_queue_depth + 1)),     # requests waiting
            "max_payload": In(3), "rcb_128": In(1),         # Device Control, Link Control
            "mem_read": Out(ports.bank_read_signature(p)),
            "reg_read": Out(ports.bank_read_signature(p)),
            "cc": Out(ports.axis_signature(p.data_width, sideband(p.data_width).cc_user)),
            "events": Out(EVENTS),
        })

    def elaborate(self, platform):
        m = Module()
        p = self.p
        m.submodules.queue = queue = SyncFIFO(width=ports.np_request_layout(p).size,
                                              depth=p.np_queue_depth)
        m.d.comb += [queue.w_data.eq(self.np.payload), queue.w_en.eq(self.np.valid),
                     self.np.ready.eq(queue.w_rdy), self.queued.eq(queue.level)]
        s1_free = Signal()
        take, cpl = self._request(m, queue, s1_free)
        s2, out_level = self._stages(m, take, cpl, s1_free)
        self._output(m, s2, out_level)
        m.d.comb += self.events.stat_cpls.eq(take)
        return m

    def _mps_dwords(self, m):
        mps = Signal(11)
        with m.Switch(self.max_payload):
            for code in range(6):
                with m.Case(code):
                    m.d.comb += mps.eq(min(32 << code, self.p.max_payload_supported // 4))
            with m.Default():
                m.d.comb += mps.eq(32)
        return mps

    def _request(self, m, queue, s1_free):
        """Request register R: the request being split. Returns (take: S1
        takes the next completion now, that completion's fields)."""
        p = self.p
        addr_bits = ports.dword_address_bits(p)
        q = data.View(ports.np_request_layout(p), queue.r_data)
        r = Signal(ports.np_request_layout(p))
        valid = Signal()
        dw = Signal(addr_bits)            # dword address of the next completion
        rem_dw = Signal(11)               # dwords left to send
        rem_bytes = Signal(13)            # Byte Count of the next completion
        first = Signal()

        # Byte count of a whole memory read, from its byte enables.
        one = q.dw_count == 1
        q_bytes = Signal(13)
        with m.If(one & (q.fbe == 0)):
            m.d.comb += q_bytes.eq(1)     # zero-length read
        with m.Else():
            m.d.comb += q_bytes.eq(((q.dw_count - 1) << 2) + _msb_index(Mux(one, q.fbe, q.lbe))
                                   + 1 - _lsb_index(q.fbe))

        # The next completion, from R.
        ur = r.kind == NP_UR
        lead = Mux(first & ~ur, _lsb_index(r.fbe), 0)
        limit = self._mps_dwords(m) - (dw & Mux(self.rcb_128, 31, 15))
        c_dw = Signal(11)                 # its payload dwords
        m.d.comb += c_dw.eq(Mux(ur, 0, Mux(rem_dw > limit, limit, rem_dw)))
        last = ur | (rem_dw <= limit)
        lower = Signal(7)
        with m.If(ur & r.bc_fixed):
            m.d.comb += lower.eq(0)
        with m.Else():
            m.d.comb += lower.eq(Cat(Mux(ur, _lsb_index(r.fbe), lead)[:2], dw[:5]))
        cc = Signal(layouts.CC_DESCRIPTOR)   # the fields not named here stay 0
        m.d.comb += [
            cc.lower_address.eq(lower), cc.byte_count.eq(Mux(ur & r.bc_fixed, r.bc, rem_bytes)),
            cc.locked.eq(r.locked & ur), cc.dw_count.eq(c_dw),
            cc.status.eq(Mux(ur, Const(CplStatus.UR, 3), Const(CplStatus.SC, 3))),
            cc.requester_id.eq(r.req_id), cc.tag.eq(r.tag), cc.completer_function.eq(r.func),
            cc.tc.eq(r.tc), cc.attr.eq(r.attr),
        ]

        take = Signal()
        m.d.comb += take.eq(valid & s1_free)
        done = take & last
        load = Signal()
        m.d.comb += [load.eq(queue.r_rdy & (~valid | done)), queue.r_en.eq(load)]
        with m.If(load):
            m.d.sync += [valid.eq(1), dw.eq(q.dw_addr), rem_dw.eq(q.dw_count),
                         rem_bytes.eq(q_bytes), first.eq(1), r.eq(q)]
        with m.Elif(done):
            m.d.sync += valid.eq(0)
        with m.Elif(take):
            m.d.sync += [dw.eq(dw + c_dw), rem_dw.eq(rem_dw - c_dw),
                         rem_bytes.eq(rem_bytes - ((c_dw << 2) - lead)), first.eq(0)]
        cpl = {"hdr": cc, "dw": c_dw, "start": Signal(addr_bits), "bar0": r.bar0}
        m.d.comb += cpl["start"].eq(dw - 3)     # the TLP's first dword, 3 before the data
        return take, cpl

    def _stages(self, m, take, cpl, s1_free):
        """S1 issues a beat of bank reads a cycle; S2 assembles the beat the
        banks return. Returns S2's beat and the output FIFO's level input."""
        p, n = self.p, self.p.lanes
        logn = ports.log2(n)
        beat_layout = data.StructLayout({"beat": range(3), "rot": max(logn, 1), "bar0": 1,
                                         "hdr": 96})
        s1 = Signal(beat_layout)
        s1_valid = Signal()
        s1_beats = Signal(range(2 + (4 + 1024) // n + 1))  # beats left in this TLP
        s1_row = Signal(ports.row_bits(p))
        s1_last_keep = Signal(range(n + 1))
        s2 = Signal(data.StructLayout({"valid": 1, "last": 1, "keep": n,
                                       "beat": beat_layout}))
        out_level = Signal(range(5))
        issue = Signal()
        m.d.comb += [issue.eq(s1_valid & (out_level + s2.valid < 3)),
                     s1_free.eq(~s1_valid | (issue & (s1_beats == 1)))]
        total_dw = cpl["dw"] + 3
        with m.If(take):
            m.d.sync += [
                s1_valid.eq(1), s1_beats.eq((total_dw + n - 1) >> logn),
                s1.beat.eq(0), s1_row.eq(cpl["start"][logn:]),
                s1.rot.eq(cpl["start"][:logn] if logn else 0),
                s1.bar0.eq(cpl["bar0"]), s1.hdr.eq(cpl["hdr"]),
                s1_last_keep.eq(((total_dw - 1) & (n - 1)) + 1),
            ]
        with m.Elif(issue):
            m.d.sync += [s1_beats.eq(s1_beats - 1), s1_row.eq(s1_row + 1)]
            with m.If(s1.beat != 2):
                m.d.sync += s1.beat.eq(s1.beat + 1)
            with m.If(s1_beats == 1):
                m.d.sync += s1_valid.eq(0)

        for read in (self.mem_read, self.reg_read):
            m.d.comb += read.en.eq(issue)
            for b in range(n):
                m.d.comb += read.row[b].eq(ports.bank_row(s1_row, s1.rot, b, logn))

        m.d.sync += s2.valid.eq(issue)
        with m.If(issue):
            last_keep = Signal(n)
            for k in range(1, n + 1):
                with m.If(s1_last_keep == k):
                    m.d.comb += last_keep.eq((1 << k) - 1)
            m.d.sync += [s2.beat.eq(s1), s2.last.eq(s1_beats == 1),
                         s2.keep.eq(Mux(s1_beats == 1, last_keep, (1 << n) - 1))]
        return s2, out_level

    def _output(self, m, s2, out_level):
        """S2's beat (bank data rotated to lanes, the descriptor over the
        first lanes) into the output FIFO, and from it onto CC."""
        p, n, cc = self.p, self.p.lanes, self.cc
        m.submodules.out = out = SyncFIFO(width=p.data_width + n + 1, depth=4)
        bank_data = Mux(s2.beat.bar0, self.reg_read.data, self.mem_read.data)
        lanes = Cat(bank_data, bank_data).bit_select(s2.beat.rot * 32, p.data_width)
        out_lanes = layouts.header_over_lanes(m, "cc_lane", lanes, s2.beat.hdr, s2.beat.beat,
                                              3, n)
        m.d.comb += [out.w_data.eq(Cat(*out_lanes, s2.keep, s2.last)), out.w_en.eq(s2.valid),
                     out_level.eq(out.level)]

        keep = out.r_data[p.data_width:p.data_width + n]
        last = out.r_data[p.data_width + n]
        sop = Signal(init=1)
        m.d.comb += [
            cc.tdata.eq(out.r_data[:p.data_width]), cc.tkeep.eq(keep), cc.tlast.eq(last),
            cc.tvalid.eq(out.r_rdy), out.r_en.eq(cc.tready),
        ]
        with m.If(out.r_rdy & cc.tready):
            m.d.sync += sop.eq(last)
        if p.data_width == 512:
            sb = sideband(p.data_width)
            eop_ptr = Signal(4)
            for k in range(n):
                with m.If(keep[k]):
                    m.d.comb += eop_ptr.eq(k)
            m.d.comb += [
                cc.tuser[sb.cc_is_sop].eq(sop), cc.tuser[sb.cc_is_eop].eq(last),
                cc.tuser[sb.cc_eop_ptr:sb.cc_eop_ptr + 4].eq(eop_ptr),
            ]
