"""The DMA engine: the requester side of the endpoint (UltraScale+ RQ/RC).

Moves data between BAR2's memory and any bus address: a peer's BAR, or
host memory. This file holds the write direction (BAR2 -> bus, as Memory
Write TLPs); a descriptor asking for the read direction ends with status
BAD_DESCRIPTOR until that direction exists.

Write direction, for a descriptor (local offset L, bus address A, length):

    planner -> reader -> byte shifter -> payload words -+
            -> TLP splitter -> TLP headers -------------+-> packer -> RQ

* The TLPs split at MPS-aligned bus addresses (so none crosses 4 KiB).
  Every TLP after the first starts dword aligned, so the dword-aligned
  payloads of all the TLPs of a descriptor are one continuous byte stream
  in BAR2, starting at L - (A mod 4).
* The reader streams that region as windows of N dwords (one bank read a
  cycle, shared with the completer); the byte shifter turns windows into
  payload words, shifted by (L - A) mod 4 bytes, fixed per descriptor.
* The packer puts each TLP's 4-dword header in front of its payload: a
  2-word window over the payload words, rotated by an amount fixed per
  TLP. Consecutive TLPs follow each other without idle cycles.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from . import regmap
from .usp import ReqType, sideband

DmaStatus = regmap.DmaStatus


def _log2(x):
    return x.bit_length() - 1


def dma_signature(data_width, local_bits, row_bits):
    n = data_width // 32
    sb = sideband(data_width)
    return wiring.Signature({
        # Descriptors, from the register block.
        "desc_valid": In(1), "desc_ready": Out(1),
        "desc_local": In(local_bits), "desc_bus": In(64), "desc_length": In(25),
        "desc_from_bus": In(1), "desc_irq": In(1), "desc_id": In(16),
        # Results, one per descriptor, in order.
        "res_valid": Out(1), "res_id": Out(16), "res_status": Out(4), "res_irq": Out(1),
        # BAR2 bank reads: rows for every bank; data one cycle after a grant.
        "rd_want": Out(1), "rd_grant": In(1),
        "rd_row": Out(row_bits * n), "rd_data": In(data_width),
        # Requester reQuest stream to the hard IP.
        "rq_tdata": Out(data_width), "rq_tkeep": Out(n), "rq_tlast": Out(1),
        "rq_tuser": Out(sb.rq_user), "rq_tvalid": Out(1), "rq_tready": In(1),
        # Configuration.
        "max_payload": In(3), "bus_master": In(1),
        "busy": Out(1),
    })


class DmaEngine(wiring.Component):
    def __init__(self, data_width, bar2_size):
        self.width = data_width
        self.n = data_width // 32
        self.local_bits = _log2(bar2_size)
        self.row_bits = _log2(bar2_size // 4) - _log2(self.n)
        super().__init__(dma_signature(data_width, self.local_bits, self.row_bits))

    def elaborate(self, platform):
        m = Module()
        N, W = self.n, self.width
        LOGN = _log2(N)
        LB = self.local_bits
        DW_BITS = LB - 2                   # dword address bits in BAR2

        # ------------------------------------------------------------------
        # Planner: checks a descriptor and hands it to the reader and to the
        # TLP splitter (each through its own small queue).
        # ------------------------------------------------------------------
        rd_cmd = SyncFIFO(width=DW_BITS + 2 + 24, depth=2)      # dword start, shift, words
        hd_cmd = SyncFIFO(width=64 + 25 + 16 + 1, depth=2)      # bus, length, id, irq
        res_q = SyncFIFO(width=16 + 4 + 1, depth=4)             # descriptors ended without moving data
        m.submodules.rd_cmd = rd_cmd
        m.submodules.hd_cmd = hd_cmd
        m.submodules.res_q = res_q

        length = self.desc_length
        bad = (length == 0) | (length > regmap.DMA_MAX_LENGTH) | self.desc_from_bus
        a_lo = self.desc_bus[:2]
        start = Signal(LB)                 # first byte of the continuous payload region
        m.d.comb += start.eq(self.desc_local - a_lo)
        payload_dw = Signal(24)            # dwords in all the TLPs of the descriptor
        m.d.comb += payload_dw.eq((a_lo + length + 3) >> 2)
        words = Signal(24)
        m.d.comb += words.eq((payload_dw + N - 1) >> LOGN)

        accept = Signal()
        m.d.comb += [
            accept.eq(self.desc_valid & rd_cmd.w_rdy & hd_cmd.w_rdy & res_q.w_rdy),
            self.desc_ready.eq(accept),
            rd_cmd.w_data.eq(Cat(start[2:], start[:2], words)),
            rd_cmd.w_en.eq(accept & ~bad),
            hd_cmd.w_data.eq(Cat(self.desc_bus, length, self.desc_id, self.desc_irq)),
            # Bad descriptors take the header path too, so results stay in order.
            hd_cmd.w_en.eq(accept),
        ]
        # A bad descriptor is marked by length 0 in the header queue.
        with m.If(bad):
            m.d.comb += hd_cmd.w_data[64:89].eq(0)

        # ------------------------------------------------------------------
        # Reader: one window of N dwords a cycle, granted by the arbiter.
        # ------------------------------------------------------------------
        r_active = Signal()
        r_dw = Signal(DW_BITS)             # dword address of the next window
        r_left = Signal(25)                # windows still to read (words + 1)
        r_shift = Signal(2)
        r_first = Signal()
        m.submodules.pay = pay = SyncFIFO(width=W, depth=4)
        inflight = Signal()                # a window read last cycle
        in_first = Signal()
        in_shift = Signal(2)
        in_rot = Signal(max(LOGN, 1))

        room = pay.level + inflight < 3
        m.d.comb += self.rd_want.eq(r_active & room)
        rows = []
        for b in range(N):
            rot = r_dw[:LOGN] if LOGN else Const(0, 1)
            rows.append((r_dw[LOGN:] + (Const(b, LOGN + 1) < rot))[:self.row_bits])
        m.d.comb += self.rd_row.eq(Cat(*rows))

        load_rd = ~r_active & rd_cmd.r_rdy
        m.d.comb += rd_cmd.r_en.eq(load_rd)
        with m.If(load_rd):
            m.d.sync += [
                r_active.eq(1), r_dw.eq(rd_cmd.r_data[:DW_BITS]),
                r_shift.eq(rd_cmd.r_data[DW_BITS:DW_BITS + 2]),
                r_left.eq(rd_cmd.r_data[DW_BITS + 2:] + 1), r_first.eq(1),
            ]
        granted = self.rd_want & self.rd_grant
        m.d.sync += inflight.eq(granted)
        with m.If(granted):
            m.d.sync += [
                r_dw.eq(r_dw + N), r_left.eq(r_left - 1), r_first.eq(0),
                in_first.eq(r_first), in_shift.eq(r_shift),
                in_rot.eq(r_dw[:LOGN] if LOGN else 0),
            ]
            with m.If(r_left == 1):
                m.d.sync += r_active.eq(0)

        # Byte shifter: payload word i = window i followed by the first dword
        # of window i + 1, shifted down by `shift` bytes.
        window = Signal(W)
        m.d.comb += window.eq(Cat(self.rd_data, self.rd_data).bit_select(in_rot * 32, W))
        prev = Signal(W)
        with m.If(inflight):
            m.d.sync += prev.eq(window)
        joined = Cat(prev, window[:32])
        m.d.comb += [
            pay.w_data.eq(joined.bit_select(in_shift * 8, W)),
            pay.w_en.eq(inflight & ~in_first),
        ]

        # ------------------------------------------------------------------
        # TLP splitter: one TLP header a cycle into the TLP queue.
        # ------------------------------------------------------------------
        mps_bytes = Signal(13)
        with m.Switch(self.max_payload):
            for code in range(6):
                with m.Case(code):
                    m.d.comb += mps_bytes.eq(128 << code)
            with m.Default():
                m.d.comb += mps_bytes.eq(128)

        tlp_fields = [("addr", 64), ("dw", 11), ("fbe", 4), ("lbe", 4), ("pidx", 24),
                      ("words", 24), ("last", 1), ("id", 16), ("irq", 1), ("bad", 1)]
        m.submodules.tlpq = tlpq = SyncFIFO(width=sum(w for _, w in tlp_fields), depth=4)

        s_active = Signal()
        s_addr = Signal(64)
        s_rem = Signal(25)
        s_pidx = Signal(24)
        s_words = Signal(24)               # payload words of the descriptor
        s_id = Signal(16)
        s_irq = Signal()
        load_hd = ~s_active & hd_cmd.r_rdy
        m.d.comb += hd_cmd.r_en.eq(load_hd)
        with m.If(load_hd):
            m.d.sync += [
                s_active.eq(1), s_addr.eq(hd_cmd.r_data[:64]), s_rem.eq(hd_cmd.r_data[64:89]),
                s_id.eq(hd_cmd.r_data[89:105]), s_irq.eq(hd_cmd.r_data[105]),
                s_pidx.eq(0),
                s_words.eq((((hd_cmd.r_data[:2] + hd_cmd.r_data[64:89] + 3) >> 2) + N - 1) >> LOGN),
            ]
        to_boundary = mps_bytes - (s_addr[:13] & (mps_bytes - 1))
        n_bytes = Signal(13)
        m.d.comb += n_bytes.eq(Mux(s_rem < to_boundary, s_rem, to_boundary))
        s_bad = s_rem == 0                  # a bad descriptor: no TLP, just a result
        a_off = s_addr[:2]
        end_off = (a_off + n_bytes - 1)[:2]     # byte lane of the last byte in its dword
        t_dw = Signal(11)
        m.d.comb += t_dw.eq((a_off + n_bytes + 3) >> 2)
        fbe = Signal(4)
        lbe = Signal(4)
        with m.Switch(a_off):
            for k in range(4):
                with m.Case(k):
                    m.d.comb += fbe.eq((0xF << k) & 0xF)
        with m.Switch(end_off):
            for k in range(4):
                with m.Case(k):
                    m.d.comb += lbe.eq(0xF >> (3 - k))
        t_last = s_bad | (s_rem == n_bytes)
        entry = {
            "addr": s_addr, "dw": t_dw, "fbe": Mux(t_dw == 1, fbe & lbe, fbe),
            "lbe": Mux(t_dw == 1, 0, lbe), "pidx": s_pidx, "words": s_words,
            "last": t_last, "id": s_id, "irq": s_irq, "bad": s_bad,
        }
        m.d.comb += tlpq.w_data.eq(Cat(*(entry[name] for name, _ in tlp_fields)))
        push = s_active & tlpq.w_rdy
        m.d.comb += tlpq.w_en.eq(push)
        with m.If(push):
            m.d.sync += [s_addr.eq(s_addr + n_bytes), s_rem.eq(s_rem - n_bytes),
                         s_pidx.eq(s_pidx + t_dw)]
            with m.If(t_last):
                m.d.sync += s_active.eq(0)

        # ------------------------------------------------------------------
        # Packer: headers and payload words into RQ beats.
        # ------------------------------------------------------------------
        t = {}
        pos = 0
        for name, width in tlp_fields:
            t[name] = tlpq.r_data[pos:pos + width]
            pos += width

        p_active = Signal()                 # a TLP is being sent
        p_beat = Signal(range((4 + 1024) // N + 2))
        p_beats = Signal(range((4 + 1024) // N + 2))
        p_hdr = Signal(128)
        p_dw = Signal(11)
        p_pidx = Signal(24)
        p_fbe, p_lbe = Signal(4), Signal(4)
        p_last, p_id, p_irq = Signal(), Signal(16), Signal()
        p_words = Signal(24)

        # Payload words of the current descriptor: w0 is word `w_idx`, w1 the next.
        w0, w1 = Signal(W), Signal(W)
        w0_ok, w1_ok = Signal(), Signal()
        w_idx = Signal(24)

        # The beat now: which payload dwords it carries.
        j0 = p_beat * N                     # packet dword index of lane 0
        lane0 = Signal(range(N + 1))        # first payload lane in this beat
        with m.If(j0 >= 4):
            m.d.comb += lane0.eq(0)
        with m.Else():
            m.d.comb += lane0.eq(Mux(4 - j0 >= N, N, 4 - j0))
        f = Signal(24)                      # payload dword (in the descriptor) of lane0
        m.d.comb += f.eq(p_pidx + j0 + lane0 - 4)
        left = Signal(12)                   # payload dwords of this TLP from f on
        m.d.comb += left.eq(p_dw + 4 - j0 - lane0)
        count = Signal(range(N + 1))        # payload dwords in this beat
        m.d.comb += count.eq(Mux(lane0 == N, 0, Mux(left < N - lane0, left, N - lane0)))
        e = f[:LOGN] if LOGN else Const(0, 1)
        need_w0 = count != 0
        need_w1 = (e + count) > N
        word_ok = (~need_w0 | (w0_ok & (w_idx == (f >> LOGN)))) & (~need_w1 | w1_ok)

        is_last_beat = p_beat == p_beats - 1
        beat_ok = p_active & word_ok & (self.bus_master | (p_beat != 0))
        fire = Signal()
        m.d.comb += fire.eq(beat_ok & self.rq_tready)

        # Output lanes: header dwords, else the rotated payload window.
        ext = Cat(Const(0, 128), w0, w1)
        amount = Signal(range(2 * N + 5))
        m.d.comb += amount.eq(e + 4 - lane0)
        window_out = ext.bit_select(amount * 32, W)
        lanes = []
        for lane in range(N):
            v = Signal(32, name=f"rq_lane{lane}")
            m.d.comb += v.eq(window_out.word_select(lane, 32))
            for beat in range(2):
                j = beat * N + lane
                if j < 4:
                    with m.If(p_beat == beat):
                        m.d.comb += v.eq(p_hdr.word_select(j, 32))
            lanes.append(v)
        total_dw = p_dw + 4
        last_lanes = ((total_dw - 1) & (N - 1)) + 1
        keep = Signal(N)
        with m.If(is_last_beat):
            for k in range(1, N + 1):
                with m.If(last_lanes == k):
                    m.d.comb += keep.eq((1 << k) - 1)
        with m.Else():
            m.d.comb += keep.eq((1 << N) - 1)
        m.d.comb += [
            self.rq_tdata.eq(Cat(*lanes)), self.rq_tkeep.eq(keep),
            self.rq_tlast.eq(is_last_beat), self.rq_tvalid.eq(beat_ok),
        ]
        sop = p_beat == 0
        if W == 512:
            eop_ptr = Signal(4)
            for k in range(N):
                with m.If(keep[k]):
                    m.d.comb += eop_ptr.eq(k)
            m.d.comb += [
                self.rq_tuser[0:4].eq(Mux(sop, p_fbe, 0)),
                self.rq_tuser[8:12].eq(Mux(sop, p_lbe, 0)),
                self.rq_tuser[20].eq(sop),
                self.rq_tuser[26].eq(is_last_beat),
                self.rq_tuser[28:32].eq(eop_ptr),
            ]
        else:
            m.d.comb += [
                self.rq_tuser[0:4].eq(Mux(sop, p_fbe, 0)),
                self.rq_tuser[4:8].eq(Mux(sop, p_lbe, 0)),
            ]

        # Payload words: w0 drops once the beats are past it; w0 and w1 are
        # filled from the payload queue, never beyond the descriptor's words.
        consumed = Signal()                 # this beat used the last dword of w0
        m.d.comb += consumed.eq(fire & need_w0 & ((e + count) >= N))
        desc_end = fire & is_last_beat & p_last
        w_loaded = Signal(24)               # words taken from the queue for this descriptor
        can_load = p_active & (w_loaded < p_words) & pay.r_rdy
        m.d.comb += pay.r_en.eq(0)
        with m.If(desc_end):
            m.d.sync += [w0_ok.eq(0), w1_ok.eq(0), w_idx.eq(0), w_loaded.eq(0)]
        with m.Elif(consumed | (need_w0 & w0_ok & (w_idx < (f >> LOGN)) & p_active)):
            # Move on by a word and refill in the same cycle, so that a beat
            # can go every cycle.
            m.d.sync += [w0.eq(w1), w0_ok.eq(w1_ok), w1_ok.eq(0), w_idx.eq(w_idx + 1)]
            with m.If(can_load):
                m.d.comb += pay.r_en.eq(1)
                m.d.sync += w_loaded.eq(w_loaded + 1)
                with m.If(w1_ok):
                    m.d.sync += [w1.eq(pay.r_data), w1_ok.eq(1)]
                with m.Else():
                    m.d.sync += [w0.eq(pay.r_data), w0_ok.eq(1)]
        with m.Elif(~w0_ok & can_load):
            m.d.comb += pay.r_en.eq(1)
            m.d.sync += [w0.eq(pay.r_data), w0_ok.eq(1), w_loaded.eq(w_loaded + 1)]
        with m.Elif(~w1_ok & can_load):
            m.d.comb += pay.r_en.eq(1)
            m.d.sync += [w1.eq(pay.r_data), w1_ok.eq(1), w_loaded.eq(w_loaded + 1)]

        # Load the next TLP.
        take = ~p_active | (fire & is_last_beat)
        # A refused descriptor ends at once; not in the cycle another ends.
        m.d.comb += tlpq.r_en.eq(take & tlpq.r_rdy & ~(t["bad"] & (desc_end | ~res_q.w_rdy)))
        hdr = Cat(
            Const(0, 2), t["addr"][2:64],
            t["dw"], Const(ReqType.MEM_WRITE, 4), Const(0, 1), Const(0, 16),
            Const(0, 8), Const(0, 16), Const(0, 1), Const(0, 3), Const(0, 3), Const(0, 1),
        )
        with m.If(take):
            m.d.sync += p_active.eq(0)
            with m.If(tlpq.r_en & ~t["bad"]):
                m.d.sync += [
                    p_active.eq(1), p_beat.eq(0),
                    p_beats.eq((t["dw"] + 4 + N - 1) >> LOGN),
                    p_hdr.eq(hdr), p_dw.eq(t["dw"]), p_pidx.eq(t["pidx"]),
                    p_fbe.eq(t["fbe"]), p_lbe.eq(t["lbe"]), p_last.eq(t["last"]),
                    p_id.eq(t["id"]), p_irq.eq(t["irq"]), p_words.eq(t["words"]),
                ]
        with m.Elif(fire):
            m.d.sync += p_beat.eq(p_beat + 1)

        # Results: a descriptor ends when its last TLP has been sent, or at
        # once when it was refused.
        m.d.comb += [
            res_q.w_en.eq((tlpq.r_en & t["bad"]) | desc_end),
            res_q.w_data.eq(Mux(tlpq.r_en & t["bad"],
                                Cat(t["id"], Const(DmaStatus.BAD_DESCRIPTOR, 4), t["irq"]),
                                Cat(p_id, Const(DmaStatus.OK, 4), p_irq))),
            self.res_valid.eq(res_q.r_rdy),
            self.res_id.eq(res_q.r_data[:16]),
            self.res_status.eq(res_q.r_data[16:20]),
            self.res_irq.eq(res_q.r_data[20]),
            res_q.r_en.eq(1),
        ]
        m.d.comb += self.busy.eq(rd_cmd.r_rdy | hd_cmd.r_rdy | r_active | s_active
                                 | tlpq.r_rdy | p_active | inflight | pay.r_rdy)
        return m
