"""The 7-series PCIe hard IP (pcie_7x, PG054) in front of the endpoint.

pcie_7x hands whole TLPs to the user side (m_axis_rx_*) and takes whole
TLPs (s_axis_tx_*), 64 or 128 bits wide; how a TLP lies on those streams
is in hw/spec/s7_stream.py. The endpoint core speaks the UltraScale+ interface
(CQ/CC/RQ/RC descriptors, hw/spec/usp.py). S7Shim converts between the two, so
that the completer, registers, memory, MSI-X and DMA engine are the same
code on both families (hw.top.S7Endpoint puts the two together).
"""

from amaranth.hdl import Array, Cat, Const, Elaboratable, Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from hw.bar_endpoint import endpoint_signature
from hw.core import layouts
from hw.spec import usp
from hw.spec.usp import CplStatus, ReqType, RcErrorCode, sideband

S7_WIDTHS = (64, 128)
RX_TUSER_WIDTH = 22
TX_TUSER_WIDTH = 4


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

_CPL = 0b01010              # TLP type of Cpl/CplD; 0b01011 is CplLk/CplDLk


def _swap(dw):
    """A DW's bytes reversed: the US+ payload order <-> the wire order of pcie_7x."""
    return Cat(dw[24:32], dw[16:24], dw[8:16], dw[0:8])


def _msb_index(be):
    return Mux(be[3], 3, Mux(be[2], 2, Mux(be[1], 1, 0)))


class Repack(Elaboratable):
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
        self.i_valid, self.i_ready = Signal(), Signal()
        self.i_data = Signal(32 * n)
        self.i_lo, self.i_cnt = Signal(range(n)), Signal(range(n + 1))
        self.i_sop, self.i_eop = Signal(), Signal()
        self.i_hin, self.i_hout = Signal(range(self.HDR + 1)), Signal(range(self.HDR + 1))
        self.o_valid, self.o_ready = Signal(), Signal()
        self.o_data = Signal(32 * n)
        self.o_cnt = Signal(range(n + 1))
        self.o_last = Signal()
        self.o_beat = Signal(range(3))
        self.hdr = [Signal(32, name=f"hdr{j}") for j in range(self.HDR)]
        self.hout = Signal(range(self.HDR + 1))     # of the packet in the buffer
        self.i_fire = Signal()
        self.o_fire = Signal()

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


