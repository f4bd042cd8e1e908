"""The DMA engine's write direction, for a descriptor (local offset L, bus
address A, length):

    reader -> byte shifter -> payload words -+
    splitter -> TLPs ------------------------+-> packer -> RQ (through the arbiter)

* The TLPs split at MPS-aligned bus addresses (so none crosses 4 KiB).
  Every TLP after the first starts dword aligned, so the dword-aligned
  payloads of all the TLPs of a descriptor are one continuous byte stream
  in BAR2, starting at L - (A mod 4).
* The reader streams that region from memory as windows of N dwords (an
  AXI4 read, shared with the completer's); the byte shifter turns windows
  into payload words, shifted by (L - A) mod 4 bytes, fixed per
  descriptor.
* The packer puts each TLP's 4-dword header in front of its payload: a
  2-word window over the payload words, rotated by an amount fixed per
  TLP. Consecutive TLPs follow each other without idle cycles.
"""

from amaranth.hdl import Cat, Const, Module, Mux, ResetInserter, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from hw.core import layouts, ports
from hw.core.axi import axi_read_signature
from hw.core.memport import AxiReader
from hw.core.dma.common import (WRITE_TLP, log2, next_piece, payload_words, rq_tuser,
                                size_code_bytes, window_command, write_command)
from hw.spec.usp import ReqType, sideband


COMMANDS_AHEAD = 4          # descriptors the window reader asks for ahead of the one streaming


