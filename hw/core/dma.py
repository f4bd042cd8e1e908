"""The DMA engine: the requester side of the endpoint (UltraScale+ RQ/RC).

Moves data between BAR2's memory and any bus address: a peer's BAR, or
host memory: BAR2 -> bus as Memory Write TLPs, bus -> BAR2 as Memory Read
TLPs whose completions are written into BAR2.

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

Read direction, for a descriptor (bus address A, local offset L, length):

* Reads split at MRRS-aligned bus addresses (none crosses 4 KiB), each
  with a free tag. The tag table keeps, per tag, the BAR2 offset that
  the request's 4 KiB bus page maps to, so a completion's 12-bit Lower
  Address gives its place in BAR2 directly, whatever the order and split
  of the completions.
* A completion is the last of its request when its Byte Count is the
  number of bytes it carries, or when its status is not Successful.
* A completion the hard IP discontinues (corrupt payload in its buffer)
  ends its request POISONED; its tag rests as after a timeout.
* Completion timeout: a scanner visits one tag a cycle. A request still
  outstanding `timeout` cycles after it was sent ends with TIMEOUT, and
  its tag rests for another `timeout` before reuse, so a late completion
  finds it unused and is ignored instead of landing in a newer request.
* The receiver writes N-dword windows of BAR2: each window is a fixed
  byte offset into the completion's beats (the previous beat and the
  current one), so one window is written per beat; the window left over
  at the end of a completion is written while the next one's first beat
  arrives.

Descriptors end in the order they were queued: each has a slot (16) that
records its direction, its outstanding reads and how it ended. A write
descriptor ends when the hard IP reports, on pcie_rq_seq_num, that its
last packet has entered the transmit pipeline: its interrupt and its
result can then not overtake its data.

Abort (`abort`, a strobe): every descriptor in a slot, and every one
offered with `desc_abort`, ends ABORTED, in order. While `aborting`:

* No new packet starts: the splitter and the requester stop and their
  queues empty. A packet already shown on RQ goes out whole (a write's
  payload still comes from the reader); one not shown yet is dropped.
  Then the reader stops and the payload queue empties.
* Reads still outstanding end as after a completion timeout: their tags
  rest, so a late completion finds them unused and is ignored; data of a
  completion under way is no longer written to BAR2.
* The slots end once the last packet is out and the hard IP has reported
  every write packet handed to it: nothing more goes to the bus for them,
  a completion the endpoint sends later cannot pass their data, and no
  late report marks a reused slot. Descriptors offered without
  `desc_abort` wait until the abort is over.
"""

from amaranth.hdl import Cat, Const, Module, Mux, ResetInserter, Signal
from amaranth.lib import data, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from hw.core import layouts
from hw.spec import regmap
from hw.spec.usp import CplStatus, RcErrorCode, ReqType, sideband

DmaStatus = regmap.DmaStatus
# RQ sequence numbers: a write packet carries SEQ_WRITE | slot, plus SEQ_LAST
# if it is the last of its descriptor; a read carries 0.
SEQ_WRITE = 0x20
SEQ_LAST = 0x10


def _log2(x):
    return x.bit_length() - 1


def _first_be(offset):
    """First dword byte enables for a first byte at `offset` (0..3) in it."""
    return Mux(offset == 0, 0xF, Mux(offset == 1, 0xE, Mux(offset == 2, 0xC, 0x8)))


def _last_be(offset):
    """Last dword byte enables for a last byte at `offset` (0..3) in it."""
    return Mux(offset == 0, 0x1, Mux(offset == 1, 0x3, Mux(offset == 2, 0x7, 0xF)))


def _rq_tuser(width, sop, eop, keep, first_be, last_be, seq):
    """RQ tuser: byte enables and sequence number; at 512 bits, is_sop/is_eop too."""
    n = width // 32
    sb = sideband(width)
    fbe = Mux(sop, first_be, 0)
    lbe = Mux(sop, last_be, 0)
    parts = {sb.rq_first_be: fbe, sb.rq_last_be: lbe}
    if width != 512:
        parts[sb.rq_seq_num] = seq[:4]
        parts[sb.rq_seq_num_hi] = seq[4:6]
    else:
        eop_ptr = Const(0, 4)
        for k in range(n):
            eop_ptr = Mux(keep[k], k, eop_ptr)
        parts.update({sb.rq_seq_num: seq, sb.rq_is_sop: sop, sb.rq_is_eop: eop,
                      sb.rq_eop_ptr: eop_ptr})
    out, pos = [], 0
    for lsb in sorted(parts):
        out += [Const(0, lsb - pos), parts[lsb]]
        pos = lsb + len(parts[lsb])
    return Cat(*out)


def _mux_index(values, index):
    """values[index] for a Python list of equal-width values."""
    out = values[0]
    for k, v in enumerate(values[1:], 1):
        out = Mux(index == k, v, out)
    return out