class S7Shim(wiring.Component):
    """UltraScale+ CQ/CC/RQ/RC and configuration on one side (to connect to
    the endpoint), pcie_7x's TLP streams and configuration on the other.

    Receive: TLPs (straddled at 128 bits or not) -> requests as CQ
    descriptors, completions as RC descriptors. The RC descriptor's 12-bit
    Lower Address is rebuilt from a table, per tag, of where each read
    request ends (the TLP carries 7 bits). Completions are checked as the
    UltraScale+ IP checks them: poisoned, bad status, no data and a Lower
    Address that does not match the request give the RC error codes.
    Transmit: CC descriptors -> completions, RQ descriptors -> memory
    requests (3-DW header below 4 GiB), and the MSI-X message the endpoint
    asks for on cfg_interrupt_msix_* -> a memory write. Requester and
    completer IDs come from the core's bus/device/function numbers.
    pcie_rq_seq_num reports an RQ packet once its last beat is taken by the
    core. Non-posted requests wait for the endpoint's credits
    (pcie_cq_np_req); rx_np_ok falls while fewer than 2 are left.
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
        p, u, s7 = self.p, self.usp, self.s7
        n = p.data_width // 32
        sb = sideband(p.data_width)
        ids = Cat(s7.cfg_function_number, s7.cfg_device_number, s7.cfg_bus_number)

        # -- configuration ------------------------------------------------
        mgmt_done = Signal()
        m.d.sync += mgmt_done.eq((u.cfg_mgmt_read | u.cfg_mgmt_write) & ~mgmt_done)
        m.d.comb += [
            u.cfg_max_payload.eq(s7.cfg_dcommand[5:8]),
            u.cfg_max_read_req.eq(s7.cfg_dcommand[12:15]),
            u.cfg_rcb_status.eq(s7.cfg_lcommand[3]),
            u.cfg_function_status.eq(Cat(s7.cfg_command[0:3], s7.cfg_command[10])),
            # Only Device Control is asked for (hw/spec/usp.py, DEVICE_CONTROL_DWORD).
            u.cfg_mgmt_read_data.eq(s7.cfg_dcommand),
            u.cfg_mgmt_read_write_done.eq(mgmt_done),
            u.cfg_interrupt_msix_enable.eq(s7.cfg_interrupt_msixenable),
            u.cfg_interrupt_msix_mask.eq(s7.cfg_interrupt_msixfm),
            s7.rx_np_req.eq(1),
            s7.tx_cfg_gnt.eq(1),
        ]

        # Per tag, the low 12 bits of the address just past a read request.
        m.submodules.ends = ends = Memory(shape=12, depth=256, init=[])
        end_w = ends.write_port()
        end_r = ends.read_port(domain="comb")

        self._receive(m, n, sb, end_r)
        self._transmit(m, n, sb, ids, end_w)
        return m

    # -- receive: pcie_7x RX -> CQ / RC -----------------------------------

    def _receive(self, m, n, sb, end_r):
        p, u, s7 = self.p, self.usp, self.s7
        m.submodules.rx = rp = Repack(n)
        tuser = s7.m_axis_rx_tuser
        dws = [s7.m_axis_rx_tdata[32 * q:32 * q + 32] for q in range(n)]
        if n == 4:
            sof, sof_hi = tuser[14], tuser[13]
            eof, eof_dw = tuser[21], tuser[19:21]
            # A beat with the end of one TLP (DW 0 or 1) and the start of the
            # next (DW 2) goes to the repacker in two parts, on two cycles.
            straddle = sof & sof_hi & eof
            second = Signal()             # the end part was taken
            part_end = straddle & ~second
            starts = sof & ~part_end
            lo = Mux(starts & sof_hi, 2, 0)
            cnt = Mux(starts & sof_hi, 2, Mux(eof, eof_dw + 1, n))
            ends_now = eof & ~(starts & sof_hi)
            with m.If(rp.i_fire):
                m.d.sync += second.eq(part_end)
            m.d.comb += s7.m_axis_rx_tready.eq(rp.i_ready & ~part_end)
        else:
            in_pkt = Signal()
            starts = ~in_pkt
            lo = 0
            cnt = Mux(s7.m_axis_rx_tkeep[4], 2, 1)
            ends_now = s7.m_axis_rx_tlast
            with m.If(rp.i_fire):
                m.d.sync += in_pkt.eq(~ends_now)
            m.d.comb += s7.m_axis_rx_tready.eq(rp.i_ready)

        h0 = Mux(lo == 2, dws[2], dws[0]) if n == 4 else dws[0]
        is_cpl_now = h0[25:29] == (_CPL >> 1)
        # Non-posted: anything but completions, messages and memory writes.
        is_np_now = ~is_cpl_now & (h0[27:29] != 0b10) & ~(h0[30] & (h0[24:29] == 0))
        # Non-posted credits from the endpoint, one per cycle of pcie_cq_np_req.
        credits = Signal(range(33))
        np_take = Signal()
        np_hold = starts & is_np_now & (credits == 0)
        m.d.comb += [
            rp.i_valid.eq(s7.m_axis_rx_tvalid & ~np_hold),
            rp.i_data.eq(s7.m_axis_rx_tdata),
            rp.i_lo.eq(lo), rp.i_cnt.eq(cnt), rp.i_sop.eq(starts), rp.i_eop.eq(ends_now),
            rp.i_hin.eq(Mux(h0[29], 4, 3)),
            rp.i_hout.eq(Mux(is_cpl_now, usp.RC_DESCRIPTOR_DWORDS, 4)),
            np_take.eq(rp.i_fire & starts & is_np_now),
            u.pcie_cq_np_req_count.eq(credits),
            s7.rx_np_ok.eq(credits >= 2),
        ]
        grant = u.pcie_cq_np_req != 0
        m.d.sync += credits.eq(Mux(grant & (credits != 32), credits + 1, credits) - np_take)

        # err_fwd (tuser[1]) marks the packet in progress; a straddled beat
        # holds two packets and its err_fwd cannot be told apart, so only
        # beats a TLP has to itself count. The header's EP bit, which err_fwd
        # mirrors, covers a TLP that has no such beat.
        own_err_fwd = tuser[1] & ~straddle if n == 4 else tuser[1]
        is_cpl, bar_hit, err_fwd = Signal(), Signal(8), Signal()
        with m.If(rp.i_fire & starts):
            m.d.sync += [is_cpl.eq(is_cpl_now), bar_hit.eq(tuser[2:10]), err_fwd.eq(own_err_fwd)]
        with m.Elif(rp.i_fire):
            m.d.sync += err_fwd.eq(err_fwd | own_err_fwd)

        h = rp.hdr
        fmt4, has_data, typ = h[0][29], h[0][30], h[0][24:29]
        tc, attr = h[0][20:23], Cat(h[0][12], h[0][13], h[0][18])
        length = Signal(11)
        m.d.comb += length.eq(Mux(h[0][0:10] == 0, 1024, h[0][0:10]))
        keep = Signal(n)
        m.d.comb += keep.eq((1 << rp.o_cnt) - 1)

        # Requests -> CQ.
        req_type = Signal(4)
        with m.Switch(Cat(typ, h[0][29:32])):
            for fmts, t, rt in [((0b000, 0b001), 0b00000, ReqType.MEM_READ),
                                ((0b010, 0b011), 0b00000, ReqType.MEM_WRITE),
                                ((0b000, 0b001), 0b00001, ReqType.MEM_READ_LOCKED),
                                ((0b000,), 0b00010, ReqType.IO_READ),
                                ((0b010,), 0b00010, ReqType.IO_WRITE),
                                ((0b010, 0b011), 0b01100, ReqType.MEM_FETCH_ADD),
                                ((0b010, 0b011), 0b01101, ReqType.MEM_SWAP),
                                ((0b010, 0b011), 0b01110, ReqType.MEM_CAS)]:
                with m.Case(*[t | f << 5 for f in fmts]):
                    m.d.comb += req_type.eq(rt)
            with m.Default():
                m.d.comb += req_type.eq(Mux(typ[3:5] == 0b10, ReqType.MSG, 0b1111))
        bar_id = Signal(3)
        for b in reversed(range(7)):
            with m.If(bar_hit[b]):
                m.d.comb += bar_id.eq(b)
        aperture = Signal(6)              # log2 of the BAR's size
        m.d.comb += aperture.eq(Mux(bar_id == 2, (p.bar2_size - 1).bit_length(),
                                    Mux(bar_id == 0, (p.bar0_size - 1).bit_length(), 0)))
        addr_hi = Mux(fmt4, h[2], 0)
        addr_lo = Mux(fmt4, h[3], h[2])
        cq_desc = [
            Cat(h[0][10:12], addr_lo[2:32]),
            addr_hi,
            Cat(length, req_type, Const(0, 1), h[1][16:32]),
            Cat(h[1][8:16], Const(0, 8), bar_id, aperture, tc, attr, Const(0, 1)),
        ]
        cq_data = Signal(p.data_width)
        _place_header(m, rp, n, cq_desc, cq_data)
        cq_user = Signal(sb.cq_user)
        m.d.comb += [
            cq_user[sb.cq_first_be:sb.cq_first_be + 4].eq(h[1][0:4]),
            cq_user[sb.cq_last_be:sb.cq_last_be + 4].eq(h[1][4:8]),
            cq_user[sb.cq_discontinue].eq(rp.o_last & (err_fwd | h[0][14])),
            cq_user[40].eq(rp.o_beat == 0),                            # sop
            u.s_axis_cq_tdata.eq(cq_data), u.s_axis_cq_tkeep.eq(keep),
            u.s_axis_cq_tlast.eq(rp.o_last), u.s_axis_cq_tuser.eq(cq_user),
            u.s_axis_cq_tvalid.eq(rp.o_valid & ~is_cpl),
        ]

        # Completions -> RC.
        status = h[1][13:16]
        bc12 = h[1][0:12]
        byte_count = Signal(13)
        m.d.comb += byte_count.eq(Mux(bc12 == 0, 4096, bc12))
        tag = h[2][8:16]
        dw_count = Signal(11)
        m.d.comb += dw_count.eq(Mux(has_data, length, 0))
        m.d.comb += end_r.addr.eq(tag)
        lower12 = Signal(12)
        m.d.comb += lower12.eq(end_r.data - byte_count)
        ok = (status == CplStatus.SC) & has_data
        error = Signal(4)
        m.d.comb += error.eq(
            Mux(h[0][14] | err_fwd, RcErrorCode.POISONED,
                Mux(status != CplStatus.SC, RcErrorCode.BAD_STATUS,
                    Mux(~has_data, RcErrorCode.INVALID_LENGTH,
                        Mux(lower12[0:7] != h[2][0:7], RcErrorCode.INVALID_ADDRESS,
                            RcErrorCode.NORMAL_TERMINATION)))))
        completed = ~ok | (byte_count <= (dw_count << 2) - lower12[0:2])
        rc_desc = [
            Cat(Mux(ok, lower12, h[2][0:7]), error, byte_count, typ[0], completed, Const(0, 1)),
            Cat(dw_count, status, h[0][14], Const(0, 1), h[2][16:32]),
            Cat(tag, h[1][16:32], Const(0, 1), tc, attr, Const(0, 1)),
        ]
        rc_data = Signal(p.data_width)
        _place_header(m, rp, n, rc_desc, rc_data)
        rc_user = Signal(sb.rc_user)
        byte_en = []
        for q in range(n):
            g = rp.o_beat * n + q
            byte_en.append(Mux((g >= usp.RC_DESCRIPTOR_DWORDS) & (q < rp.o_cnt), 0xF, 0))
        m.d.comb += [
            rc_user[sb.rc_byte_en:sb.rc_byte_en + 4 * n].eq(Cat(*[Const(0, 4) | b for b in byte_en])),
            rc_user[sb.rc_is_sop].eq(rp.o_beat == 0),
            rc_user[sb.rc_is_eop].eq(rp.o_last),
            rc_user[sb.rc_eop_ptr:sb.rc_eop_ptr + 3].eq(Mux(rp.o_last, rp.o_cnt - 1, 0)),
            u.s_axis_rc_tdata.eq(rc_data), u.s_axis_rc_tkeep.eq(keep),
            u.s_axis_rc_tlast.eq(rp.o_last), u.s_axis_rc_tuser.eq(rc_user),
            u.s_axis_rc_tvalid.eq(rp.o_valid & is_cpl),
            rp.o_ready.eq(Mux(is_cpl, u.s_axis_rc_tready, u.s_axis_cq_tready)),
        ]

    # -- transmit: CC, RQ and MSI-X -> pcie_7x TX -------------------------

    def _transmit(self, m, n, sb, ids, end_w):
        p, u, s7 = self.p, self.usp, self.s7
        m.submodules.tx = rp = Repack(n)

        # The MSI-X message as an RQ memory write of one DW, made here.
        msi_pending, msi_beat = Signal(), Signal(range(3))
        msi_addr, msi_data = Signal(64), Signal(32)
        msi_fail = Signal()
        msi_desc = [Cat(Const(0, 2), msi_addr[2:32]), msi_addr[32:64],
                    Cat(Const(1, 11), Const(ReqType.MEM_WRITE, 4), Const(0, 17)), Const(0, 32)]
        msi_words = msi_desc + [msi_data]
        msi_beats = -(-len(msi_words) // n)
        msi_tdata = Signal(32 * n)
        msi_cnt = Signal(range(n + 1))
        with m.Switch(msi_beat):
            for b in range(msi_beats):
                with m.Case(b):
                    chunk = msi_words[b * n:(b + 1) * n]
                    m.d.comb += [msi_tdata.eq(Cat(*chunk)), msi_cnt.eq(len(chunk))]
        msi_last = msi_beat == msi_beats - 1
        with m.If(u.cfg_interrupt_msix_int):
            with m.If(s7.cfg_interrupt_msixenable & ~s7.cfg_interrupt_msixfm):
                m.d.sync += [msi_pending.eq(1), msi_beat.eq(0),
                             msi_addr.eq(u.cfg_interrupt_msix_address),
                             msi_data.eq(u.cfg_interrupt_msix_data)]
            with m.Else():
                m.d.sync += msi_fail.eq(1)
        with m.Else():
            m.d.sync += msi_fail.eq(0)

        # One source at a time, a whole packet: 0 CC, 1 RQ, 2 MSI-X.
        CC, RQ, MSI = 0, 1, 2
        busy, sel, last_sel = Signal(), Signal(range(3)), Signal(range(3))
        valid = [u.m_axis_cc_tvalid, u.m_axis_rq_tvalid, msi_pending]
        pick = Signal(range(3))
        # Round robin: the source after the last one served goes first.
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

        tdata = Array([u.m_axis_cc_tdata, u.m_axis_rq_tdata, msi_tdata])[cur]
        cnt = Array([keep_cnt(u.m_axis_cc_tkeep), keep_cnt(u.m_axis_rq_tkeep), msi_cnt])[cur]
        last = Array([u.m_axis_cc_tlast, u.m_axis_rq_tlast, msi_last])[cur]
        any_valid = Array(valid)[cur]
        d1 = tdata[32:64]                  # RQ descriptor DW 1: address[63:32]
        m.d.comb += [
            rp.i_valid.eq(any_valid),
            rp.i_data.eq(tdata), rp.i_lo.eq(0), rp.i_cnt.eq(cnt),
            rp.i_sop.eq(~busy), rp.i_eop.eq(last),
            rp.i_hin.eq(Mux(cur == CC, 3, 4)),
            rp.i_hout.eq(Mux(cur == CC, 3, Mux(d1 == 0, 3, 4))),
            u.m_axis_cc_tready.eq(rp.i_ready & (cur == CC)),
            u.m_axis_rq_tready.eq(rp.i_ready & (cur == RQ)),
        ]
        rq_user = u.m_axis_rq_tuser
        fbe, lbe, seq, dsc = Signal(4), Signal(4), Signal(6), Signal()
        dsc_now = Mux(cur == CC, u.m_axis_cc_tuser[sb.cc_discontinue],
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
                m.d.sync += msi_beat.eq(Mux(last, 0, msi_beat + 1))
        # sent: the message's last beat is taken; seq_num: an RQ packet's.
        done_rq, done_msi = Signal(), Signal()
        m.d.sync += [
            done_rq.eq(rp.i_fire & last & (cur == RQ)),
            done_msi.eq(rp.i_fire & last & (cur == MSI)),
        ]
        with m.If(rp.i_fire & last & (cur == MSI)):
            m.d.sync += msi_pending.eq(0)
        m.d.comb += [
            u.pcie_rq_seq_num_vld0.eq(done_rq), u.pcie_rq_seq_num0.eq(seq),
            u.pcie_rq_seq_num1.eq(0), u.pcie_rq_seq_num_vld1.eq(0),
            u.cfg_interrupt_msix_sent.eq(done_msi),
            u.cfg_interrupt_msix_fail.eq(msi_fail),
        ]

        # Headers, from the descriptor DWs the repacker captured.
        h = rp.hdr
        out_cc = sel == CC
        # Completion (CC descriptor, PG213).
        cc = data.View(layouts.CC_DESCRIPTOR, Cat(*h[:usp.CC_DESCRIPTOR_DWORDS]))
        cc_dwc, cc_attr = cc.dw_count, cc.attr
        cc_id = Mux(cc.completer_id_enable, Cat(cc.completer_function, cc.completer_bus), ids)
        cc_hdr = [
            Cat(cc_dwc[0:10], Const(0, 2), cc_attr[0:2], cc.poisoned, Const(0, 3), cc_attr[2],
                Const(0, 1), cc.tc, Const(0, 1),
                Mux(cc.locked, Const(_CPL | 1, 5), Const(_CPL, 5)),
                Mux(cc_dwc != 0, Const(0b010, 3), Const(0b000, 3))),
            Cat(cc.byte_count[:12], Const(0, 1), cc.status, cc_id),
            Cat(cc.lower_address, Const(0, 1), cc.tag, cc.requester_id),
        ]
        # Memory request (RQ descriptor): a 4-DW header when the address
        # needs more than 32 bits.
        rq = data.View(layouts.RQ_DESCRIPTOR, Cat(*h[:usp.RQ_DESCRIPTOR_DWORDS]))
        rq_type, rq_attr = rq.req_type, rq.attr
        addr_lo, addr_hi = rq.address[:30], rq.address[30:]
        wide = addr_hi != 0
        rq_write = rq_type == ReqType.MEM_WRITE
        rq_id = Mux(rq.requester_id_enable, rq.requester_id, ids)
        rq_hdr = [
            Cat(rq.dw_count[:10], rq.at, rq_attr[0:2], rq.poisoned, Const(0, 3), rq_attr[2],
                Const(0, 1), rq.tc, Const(0, 1), Const(0, 5), Cat(wide, rq_write, Const(0, 1))),
            Cat(fbe, lbe, rq.tag, rq_id),
            Mux(wide, addr_hi, Cat(Const(0, 2), addr_lo)),
            Cat(Const(0, 2), addr_lo),
        ]
        hdr = [Mux(out_cc, cc_hdr[i], rq_hdr[i]) if i < 3 else rq_hdr[i] for i in range(4)]
        tx_data = Signal(p.data_width)
        _place_header(m, rp, n, hdr, tx_data)
        m.d.comb += [
            s7.s_axis_tx_tdata.eq(tx_data),
            s7.s_axis_tx_tkeep.eq(Cat(*[Mux(q < rp.o_cnt, 0xF, 0) for q in range(n)])),
            s7.s_axis_tx_tlast.eq(rp.o_last),
            s7.s_axis_tx_tuser.eq(Cat(Const(0, 3), rp.o_last & dsc)),
            s7.s_axis_tx_tvalid.eq(rp.o_valid),
            rp.o_ready.eq(s7.s_axis_tx_tready),
        ]

        # A read request records where it ends, for its completions' Lower Address.
        dwc = Mux(rq.dw_count == 0, 1024, rq.dw_count)
        first = Cat(Const(0, 2), addr_lo[:10])
        end = Mux(dwc == 1, first + _msb_index(fbe) + 1,
                  first + ((dwc - 1) << 2) + _msb_index(lbe) + 1)
        m.d.comb += [
            end_w.addr.eq(rq.tag),
            end_w.data.eq(end[0:12]),
            end_w.en.eq(rp.o_fire & (rp.o_beat == 0) & (sel == RQ)
                        & (rq_type == ReqType.MEM_READ)),
        ]
