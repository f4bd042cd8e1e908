"""The 7-series PCIe hard IP (pcie_7x, PG054) in front of the endpoint.

pcie_7x hands whole TLPs to the user side (m_axis_rx_*) and takes whole
TLPs (s_axis_tx_*), 64 or 128 bits wide; how a TLP lies on those streams
is in hw/spec/s7_stream.py. The endpoint core speaks the UltraScale+ interface
(CQ/CC/RQ/RC descriptors, hw/spec/usp.py). S7Shim converts between the two, so
that the completer, registers, memory, MSI-X and DMA engine are the same
code on both families (hw.top.S7Endpoint puts the two together).
"""

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from hw.bar_endpoint import endpoint_signature
from hw.core import layouts
from hw.spec import pcie, s7_stream, usp
from hw.spec.s7_stream import RX_TUSER_WIDTH, TX_TUSER_WIDTH
from hw.spec.pcie import FMT_4DW, FMT_DATA, TlpType
from hw.spec.usp import CplStatus, ReqType, RcErrorCode, sideband

S7_WIDTHS = (64, 128)
REQUEST = layouts.from_table(pcie.REQUEST, pcie.HEADER_DWORDS)
COMPLETION = layouts.from_table(pcie.COMPLETION, pcie.HEADER_DWORDS)
RX_USER = layouts.fields(s7_stream.RX_TUSER, RX_TUSER_WIDTH)
TX_USER = layouts.fields(s7_stream.TX_TUSER, TX_TUSER_WIDTH)