def dma_signature(data_width, local_bits, row_bits):
    n = data_width // 32
    sb = sideband(data_width)
    return wiring.Signature({
        # Descriptors, from the register block.
        "desc_valid": In(1), "desc_ready": Out(1),
        "desc_local": In(local_bits), "desc_bus": In(64), "desc_length": In(25),
        "desc_from_bus": In(1), "desc_irq": In(1), "desc_id": In(16), "desc_vector": In(2),
        "desc_abort": In(1),               # the offered descriptor ends ABORTED, moving nothing
        # Abort: every descriptor queued or moving ends ABORTED (module docstring).
        "abort": In(1), "aborting": Out(1),
        # Results, one per descriptor, in order.
        "res_valid": Out(1), "res_id": Out(16), "res_status": Out(4), "res_irq": Out(1),
        "res_vector": Out(2),
        # BAR2 bank reads: rows for every bank; data one cycle after a grant.
        "rd_want": Out(1), "rd_grant": In(1),
        "rd_row": Out(row_bits * n), "rd_data": In(data_width),
        # BAR2 bank writes (completion data): one cycle, unless `wr_busy`.
        "wr_en": Out(4 * n), "wr_row": Out(row_bits * n), "wr_data": Out(data_width),
        "wr_busy": In(1),
        # Requester Completion stream from the hard IP.
        "rc_tdata": In(data_width), "rc_tkeep": In(n), "rc_tlast": In(1),
        "rc_tuser": In(sb.rc_user), "rc_tvalid": In(1), "rc_tready": Out(1),
        # Requester reQuest stream to the hard IP.
        "rq_tdata": Out(data_width), "rq_tkeep": Out(n), "rq_tlast": Out(1),
        "rq_tuser": Out(sb.rq_user), "rq_tvalid": Out(1), "rq_tready": In(1),
        # Sequence numbers the hard IP reports for RQ packets it has sent.
        "rq_seq_num0": In(6), "rq_seq_vld0": In(1), "rq_seq_num1": In(6), "rq_seq_vld1": In(1),
        # Configuration.
        "max_payload": In(3), "max_read_req": In(3), "bus_master": In(1),
        "timeout": In(32),                 # completion timeout, clock cycles
        "ext_tags": In(1),                 # Extended Tag Field Enable: 256 tags, else 32
        "busy": Out(1),
        "reads_out": Out(9),               # read requests outstanding
    })


