"""Ingress: CQ packets stored whole and forwarded, and the non-posted credit
the endpoint gives the hard IP.

* Store and forward: a packet leaves only once its last beat is in, so a
  write whose payload the hard IP flags (discontinue, or poisoned) is
  dropped whole, and requests are served in arrival order.
* A packet longer than the largest request (4 descriptor dwords and
  max_payload_supported) is malformed: its payload exceeds any Max
  Payload Size the hard IP allows. Its dwords are counted exactly (whole
  beats, then the kept lanes of the beat where the limit falls); beats
  past the limit are not stored, the last one is, and the packet leaves
  marked `over` to be dropped whole.
* Non-posted credit (`np_req`, one credit a cycle): given while the
  credits out, the non-posted packets in the FIFO and the requests the
  completer has queued leave room in its queue.
"""

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.fifo import SyncFIFO, SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from hw.core import ports
from hw.spec import usp


class Ingress(wiring.Component):
    def __init__(self, p):
        self.p = p
        super().__init__({
            "cq": In(ports.axis_signature(p.data_width, usp.sideband(p.data_width).cq_user)),
            "o": Out(ports.cq_stream_signature(p)),
            "np_taken": In(1),                  # a non-posted request left for the completer
            "np_queued": In(range(p.np_queue_depth + 1)),   # ... and waits there
            "np_req": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        p, cq = self.p, self.cq
        sb = usp.sideband(p.data_width)
        stored = data.StructLayout({k: v for k, v in ports.cq_beat_layout(p).members.items()
                                    if k not in ("discard", "over")})
        m.submodules.fifo = fifo = SyncFIFOBuffered(width=stored.size, depth=p.ingress_depth)
        # One entry per complete packet: bit 0 its payload was flagged, bit 1 too long.
        m.submodules.pkts = pkts = SyncFIFO(width=2, depth=p.ingress_depth)

        fire = Signal()
        m.d.comb += fire.eq(cq.tvalid & cq.tready)
        full_now, over_now = self._length_check(m, fire)
        discard = Signal()                  # discontinue seen in this packet
        over = Signal()                     # this packet is longer than the limit
        disc_now = cq.tuser[sb.cq_discontinue]
        w = data.View(stored, fifo.w_data)
        m.d.comb += [
            cq.tready.eq(fifo.w_rdy & pkts.w_rdy),
            w.data.eq(cq.tdata), w.keep.eq(cq.tkeep), w.last.eq(cq.tlast),
            w.first_be.eq(cq.tuser[sb.cq_first_be:sb.cq_first_be + 4]),
            w.last_be.eq(cq.tuser[sb.cq_last_be:sb.cq_last_be + 4]),
            fifo.w_en.eq(fire & (~full_now | cq.tlast)),
            pkts.w_data.eq(Cat(discard | disc_now, over | over_now)),
            pkts.w_en.eq(fire & cq.tlast),
        ]
        with m.If(fire):
            with m.If(cq.tlast):
                m.d.sync += [discard.eq(0), over.eq(0)]
            with m.Else():
                m.d.sync += [discard.eq(discard | disc_now), over.eq(over | over_now)]

        self._forward(m, fifo, pkts, stored)
        self._np_credit(m, fire)
        return m

    def _length_check(self, m, fire):
        """(no room for this beat, this beat takes the packet past the limit)."""
        p, cq, n = self.p, self.cq, self.p.lanes
        limit_dw = 4 + p.max_payload_supported // 4
        max_beats = -(-limit_dw // n)
        edge_dw = limit_dw - (max_beats - 1) * n     # dwords allowed in the last beat, 1..N
        count = Signal(range(max_beats + 1))
        full_now = count == max_beats
        over_now = Signal()
        m.d.comb += over_now.eq(full_now)
        if edge_dw < n:
            with m.If((count == max_beats - 1) & (cq.tkeep[edge_dw:] != 0)):
                m.d.comb += over_now.eq(1)
        with m.If(fire):
            with m.If(cq.tlast):
                m.d.sync += count.eq(0)
            with m.Elif(~full_now):
                m.d.sync += count.eq(count + 1)
        return full_now, over_now

    def _forward(self, m, fifo, pkts, stored):
        """Beats leave once their packet is whole, with the packet's verdicts."""
        o = self.o
        active = Signal()                   # inside a packet
        discard = Signal()
        over = Signal()
        r = data.View(stored, fifo.r_data)
        cur_over = Mux(active, over, pkts.r_data[1])
        cur_discard = Mux(active, discard, pkts.r_data[0]) | cur_over
        pop = o.valid & o.ready
        m.d.comb += [
            o.valid.eq(fifo.r_rdy & (active | pkts.r_rdy)),
            o.payload.data.eq(r.data), o.payload.keep.eq(r.keep), o.payload.last.eq(r.last),
            o.payload.first_be.eq(r.first_be), o.payload.last_be.eq(r.last_be),
            o.payload.discard.eq(cur_discard), o.payload.over.eq(cur_over),
            fifo.r_en.eq(pop),
            pkts.r_en.eq(pop & ~active),
        ]
        with m.If(pop):
            with m.If(r.last):
                m.d.sync += [active.eq(0), discard.eq(0), over.eq(0)]
            with m.Else():
                m.d.sync += [active.eq(1), discard.eq(cur_discard), over.eq(cur_over)]

    def _np_credit(self, m, fire):
        p, cq, n = self.p, self.cq, self.p.lanes
        # The request type is in the descriptor's beat 0 (beat 1 at 64 bits).
        lsb, width = usp.CQ_DESCRIPTOR["req_type"]
        beat, lane = divmod(lsb // 32, n)
        req_type = cq.tdata.word_select(lane, 32)[lsb % 32:lsb % 32 + width]
        beat_index = Signal(range(beat + 2))        # saturating
        with m.If(fire):
            with m.If(cq.tlast):
                m.d.sync += beat_index.eq(0)
            with m.Elif(beat_index != beat + 1):
                m.d.sync += beat_index.eq(beat_index + 1)
        credits = Signal(range(64))
        in_fifo = Signal(range(p.ingress_depth + 1))
        arrive = fire & (beat_index == beat) & ports.is_non_posted(req_type)
        grant = Signal()
        m.d.comb += [
            grant.eq(credits + in_fifo + self.np_queued < p.np_queue_depth),
            self.np_req.eq(grant),
        ]
        m.d.sync += [
            credits.eq(credits + grant - (arrive & (credits != 0))),
            in_fifo.eq(in_fifo + arrive - self.np_taken),
        ]