def s7_signature(width):
    """pcie_7x's user-side ports, as the FPGA logic sees them (PG054 names)."""
    if width not in S7_WIDTHS:
        raise ValueError(f"pcie_7x's interface is 64 or 128 bits wide, not {width}")
    return wiring.Signature({
        # Receive: TLPs from the link (requests to the BARs, completions).
        "m_axis_rx_tdata": In(width), "m_axis_rx_tkeep": In(width // 8),
        "m_axis_rx_tlast": In(1), "m_axis_rx_tuser": In(RX_TUSER_WIDTH),
        "m_axis_rx_tvalid": In(1), "m_axis_rx_tready": Out(1),
        "rx_np_ok": Out(1),         # the user can take non-posted requests
        "rx_np_req": Out(1),        # ask for one non-posted request (held high: all)
        # Transmit: completions, memory requests, MSI-X messages.
        "s_axis_tx_tdata": Out(width), "s_axis_tx_tkeep": Out(width // 8),
        "s_axis_tx_tlast": Out(1), "s_axis_tx_tuser": Out(TX_TUSER_WIDTH),
        "s_axis_tx_tvalid": Out(1), "s_axis_tx_tready": In(1),
        "tx_cfg_gnt": Out(1),       # the core may send its own TLPs first (held high)
        # Configuration space, as the core exports it.
        "cfg_command": In(16),      # Command register: [2] bus master enable
        "cfg_dcommand": In(16),     # Device Control: [7:5] MPS, [8] ext tag, [14:12] MRRS
        "cfg_lcommand": In(16),     # Link Control: [3] RCB (128 bytes when set)
        "cfg_bus_number": In(8), "cfg_device_number": In(5), "cfg_function_number": In(3),
        "cfg_interrupt_msixenable": In(1), "cfg_interrupt_msixfm": In(1),
    })


# ---------------------------------------------------------------------------
# The shim
# ---------------------------------------------------------------------------

def _swap(dw):
    """A DW's bytes reversed: the US+ payload order <-> the wire order of pcie_7x."""
    return Cat(dw[24:32], dw[16:24], dw[8:16], dw[0:8])


def _msb_index(be):
    return Mux(be[3], 3, Mux(be[2], 2, Mux(be[1], 1, 0)))


class Repack(wiring.Component):
    """Moves one TLP at a time from one DW stream to another, replacing its
    header: the first `hin` DWs in are captured in `hdr` and left out; the
    first `hout` DWs out are placeholders that the user overwrites with the
    new header (made from `hdr`); the payload DWs follow, byte-swapped. So
    a 3-DW TLP header becomes a 4-DW descriptor or the other way round, and
    a TLP that starts mid-beat (at DW `lo`) leaves starting at DW 0.

    Input beat: DWs lo .. lo+cnt-1 of `i_data` belong to the packet; `i_sop`
    on its first beat (which must carry header DW 0 and, for `hin`/`hout`,
    whatever the user decodes them from), `i_eop` on its last. A new
    packet is taken only once the previous one has left. Output beat:
    `o_cnt` DWs from DW 0, `o_beat` its index in the packet (saturating at
    2: the header spans beats 0 and 1 at 64 bits).
    """

    HDR = 4

    def __init__(self, n):
        self.n = n
        super().__init__({
            "i_valid": In(1), "i_ready": Out(1), "i_data": In(32 * n),
            "i_lo": In(range(n)), "i_cnt": In(range(n + 1)), "i_sop": In(1), "i_eop": In(1),
            "i_hin": In(range(self.HDR + 1)), "i_hout": In(range(self.HDR + 1)),
            "o_valid": Out(1), "o_ready": In(1), "o_data": Out(32 * n),
            "o_cnt": Out(range(n + 1)), "o_last": Out(1), "o_beat": Out(range(3)),
            "hdr": Out(32).array(self.HDR),
            "hout": Out(range(self.HDR + 1)),       # of the packet in the buffer
            "i_fire": Out(1), "o_fire": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        n, slots = self.n, 3 * self.n
        buf = [Signal(32, name=f"buf{s}") for s in range(slots)]
        count = Signal(range(slots + 1))
        eop_in = Signal()                 # the packet's last DW is in the buffer
        hdr_done = Signal()               # all its header DWs are captured
        hin = Signal.like(self.i_hin)
        seen = Signal(range(8))           # DWs of the packet taken so far (saturating)

        # Output side.
        m.d.comb += [
            self.o_valid.eq(hdr_done & ((count >= n) | (eop_in & (count != 0)))),
            self.o_data.eq(Cat(*buf[:n])),
            self.o_cnt.eq(Mux(count >= n, n, count)),
            self.o_last.eq(eop_in & (count <= n)),
            self.o_fire.eq(self.o_valid & self.o_ready),
        ]
        after = Signal(range(slots + 1))  # count after this cycle's output
        m.d.comb += after.eq(Mux(self.o_fire, count - self.o_cnt, count))
        with m.If(self.o_fire):
            m.d.sync += self.o_beat.eq(Mux(self.o_last, 0, Mux(self.o_beat == 2, 2, self.o_beat + 1)))

        # Input side: which DWs of the beat are header, where the payload goes.
        hin_now = Mux(self.i_sop, self.i_hin, hin)
        seen_now = Mux(self.i_sop, 0, seen)
        skip = Signal(range(n + 1))
        left = Signal(range(self.HDR + 1))
        m.d.comb += left.eq(Mux(hin_now > seen_now, hin_now - seen_now, 0))
        m.d.comb += skip.eq(Mux(left > self.i_cnt, self.i_cnt, left))
        take = Signal(range(n + 1))       # payload DWs in this beat
        m.d.comb += take.eq(self.i_cnt - skip)
        base = Signal(range(slots + self.HDR + 1))
        m.d.comb += base.eq(Mux(self.i_sop, self.i_hout, after))
        room = (base + take) <= slots
        m.d.comb += [
            self.i_ready.eq(Mux(self.i_sop, after == 0, ~eop_in) & room),
            self.i_fire.eq(self.i_valid & self.i_ready),
        ]

        dws = [self.i_data[32 * p:32 * p + 32] for p in range(n)]
        first = self.i_lo + skip          # the beat's first payload DW
        for s in range(slots):
            with m.If(self.o_fire):
                m.d.sync += buf[s].eq(buf[s + n] if s + n < slots else 0)
            with m.If(self.i_fire):
                for p in range(n):
                    with m.If((p >= first) & (p < self.i_lo + self.i_cnt) & (p + base == s + first)):
                        m.d.sync += buf[s].eq(_swap(dws[p]))
        for j in range(self.HDR):
            for p in range(n):
                with m.If(self.i_fire & (p >= self.i_lo) & (p < self.i_lo + self.i_cnt)
                          & (seen_now + p == j + self.i_lo)):
                    m.d.sync += self.hdr[j].eq(dws[p])

        with m.If(self.i_fire):
            m.d.sync += [
                count.eq(base + take),
                seen.eq(Mux(seen_now + self.i_cnt > 7, 7, seen_now + self.i_cnt)),
                eop_in.eq(self.i_eop),
                hdr_done.eq(self.i_eop | (seen_now + self.i_cnt >= hin_now)),
            ]
            with m.If(self.i_sop):
                m.d.sync += [hin.eq(self.i_hin), self.hout.eq(self.i_hout)]
        with m.Elif(self.o_fire):
            m.d.sync += count.eq(after)
            with m.If(self.o_last):
                m.d.sync += [eop_in.eq(0), hdr_done.eq(0)]
        return m


def _place_header(m, rp, n, header, out):
    """rp's output beat with its header positions (global DW < rp.hout)
    taken from `header` (a list of DWs); the result is assigned to `out`."""
    lanes = []
    for q in range(n):
        dw = rp.o_data[32 * q:32 * q + 32]
        for beat in range(max(1, Repack.HDR // n)):
            g = beat * n + q
            if g < len(header):
                dw = Mux((rp.o_beat == beat) & (g < rp.hout), header[g], dw)
        lanes.append(dw)
    m.d.comb += out.eq(Cat(*lanes))


def _members(block, side):
    """Assignments joining `block`'s members to the members of the same name
    of `side` (an interface of the shim), each in the direction it flows."""
    out = []
    for name, member in block.signature.members.items():
        if name in side.signature.members:
            inner, outer = getattr(block, name), getattr(side, name)
            out.append(inner.eq(outer) if member.flow == In else outer.eq(inner))
    return out


def _rx_signature(p):
    """S7Receive's members: pcie_7x's receive side, the endpoint's CQ and
    RC, the non-posted credits, and the table of where reads end."""
    ep = endpoint_signature(p).flip().members
    return wiring.Signature({
        **{k: v for k, v in s7_signature(p.data_width).members.items()
           if k.startswith(("m_axis_rx", "rx_np_ok"))},
        **{k: ep[k] for k in ep if k.startswith(("s_axis_cq", "s_axis_rc", "pcie_cq_np"))},
        "end_tag": Out(8), "end": In(12),
    })


class S7Receive(wiring.Component):
    """pcie_7x RX -> CQ (requests) and RC (completions); see S7Shim."""

    def __init__(self, params):
        self.p = params
        super().__init__(_rx_signature(params))

    def elaborate(self, platform):
        m = Module()
        n = self.p.lanes
        m.submodules.rx = rp = Repack(n)
        user = data.View(RX_USER, self.m_axis_rx_tuser)
        dws = [self.m_axis_rx_tdata[32 * q:32 * q + 32] for q in range(n)]
        starts, lo, straddle = self._framing(m, rp, user)
        # DW 0 of the TLP that starts in this beat (at DW 2 when straddled).
        h0 = data.View(layouts.from_table(pcie.COMMON, 1),
                       Mux(lo == 2, dws[2], dws[0]) if n == 4 else dws[0])
        is_cpl_now = h0.type[1:] == (TlpType.CPL >> 1)         # Cpl, CplLk
        # Non-posted: anything but completions, messages and memory writes.
        is_np_now = ~is_cpl_now & (h0.type[3:] != (TlpType.MSG >> 3)) \
            & ~((h0.fmt & FMT_DATA).bool() & (h0.type == TlpType.MEM))
        self._credits(m, rp, starts, is_np_now)
        m.d.comb += [
            rp.i_data.eq(self.m_axis_rx_tdata),
            rp.i_hin.eq(Mux(h0.fmt & FMT_4DW, 4, 3)),
            rp.i_hout.eq(Mux(is_cpl_now, usp.RC_DESCRIPTOR_DWORDS, usp.CQ_DESCRIPTOR_DWORDS)),
        ]
        # err_fwd marks the packet in progress; a straddled beat holds two
        # packets and its err_fwd cannot be told apart, so only beats a TLP
        # has to itself count. The header's EP bit, which err_fwd mirrors,
        # covers a TLP that has no such beat.
        own_err_fwd = user.err_fwd & ~straddle if n == 4 else user.err_fwd
        is_cpl, bar_hit, err_fwd = Signal(), Signal(8), Signal()
        with m.If(rp.i_fire & starts):
            m.d.sync += [is_cpl.eq(is_cpl_now), bar_hit.eq(user.bar_hit), err_fwd.eq(own_err_fwd)]
        with m.Elif(rp.i_fire):
            m.d.sync += err_fwd.eq(err_fwd | own_err_fwd)
        hdr = Cat(*rp.hdr)
        self._requests(m, rp, data.View(REQUEST, hdr), bar_hit, err_fwd, is_cpl)
        self._completions(m, rp, data.View(COMPLETION, hdr), err_fwd, is_cpl)
        m.d.comb += rp.o_ready.eq(Mux(is_cpl, self.s_axis_rc_tready, self.s_axis_cq_tready))
        return m

    def _framing(self, m, rp, user):
        """Where TLPs start and end in the beat. Returns (a TLP starts, its
        first DW, the beat holds the end of one TLP and the start of the next)."""
        n = self.p.lanes
        if n == 2:
            in_pkt = Signal()
            ends_now = self.m_axis_rx_tlast
            with m.If(rp.i_fire):
                m.d.sync += in_pkt.eq(~ends_now)
            m.d.comb += [self.m_axis_rx_tready.eq(rp.i_ready), rp.i_lo.eq(0),
                         rp.i_cnt.eq(Mux(self.m_axis_rx_tkeep[4], 2, 1)),
                         rp.i_sop.eq(~in_pkt), rp.i_eop.eq(ends_now)]
            return ~in_pkt, 0, 0
        sof, sof_hi = user.is_sof[4], user.is_sof[3]        # present, at byte 8
        eof, eof_dw = user.is_eof[4], user.is_eof[2:4]
        # A beat with the end of one TLP (DW 0 or 1) and the start of the
        # next (DW 2) goes to the repacker in two parts, on two cycles.
        straddle = sof & sof_hi & eof
        second = Signal()             # the end part was taken
        part_end = straddle & ~second
        starts = sof & ~part_end
        lo = Mux(starts & sof_hi, 2, 0)
        with m.If(rp.i_fire):
            m.d.sync += second.eq(part_end)
        m.d.comb += [self.m_axis_rx_tready.eq(rp.i_ready & ~part_end), rp.i_lo.eq(lo),
                     rp.i_cnt.eq(Mux(starts & sof_hi, 2, Mux(eof, eof_dw + 1, n))),
                     rp.i_sop.eq(starts), rp.i_eop.eq(eof & ~(starts & sof_hi))]
        return starts, lo, straddle

    def _credits(self, m, rp, starts, is_np_now):
        """Non-posted requests wait for the endpoint's credits, one per cycle
        of pcie_cq_np_req; rx_np_ok falls while fewer than 2 are left."""
        credits = Signal(range(33))
        np_take = Signal()
        m.d.comb += [
            rp.i_valid.eq(self.m_axis_rx_tvalid & ~(starts & is_np_now & (credits == 0))),
            np_take.eq(rp.i_fire & starts & is_np_now),
            self.pcie_cq_np_req_count.eq(credits),
            self.rx_np_ok.eq(credits >= 2),
        ]
        grant = self.pcie_cq_np_req != 0
        m.d.sync += credits.eq(Mux(grant & (credits != 32), credits + 1, credits) - np_take)

    def _requests(self, m, rp, h, bar_hit, err_fwd, is_cpl):
        """A request TLP -> its CQ descriptor and payload."""
        p, n, sb = self.p, self.p.lanes, sideband(self.p.data_width)
        fmt4 = (h.fmt & FMT_4DW).bool()
        req_type = Signal(4)
        with m.Switch(Cat(h.type, h.fmt)):
            for fmts, t, rt in [((0b000, 0b001), TlpType.MEM, ReqType.MEM_READ),
                                ((0b010, 0b011), TlpType.MEM, ReqType.MEM_WRITE),
                                ((0b000, 0b001), TlpType.MEM_LOCKED, ReqType.MEM_READ_LOCKED),
                                ((0b000,), TlpType.IO, ReqType.IO_READ),
                                ((0b010,), TlpType.IO, ReqType.IO_WRITE),
                                ((0b010, 0b011), TlpType.FETCH_ADD, ReqType.MEM_FETCH_ADD),
                                ((0b010, 0b011), TlpType.SWAP, ReqType.MEM_SWAP),
                                ((0b010, 0b011), TlpType.CAS, ReqType.MEM_CAS)]:
                with m.Case(*[t | f << 5 for f in fmts]):
                    m.d.comb += req_type.eq(rt)
            with m.Default():
                m.d.comb += req_type.eq(Mux(h.type[3:] == (TlpType.MSG >> 3), ReqType.MSG, 0b1111))
        bar_id = Signal(3)
        for b in reversed(range(7)):
            with m.If(bar_hit[b]):
                m.d.comb += bar_id.eq(b)
        cq = Signal(layouts.CQ_DESCRIPTOR)      # the fields not named here stay 0
        m.d.comb += [
            cq.at.eq(h.at),
            cq.address.eq(Cat(Mux(fmt4, h.address_lo, h.address32), Mux(fmt4, h.address_hi, 0))),
            cq.dw_count.eq(Mux(h.length == 0, 1024, h.length)), cq.req_type.eq(req_type),
            cq.requester_id.eq(h.requester_id), cq.tag.eq(h.tag), cq.bar_id.eq(bar_id),
            cq.bar_aperture.eq(Mux(bar_id == 2, (p.bar2_size - 1).bit_length(),
                                   Mux(bar_id == 0, (p.bar0_size - 1).bit_length(), 0))),
            cq.tc.eq(h.tc), cq.attr.eq(Cat(h.attr_lo, h.attr_hi)),
        ]
        cq_data = Signal(p.data_width)
        _place_header(m, rp, n, [cq.as_value().word_select(i, 32) for i in range(4)], cq_data)
        cq_user = Signal(sb.cq_user)
        m.d.comb += [
            cq_user[sb.cq_first_be:sb.cq_first_be + 4].eq(h.first_be),
            cq_user[sb.cq_last_be:sb.cq_last_be + 4].eq(h.last_be),
            cq_user[sb.cq_discontinue].eq(rp.o_last & (err_fwd | h.poisoned)),
            cq_user[sb.cq_sop].eq(rp.o_beat == 0),
            self.s_axis_cq_tdata.eq(cq_data), self.s_axis_cq_tkeep.eq((1 << rp.o_cnt) - 1),
            self.s_axis_cq_tlast.eq(rp.o_last), self.s_axis_cq_tuser.eq(cq_user),
            self.s_axis_cq_tvalid.eq(rp.o_valid & ~is_cpl),
        ]

    def _completions(self, m, rp, h, err_fwd, is_cpl):
        """A completion TLP -> its RC descriptor, checked as the UltraScale+
        hard IP checks completions, and payload."""
        p, n, sb = self.p, self.p.lanes, sideband(self.p.data_width)
        has_data = (h.fmt & FMT_DATA).bool()
        byte_count = Signal(13)
        m.d.comb += byte_count.eq(Mux(h.byte_count == 0, 4096, h.byte_count))
        dw_count = Signal(11)
        m.d.comb += [dw_count.eq(Mux(has_data, Mux(h.length == 0, 1024, h.length), 0)),
                     self.end_tag.eq(h.tag)]
        lower12 = Signal(12)
        m.d.comb += lower12.eq(self.end - byte_count)
        ok = (h.status == CplStatus.SC) & has_data
        error = Signal(4)
        m.d.comb += error.eq(
            Mux(h.poisoned | err_fwd, RcErrorCode.POISONED,
                Mux(h.status != CplStatus.SC, RcErrorCode.BAD_STATUS,
                    Mux(~has_data, RcErrorCode.INVALID_LENGTH,
                        Mux(lower12[0:7] != h.lower_address, RcErrorCode.INVALID_ADDRESS,
                            RcErrorCode.NORMAL_TERMINATION)))))
        rc = Signal(layouts.RC_DESCRIPTOR)      # the fields not named here stay 0
        m.d.comb += [
            rc.lower_address.eq(Mux(ok, lower12, h.lower_address)), rc.error_code.eq(error),
            rc.byte_count.eq(byte_count), rc.locked.eq(h.type[0]),     # CplLk, CplDLk
            rc.request_completed.eq(~ok | (byte_count <= (dw_count << 2) - lower12[0:2])),
            rc.dw_count.eq(dw_count), rc.status.eq(h.status), rc.poisoned.eq(h.poisoned),
            rc.requester_id.eq(h.requester_id), rc.tag.eq(h.tag),
            rc.completer_id.eq(h.completer_id), rc.tc.eq(h.tc),
            rc.attr.eq(Cat(h.attr_lo, h.attr_hi)),
        ]
        rc_data = Signal(p.data_width)
        _place_header(m, rp, n, [rc.as_value().word_select(i, 32) for i in range(3)], rc_data)
        rc_user = Signal(sb.rc_user)
        byte_en = [Mux((rp.o_beat * n + q >= usp.RC_DESCRIPTOR_DWORDS) & (q < rp.o_cnt), 0xF, 0)
                   for q in range(n)]
        m.d.comb += [
            rc_user[sb.rc_byte_en:sb.rc_byte_en + 4 * n].eq(Cat(*[Const(0, 4) | b for b in byte_en])),
            rc_user[sb.rc_is_sop].eq(rp.o_beat == 0),
            rc_user[sb.rc_is_eop].eq(rp.o_last),
            rc_user[sb.rc_eop_ptr:sb.rc_eop_ptr + 3].eq(Mux(rp.o_last, rp.o_cnt - 1, 0)),
            self.s_axis_rc_tdata.eq(rc_data), self.s_axis_rc_tkeep.eq((1 << rp.o_cnt) - 1),
            self.s_axis_rc_tlast.eq(rp.o_last), self.s_axis_rc_tuser.eq(rc_user),
            self.s_axis_rc_tvalid.eq(rp.o_valid & is_cpl),
        ]


def _tx_signature(p):
    """S7Transmit's members: the endpoint's CC, RQ and MSI-X request,
    pcie_7x's transmit side, the IDs and the table of where reads end."""
    ep = endpoint_signature(p).flip().members
    s7 = s7_signature(p.data_width).members
    return wiring.Signature({
        **{k: ep[k] for k in ep if k.startswith(("m_axis_cc", "m_axis_rq", "pcie_rq_seq",
                                                 "cfg_interrupt_msix_"))
           and k not in ("cfg_interrupt_msix_enable", "cfg_interrupt_msix_mask")},
        **{k: s7[k] for k in s7 if k.startswith("s_axis_tx")},
        "cfg_interrupt_msixenable": In(1), "cfg_interrupt_msixfm": In(1),
        "ids": In(16),                      # bus, device, function
        "end_tag": Out(8), "end": Out(12), "end_en": Out(1),
    })


class S7Transmit(wiring.Component):
    """CC, RQ and the MSI-X message -> pcie_7x TX, one whole packet at a
    time, round robin; see S7Shim."""
    CC, RQ, MSI = 0, 1, 2

    def __init__(self, params):
        self.p = params
        super().__init__(_tx_signature(params))

    def elaborate(self, platform):
        m = Module()
        n = self.p.lanes
        m.submodules.tx = rp = Repack(n)
        msi = self._msi(m)
        sel, fbe, lbe, discontinue = self._arbiter(m, rp, msi)
        h = Cat(*rp.hdr)
        cc = self._completion_header(m, data.View(layouts.CC_DESCRIPTOR,
                                                  h[:32 * usp.CC_DESCRIPTOR_DWORDS]))
        rq_desc = data.View(layouts.RQ_DESCRIPTOR, h[:32 * usp.RQ_DESCRIPTOR_DWORDS])
        rq = self._request_header(m, rq_desc, fbe, lbe)
        hdr = Mux(sel == self.CC, cc.as_value(), rq.as_value())
        tx_data = Signal(self.p.data_width)
        _place_header(m, rp, n, [hdr.word_select(i, 32) for i in range(4)], tx_data)
        tx_user = Signal(TX_USER)
        m.d.comb += [
            tx_user.src_dsc.eq(rp.o_last & discontinue),
            self.s_axis_tx_tdata.eq(tx_data),
            self.s_axis_tx_tkeep.eq(Cat(*[Mux(q < rp.o_cnt, 0xF, 0) for q in range(n)])),
            self.s_axis_tx_tlast.eq(rp.o_last), self.s_axis_tx_tuser.eq(tx_user),
            self.s_axis_tx_tvalid.eq(rp.o_valid), rp.o_ready.eq(self.s_axis_tx_tready),
        ]
        # A read request records where it ends, for its completions' Lower Address.
        dwc = Mux(rq_desc.dw_count == 0, 1024, rq_desc.dw_count)
        first = Cat(Const(0, 2), rq_desc.address[:10])
        end = Mux(dwc == 1, first + _msb_index(fbe) + 1,
                  first + ((dwc - 1) << 2) + _msb_index(lbe) + 1)
        m.d.comb += [
            self.end_tag.eq(rq_desc.tag), self.end.eq(end[0:12]),
            self.end_en.eq(rp.o_fire & (rp.o_beat == 0) & (sel == self.RQ)
                           & (rq_desc.req_type == ReqType.MEM_READ)),
        ]
        return m

    def _msi(self, m):
        """The MSI-X message as an RQ memory write of one DW, made here.
        Returns its beat's data and DW count, whether it is the last beat,
        the beat index and whether the message is pending."""
        n = self.p.lanes
        pending, beat = Signal(), Signal(range(3))
        addr, value = Signal(64), Signal(32)
        fail = Signal()
        desc = Signal(layouts.RQ_DESCRIPTOR)
        m.d.comb += [desc.address.eq(addr[2:]), desc.dw_count.eq(1),
                     desc.req_type.eq(ReqType.MEM_WRITE)]
        words = [desc.as_value().word_select(i, 32) for i in range(4)] + [value]
        beats = -(-len(words) // n)
        tdata, cnt = Signal(32 * n), Signal(range(n + 1))
        with m.Switch(beat):
            for b in range(beats):
                with m.Case(b):
                    chunk = words[b * n:(b + 1) * n]
                    m.d.comb += [tdata.eq(Cat(*chunk)), cnt.eq(len(chunk))]
        with m.If(self.cfg_interrupt_msix_int):
            with m.If(self.cfg_interrupt_msixenable & ~self.cfg_interrupt_msixfm):
                m.d.sync += [pending.eq(1), beat.eq(0),
                             addr.eq(self.cfg_interrupt_msix_address),
                             value.eq(self.cfg_interrupt_msix_data)]
            with m.Else():
                m.d.sync += fail.eq(1)
        with m.Else():
            m.d.sync += fail.eq(0)
        m.d.comb += self.cfg_interrupt_msix_fail.eq(fail)
        return {"tdata": tdata, "cnt": cnt, "last": beat == beats - 1, "pending": pending,
                "beat": beat}

    def _arbiter(self, m, rp, msi):
        """One source at a time, a whole packet: round robin, the source
        after the last one served goes first. Returns (the source being
        sent, its first and last byte enables, its discontinue)."""
        n, sb = self.p.lanes, sideband(self.p.data_width)
        CC, RQ, MSI = self.CC, self.RQ, self.MSI
        busy, sel, last_sel = Signal(), Signal(range(3)), Signal(range(3))
        valid = [self.m_axis_cc_tvalid, self.m_axis_rq_tvalid, msi["pending"]]
        pick = Signal(range(3))
        order = {CC: (RQ, MSI, CC), RQ: (MSI, CC, RQ), MSI: (CC, RQ, MSI)}
        with m.Switch(last_sel):
            for last, prio in order.items():
                with m.Case(last):
                    for src in reversed(prio):
                        with m.If(valid[src]):
                            m.d.comb += pick.eq(src)
        cur = Mux(busy, sel, pick)

        def keep_cnt(keep):
            c = Signal(range(n + 1))
            for q in range(n):
                with m.If(keep[q]):
                    m.d.comb += c.eq(q + 1)
            return c

        tdata = Array([self.m_axis_cc_tdata, self.m_axis_rq_tdata, msi["tdata"]])[cur]
        cnt = Array([keep_cnt(self.m_axis_cc_tkeep), keep_cnt(self.m_axis_rq_tkeep),
                     msi["cnt"]])[cur]
        last = Array([self.m_axis_cc_tlast, self.m_axis_rq_tlast, msi["last"]])[cur]
        # A memory request's header is 4 DWs when its address needs more than 32 bits.
        wide = data.View(layouts.RQ_DESCRIPTOR, Cat(tdata, Const(0, 128))[:128]).address[30:] != 0
        m.d.comb += [
            rp.i_valid.eq(Array(valid)[cur]),
            rp.i_data.eq(tdata), rp.i_lo.eq(0), rp.i_cnt.eq(cnt),
            rp.i_sop.eq(~busy), rp.i_eop.eq(last),
            rp.i_hin.eq(Mux(cur == CC, usp.CC_DESCRIPTOR_DWORDS, usp.RQ_DESCRIPTOR_DWORDS)),
            rp.i_hout.eq(Mux((cur == CC) | ~wide, 3, 4)),
            self.m_axis_cc_tready.eq(rp.i_ready & (cur == CC)),
            self.m_axis_rq_tready.eq(rp.i_ready & (cur == RQ)),
        ]
        rq_user = self.m_axis_rq_tuser
        fbe, lbe, seq, dsc = Signal(4), Signal(4), Signal(6), Signal()
        dsc_now = Mux(cur == CC, self.m_axis_cc_tuser[sb.cc_discontinue],
                      Mux(cur == RQ, rq_user[sb.rq_discontinue], 0))
        with m.If(rp.i_fire):
            m.d.sync += dsc.eq(Mux(busy, dsc, 0) | dsc_now)
            with m.If(~busy):
                m.d.sync += [
                    sel.eq(cur), last_sel.eq(cur),
                    fbe.eq(Mux(cur == MSI, 0xF, rq_user[sb.rq_first_be:sb.rq_first_be + 4])),
                    lbe.eq(Mux(cur == MSI, 0, rq_user[sb.rq_last_be:sb.rq_last_be + 4])),
                    seq.eq(Cat(rq_user[sb.rq_seq_num:sb.rq_seq_num + 4],
                               rq_user[sb.rq_seq_num_hi:sb.rq_seq_num_hi + 2])),
                ]
            m.d.sync += busy.eq(~last)
            with m.If(cur == MSI):
                m.d.sync += msi["beat"].eq(Mux(last, 0, msi["beat"] + 1))
        # sent: the message's last beat is taken; seq_num: an RQ packet's.
        done_rq, done_msi = Signal(), Signal()
        m.d.sync += [done_rq.eq(rp.i_fire & last & (cur == RQ)),
                     done_msi.eq(rp.i_fire & last & (cur == MSI))]
        with m.If(rp.i_fire & last & (cur == MSI)):
            m.d.sync += msi["pending"].eq(0)
        m.d.comb += [
            self.pcie_rq_seq_num_vld0.eq(done_rq), self.pcie_rq_seq_num0.eq(seq),
            self.pcie_rq_seq_num1.eq(0), self.pcie_rq_seq_num_vld1.eq(0),
            self.cfg_interrupt_msix_sent.eq(done_msi),
        ]
        return sel, fbe, lbe, dsc

    def _completion_header(self, m, cc):
        """The completion TLP's header from a CC descriptor (PG213)."""
        h = Signal(COMPLETION)
        m.d.comb += [
            h.length.eq(cc.dw_count[:10]), h.attr_lo.eq(cc.attr[:2]), h.attr_hi.eq(cc.attr[2]),
            h.poisoned.eq(cc.poisoned), h.tc.eq(cc.tc),
            h.type.eq(Mux(cc.locked, TlpType.CPL_LOCKED, TlpType.CPL)),
            h.fmt.eq(Mux(cc.dw_count != 0, FMT_DATA, 0)),
            h.byte_count.eq(cc.byte_count[:12]), h.status.eq(cc.status),
            h.completer_id.eq(Mux(cc.completer_id_enable,
                                  Cat(cc.completer_function, cc.completer_bus), self.ids)),
            h.lower_address.eq(cc.lower_address), h.tag.eq(cc.tag),
            h.requester_id.eq(cc.requester_id),
        ]
        return h

    def _request_header(self, m, rq, fbe, lbe):
        """The memory request TLP's header from an RQ descriptor: 4 DWs when
        the address needs more than 32 bits."""
        h = Signal(REQUEST)
        addr_lo, addr_hi = rq.address[:30], rq.address[30:]
        wide = addr_hi != 0
        m.d.comb += [
            h.length.eq(rq.dw_count[:10]), h.at.eq(rq.at), h.attr_lo.eq(rq.attr[:2]),
            h.attr_hi.eq(rq.attr[2]), h.poisoned.eq(rq.poisoned), h.tc.eq(rq.tc),
            h.type.eq(TlpType.MEM),
            h.fmt.eq(Cat(wide, rq.req_type == ReqType.MEM_WRITE)),
            h.first_be.eq(fbe), h.last_be.eq(lbe), h.tag.eq(rq.tag),
            h.requester_id.eq(Mux(rq.requester_id_enable, rq.requester_id, self.ids)),
            h.address_lo.eq(addr_lo),
            # DW 2 is address[63:32] in a 4-DW header, `address32` in a 3-DW
            # one. A Mux, not an If: bits of a signal assigned under an If
            # become a Verilog reg, and its constant bits then sit in
            # `always @*` blocks with no inputs, which Icarus never runs (X).
            h.address_hi.eq(Mux(wide, addr_hi, Cat(Const(0, 2), addr_lo))),
        ]
        return h


class S7Shim(wiring.Component):
    """UltraScale+ CQ/CC/RQ/RC and configuration on one side (to connect to
    the endpoint), pcie_7x's TLP streams and configuration on the other.

    Receive (S7Receive): TLPs (straddled at 128 bits or not) -> requests
    as CQ descriptors, completions as RC descriptors. The RC descriptor's
    12-bit Lower Address is rebuilt from a table, per tag, of where each
    read request ends (the TLP carries 7 bits). Completions are checked as
    the UltraScale+ IP checks them: poisoned, bad status, no data and a
    Lower Address that does not match the request give the RC error codes.
    Non-posted requests wait for the endpoint's credits (pcie_cq_np_req);
    rx_np_ok falls while fewer than 2 are left.
    Transmit (S7Transmit): CC descriptors -> completions, RQ descriptors ->
    memory requests (3-DW header below 4 GiB), and the MSI-X message the
    endpoint asks for on cfg_interrupt_msix_* -> a memory write. Requester
    and completer IDs come from the core's bus/device/function numbers.
    pcie_rq_seq_num reports an RQ packet once its last beat is taken by the
    core.
    """

    def __init__(self, params):
        self.p = params
        if params.data_width not in S7_WIDTHS:
            raise ValueError(f"the 7-series shim runs at 64 or 128 bits, not {params.data_width}")
        super().__init__(wiring.Signature({
            "usp": Out(endpoint_signature(params).flip()),
            "s7": Out(s7_signature(params.data_width)),
        }))

    def elaborate(self, platform):
        m = Module()
        u, s7 = self.usp, self.s7
        m.submodules.receive = rx = S7Receive(self.p)
        m.submodules.transmit = tx = S7Transmit(self.p)
        m.d.comb += _members(rx, u) + _members(rx, s7) + _members(tx, u) + _members(tx, s7)
        # Per tag, the low 12 bits of the address just past a read request.
        m.submodules.ends = ends = Memory(shape=12, depth=256, init=[])
        end_w = ends.write_port()
        end_r = ends.read_port(domain="comb")
        m.d.comb += [
            end_w.addr.eq(tx.end_tag), end_w.data.eq(tx.end), end_w.en.eq(tx.end_en),
            end_r.addr.eq(rx.end_tag), rx.end.eq(end_r.data),
            tx.ids.eq(Cat(s7.cfg_function_number, s7.cfg_device_number, s7.cfg_bus_number)),
        ]
        mgmt_done = Signal()
        m.d.sync += mgmt_done.eq((u.cfg_mgmt_read | u.cfg_mgmt_write) & ~mgmt_done)
        command = data.View(layouts.fields(pcie.COMMAND, 16), s7.cfg_command)
        devctl = data.View(layouts.fields(pcie.DEVICE_CONTROL, 16), s7.cfg_dcommand)
        lnkctl = data.View(layouts.fields(pcie.LINK_CONTROL, 16), s7.cfg_lcommand)
        status = layouts.view(usp.FUNCTION_STATUS, u.cfg_function_status[:4])
        m.d.comb += [
            u.cfg_max_payload.eq(devctl.max_payload),
            u.cfg_max_read_req.eq(devctl.max_read_req),
            u.cfg_rcb_status.eq(lnkctl.rcb),
            status.io_space.eq(command.io_space), status.memory_space.eq(command.memory_space),
            status.bus_master.eq(command.bus_master),
            status.intx_disable.eq(command.interrupt_disable),
            # Only Device Control is asked for (hw/spec/usp.py, DEVICE_CONTROL_DWORD).
            u.cfg_mgmt_read_data.eq(s7.cfg_dcommand),
            u.cfg_mgmt_read_write_done.eq(mgmt_done),
            u.cfg_interrupt_msix_enable.eq(s7.cfg_interrupt_msixenable),
            u.cfg_interrupt_msix_mask.eq(s7.cfg_interrupt_msixfm),
            s7.rx_np_req.eq(1),
            s7.tx_cfg_gnt.eq(1),
        ]
        return m