class DmaEngine(wiring.Component):
    def __init__(self, data_width, bar2_size, cpl_buffer=32768):
        # cpl_buffer: bytes of completion data the hard IP can hold (PG213
        # gives 32 KiB); outstanding reads never ask for more.
        self.cpl_credits = cpl_buffer // 16
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
        # Slots: one per queued descriptor, ended in order.
        # ------------------------------------------------------------------
        SLOTS = regmap.DMA_QUEUE_DEPTH
        acc_seq = Signal(8)                # descriptors accepted
        ret_seq = Signal(8)                # descriptors ended
        slot_id = [Signal(16, name=f"slot{k}_id") for k in range(SLOTS)]
        slot_irq = [Signal(name=f"slot{k}_irq") for k in range(SLOTS)]
        slot_vector = [Signal(2, name=f"slot{k}_vector") for k in range(SLOTS)]
        slot_status = [Signal(4, name=f"slot{k}_status") for k in range(SLOTS)]
        slot_read = [Signal(name=f"slot{k}_read") for k in range(SLOTS)]
        slot_sent = [Signal(name=f"slot{k}_sent") for k in range(SLOTS)]   # all TLPs out
        slot_reads = [Signal(range(257), name=f"slot{k}_reads") for k in range(SLOTS)]
        # Events from the paths below.
        rd_issue = Signal()                # a read request went out
        rd_issue_slot = Signal(4)
        rd_issued_all = Signal()           # ... and it was the descriptor's last
        rd_end = Signal()                  # a read request ended (last completion or error)
        rd_end_slot = Signal(4)
        rd_error = Signal(4)               # DmaStatus of that end
        # Abort.
        aborting = Signal()
        drained = Signal()                 # nothing of the aborted descriptors moves any more
        w_stop = Signal()                  # aborting, no write packet under way: reader stops

        # ------------------------------------------------------------------
        # Planner: checks a descriptor and hands it to the write path (reader
        # and TLP splitter, each through its own small queue) or the read path.
        # ------------------------------------------------------------------
        rd_cmd = SyncFIFO(width=DW_BITS + 2 + 24, depth=2)      # dword start, shift, words
        hd_cmd = SyncFIFO(width=64 + 25 + 4, depth=2)           # bus, length, slot
        rq_cmd = SyncFIFO(width=64 + 25 + LB + 4, depth=2)      # bus, length, local, slot
        # An abort empties them (the reader's once no write packet needs it).
        m.submodules.rd_cmd = ResetInserter(w_stop)(rd_cmd)
        m.submodules.hd_cmd = ResetInserter(aborting)(hd_cmd)
        m.submodules.rq_cmd = ResetInserter(aborting)(rq_cmd)

        length = self.desc_length
        bad = (length == 0) | (length > regmap.DMA_MAX_LENGTH)
        is_read = self.desc_from_bus
        a_lo = self.desc_bus[:2]
        start = Signal(LB)                 # first byte of the continuous payload region
        m.d.comb += start.eq(self.desc_local - a_lo)
        payload_dw = Signal(24)            # dwords in all the TLPs of the descriptor
        m.d.comb += payload_dw.eq((a_lo + length + 3) >> 2)
        words = Signal(24)
        m.d.comb += words.eq((payload_dw + N - 1) >> LOGN)

        slot = acc_seq[:4]
        accept = Signal()
        halt = self.desc_abort | self.abort     # ends ABORTED, moving nothing
        moves = ~bad & ~halt
        m.d.comb += [
            accept.eq(self.desc_valid & ((acc_seq - ret_seq)[:8] < SLOTS)
                      & (halt | (~aborting & rd_cmd.w_rdy & hd_cmd.w_rdy & rq_cmd.w_rdy))),
            self.desc_ready.eq(accept),
            rd_cmd.w_data.eq(Cat(start[2:], start[:2], words)),
            rd_cmd.w_en.eq(accept & moves & ~is_read),
            hd_cmd.w_data.eq(Cat(self.desc_bus, length, slot)),
            hd_cmd.w_en.eq(accept & moves & ~is_read),
            rq_cmd.w_data.eq(Cat(self.desc_bus, length, self.desc_local, slot)),
            rq_cmd.w_en.eq(accept & moves & is_read),
        ]
        def seq_done(k):
            # The hard IP reports the last packet of the write descriptor in slot k.
            return ((self.rq_seq_vld0 & (self.rq_seq_num0 == (SEQ_WRITE | SEQ_LAST | k))) |
                    (self.rq_seq_vld1 & (self.rq_seq_num1 == (SEQ_WRITE | SEQ_LAST | k))))

        for k in range(SLOTS):
            here = lambda sig, k=k: sig == k
            with m.If(accept & here(slot)):
                m.d.sync += [
                    slot_id[k].eq(self.desc_id), slot_irq[k].eq(self.desc_irq),
                    slot_vector[k].eq(self.desc_vector),
                    slot_status[k].eq(Mux(halt, DmaStatus.ABORTED,
                                          Mux(bad, DmaStatus.BAD_DESCRIPTOR, DmaStatus.OK))),
                    slot_read[k].eq(is_read & moves), slot_sent[k].eq(~moves),
                ]
            with m.Else():
                # A write descriptor has gone when the hard IP reports the
                # sequence number of its last packet.
                with m.If(seq_done(k) | (rd_issue & rd_issued_all & here(rd_issue_slot))):
                    m.d.sync += slot_sent[k].eq(1)
                with m.If(rd_end & here(rd_end_slot) & (rd_error != DmaStatus.OK)
                          & (slot_status[k] == DmaStatus.OK)):
                    m.d.sync += slot_status[k].eq(rd_error)
                with m.If(self.abort):
                    m.d.sync += slot_status[k].eq(DmaStatus.ABORTED)
            inc = rd_issue & here(rd_issue_slot)
            dec = rd_end & here(rd_end_slot)
            with m.If(accept & here(slot)):
                m.d.sync += slot_reads[k].eq(0)
            with m.Elif(inc & ~dec):
                m.d.sync += slot_reads[k].eq(slot_reads[k] + 1)
            with m.Elif(dec & ~inc):
                m.d.sync += slot_reads[k].eq(slot_reads[k] - 1)
        m.d.sync += acc_seq.eq(acc_seq + accept)

        # Results: the oldest descriptor ends once all its TLPs are out and,
        # for reads, all its requests have ended; while aborting, once drained.
        head = ret_seq[:4]
        head_done = Signal()
        head_id, head_status, head_irq, head_vector = Signal(16), Signal(4), Signal(), Signal(2)
        with m.Switch(head):
            for k in range(SLOTS):
                with m.Case(k):
                    m.d.comb += [
                        head_done.eq(slot_sent[k] & (slot_reads[k] == 0)),
                        head_id.eq(slot_id[k]), head_status.eq(slot_status[k]),
                        head_irq.eq(slot_irq[k]), head_vector.eq(slot_vector[k]),
                    ]
        ending = (head_done | (aborting & drained)) & (ret_seq != acc_seq)
        m.d.sync += ret_seq.eq(ret_seq + ending)
        with m.If(self.abort):
            m.d.sync += aborting.eq(1)
        with m.Elif(drained & (ret_seq == acc_seq)):
            m.d.sync += aborting.eq(0)
        m.d.comb += self.aborting.eq(aborting)
        m.d.comb += [
            self.res_valid.eq(ending), self.res_id.eq(head_id),
            self.res_status.eq(head_status), self.res_irq.eq(head_irq),
            self.res_vector.eq(head_vector),
        ]

        # ------------------------------------------------------------------
        # Reader: one window of N dwords a cycle, granted by the arbiter.
        # ------------------------------------------------------------------
        r_active = Signal()
        r_dw = Signal(DW_BITS)             # dword address of the next window
        r_left = Signal(25)                # windows still to read (words + 1)
        r_shift = Signal(2)
        r_first = Signal()
        pay = SyncFIFO(width=W, depth=4)
        m.submodules.pay = ResetInserter(w_stop)(pay)
        inflight = Signal()                # a window read last cycle
        in_first = Signal()
        in_shift = Signal(2)
        in_rot = Signal(max(LOGN, 1))

        room = pay.level + inflight < 3
        m.d.comb += self.rd_want.eq(r_active & room & ~w_stop)
        rows = []
        for b in range(N):
            rot = r_dw[:LOGN] if LOGN else Const(0, 1)
            rows.append((r_dw[LOGN:] + (Const(b, LOGN + 1) < rot))[:self.row_bits])
        m.d.comb += self.rd_row.eq(Cat(*rows))

        load_rd = ~r_active & rd_cmd.r_rdy & ~w_stop
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
        with m.If(w_stop):
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
                      ("words", 24), ("last", 1), ("slot", 4)]
        tlpq = SyncFIFO(width=sum(w for _, w in tlp_fields), depth=4)
        m.submodules.tlpq = ResetInserter(aborting)(tlpq)

        s_active = Signal()
        s_addr = Signal(64)
        s_rem = Signal(25)
        s_pidx = Signal(24)
        s_words = Signal(24)               # payload words of the descriptor
        s_slot = Signal(4)
        load_hd = ~s_active & hd_cmd.r_rdy & ~aborting
        m.d.comb += hd_cmd.r_en.eq(load_hd)
        with m.If(load_hd):
            m.d.sync += [
                s_active.eq(1), s_addr.eq(hd_cmd.r_data[:64]), s_rem.eq(hd_cmd.r_data[64:89]),
                s_slot.eq(hd_cmd.r_data[89:93]),
                s_pidx.eq(0),
                s_words.eq((((hd_cmd.r_data[:2] + hd_cmd.r_data[64:89] + 3) >> 2) + N - 1) >> LOGN),
            ]
        to_boundary = mps_bytes - (s_addr[:13] & (mps_bytes - 1))
        n_bytes = Signal(13)
        m.d.comb += n_bytes.eq(Mux(s_rem < to_boundary, s_rem, to_boundary))
        a_off = s_addr[:2]
        end_off = (a_off + n_bytes - 1)[:2]     # byte lane of the last byte in its dword
        t_dw = Signal(11)
        m.d.comb += t_dw.eq((a_off + n_bytes + 3) >> 2)
        fbe = Signal(4)
        lbe = Signal(4)
        m.d.comb += [fbe.eq(_first_be(a_off)), lbe.eq(_last_be(end_off))]
        t_last = s_rem == n_bytes
        entry = {
            "addr": s_addr, "dw": t_dw, "fbe": Mux(t_dw == 1, fbe & lbe, fbe),
            "lbe": Mux(t_dw == 1, 0, lbe), "pidx": s_pidx, "words": s_words,
            "last": t_last, "slot": s_slot,
        }
        m.d.comb += tlpq.w_data.eq(Cat(*(entry[name] for name, _ in tlp_fields)))
        push = s_active & tlpq.w_rdy
        m.d.comb += tlpq.w_en.eq(push)
        with m.If(push):
            m.d.sync += [s_addr.eq(s_addr + n_bytes), s_rem.eq(s_rem - n_bytes),
                         s_pidx.eq(s_pidx + t_dw)]
            with m.If(t_last):
                m.d.sync += s_active.eq(0)
        with m.If(aborting):
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
        p_last, p_slot = Signal(), Signal(4)
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
        # An abort drops the packet if its first beat is not on RQ yet.
        pk_shown = Signal()                 # the beat was offered last cycle, not taken
        pk_cut = Signal()
        m.d.comb += pk_cut.eq(aborting & p_active & (p_beat == 0) & ~pk_shown)
        beat_ok = p_active & word_ok & (self.bus_master | (p_beat != 0)) & ~pk_cut
        fire = Signal()
        pk_ready = Signal()                 # the RQ arbiter takes the packer's beat
        m.d.comb += fire.eq(beat_ok & pk_ready)
        pk = {"tdata": Signal(W, name="pk_tdata"), "tkeep": Signal(N, name="pk_tkeep"),
              "tlast": Signal(name="pk_tlast"), "tuser": Signal(len(self.rq_tuser), name="pk_tuser")}

        # Output lanes: header dwords, else the rotated payload window.
        ext = Cat(Const(0, 128), w0, w1)
        amount = Signal(range(2 * N + 5))
        m.d.comb += amount.eq(e + 4 - lane0)
        window_out = ext.bit_select(amount * 32, W)
        lanes = layouts.header_over_lanes(m, "rq_lane", window_out, p_hdr, p_beat, 4, N)
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
            pk["tdata"].eq(Cat(*lanes)), pk["tkeep"].eq(keep), pk["tlast"].eq(is_last_beat),
        ]
        seq = Cat(p_slot, p_last, Const(1, 1))     # SEQ_WRITE | (SEQ_LAST) | slot
        m.d.comb += pk["tuser"].eq(_rq_tuser(W, p_beat == 0, is_last_beat, keep, p_fbe, p_lbe,
                                             seq))

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
        m.d.comb += w_stop.eq(aborting & ~p_active)
        with m.If(w_stop):
            m.d.sync += [w0_ok.eq(0), w1_ok.eq(0), w_idx.eq(0), w_loaded.eq(0)]

        # Load the next TLP.
        take = ~p_active | (fire & is_last_beat)
        m.d.comb += tlpq.r_en.eq(take & tlpq.r_rdy & ~aborting)
        hdr = Cat(
            Const(0, 2), t["addr"][2:64],
            t["dw"], Const(ReqType.MEM_WRITE, 4), Const(0, 1), Const(0, 16),
            Const(0, 8), Const(0, 16), Const(0, 1), Const(0, 3), Const(0, 3), Const(0, 1),
        )
        with m.If(take):
            m.d.sync += p_active.eq(0)
            with m.If(tlpq.r_en):
                m.d.sync += [
                    p_active.eq(1), p_beat.eq(0),
                    p_beats.eq((t["dw"] + 4 + N - 1) >> LOGN),
                    p_hdr.eq(hdr), p_dw.eq(t["dw"]), p_pidx.eq(t["pidx"]),
                    p_fbe.eq(t["fbe"]), p_lbe.eq(t["lbe"]), p_last.eq(t["last"]),
                    p_slot.eq(t["slot"]), p_words.eq(t["words"]),
                ]
        with m.Elif(fire):
            m.d.sync += p_beat.eq(p_beat + 1)
        with m.If(pk_cut):
            m.d.sync += p_active.eq(0)

        rr_idle = Signal()
        rq_busy = self._read_path(m, rq_cmd, pk, beat_ok, pk_ready, p_active & (p_beat != 0),
                                  rd_issue, rd_issue_slot, rd_issued_all,
                                  rd_end, rd_end_slot, rd_error, aborting, pk_shown, rr_idle)

        # Write packets handed to the hard IP that it has not reported on
        # pcie_rq_seq_num yet (once reported, a completion the endpoint sends
        # later cannot pass them). Nothing goes out while bus mastering is
        # off (the hard IP drops what it still has): none is awaited then.
        unreported = Signal(8)
        handed = Signal(9)
        reports = ((self.rq_seq_vld0 & self.rq_seq_num0[5]) +
                   (self.rq_seq_vld1 & self.rq_seq_num1[5]))
        m.d.comb += handed.eq(unreported + (fire & is_last_beat))
        with m.If(~self.bus_master | (handed < reports)):
            m.d.sync += unreported.eq(0)
        with m.Else():
            m.d.sync += unreported.eq(handed - reports)
        m.d.comb += drained.eq(~p_active & rr_idle & (unreported == 0))

        m.d.comb += self.busy.eq((acc_seq != ret_seq) | rq_busy)
        return m

    # ----------------------------------------------------------------------
    # Read direction
    # ----------------------------------------------------------------------

    def _read_path(self, m, rq_cmd, pk, pk_valid, pk_ready, pk_mid,
                   rd_issue, rd_issue_slot, rd_issued_all, rd_end, rd_end_slot, rd_error,
                   aborting, pk_shown, rr_idle):
        """Read requester, RQ arbiter and completion receiver. Returns `busy`;
        drives `pk_shown` (the packer's beat waits on RQ) and `rr_idle`."""
        N, W = self.n, self.width
        LOGN = _log2(N)
        LB = self.local_bits
        WB = W // 8
        TAGS, LOW = 256, 32                # 8-bit tags; 5-bit ones without extended tags
        TB = 8
        CB = 10                            # credit count bits of one request (<= 256)

        # Free tags in two pools, filled at reset: tags below 32 are legal
        # always, the others only while Extended Tag Field Enable is set.
        m.submodules.tags_lo = tags_lo = SyncFIFO(width=TB, depth=LOW)
        m.submodules.tags_hi = tags_hi = SyncFIFO(width=TB, depth=TAGS - LOW)
        init = Signal(range(TAGS + 1))
        init_done = init == TAGS
        free = Signal()
        free_tag = Signal(TB)
        push_tag = Mux(init_done, free_tag, init[:TB])
        push = ~init_done | free
        m.d.comb += [
            tags_lo.w_data.eq(push_tag), tags_lo.w_en.eq(push & (push_tag < LOW)),
            tags_hi.w_data.eq(push_tag), tags_hi.w_en.eq(push & (push_tag >= LOW)),
        ]
        with m.If(~init_done):
            m.d.sync += init.eq(init + 1)
        use_hi = ~tags_lo.r_rdy & self.ext_tags
        tag_ready = tags_lo.r_rdy | (use_hi & tags_hi.r_rdy)
        tag = Signal(TB)
        m.d.comb += tag.eq(Mux(tags_lo.r_rdy, tags_lo.r_data, tags_hi.r_data))

        # Per tag: the BAR2 offset its bus page maps to, its slot, the
        # completion credits it reserved and when it was sent. Read at the
        # completion's tag and at the timeout scanner's.
        info_fields = [("lbase", LB), ("slot", 4), ("credits", CB), ("time", 32)]
        m.submodules.tag_info = tag_info = Memory(
            shape=sum(w for _, w in info_fields), depth=TAGS, init=[])
        info_w = tag_info.write_port()
        info_cpl = tag_info.read_port(domain="comb")
        info_scan = tag_info.read_port(domain="comb")

        def fields(port):
            out, pos = {}, 0
            for name, width in info_fields:
                out[name] = port.data[pos:pos + width]
                pos += width
            return out

        tag_out = Signal(TAGS)             # outstanding
        tag_rest = Signal(TAGS)            # timed out, resting
        now_cycle = Signal(32)
        m.d.sync += now_cycle.eq(now_cycle + 1)
        # Completion credits (16 bytes each) reserved by outstanding reads:
        # never more than the hard IP's completion buffer holds, so that a
        # read never waits inside the hard IP and holds up the writes behind it.
        credits = Signal(range(self.cpl_credits + 257))
        outstanding = Signal(range(TAGS + 1))

        # Requester: one Memory Read per MRRS-aligned piece.
        q_active = Signal()
        q_addr = Signal(64)
        q_rem = Signal(25)
        q_local = Signal(LB)
        q_slot = Signal(4)
        load = ~q_active & rq_cmd.r_rdy & ~aborting
        m.d.comb += rq_cmd.r_en.eq(load)
        with m.If(load):
            m.d.sync += [q_active.eq(1), q_addr.eq(rq_cmd.r_data[:64]),
                         q_rem.eq(rq_cmd.r_data[64:89]), q_local.eq(rq_cmd.r_data[89:89 + LB]),
                         q_slot.eq(rq_cmd.r_data[89 + LB:93 + LB])]
        mrrs = Signal(13)
        m.d.comb += mrrs.eq(_mux_index([Const(128 << k, 13) for k in range(6)], self.max_read_req))
        to_boundary = mrrs - (q_addr[:13] & (mrrs - 1))
        n_bytes = Signal(13)
        m.d.comb += n_bytes.eq(Mux(q_rem < to_boundary, q_rem, to_boundary))
        a_off = q_addr[:2]
        q_dw = Signal(11)
        m.d.comb += q_dw.eq((a_off + n_bytes + 3) >> 2)
        fbe = _first_be(a_off)
        lbe = _last_be((a_off + n_bytes - 1)[:2])

        # The read request waiting for the RQ arbiter.
        rr_valid = Signal()
        rr_hdr = Signal(128)
        rr_fbe, rr_lbe = Signal(4), Signal(4)
        rr_beat = Signal()                 # second beat (64-bit interface)
        q_credits = Signal(CB)
        m.d.comb += q_credits.eq((q_dw + 3) >> 2)
        room = credits + q_credits <= self.cpl_credits
        issue = q_active & init_done & tag_ready & room & ~rr_valid & ~aborting
        m.d.comb += [
            tags_lo.r_en.eq(issue & tags_lo.r_rdy),
            tags_hi.r_en.eq(issue & ~tags_lo.r_rdy),
            rd_issue.eq(issue), rd_issue_slot.eq(q_slot), rd_issued_all.eq(q_rem == n_bytes),
            info_w.addr.eq(tag), info_w.en.eq(issue),
            info_w.data.eq(Cat((q_local - q_addr[:12])[:LB], q_slot, q_credits, now_cycle)),
        ]
        with m.If(issue):
            m.d.sync += [
                rr_valid.eq(1), rr_beat.eq(0),
                rr_hdr.eq(Cat(Const(0, 2), q_addr[2:64], q_dw, Const(ReqType.MEM_READ, 4),
                              Const(0, 17), tag, Const(0, 24))),
                rr_fbe.eq(Mux(q_dw == 1, fbe & lbe, fbe)), rr_lbe.eq(Mux(q_dw == 1, 0, lbe)),
                q_addr.eq(q_addr + n_bytes), q_local.eq(q_local + n_bytes),
                q_rem.eq(q_rem - n_bytes),
            ]
            with m.If(q_rem == n_bytes):
                m.d.sync += q_active.eq(0)
        with m.If(aborting):
            m.d.sync += q_active.eq(0)

        # RQ arbiter: a read request goes between two write TLPs; the choice
        # holds while a beat is offered and not taken.
        rr_beats = 1 if N >= 4 else 2
        rr_last = rr_beat == rr_beats - 1
        owner_rd = Signal()                # registered choice
        hold = Signal()                    # the beat offered last cycle was not taken
        # An abort drops the read request if it is not on RQ yet (its tag
        # rests with the others).
        rr_cut = aborting & rr_valid & ~rr_beat & ~(hold & owner_rd)
        rr_ok = rr_valid & (self.bus_master | rr_beat) & ~rr_cut
        sel_rd = Signal()
        with m.If(pk_mid):
            m.d.comb += sel_rd.eq(0)
        with m.Elif(rr_beat | hold):
            m.d.comb += sel_rd.eq(Mux(rr_beat, 1, owner_rd))
        with m.Else():
            m.d.comb += sel_rd.eq(rr_ok)
        rr_keep = Const((1 << min(4, N)) - 1, N)
        rr_data = rr_hdr.word_select(rr_beat, W) if N == 2 else rr_hdr
        tvalid = Mux(sel_rd, rr_ok, pk_valid)
        m.d.comb += [
            self.rq_tvalid.eq(tvalid),
            self.rq_tdata.eq(Mux(sel_rd, rr_data, pk["tdata"])),
            self.rq_tkeep.eq(Mux(sel_rd, rr_keep, pk["tkeep"])),
            self.rq_tlast.eq(Mux(sel_rd, rr_last, pk["tlast"])),
            self.rq_tuser.eq(Mux(sel_rd, _rq_tuser(W, ~rr_beat, rr_last, rr_keep, rr_fbe, rr_lbe,
                                                   Const(0, 6)),
                                 pk["tuser"])),
            pk_ready.eq(~sel_rd & self.rq_tready),
        ]
        m.d.sync += [owner_rd.eq(sel_rd), hold.eq(tvalid & ~self.rq_tready)]
        m.d.comb += pk_shown.eq(hold & ~owner_rd)
        with m.If(sel_rd & rr_ok & self.rq_tready):
            with m.If(rr_last):
                m.d.sync += [rr_valid.eq(0), rr_beat.eq(0)]
            with m.Else():
                m.d.sync += rr_beat.eq(1)
        with m.If(rr_cut):
            m.d.sync += rr_valid.eq(0)
        m.d.comb += rr_idle.eq(~rr_valid)

        # Completion receiver.
        busy = Signal()
        rc_fire = Signal()
        rc_beat = Signal(range(3))         # beat index in the completion, saturating
        rc_prev = Signal(W)
        m.d.comb += rc_fire.eq(self.rc_tvalid & self.rc_tready)
        hdr_beat = 0 if N >= 4 else 1      # the beat that completes the 3-dword descriptor
        d01 = Signal(64)
        if N >= 4:
            desc = self.rc_tdata[:96]
        else:
            desc = Cat(d01, self.rc_tdata[:32])
        with m.If(rc_fire & (rc_beat == 0)):
            m.d.sync += d01.eq(self.rc_tdata[:64])
        rc = data.View(layouts.RC_DESCRIPTOR, desc)
        tag_now = rc.tag[:TB]

        # Per completion, from its descriptor beat on.
        c_lo = Signal(range(4 * N + 8))    # first valid byte, from the start of window 0
        c_bytes = Signal(13)               # bytes to write
        c_d0 = Signal(LB - 2)              # BAR2 dword of window 0
        c_shift = Signal(range(WB))        # byte offset of window 0 in its first beat
        c_write = Signal()                 # data to write (successful, not poisoned)
        c_last = Signal()                  # the request's last completion
        c_slot = Signal(4)
        c_tag = Signal(TB)
        c_error = Signal(4)
        c_credits = Signal(CB)
        m.d.comb += info_cpl.addr.eq(tag_now)
        cpl_info = fields(info_cpl)
        lbase = cpl_info["lbase"]
        lp = Signal(LB)                    # BAR2 byte of payload byte 0
        m.d.comb += lp.eq(lbase + Cat(Const(0, 2), rc.lower_address[2:12]))
        carried = Signal(13)
        m.d.comb += carried.eq((rc.dw_count << 2) - rc.lower_address[:2])
        # The hard IP's error codes (PG213): MISMATCH and INVALID_TAG are not
        # completions of ours; TIMEOUT, its completion timeout fired.
        err = rc.error_code
        good = (rc.status == CplStatus.SC) & (err == RcErrorCode.NORMAL_TERMINATION) & ~rc.poisoned
        not_ours = ((err == RcErrorCode.MISMATCH) | (err == RcErrorCode.INVALID_TAG)
                    | ~tag_out.bit_select(tag_now, 1))
        # Discontinue, in a completion's last beat: the hard IP found its
        # data corrupt (PG213). The beats before it are already in BAR2, so
        # the request ends POISONED and its tag rests, as after a timeout,
        # so that the rest of its completions find it unused.
        discontinued = self.rc_tuser[sideband(W).rc_discontinue]
        # Window 0 starts at packet byte 12 - (lp mod 4): byte offset in its beat.
        now_shift = Signal(range(WB))
        m.d.comb += now_shift.eq((12 - lp[:2] - WB) if WB <= 12 else (12 - lp[:2]))
        now = {
            "lo": rc.lower_address[:2] + lp[:2],
            "bytes": Mux(rc.byte_count < carried, rc.byte_count, carried),
            "d0": lp[2:],
            "shift": now_shift,
            "write": good & ~not_ours & ~aborting,
            "ours": ~not_ours,
            "last": ~not_ours & ((rc.status != CplStatus.SC) | (err == RcErrorCode.TIMEOUT)
                                 | (rc.byte_count <= carried)),
            "slot": cpl_info["slot"], "tag": tag_now, "credits": cpl_info["credits"],
            "error": Mux(rc.status == CplStatus.UR, DmaStatus.UNSUPPORTED_REQUEST,
                     Mux(rc.status == CplStatus.CA, DmaStatus.COMPLETER_ABORT,
                     Mux(rc.status != CplStatus.SC, DmaStatus.BAD_COMPLETION,
                     Mux(err == RcErrorCode.TIMEOUT, DmaStatus.TIMEOUT,
                     Mux(rc.poisoned | (err == RcErrorCode.POISONED), DmaStatus.POISONED,
                     Mux(err != RcErrorCode.NORMAL_TERMINATION, DmaStatus.BAD_COMPLETION,
                         DmaStatus.OK)))))),
        }
        reg = {"lo": c_lo, "bytes": c_bytes, "d0": c_d0, "shift": c_shift, "write": c_write,
               "ours": Signal(), "last": c_last, "slot": c_slot, "tag": c_tag,
               "error": c_error, "credits": c_credits}
        at_hdr = rc_beat == hdr_beat
        # Values of the current completion: computed at its descriptor beat,
        # registered for the beats after it.
        cur = {k: Mux(at_hdr, now[k], reg[k]) for k in reg}
        with m.If(rc_fire & at_hdr):
            m.d.sync += [reg[k].eq(now[k]) for k in reg]
        with m.If(aborting):                # the rest of a completion under way is dropped
            m.d.sync += c_write.eq(0)
        kshift = 0 if WB > 12 else 1       # beats before the one window 0 starts in
        m.d.sync += rc_prev.eq(Mux(rc_fire, self.rc_tdata, rc_prev))
        with m.If(rc_fire):
            with m.If(self.rc_tlast):
                m.d.sync += rc_beat.eq(0)
            with m.Elif(rc_beat != 2):
                m.d.sync += rc_beat.eq(rc_beat + 1)

        # Window writes: window i when beat i + 1 + kshift arrives; the last
        # one, after the completion's last beat, waits in `pend`.
        win_idx = Signal(range((4 + 1024) // N + 4))
        pend = Signal()
        pend_data = Signal(W)
        pend_mask = Signal(WB)
        pend_d = Signal(LB - 2)
        pend_end = Signal()                # the request ends when `pend` is written
        pend_disc = Signal()               # ... discontinued: its tag rests
        pend_slot, pend_tag, pend_error = Signal(4), Signal(TB), Signal(4)
        pend_credits = Signal(CB)

        def window_mask(i):
            """Valid bytes of window i: [lo, lo + bytes) from window 0's start."""
            lo = cur["lo"] - WB * i
            hi = lo + cur["bytes"]
            ones = Const((1 << WB) - 1, WB)
            bits = _log2(WB) + 1
            below_hi = Mux(hi <= 0, 0, Mux(hi >= WB, ones,
                                            (ones >> (WB - hi).as_unsigned()[:bits])[:WB]))
            from_lo = Mux(lo <= 0, ones, Mux(lo >= WB, 0, (ones << lo.as_unsigned()[:bits])[:WB]))
            return below_hi & from_lo

        # Signed window arithmetic.
        i_s = Signal(range(-4, 2048))
        m.d.comb += i_s.eq(win_idx)
        # The window completed by this beat: beats (t - 1, t), t >= 1 + kshift.
        this_win = Signal(W)
        m.d.comb += this_win.eq(Cat(rc_prev, self.rc_tdata).bit_select(c_shift * 8, W))
        tail_win = Signal(W)
        m.d.comb += tail_win.eq(Cat(self.rc_tdata, Const(0, W)).bit_select(cur["shift"] * 8, W))
        beat_writes = Signal()
        m.d.comb += beat_writes.eq(rc_fire & (rc_beat >= 1 + kshift) & (rc_beat != 0))

        wmask = Signal(WB)
        m.d.comb += wmask.eq(window_mask(i_s))
        w_valid = Signal()
        w_data = Signal(W)
        w_mask = Signal(WB)
        w_d = Signal(LB - 2)
        # The beat's own window, else the pending one.
        with m.If(beat_writes):
            m.d.comb += [w_valid.eq(c_write), w_data.eq(this_win), w_mask.eq(wmask),
                         w_d.eq(c_d0 + (win_idx << LOGN))]
        with m.Elif(pend & ~self.wr_busy):
            m.d.comb += [w_valid.eq(1), w_data.eq(pend_data), w_mask.eq(pend_mask),
                         w_d.eq(pend_d)]
        with m.If(rc_fire & (rc_beat == hdr_beat)):
            m.d.sync += win_idx.eq(0)
        with m.Elif(beat_writes):
            m.d.sync += win_idx.eq(win_idx + 1)
        # After the last beat, the window holding the rest waits in `pend`.
        pend_written = pend & ~beat_writes & ~self.wr_busy
        with m.If(pend_written):
            m.d.sync += pend.eq(0)
        with m.If(rc_fire & self.rc_tlast):
            # The tail: window win_idx (or 0 when the descriptor beat is the last).
            tail_i = Mux(at_hdr, 0, win_idx + beat_writes)
            disc = discontinued & cur["ours"]
            m.d.sync += [
                pend.eq(1), pend_data.eq(tail_win),
                pend_mask.eq(Mux(cur["write"] & ~disc, window_mask(tail_i), 0)),
                pend_d.eq(cur["d0"] + (tail_i << LOGN)),
                pend_end.eq(cur["last"] | disc), pend_disc.eq(disc),
                pend_slot.eq(cur["slot"]), pend_tag.eq(cur["tag"]),
                pend_error.eq(Mux(disc & (cur["error"] == DmaStatus.OK), DmaStatus.POISONED,
                                  cur["error"])),
                pend_credits.eq(cur["credits"]),
            ]
        with m.If(aborting):
            m.d.sync += pend_mask.eq(0)
        # Requests end when their last completion's data is in BAR2 (unless
        # the scanner ended them meanwhile), or when they time out.
        cpl_end = pend_written & pend_end & tag_out.bit_select(pend_tag, 1)
        # The timeout scanner visits one tag a cycle. A tag rests until
        # twice the timeout after it was sent.
        scan = Signal(TB)
        m.d.sync += scan.eq(scan + 1)
        m.d.comb += info_scan.addr.eq(scan)
        scan_info = fields(info_scan)
        s_out = tag_out.bit_select(scan, 1)
        s_rest = tag_rest.bit_select(scan, 1)
        age = Signal(32)
        m.d.comb += age.eq(now_cycle - scan_info["time"])
        s_expired = age > self.timeout
        s_rested = age > (self.timeout << 1)
        s_busy = cpl_end | (pend & (pend_tag == scan))
        time_out = s_out & s_expired & ~s_busy & init_done
        rested = s_rest & s_rested & ~cpl_end & init_done
        one = Const(1, TAGS)
        set_out = Mux(issue, one << tag, 0)
        clr_out = Mux(cpl_end, one << pend_tag, 0) | Mux(time_out, one << scan, 0)
        to_rest = Mux(time_out, one << scan, 0) | Mux(cpl_end & pend_disc, one << pend_tag, 0)
        # An abort ends every outstanding read as a timeout does: its tag rests.
        aborted = Mux(aborting, tag_out & ~clr_out, 0)
        m.d.sync += [
            tag_out.eq(Mux(aborting, 0, (tag_out & ~clr_out) | set_out)),
            tag_rest.eq((tag_rest | to_rest | aborted) & ~Mux(rested, one << scan, 0)),
        ]
        ended_credits = Mux(cpl_end, pend_credits, Mux(time_out, scan_info["credits"], 0))
        m.d.sync += [
            credits.eq(Mux(aborting, 0, credits + Mux(issue, q_credits, 0) - ended_credits)),
            outstanding.eq(Mux(aborting, 0, outstanding + issue - (cpl_end | time_out))),
        ]
        m.d.comb += [
            rd_end.eq(cpl_end | time_out),
            rd_end_slot.eq(Mux(cpl_end, pend_slot, scan_info["slot"])),
            rd_error.eq(Mux(cpl_end, pend_error, DmaStatus.TIMEOUT)),
            free.eq((cpl_end & ~pend_disc) | rested),
            free_tag.eq(Mux(cpl_end & ~pend_disc, pend_tag, scan)),
            self.reads_out.eq(outstanding),
        ]
        # Back-pressure: the memory port is the CQ writes' first; a pending
        # window must go before the next completion's second beat.
        m.d.comb += self.rc_tready.eq(~self.wr_busy & ~(pend & (rc_beat != 0)) & init_done)

        rot = w_d[:LOGN] if LOGN else Const(0, 1)
        shift = Signal(range(N + 1))
        m.d.comb += shift.eq(N - rot)
        lanes_be = Cat(*(w_mask[4 * k:4 * k + 4] for k in range(N)))
        m.d.comb += [
            self.wr_data.eq(Cat(w_data, w_data).bit_select(shift * 32, W)),
            self.wr_en.eq(Mux(w_valid, Cat(lanes_be, lanes_be).bit_select(shift * 4, 4 * N), 0)),
            self.wr_row.eq(Cat(*((w_d[LOGN:] + (Const(b, LOGN + 1) < rot))[:self.row_bits]
                                 for b in range(N)))),
        ]
        m.d.comb += busy.eq(q_active | rq_cmd.r_rdy | rr_valid | pend | (rc_beat != 0))
        return busy
