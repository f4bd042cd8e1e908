"""The p2p-dax PCIe endpoint: completer for BAR0 registers and BAR2 memory.

Connects to the Xilinx UltraScale+ hard IP (PG213) in dword-aligned mode
without straddling: requests arrive on CQ, completions leave on CC. The
requester side (RQ/RC) belongs to the DMA engine (hw/core/dma.py), whose
descriptors, results and MSI-X table (hw/core/msix.py) are BAR0 registers.

Data flow:

    CQ -> ingress FIFO (whole packets) -> dispatcher -+-> writes: banked memory / registers
                                                       +-> non-posted queue -> completer -> CC

* The ingress FIFO stores and forwards whole packets, so a write whose
  payload the hard IP flags (discontinue, or poisoned) is dropped whole,
  and requests are served in arrival order.
* Memory and registers are organised as N = width/32 dword-wide banks:
  the N dwords of a bus beat always fall in N different banks, so a beat
  at any dword alignment is written or read in one cycle.
* Completions are split at the Read Completion Boundary and never carry
  more than Max Payload Size, both taken from the hard IP's configuration
  outputs.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.fifo import SyncFIFO, SyncFIFOBuffered
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from hw.core import layouts
from hw.core.dma import DmaEngine
from hw.core.msix import MsixSender
from hw.params import EndpointParams
from hw.spec import regmap, usp
from hw.spec.usp import ATOMIC_TYPES, CplStatus, ReqType, sideband


def _log2(x):
    return x.bit_length() - 1


def endpoint_signature(p):
    sb = sideband(p.data_width)
    w, k = p.data_width, p.data_width // 32
    return wiring.Signature({
        # Completer reQuest (from the hard IP)
        "s_axis_cq_tdata": In(w), "s_axis_cq_tkeep": In(k), "s_axis_cq_tlast": In(1),
        "s_axis_cq_tuser": In(sb.cq_user), "s_axis_cq_tvalid": In(1),
        "s_axis_cq_tready": Out(1),
        # Completer Completion (to the hard IP)
        "m_axis_cc_tdata": Out(w), "m_axis_cc_tkeep": Out(k), "m_axis_cc_tlast": Out(1),
        "m_axis_cc_tuser": Out(sb.cc_user), "m_axis_cc_tvalid": Out(1),
        "m_axis_cc_tready": In(1),
        # Requester reQuest / Completion: reserved for the DMA engine.
        "m_axis_rq_tdata": Out(w), "m_axis_rq_tkeep": Out(k), "m_axis_rq_tlast": Out(1),
        "m_axis_rq_tuser": Out(sb.rq_user), "m_axis_rq_tvalid": Out(1),
        "m_axis_rq_tready": In(1),
        "s_axis_rc_tdata": In(w), "s_axis_rc_tkeep": In(k), "s_axis_rc_tlast": In(1),
        "s_axis_rc_tuser": In(sb.rc_user), "s_axis_rc_tvalid": In(1),
        "s_axis_rc_tready": Out(1),
        # Configuration status from the hard IP
        "cfg_max_payload": In(3), "cfg_max_read_req": In(3), "cfg_rcb_status": In(4),
        "cfg_function_status": In(16),
        # Configuration management: the endpoint polls Device Control.
        "cfg_mgmt_addr": Out(10), "cfg_mgmt_function_number": Out(8),
        "cfg_mgmt_write": Out(1), "cfg_mgmt_write_data": Out(32),
        "cfg_mgmt_byte_enable": Out(4), "cfg_mgmt_read": Out(1),
        "cfg_mgmt_read_data": In(32), "cfg_mgmt_read_write_done": In(1),
        # MSI-X with the table in BAR0 (the hard IP's external-table mode).
        "cfg_interrupt_msix_enable": In(4), "cfg_interrupt_msix_mask": In(4),
        "cfg_interrupt_msix_int": Out(1), "cfg_interrupt_msix_address": Out(64),
        "cfg_interrupt_msix_data": Out(32), "cfg_interrupt_msix_sent": In(1),
        "cfg_interrupt_msix_fail": In(1), "cfg_interrupt_msi_function_number": Out(8),
        # Sequence numbers of RQ packets the hard IP has taken into its
        # transmit pipeline: interrupts wait for the writes before them.
        "pcie_rq_seq_num0": In(6), "pcie_rq_seq_num_vld0": In(1),
        "pcie_rq_seq_num1": In(6), "pcie_rq_seq_num_vld1": In(1),
        # Non-posted request flow control to the hard IP
        "pcie_cq_np_req": Out(2), "pcie_cq_np_req_count": In(6),
    })


# Kinds of non-posted request the completer answers.
_NP_READ, _NP_UR = 0, 1


class BarEndpoint(wiring.Component):
    def __init__(self, params=EndpointParams()):
        self.p = params.validate()
        super().__init__(endpoint_signature(self.p))

    # -- helpers -----------------------------------------------------------

    @staticmethod
    def _lsb_index(be):
        """Index of the lowest set bit of a 4-bit byte enable (0 when none)."""
        return Mux(be[0], 0, Mux(be[1], 1, Mux(be[2], 2, Mux(be[3], 3, 0))))

    @staticmethod
    def _msb_index(be):
        return Mux(be[3], 3, Mux(be[2], 2, Mux(be[1], 1, 0)))

    # -- elaboration -------------------------------------------------------

    def elaborate(self, platform):
        p = self.p
        m = Module()
        N = p.lanes
        LOGN = _log2(N)
        sb = sideband(p.data_width)

        bar2_dw_bits = _log2(p.bar2_size // 4)
        bar0_dw_bits = _log2(p.bar0_size // 4)
        addr_bits = max(bar2_dw_bits, bar0_dw_bits)     # dword address within a BAR
        mem_rows = p.mem_size // 4 // N
        mem_row_bits = _log2(mem_rows)
        reg_row_bits = bar0_dw_bits - LOGN

        # The requester side belongs to the DMA engine.
        m.submodules.dma = dma = DmaEngine(p.data_width, p.bar2_size)
        m.d.comb += [
            self.m_axis_rq_tdata.eq(dma.rq_tdata), self.m_axis_rq_tkeep.eq(dma.rq_tkeep),
            self.m_axis_rq_tlast.eq(dma.rq_tlast), self.m_axis_rq_tuser.eq(dma.rq_tuser),
            self.m_axis_rq_tvalid.eq(dma.rq_tvalid), dma.rq_tready.eq(self.m_axis_rq_tready),
            dma.rc_tdata.eq(self.s_axis_rc_tdata), dma.rc_tkeep.eq(self.s_axis_rc_tkeep),
            dma.rc_tlast.eq(self.s_axis_rc_tlast), dma.rc_tuser.eq(self.s_axis_rc_tuser),
            dma.rc_tvalid.eq(self.s_axis_rc_tvalid), self.s_axis_rc_tready.eq(dma.rc_tready),
            dma.max_payload.eq(self.cfg_max_payload),
            dma.max_read_req.eq(self.cfg_max_read_req),
            dma.bus_master.eq(self.cfg_function_status[2]),
            dma.rq_seq_num0.eq(self.pcie_rq_seq_num0), dma.rq_seq_vld0.eq(self.pcie_rq_seq_num_vld0),
            dma.rq_seq_num1.eq(self.pcie_rq_seq_num1), dma.rq_seq_vld1.eq(self.pcie_rq_seq_num_vld1),
        ]

        # Extended Tag Field Enable, from Device Control: read through
        # cfg_mgmt every 256 cycles (one read at a time, held until done).
        ext_tags = Signal()
        poll_wait = Signal(8)
        poll_busy = Signal()
        m.d.comb += [
            self.cfg_mgmt_addr.eq(usp.DEVICE_CONTROL_DWORD),
            self.cfg_mgmt_byte_enable.eq(0xF),
            self.cfg_mgmt_read.eq(poll_busy),
            dma.ext_tags.eq(ext_tags),
        ]
        with m.If(poll_busy):
            with m.If(self.cfg_mgmt_read_write_done):
                m.d.sync += [poll_busy.eq(0),
                             ext_tags.eq(self.cfg_mgmt_read_data[usp.DEVCTL_EXT_TAG_BIT])]
        with m.Else():
            m.d.sync += poll_wait.eq(poll_wait + 1)
            with m.If(poll_wait == 255):
                m.d.sync += poll_busy.eq(1)

        # ------------------------------------------------------------------
        # Ingress: whole CQ packets, store and forward.
        # ------------------------------------------------------------------
        cq_be_bits = Cat(self.s_axis_cq_tuser[sb.cq_first_be:sb.cq_first_be + 4],
                         self.s_axis_cq_tuser[sb.cq_last_be:sb.cq_last_be + 4])
        beat_w = p.data_width + N + 1 + 8      # data, keep, last, first/last BE
        m.submodules.ingress = ingress = SyncFIFOBuffered(width=beat_w, depth=p.ingress_depth)
        # One entry per complete packet in the ingress FIFO: why to drop it
        # (bit 0: the hard IP flagged its payload; bit 1: longer than the
        # largest request, 4 descriptor dwords and max_payload_supported).
        m.submodules.pkts = pkts = SyncFIFO(width=2, depth=p.ingress_depth)

        # A packet longer than the largest request is malformed (its payload
        # exceeds any Max Payload Size the hard IP allows): dropped whole.
        # Its dwords are counted exactly: whole beats, then the kept lanes of
        # beat max_beats - 1, where the limit may fall inside the beat. It
        # could never complete in the FIFO either: beats past max_beats are
        # not stored, the last beat is.
        limit_dw = 4 + p.max_payload_supported // 4
        max_beats = -(-limit_dw // N)
        edge_dw = limit_dw - (max_beats - 1) * N     # dwords allowed in the last beat, 1..N
        cq_fire = Signal()
        cq_discard = Signal()             # discontinue seen in this packet
        cq_over = Signal()                # this packet is longer than the limit
        cq_beat = Signal(range(3))        # beat index, saturating (descriptor may span 2 beats)
        cq_count = Signal(range(max_beats + 1))
        disc_now = self.s_axis_cq_tuser[sb.cq_discontinue]
        full_now = cq_count == max_beats  # no room for this beat
        over_now = Signal()               # this beat takes the packet past the limit
        m.d.comb += over_now.eq(full_now)
        if edge_dw < N:
            with m.If((cq_count == max_beats - 1) & (self.s_axis_cq_tkeep[edge_dw:] != 0)):
                m.d.comb += over_now.eq(1)
        m.d.comb += [
            self.s_axis_cq_tready.eq(ingress.w_rdy & pkts.w_rdy),
            cq_fire.eq(self.s_axis_cq_tvalid & self.s_axis_cq_tready),
            ingress.w_data.eq(Cat(self.s_axis_cq_tdata, self.s_axis_cq_tkeep,
                                  self.s_axis_cq_tlast, cq_be_bits)),
            ingress.w_en.eq(cq_fire & (~full_now | self.s_axis_cq_tlast)),
            pkts.w_data.eq(Cat(cq_discard | disc_now, cq_over | over_now)),
            pkts.w_en.eq(cq_fire & self.s_axis_cq_tlast),
        ]
        with m.If(cq_fire):
            with m.If(self.s_axis_cq_tlast):
                m.d.sync += [cq_discard.eq(0), cq_over.eq(0), cq_beat.eq(0), cq_count.eq(0)]
            with m.Else():
                m.d.sync += [cq_discard.eq(cq_discard | disc_now), cq_over.eq(cq_over | over_now)]
                with m.If(cq_beat != 2):
                    m.d.sync += cq_beat.eq(cq_beat + 1)
                with m.If(~full_now):
                    m.d.sync += cq_count.eq(cq_count + 1)

        # Non-posted credit to the hard IP: one credit per cycle while the
        # credits out, NP packets in the ingress FIFO and queued NP requests
        # leave room in the NP queue.
        np_fields = [
            ("kind", 1), ("bar0", 1), ("dw_addr", addr_bits), ("dw_count", 11),
            ("fbe", 4), ("lbe", 4), ("req_id", 16), ("tag", 8), ("func", 8),
            ("tc", 3), ("attr", 3), ("locked", 1), ("bc_fixed", 1), ("bc", 13),
        ]
        np_width = sum(w for _, w in np_fields)
        m.submodules.npq = npq = SyncFIFO(width=np_width, depth=p.np_queue_depth)
        np_credits = Signal(range(64))
        np_in_ingress = Signal(range(p.ingress_depth + 1))
        np_grant = Signal()
        np_arrive = Signal()
        np_dispatch = Signal()
        # dword 2 of the descriptor (request type) is in beat 0, or beat 1 at 64 bits
        type_beat, type_lane = divmod(2, N)
        cq_type = self.s_axis_cq_tdata.word_select(type_lane, 32)[11:15]
        cq_is_np = ~cq_type.matches(ReqType.MEM_WRITE, ReqType.MSG, ReqType.MSG_VENDOR,
                                    ReqType.MSG_ATS, 0b1111)
        m.d.comb += [
            np_arrive.eq(cq_fire & (cq_beat == type_beat) & cq_is_np),
            np_grant.eq(np_credits + np_in_ingress + npq.level < p.np_queue_depth),
            self.pcie_cq_np_req.eq(np_grant),
        ]
        m.d.sync += [
            np_credits.eq(np_credits + np_grant - (np_arrive & (np_credits != 0))),
            np_in_ingress.eq(np_in_ingress + np_arrive - np_dispatch),
        ]

        # ------------------------------------------------------------------
        # Dispatcher: reads packets out of the ingress FIFO.
        # ------------------------------------------------------------------
        in_data = ingress.r_data[:p.data_width]
        in_keep = ingress.r_data[p.data_width:p.data_width + N]
        in_last = ingress.r_data[p.data_width + N]
        in_fbe = ingress.r_data[p.data_width + N + 1:p.data_width + N + 5]
        in_lbe = ingress.r_data[p.data_width + N + 5:p.data_width + N + 9]

        d_active = Signal()               # inside a packet
        d_discard = Signal()
        d_beat = Signal(range(3))
        d_lo = Signal(64)                 # descriptor dwords 0-1 (64-bit interface)
        d_fbe = Signal(4)
        d_lbe = Signal(4)
        # Descriptor fields, valid from the beat that completes the descriptor.
        desc = Signal(128)
        if N >= 4:
            m.d.comb += desc.eq(in_data[:128])
        else:
            m.d.comb += desc.eq(Cat(d_lo, in_data[:64]))
        desc_beat = 0 if N >= 4 else 1

        cq = data.View(layouts.CQ_DESCRIPTOR, desc)
        f_dw_addr = cq.address[:addr_bits]
        f_dw_count = Signal(11)
        m.d.comb += f_dw_count.eq(Mux(cq.dw_count == 0, 1024, cq.dw_count))
        f_type = cq.req_type
        f_req_id = cq.requester_id
        f_tag = cq.tag
        f_func = cq.target_function
        f_bar = cq.bar_id
        f_tc = cq.tc
        f_attr = cq.attr

        fbe = Mux(d_beat == 0, in_fbe, d_fbe)
        lbe = Mux(d_beat == 0, in_lbe, d_lbe)
        bar_known = (f_bar == 0) | (f_bar == 2)
        is_write = f_type == ReqType.MEM_WRITE
        is_read = f_type == ReqType.MEM_READ
        is_np = ~f_type.matches(ReqType.MEM_WRITE, ReqType.MSG, ReqType.MSG_VENDOR,
                                ReqType.MSG_ATS, 0b1111)
        # A write whose Length field is over the largest payload is malformed
        # too, whatever payload it carries (the ingress counts the payload).
        long_write = is_write & (f_dw_count > p.max_payload_supported // 4)

        # Pop a beat when the packet is complete (or we are inside it) and
        # its consequences can be taken this cycle.
        start_ok = d_active | pkts.r_rdy
        at_desc = d_beat == desc_beat
        np_block = at_desc & is_np & ~npq.w_rdy
        pop = Signal()
        m.d.comb += [
            pop.eq(ingress.r_rdy & start_ok & ~np_block),
            ingress.r_en.eq(pop),
            pkts.r_en.eq(pop & ~d_active),
        ]
        d_over = Signal()
        cur_over = Mux(d_active, d_over, pkts.r_data[1])       # too long on the stream
        cur_discard = Mux(d_active, d_discard, pkts.r_data[0]) | cur_over
        malformed = cur_over | long_write                      # at the descriptor beat

        with m.If(pop):
            with m.If(d_beat == 0):
                m.d.sync += [d_fbe.eq(in_fbe), d_lbe.eq(in_lbe), d_lo.eq(in_data[:64])]
            with m.If(in_last):
                m.d.sync += [d_active.eq(0), d_beat.eq(0), d_discard.eq(0), d_over.eq(0)]
            with m.Else():
                m.d.sync += [d_active.eq(1), d_discard.eq(cur_discard), d_over.eq(cur_over)]
                with m.If(d_beat != 2):
                    m.d.sync += d_beat.eq(d_beat + 1)

        # Write context, latched at the descriptor beat.
        w_on = Signal()                   # current packet is a write being committed
        w_bar0 = Signal()
        w_t = Signal(addr_bits)           # dword address of lane 0 of the current beat
        w_p = Signal(range(-N * 2, 1100)) # payload index of lane 0 of the current beat
        w_len = Signal(11)
        w_fbe = Signal(4)
        w_lbe = Signal(4)
        # Values for this beat: from the descriptor at its beat, else the context.
        t_now = Signal(addr_bits)
        p_now = Signal(range(-N * 2, 1100))
        len_now = Signal(11)
        fbe_now, lbe_now = Signal(4), Signal(4)
        bar0_now = Signal()
        write_now = Signal()

        counters = {name: Signal(32, name=f"cnt_{name.lower()}") for name in regmap.COUNTERS}
        inc = {name: Signal(name=f"inc_{name.lower()}") for name in regmap.COUNTERS}

        with m.If(at_desc):
            m.d.comb += [
                t_now.eq(f_dw_addr - 4 + desc_beat * N),
                p_now.eq(desc_beat * N - 4),
                len_now.eq(f_dw_count), fbe_now.eq(fbe), lbe_now.eq(lbe),
                bar0_now.eq(f_bar == 0),
                write_now.eq(is_write & bar_known & ~cur_discard & ~long_write),
            ]
        with m.Else():
            m.d.comb += [
                t_now.eq(w_t), p_now.eq(w_p), len_now.eq(w_len),
                fbe_now.eq(w_fbe), lbe_now.eq(w_lbe), bar0_now.eq(w_bar0),
                write_now.eq(w_on & (d_beat > desc_beat)),
            ]
        with m.If(pop):
            with m.If(at_desc):
                m.d.sync += [
                    w_on.eq(is_write & bar_known & ~cur_discard & ~long_write & ~in_last),
                    w_bar0.eq(f_bar == 0), w_len.eq(f_dw_count),
                    w_fbe.eq(fbe), w_lbe.eq(lbe),
                ]
                m.d.comb += [
                    inc["STAT_WRITES"].eq(is_write & bar_known & ~cur_discard & ~long_write),
                    inc["ERR_POISONED_DROPPED"].eq(is_write & bar_known & cur_discard & ~malformed),
                    inc["ERR_MALFORMED_DROPPED"].eq(malformed),
                    inc["ERR_POSTED_DROPPED"].eq(~is_np & ~(is_write & bar_known) & ~malformed),
                ]
            m.d.sync += [w_t.eq(t_now + N), w_p.eq(p_now + N)]
            with m.If(in_last):
                m.d.sync += w_on.eq(0)

        # Per-lane byte enables of the payload in this beat (lane domain).
        lane_be = []
        for lane in range(N):
            pi = Signal(range(-N * 2, 1100 + N), name=f"w_pidx{lane}")
            be = Signal(4, name=f"w_be{lane}")
            m.d.comb += pi.eq(p_now + lane)
            with m.If(write_now & pop & in_keep[lane] & (pi >= 0) & (pi < len_now)):
                with m.If(pi == 0):
                    m.d.comb += be.eq(fbe_now)
                with m.Elif(pi == len_now - 1):
                    m.d.comb += be.eq(lbe_now)
                with m.Else():
                    m.d.comb += be.eq(0xF)
            lane_be.append(be)
        lane_be = Cat(*lane_be)

        # Rotate lanes to banks: bank b takes lane (b - rot) mod N.
        w_rot = t_now[:LOGN] if LOGN else Const(0, 1)
        w_row = t_now[LOGN:]
        shift = Signal(range(N + 1))
        m.d.comb += shift.eq(N - w_rot)
        bank_wdata = Cat(in_data, in_data).bit_select(shift * 32, p.data_width)
        bank_wbe = Cat(lane_be, lane_be).bit_select(shift * 4, N * 4)

        def bank_row(base_row, rot, b):
            return base_row + (Const(b, LOGN + 1) < rot)


        def unpack(value):
            out, pos = {}, 0
            for name, width in np_fields:
                out[name] = value[pos:pos + width]
                pos += width
            return out

        np_in = {name: Signal(width, name=f"npin_{name}") for name, width in np_fields}
        m.d.comb += npq.w_data.eq(Cat(*(np_in[name] for name, _ in np_fields)))
        # Unsupported non-posted requests: byte count per the completion rules.
        is_atomic = f_type.matches(*ATOMIC_TYPES)
        atomic_bytes = Mux(f_type == ReqType.MEM_CAS, f_dw_count * 2, f_dw_count * 4)
        m.d.comb += [
            np_in["kind"].eq(Mux(is_read & bar_known, _NP_READ, _NP_UR)),
            np_in["bar0"].eq(f_bar == 0),
            np_in["dw_addr"].eq(f_dw_addr),
            np_in["dw_count"].eq(f_dw_count),
            np_in["fbe"].eq(fbe), np_in["lbe"].eq(lbe),
            np_in["req_id"].eq(f_req_id), np_in["tag"].eq(f_tag), np_in["func"].eq(f_func),
            np_in["tc"].eq(f_tc), np_in["attr"].eq(f_attr),
            np_in["locked"].eq(f_type == ReqType.MEM_READ_LOCKED),
            # Memory reads (also locked or to an unknown BAR) report the byte
            # count from the byte enables; atomics their operand size; I/O and
            # configuration requests 4.
            np_in["bc_fixed"].eq(~(f_type.matches(ReqType.MEM_READ, ReqType.MEM_READ_LOCKED))),
            np_in["bc"].eq(Mux(is_atomic, atomic_bytes, 4)),
            npq.w_en.eq(pop & at_desc & is_np),
            np_dispatch.eq(pop & at_desc & is_np),
        ]
        m.d.comb += [
            inc["STAT_READS"].eq(npq.w_en & is_read & bar_known),
            inc["ERR_UR"].eq(npq.w_en & ~(is_read & bar_known)),
        ]

        # ------------------------------------------------------------------
        # Storage: BAR2 memory banks and the BAR0 register banks.
        # ------------------------------------------------------------------
        # Read requests per bank: the completer's (below) when it issues a
        # beat, else the DMA reader's.
        rd_row = [Signal(addr_bits - LOGN, name=f"rd_row{b}") for b in range(N)]
        cpl_row = [Signal(addr_bits - LOGN, name=f"cpl_row{b}") for b in range(N)]
        cpl_issue = Signal()
        m.d.comb += dma.rd_grant.eq(~cpl_issue)
        for b in range(N):
            dma_row = dma.rd_row.word_select(b, dma.row_bits)
            m.d.comb += rd_row[b].eq(Mux(cpl_issue, cpl_row[b], dma_row))
        mem_rdata = []
        cq_mem_write = Signal()            # a CQ write to BAR2 uses the write ports now
        m.d.comb += [cq_mem_write.eq(pop & write_now & ~bar0_now & (bank_wbe != 0)),
                     dma.wr_busy.eq(cq_mem_write)]
        for b in range(N):
            mem = Memory(shape=unsigned(32), depth=mem_rows, init=[])
            m.submodules[f"mem{b}"] = mem
            wp = mem.write_port(granularity=8)
            rp = mem.read_port(domain="sync")
            # The write port: CQ writes first, else DMA completion data.
            cq_en = Mux(bar0_now, 0, bank_wbe.word_select(b, 4))
            dma_row = dma.wr_row.word_select(b, dma.row_bits)
            m.d.comb += [
                wp.addr.eq(Mux(cq_mem_write, bank_row(w_row, w_rot, b), dma_row)[:mem_row_bits]),
                wp.data.eq(Mux(cq_mem_write, bank_wdata.word_select(b, 32),
                               dma.wr_data.word_select(b, 32))),
                wp.en.eq(Mux(cq_mem_write, cq_en, dma.wr_en.word_select(b, 4))),
                rp.addr.eq(rd_row[b][:mem_row_bits]),
            ]
            mem_rdata.append(rp.data)
        m.d.comb += dma.rd_data.eq(Cat(*mem_rdata))

        # Register file: storage for every read/write register of the map,
        # strobes for CTRL, DMA_SUBMIT and DMA_ABORT.
        rw = {r.name: Signal(32, init=r.reset, name=f"reg_{r.name.lower()}")
              for r in regmap.REGISTERS if r.access == regmap.Access.RW and r.name != "DMA_SUBMIT"}
        clear_counters = Signal()
        submit = Signal()
        abort = Signal()
        regs = regmap.by_name()
        caps = (int(p.mem_size < p.bar2_size) << 0) | (1 << 1) | (1 << 2) \
            | (_log2(p.data_width) << 8)
        cfg_value = Cat(self.cfg_max_payload, Const(0, 1), self.cfg_max_read_req,
                        Const(0, 1), self.cfg_rcb_status[0], ext_tags)

        m.d.comb += dma.timeout.eq(rw["DMA_TIMEOUT"])

        # DMA descriptors: staged in registers, queued by a write to DMA_SUBMIT.
        ctl = regmap.by_name()["DMA_CONTROL"]
        m.submodules.descq = descq = SyncFIFO(width=32 + 64 + 25 + 2 + 16 + 2,
                                              depth=regmap.DMA_QUEUE_DEPTH)
        m.d.comb += [
            descq.w_data.eq(Cat(rw["DMA_LOCAL"], rw["DMA_BUS_LO"], rw["DMA_BUS_HI"],
                                rw["DMA_LENGTH"][:25],
                                rw["DMA_CONTROL"][ctl.field("from_bus").lsb],
                                rw["DMA_CONTROL"][ctl.field("irq").lsb],
                                rw["DMA_CONTROL"][ctl.field("id").lsb:][:16],
                                rw["DMA_CONTROL"][ctl.field("vector").lsb:][:2])),
            descq.w_en.eq(submit),
            dma.desc_valid.eq(descq.r_rdy),
            dma.desc_local.eq(descq.r_data[:dma.local_bits]),
            dma.desc_bus.eq(descq.r_data[32:96]),
            dma.desc_length.eq(descq.r_data[96:121]),
            dma.desc_from_bus.eq(descq.r_data[121]),
            dma.desc_irq.eq(descq.r_data[122]),
            dma.desc_id.eq(descq.r_data[123:139]),
            dma.desc_vector.eq(descq.r_data[139:141]),
            descq.r_en.eq(dma.desc_ready),
        ]
        # DMA_ABORT: the engine ends what it holds; the descriptors waiting
        # here that were submitted before the abort (one submitted by the
        # same write included) go to it marked to end ABORTED.
        abort_queued = Signal(range(regmap.DMA_QUEUE_DEPTH + 1))
        with m.If(abort):
            m.d.sync += abort_queued.eq(descq.level + (submit & descq.w_rdy) - descq.r_en)
        with m.Elif(descq.r_en & (abort_queued != 0)):
            m.d.sync += abort_queued.eq(abort_queued - 1)
        m.d.comb += [dma.abort.eq(abort), dma.desc_abort.eq(abort_queued != 0)]
        # Lengths beyond what the queue carries must not wrap into valid ones.
        with m.If(rw["DMA_LENGTH"] > regmap.DMA_MAX_LENGTH):
            m.d.comb += descq.w_data[96:121].eq(0)
        dma_submitted = Signal(32)
        dma_done = Signal(32)
        dma_overflow = Signal(32)
        reads_peak = Signal(9)
        with m.If(clear_counters):
            m.d.sync += reads_peak.eq(0)
        with m.Elif(dma.reads_out > reads_peak):
            m.d.sync += reads_peak.eq(dma.reads_out)
        results = [Signal(32, name=f"dma_result{k}") for k in range(regmap.DMA_RESULTS)]
        with m.If(submit):
            with m.If(descq.w_rdy):
                m.d.sync += dma_submitted.eq(dma_submitted + 1)
            with m.Else():
                m.d.sync += dma_overflow.eq(dma_overflow + 1)
        with m.If(dma.res_valid):
            m.d.sync += dma_done.eq(dma_done + 1)
            with m.Switch(dma_done[:_log2(regmap.DMA_RESULTS)]):
                for k in range(regmap.DMA_RESULTS):
                    with m.Case(k):
                        m.d.sync += results[k].eq(Cat(dma.res_id, dma.res_status,
                                                      Const(0, 4), dma_done[:8]))

        # MSI-X: the table is in the register file; the sender asks the hard
        # IP to send the messages.
        m.submodules.msix = msix = MsixSender(regmap.MSIX_VECTORS)
        for v in range(regmap.MSIX_VECTORS):
            m.d.comb += [
                msix.addr[v].eq(Cat(rw[f"MSIX_VEC{v}_ADDR_LO"] & 0xFFFF_FFFC,
                                    rw[f"MSIX_VEC{v}_ADDR_HI"])),
                msix.data[v].eq(rw[f"MSIX_VEC{v}_DATA"]),
                msix.masked[v].eq(rw[f"MSIX_VEC{v}_CTRL"][0]),
            ]
        m.d.comb += [
            msix.event.eq(dma.res_valid & dma.res_irq), msix.event_vector.eq(dma.res_vector),
            msix.cfg_enable.eq(self.cfg_interrupt_msix_enable[0]),
            msix.cfg_mask.eq(self.cfg_interrupt_msix_mask[0]),
            msix.cfg_sent.eq(self.cfg_interrupt_msix_sent),
            msix.cfg_fail.eq(self.cfg_interrupt_msix_fail),
            self.cfg_interrupt_msix_int.eq(msix.cfg_int),
            self.cfg_interrupt_msix_address.eq(msix.cfg_address),
            self.cfg_interrupt_msix_data.eq(msix.cfg_data),
        ]

        reg_values = {
            "ID": Const(regmap.MAGIC, 32),
            "VERSION": Const(regmap.by_name()["VERSION"].reset, 32),
            "CAPS": Const(caps, 32),
            "BAR2_SIZE_LO": Const(p.bar2_size & 0xFFFFFFFF, 32),
            "BAR2_SIZE_HI": Const(p.bar2_size >> 32, 32),
            "MEM_SIZE_LO": Const(p.mem_size & 0xFFFFFFFF, 32),
            "MEM_SIZE_HI": Const(p.mem_size >> 32, 32),
            "CFG": cfg_value,
            "CTRL": Const(0, 32),
            "DMA_BASE": Const(regmap.DMA_BLOCK_OFFSET, 32),
            "DMA_SUBMIT": regmap.DMA_QUEUE_DEPTH - descq.level,
            "DMA_SUBMITTED": dma_submitted,
            "DMA_DONE": dma_done,
            "DMA_STATE": Cat(dma.busy | descq.r_rdy, self.cfg_function_status[2],
                             dma.aborting | (abort_queued != 0)),
            "DMA_ERR_OVERFLOW": dma_overflow,
            "DMA_READS": Cat(dma.reads_out, Const(0, 7), reads_peak),
            "DMA_ABORT": Const(0, 32),          # write-only
            **{f"DMA_RESULT{k}": results[k] for k in range(regmap.DMA_RESULTS)},
            **{name: reg & regs[name].writable for name, reg in rw.items()},
            "MSIX_PBA": msix.pending,
            **counters,
        }
        missing = {r.name for r in regmap.REGISTERS} - set(reg_values)
        assert not missing, f"registers without a source: {missing}"

        reg_rdata = []
        for b in range(N):
            rdata = Signal(32, name=f"reg_rdata{b}")
            with m.Switch(rd_row[b][:reg_row_bits]):
                for r in regmap.REGISTERS:
                    dw = r.offset // 4
                    if dw % N == b:
                        with m.Case(dw // N):
                            m.d.sync += rdata.eq(reg_values[r.name])
                with m.Default():
                    m.d.sync += rdata.eq(0)
            reg_rdata.append(rdata)
            # Writes
            wrow = bank_row(w_row, w_rot, b)[:reg_row_bits]
            wbe = Mux(bar0_now, bank_wbe.word_select(b, 4), 0)
            wdat = bank_wdata.word_select(b, 32)
            for r in regmap.REGISTERS:
                dw = r.offset // 4
                if dw % N != b:
                    continue
                hit = (wrow == dw // N)
                if r.name in rw:
                    for byte in range(4):
                        with m.If(hit & wbe[byte]):
                            m.d.sync += rw[r.name][byte * 8:byte * 8 + 8].eq(wdat[byte * 8:byte * 8 + 8])
                elif r.name == "CTRL":
                    m.d.comb += clear_counters.eq(hit & wbe[0] & wdat[0])
                elif r.name == "DMA_SUBMIT":
                    m.d.comb += submit.eq(hit & (wbe != 0))
                elif r.name == "DMA_ABORT":
                    m.d.comb += abort.eq(hit & (wbe != 0))

        # ------------------------------------------------------------------
        # Completer: turns queued non-posted requests into completions.
        # ------------------------------------------------------------------
        mps_dw = Signal(11)
        with m.Switch(self.cfg_max_payload):
            for code in range(6):
                with m.Case(code):
                    m.d.comb += mps_dw.eq(min(32 << code, p.max_payload_supported // 4))
            with m.Default():
                m.d.comb += mps_dw.eq(32)
        rcb_mask = Mux(self.cfg_rcb_status[0], 31, 15)  # RCB in dwords, minus one

        # Request register R: the request being split into completions.
        q = unpack(npq.r_data)
        r_valid = Signal()
        r = {name: Signal(width, name=f"r_{name}") for name, width in np_fields}
        r_dw = Signal(addr_bits)          # dword address of the next completion
        r_rem_dw = Signal(11)             # dwords left to send
        r_rem_bytes = Signal(13)          # Byte Count of the next completion
        r_first = Signal()

        # Byte count of a whole memory read from its byte enables.
        q_len = q["dw_count"]
        q_one = q_len == 1
        q_lbe = Mux(q_one, q["fbe"], q["lbe"])
        q_lead = self._lsb_index(q["fbe"])
        q_bytes = Signal(13)
        with m.If(q_one & (q["fbe"] == 0)):
            m.d.comb += q_bytes.eq(1)     # zero-length read
        with m.Else():
            m.d.comb += q_bytes.eq(((q_len - 1) << 2) + self._msb_index(q_lbe) + 1 - q_lead)

        # The next completion, computed from R.
        c_lead = Mux(r_first & (r["kind"] == _NP_READ), self._lsb_index(r["fbe"]), 0)
        limit = mps_dw - (r_dw & rcb_mask)
        c_dw = Signal(11)                 # payload dwords of the completion
        with m.If(r["kind"] == _NP_UR):
            m.d.comb += c_dw.eq(0)
        with m.Elif(r_rem_dw > limit):
            m.d.comb += c_dw.eq(limit)
        with m.Else():
            m.d.comb += c_dw.eq(r_rem_dw)
        c_last = (r["kind"] == _NP_UR) | (r_rem_dw <= limit)
        c_lower = Signal(7)
        with m.If(r["kind"] == _NP_UR):
            with m.If(r["bc_fixed"]):
                m.d.comb += c_lower.eq(0)
            with m.Else():
                m.d.comb += c_lower.eq(Cat(self._lsb_index(r["fbe"])[:2], r_dw[:5]))
        with m.Else():
            m.d.comb += c_lower.eq(Cat(c_lead[:2], r_dw[:5]))
        c_bc = Mux((r["kind"] == _NP_UR) & r["bc_fixed"], r["bc"], r_rem_bytes)
        c_status = Mux(r["kind"] == _NP_UR, Const(CplStatus.UR, 3), Const(CplStatus.SC, 3))
        cc = Signal(layouts.CC_DESCRIPTOR)  # the fields not named here stay 0
        m.d.comb += [
            cc.lower_address.eq(c_lower), cc.byte_count.eq(c_bc),
            cc.locked.eq(r["locked"] & (r["kind"] == _NP_UR)),
            cc.dw_count.eq(c_dw), cc.status.eq(c_status), cc.requester_id.eq(r["req_id"]),
            cc.tag.eq(r["tag"]), cc.completer_function.eq(r["func"]),
            cc.tc.eq(r["tc"]), cc.attr.eq(r["attr"]),
        ]

        # Completion stage S1: issues one beat of bank reads per cycle.
        s1_valid = Signal()
        s1_beats = Signal(range(2 + (4 + 1024) // N + 1))  # beats left in this TLP
        s1_beat = Signal(range(3))        # beat index, saturating
        s1_row = Signal(addr_bits - LOGN)
        s1_rot = Signal(max(LOGN, 1))
        s1_bar0 = Signal()
        s1_hdr = Signal(96)
        s1_last_keep = Signal(range(N + 1))

        # Stage S2: bank data arrives; lanes assembled into an output beat.
        s2_valid = Signal()
        s2_beat = Signal(range(3))
        s2_last = Signal()
        s2_rot = Signal(max(LOGN, 1))
        s2_bar0 = Signal()
        s2_hdr = Signal(96)
        s2_keep = Signal(N)

        out_w = p.data_width + N + 1
        m.submodules.ccq = ccq = SyncFIFO(width=out_w, depth=4)
        issue = Signal()
        m.d.comb += [issue.eq(s1_valid & (ccq.level + s2_valid < 3)), cpl_issue.eq(issue)]

        s1_free = ~s1_valid | (issue & (s1_beats == 1))
        take = Signal()                   # S1 takes the next completion from R
        m.d.comb += take.eq(r_valid & s1_free)
        r_done = take & c_last
        load_r = Signal()
        m.d.comb += [
            load_r.eq(npq.r_rdy & (~r_valid | r_done)),
            npq.r_en.eq(load_r),
        ]
        with m.If(load_r):
            m.d.sync += [r_valid.eq(1), r_dw.eq(q["dw_addr"]), r_rem_dw.eq(q["dw_count"]),
                         r_rem_bytes.eq(q_bytes), r_first.eq(1)]
            m.d.sync += [r[name].eq(q[name]) for name, _ in np_fields]
        with m.Elif(r_done):
            m.d.sync += r_valid.eq(0)
        with m.Elif(take):
            m.d.sync += [
                r_dw.eq(r_dw + c_dw), r_rem_dw.eq(r_rem_dw - c_dw),
                r_rem_bytes.eq(r_rem_bytes - ((c_dw << 2) - c_lead)), r_first.eq(0),
            ]

        total_dw = c_dw + 3
        tlp_t = Signal(addr_bits)
        m.d.comb += tlp_t.eq(r_dw - 3)
        with m.If(take):
            m.d.sync += [
                s1_valid.eq(1),
                s1_beats.eq((total_dw + N - 1) >> LOGN),
                s1_beat.eq(0),
                s1_row.eq(tlp_t[LOGN:]),
                s1_rot.eq(tlp_t[:LOGN] if LOGN else 0),
                s1_bar0.eq(r["bar0"]),
                s1_hdr.eq(cc),
                s1_last_keep.eq(((total_dw - 1) & (N - 1)) + 1),
            ]
            m.d.comb += inc["STAT_CPLS"].eq(1)
        with m.Elif(issue):
            m.d.sync += [s1_beats.eq(s1_beats - 1), s1_row.eq(s1_row + 1)]
            with m.If(s1_beat != 2):
                m.d.sync += s1_beat.eq(s1_beat + 1)
            with m.If(s1_beats == 1):
                m.d.sync += s1_valid.eq(0)

        for b in range(N):
            m.d.comb += cpl_row[b].eq(bank_row(s1_row, s1_rot, b))

        m.d.sync += s2_valid.eq(issue)
        with m.If(issue):
            last_keep = Signal(N)
            for k in range(1, N + 1):
                with m.If(s1_last_keep == k):
                    m.d.comb += last_keep.eq((1 << k) - 1)
            m.d.sync += [
                s2_beat.eq(s1_beat), s2_last.eq(s1_beats == 1), s2_rot.eq(s1_rot),
                s2_bar0.eq(s1_bar0), s2_hdr.eq(s1_hdr),
                s2_keep.eq(Mux(s1_beats == 1, last_keep, (1 << N) - 1)),
            ]

        bank_rdata = Signal(p.data_width)
        m.d.comb += bank_rdata.eq(Mux(s2_bar0, Cat(*reg_rdata), Cat(*mem_rdata)))
        lanes_data = Cat(bank_rdata, bank_rdata).bit_select(s2_rot * 32, p.data_width)
        out_lanes = layouts.header_over_lanes(m, "cc_lane", lanes_data, s2_hdr, s2_beat, 3, N)
        m.d.comb += [
            ccq.w_data.eq(Cat(*out_lanes, s2_keep, s2_last)),
            ccq.w_en.eq(s2_valid),
        ]

        # CC output.
        cc_keep = ccq.r_data[p.data_width:p.data_width + N]
        cc_last = ccq.r_data[p.data_width + N]
        cc_sop = Signal(init=1)
        m.d.comb += [
            self.m_axis_cc_tdata.eq(ccq.r_data[:p.data_width]),
            self.m_axis_cc_tkeep.eq(cc_keep),
            self.m_axis_cc_tlast.eq(cc_last),
            self.m_axis_cc_tvalid.eq(ccq.r_rdy),
            ccq.r_en.eq(self.m_axis_cc_tready),
        ]
        with m.If(ccq.r_rdy & self.m_axis_cc_tready):
            m.d.sync += cc_sop.eq(cc_last)
        if p.data_width == 512:
            eop_ptr = Signal(4)
            for k in range(N):
                with m.If(cc_keep[k]):
                    m.d.comb += eop_ptr.eq(k)
            m.d.comb += [
                self.m_axis_cc_tuser[sb.cc_is_sop].eq(cc_sop),
                self.m_axis_cc_tuser[sb.cc_is_eop].eq(cc_last),
                self.m_axis_cc_tuser[sb.cc_eop_ptr:sb.cc_eop_ptr + 4].eq(eop_ptr),
            ]

        # ------------------------------------------------------------------
        # Counters.
        # ------------------------------------------------------------------
        for name in regmap.COUNTERS:
            with m.If(clear_counters):
                m.d.sync += counters[name].eq(0)
            with m.Elif(inc[name] & (counters[name] != 0xFFFFFFFF)):
                m.d.sync += counters[name].eq(counters[name] + 1)

        return m