class WindowReader(wiring.Component):
    """Reads windows of N dwords from BAR2 through an AxiReader, one
    command per descriptor, and turns them into payload words shifted by a
    fixed number of bytes: word i = window i followed by the first dword
    of window i + 1, shifted down by `shift` bytes. Commands are taken up
    to COMMANDS_AHEAD ahead of the one whose data streams, so that the
    memory's latency is paid once, not per descriptor. `stop` ends the
    commands, empties the queues and lets the reader take back the data it
    asked for."""

    def __init__(self, data_width, local_bits):
        self.width, self.n, self.local_bits = data_width, data_width // 32, local_bits
        super().__init__({
            "windows": In(window_command(local_bits - 2)),
            "words": Out(payload_words(data_width)),
            "mem": Out(axi_read_signature(local_bits, data_width, 1)),
            "stop": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        w, logn = self.width, log2(self.n)
        cmd = self.windows
        m.submodules.reader = reader = AxiReader(w, self.local_bits, self.local_bits,
                                                 lead_bits=1, depth=COMMANDS_AHEAD)
        wiring.connect(m, reader.axi, wiring.flipped(self.mem))
        # The shift of each command the reader holds, oldest first: the next
        # descriptor's reads go out while this one's data streams.
        shifts = SyncFIFO(width=2, depth=COMMANDS_AHEAD + 1)
        m.submodules.shifts = ResetInserter(self.stop)(shifts)
        first = Signal(init=1)                 # the next beat is a command's first
        pay = SyncFIFO(width=w, depth=4)
        m.submodules.pay = ResetInserter(self.stop)(pay)

        rc = reader.cmd
        m.d.comb += [
            reader.stop.eq(self.stop),
            rc.valid.eq(cmd.valid & shifts.w_rdy & ~self.stop),
            cmd.ready.eq(rc.ready & shifts.w_rdy & ~self.stop),
            rc.payload.first.eq(cmd.payload.dw), rc.payload.lead.eq(0),
            rc.payload.count.eq((cmd.payload.words + 1) << logn),
            rc.payload.beats.eq(cmd.payload.words + 1),
            shifts.w_en.eq(cmd.valid & cmd.ready), shifts.w_data.eq(cmd.payload.shift),
        ]

        out = reader.out
        window = out.payload.data
        prev = Signal(w)
        m.d.comb += out.ready.eq(shifts.r_rdy & (first | pay.w_rdy) & ~self.stop)
        got = out.valid & out.ready
        with m.If(got):
            m.d.sync += [prev.eq(window), first.eq(out.payload.last)]
        m.d.comb += shifts.r_en.eq(got & out.payload.last)
        with m.If(self.stop):
            m.d.sync += first.eq(1)
        joined = Cat(prev, window[:32])
        m.d.comb += [
            pay.w_data.eq(joined.bit_select(shifts.r_data * 8, w)),
            pay.w_en.eq(got & ~first),
            self.words.valid.eq(pay.r_rdy), self.words.payload.eq(pay.r_data),
            pay.r_en.eq(self.words.ready),
        ]
        return m


class TlpSplitter(wiring.Component):
    """Splits a write descriptor into TLPs at MPS-aligned bus addresses,
    one TLP a cycle into a small queue (emptied by an abort)."""

    def __init__(self, data_width):
        self.n = data_width // 32
        super().__init__({
            "writes": In(write_command()),
            "tlps": Out(stream.Signature(WRITE_TLP)),
            "max_payload": In(3), "aborting": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        n, logn, cmd = self.n, log2(self.n), self.writes
        mps = size_code_bytes(m, self.max_payload, "mps_bytes")
        tlpq = SyncFIFO(width=WRITE_TLP.size, depth=4)
        m.submodules.tlpq = ResetInserter(self.aborting)(tlpq)
        m.d.comb += [self.tlps.valid.eq(tlpq.r_rdy), self.tlps.payload.eq(tlpq.r_data),
                     tlpq.r_en.eq(self.tlps.ready)]

        active = Signal()
        addr = Signal(64)
        rem = Signal(25)
        pidx = Signal(24)
        words = Signal(24)                 # payload words of the descriptor
        slot = Signal(4)
        m.d.comb += cmd.ready.eq(~active & ~self.aborting)
        with m.If(cmd.valid & cmd.ready):
            c = cmd.payload
            m.d.sync += [active.eq(1), addr.eq(c.bus), rem.eq(c.length), slot.eq(c.slot),
                         pidx.eq(0),
                         words.eq((((c.bus[:2] + c.length + 3) >> 2) + n - 1) >> logn)]
        n_bytes, dw, fbe, lbe = next_piece(m, addr, rem, mps, "tlp")
        last = rem == n_bytes
        t = data.View(WRITE_TLP, tlpq.w_data)
        m.d.comb += [
            t.addr.eq(addr), t.dw.eq(dw), t.fbe.eq(fbe), t.lbe.eq(lbe),
            t.pidx.eq(pidx), t.words.eq(words),
            t.last.eq(last), t.slot.eq(slot),
        ]
        push = active & tlpq.w_rdy
        m.d.comb += tlpq.w_en.eq(push)
        with m.If(push):
            m.d.sync += [addr.eq(addr + n_bytes), rem.eq(rem - n_bytes), pidx.eq(pidx + dw)]
            with m.If(last):
                m.d.sync += active.eq(0)
        with m.If(self.aborting):
            m.d.sync += active.eq(0)
        return m


class WritePacker(wiring.Component):
    """Puts each TLP's header in front of its payload words, as RQ beats
    (`packet`, to the RQ arbiter). An abort drops a packet whose first beat
    is not on RQ yet (`shown`: the beat was offered last cycle, not taken);
    a packet already shown goes out whole. While bus mastering is off, no
    packet starts."""

    def __init__(self, data_width):
        self.width, self.n = data_width, data_width // 32
        super().__init__({
            "tlps": In(stream.Signature(WRITE_TLP)),
            "words": In(payload_words(data_width)),
            "packet": Out(ports.axis_signature(data_width, sideband(data_width).rq_user)),
            "bus_master": In(1), "aborting": In(1), "shown": In(1),
            "active": Out(1),              # a packet is being sent
            "mid": Out(1),                 # ... and its first beat has gone
            "stop": Out(1),                # aborting and no packet under way: the reader stops
            "handed": Out(1),              # a packet's last beat went this cycle
        })

    def elaborate(self, platform):
        m = Module()
        n, w, logn = self.n, self.width, log2(self.n)
        cur = Signal(data.StructLayout({"beat": range((4 + 1024) // n + 2),
                                        "beats": range((4 + 1024) // n + 2),
                                        "hdr": 128, "tlp": WRITE_TLP}))
        active = self.active
        # The beat now: which payload dwords it carries.
        j0 = cur.beat * n                   # packet dword index of lane 0
        lane0 = Signal(range(n + 1))        # first payload lane in this beat
        with m.If(j0 >= 4):
            m.d.comb += lane0.eq(0)
        with m.Else():
            m.d.comb += lane0.eq(Mux(4 - j0 >= n, n, 4 - j0))
        f = Signal(24)                      # payload dword (in the descriptor) of lane0
        m.d.comb += f.eq(cur.tlp.pidx + j0 + lane0 - 4)
        left = Signal(12)                   # payload dwords of this TLP from f on
        m.d.comb += left.eq(cur.tlp.dw + 4 - j0 - lane0)
        count = Signal(range(n + 1))        # payload dwords in this beat
        m.d.comb += count.eq(Mux(lane0 == n, 0, Mux(left < n - lane0, left, n - lane0)))
        e = f[:logn] if logn else Const(0, 1)
        need_w0 = count != 0
        need_w1 = (e + count) > n
        is_last_beat = cur.beat == cur.beats - 1

        # Payload words of the current descriptor: w0 is word `w_idx`, w1 the next.
        w0, w1 = Signal(w), Signal(w)
        w0_ok, w1_ok = Signal(), Signal()
        w_idx = Signal(24)
        word_ok = (~need_w0 | (w0_ok & (w_idx == (f >> logn)))) & (~need_w1 | w1_ok)
        cut = Signal()
        m.d.comb += cut.eq(self.aborting & active & (cur.beat == 0) & ~self.shown)
        beat_ok = active & word_ok & (self.bus_master | (cur.beat != 0)) & ~cut
        fire = beat_ok & self.packet.tready
        self._beat(m, cur, Cat(Const(0, 128), w0, w1), e + 4 - lane0, is_last_beat)
        m.d.comb += [self.packet.tvalid.eq(beat_ok), self.handed.eq(fire & is_last_beat),
                     self.mid.eq(active & (cur.beat != 0)),
                     self.stop.eq(self.aborting & ~active)]

        # w0 drops once the beats are past it; w0 and w1 are filled from the
        # payload words, never beyond the descriptor's words.
        words = self.words
        consumed = fire & need_w0 & ((e + count) >= n)   # the beat used w0's last dword
        desc_end = fire & is_last_beat & cur.tlp.last
        w_loaded = Signal(24)               # words taken for this descriptor
        can_load = active & (w_loaded < cur.tlp.words) & words.valid
        with m.If(desc_end):
            m.d.sync += [w0_ok.eq(0), w1_ok.eq(0), w_idx.eq(0), w_loaded.eq(0)]
        with m.Elif(consumed | (need_w0 & w0_ok & (w_idx < (f >> logn)) & active)):
            # Move on by a word and refill in the same cycle, so that a beat
            # can go every cycle.
            m.d.sync += [w0.eq(w1), w0_ok.eq(w1_ok), w1_ok.eq(0), w_idx.eq(w_idx + 1)]
            with m.If(can_load):
                m.d.comb += words.ready.eq(1)
                m.d.sync += w_loaded.eq(w_loaded + 1)
                with m.If(w1_ok):
                    m.d.sync += [w1.eq(words.payload), w1_ok.eq(1)]
                with m.Else():
                    m.d.sync += [w0.eq(words.payload), w0_ok.eq(1)]
        with m.Elif(~w0_ok & can_load):
            m.d.comb += words.ready.eq(1)
            m.d.sync += [w0.eq(words.payload), w0_ok.eq(1), w_loaded.eq(w_loaded + 1)]
        with m.Elif(~w1_ok & can_load):
            m.d.comb += words.ready.eq(1)
            m.d.sync += [w1.eq(words.payload), w1_ok.eq(1), w_loaded.eq(w_loaded + 1)]
        with m.If(self.stop):
            m.d.sync += [w0_ok.eq(0), w1_ok.eq(0), w_idx.eq(0), w_loaded.eq(0)]

        # The next TLP.
        take = ~active | (fire & is_last_beat)
        tlps = self.tlps
        m.d.comb += tlps.ready.eq(take & ~self.aborting)
        hdr = Signal(layouts.RQ_DESCRIPTOR)     # the fields not named here stay 0
        m.d.comb += [hdr.address.eq(tlps.payload.addr[2:]), hdr.dw_count.eq(tlps.payload.dw),
                     hdr.req_type.eq(ReqType.MEM_WRITE)]
        with m.If(take):
            m.d.sync += active.eq(0)
            with m.If(tlps.valid & tlps.ready):
                m.d.sync += [active.eq(1), cur.beat.eq(0),
                             cur.beats.eq((tlps.payload.dw + 4 + n - 1) >> logn),
                             cur.hdr.eq(hdr), cur.tlp.eq(tlps.payload)]
        with m.Elif(fire):
            m.d.sync += cur.beat.eq(cur.beat + 1)
        with m.If(cut):
            m.d.sync += active.eq(0)
        return m

    def _beat(self, m, cur, ext, amount, is_last_beat):
        """The beat's lanes (header dwords, else the rotated payload window),
        keep, last and tuser."""
        n, w, pk = self.n, self.width, self.packet
        shift = Signal(range(2 * n + 5))
        m.d.comb += shift.eq(amount)
        lanes = layouts.header_over_lanes(m, "rq_lane", ext.bit_select(shift * 32, w), cur.hdr,
                                          cur.beat, 4, n)
        last_lanes = ((cur.tlp.dw + 4 - 1) & (n - 1)) + 1
        keep = Signal(n)
        with m.If(is_last_beat):
            for k in range(1, n + 1):
                with m.If(last_lanes == k):
                    m.d.comb += keep.eq((1 << k) - 1)
        with m.Else():
            m.d.comb += keep.eq((1 << n) - 1)
        seq = Cat(cur.tlp.slot, cur.tlp.last, Const(1, 1))     # SEQ_WRITE | (SEQ_LAST) | slot
        m.d.comb += [
            pk.tdata.eq(Cat(*lanes)), pk.tkeep.eq(keep), pk.tlast.eq(is_last_beat),
            pk.tuser.eq(rq_tuser(w, cur.beat == 0, is_last_beat, keep, cur.tlp.fbe, cur.tlp.lbe,
                                 seq)),
        ]
