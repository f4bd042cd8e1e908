"""Dispatcher: reads whole CQ packets and acts on each.

* Writes to BAR2 go to memory through an AxiWriter (hw/core/memport.py),
  a beat a cycle unless memory holds them back: each payload lane gets
  its byte enables (first and last dword from the descriptor).
* Writes to BAR0 go to the register banks, rotated to the banks their
  dword addresses fall in, once every earlier write to BAR2 is in memory
  (a doorbell such as DMA_SUBMIT must find the data it points at).
* Non-posted requests carry a ticket, the number of BAR2 writes before
  them: the completer reads memory for them only once those are in.
* Non-posted requests are queued for the completer: memory reads of a
  known BAR to be answered with data, everything else (I/O, atomics,
  locked reads, configuration, unknown BAR) with Unsupported Request and
  the Byte Count the completion rules give it.
* Dropped, and counted: writes to a BAR the endpoint has not, messages,
  writes the hard IP flagged, and malformed requests (longer than the
  largest payload, on the stream or in their Length field).
* BAR2 beyond MEM_SIZE has no memory: writes there are dropped (and
  counted), reads answered with Unsupported Request, so nothing ever
  aliases (no request crosses 4 KiB, and memory is at least that).
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from hw.core import layouts, ports
from hw.core.memport import AxiWriter
from hw.spec.usp import ATOMIC_TYPES, ReqType

EVENTS = ports.counter_events_layout(("STAT_WRITES", "STAT_READS", "ERR_UR",
                                      "ERR_POSTED_DROPPED", "ERR_POISONED_DROPPED",
                                      "ERR_MALFORMED_DROPPED", "ERR_UNBACKED_DROPPED"))


class Dispatcher(wiring.Component):
    def __init__(self, p):
        self.p = p
        super().__init__({
            "i": In(ports.cq_stream_signature(p)),
            "write": Out(ports.bank_write_signature(p)),     # BAR0's registers
            "mem": Out(ports.memory_write_signature(p)),     # BAR2's memory
            "mem_done": Out(8),            # BAR2 writes in memory (AxiWriter.done)
            "np": Out(ports.np_stream_signature(p)),
            "events": Out(EVENTS),
        })

    def elaborate(self, platform):
        m = Module()
        i, n = self.i, self.p.lanes
        beat = Signal(range(3))           # beat index in the packet, saturating
        lo = Signal(64)                   # descriptor dwords 0-1 (64-bit interface)
        fbe_0, lbe_0 = Signal(4), Signal(4)
        desc_beat = 0 if n >= 4 else 1
        desc = Signal(128)
        m.d.comb += desc.eq(i.payload.data[:128] if n >= 4 else Cat(lo, i.payload.data[:64]))
        pop = i.valid & i.ready
        with m.If(pop):
            with m.If(beat == 0):
                m.d.sync += [fbe_0.eq(i.payload.first_be), lbe_0.eq(i.payload.last_be),
                             lo.eq(i.payload.data[:64])]
            with m.If(i.payload.last):
                m.d.sync += beat.eq(0)
            with m.Elif(beat != 2):
                m.d.sync += beat.eq(beat + 1)

        rq, address = self._decode(m, desc, Mux(beat == 0, i.payload.first_be, fbe_0),
                          Mux(beat == 0, i.payload.last_be, lbe_0))
        at_desc = beat == desc_beat
        m.submodules.writer = writer = AxiWriter(**ports.memory_writer_args(self.p))
        wiring.connect(m, writer.axi, wiring.flipped(self.mem))
        m.d.comb += self.mem_done.eq(writer.done)
        self._write(m, rq, address, at_desc, beat, desc_beat, writer)
        self._count(m, rq, pop & at_desc)
        return m

    def _handshakes(self, m, need_np, need_cmd, need_beat, reg_wait, writer):
        """A beat leaves the ingress once everything it feeds takes it."""
        i, cmd, beats = self.i, writer.cmd, writer.beats
        ok_np, ok_cmd, ok_beat = (~need_np | self.np.ready), (~need_cmd | cmd.ready), \
            (~need_beat | beats.ready)
        m.d.comb += [
            self.np.valid.eq(i.valid & need_np),
            cmd.valid.eq(i.valid & need_cmd & ok_beat),
            beats.valid.eq(i.valid & need_beat & ok_cmd),
            i.ready.eq(ok_np & ok_cmd & ok_beat & ~reg_wait),
        ]

    def _decode(self, m, desc, fbe, lbe):
        """The request in the descriptor, as the fields the methods below use,
        and its dword address."""
        p, i = self.p, self.i
        cq = data.View(layouts.CQ_DESCRIPTOR, desc)
        rq = Signal(data.StructLayout({
            "write": 1, "read": 1, "bar_known": 1, "non_posted": 1, "long_write": 1,
            "bar0": 1, "dw_count": 11, "fbe": 4, "lbe": 4, "discard": 1, "malformed": 1,
            "unbacked": 1,                # BAR2 beyond MEM_SIZE
        }))
        mem_bits, bar_bits = ports.log2(p.mem_size // 4), ports.log2(p.bar2_size // 4)
        dw_count = Mux(cq.dw_count == 0, 1024, cq.dw_count)
        t = cq.req_type
        m.d.comb += [
            rq.write.eq(t == ReqType.MEM_WRITE), rq.read.eq(t == ReqType.MEM_READ),
            rq.bar_known.eq((cq.bar_id == 0) | (cq.bar_id == 2)),
            rq.non_posted.eq(ports.is_non_posted(t)), rq.bar0.eq(cq.bar_id == 0),
            rq.dw_count.eq(dw_count), rq.fbe.eq(fbe), rq.lbe.eq(lbe),
            # A write whose Length is over the largest payload is malformed
            # whatever payload it carries (the ingress counts the payload).
            rq.long_write.eq(rq.write & (dw_count > p.max_payload_supported // 4)),
            rq.discard.eq(i.payload.discard),
            rq.malformed.eq(i.payload.over | rq.long_write),
            rq.unbacked.eq((cq.bar_id == 2) & (cq.address[mem_bits:bar_bits] != 0)
                           if bar_bits > mem_bits else 0),
        ]
        # The queued request; unsupported ones get the Byte Count the
        # completion rules give: memory reads (also locked, or to an unknown
        # BAR) from the byte enables, atomics their operand size, I/O and
        # configuration requests 4.
        q = self.np.payload
        atomic_bytes = Mux(t == ReqType.MEM_CAS, dw_count * 2, dw_count * 4)
        m.d.comb += [
            q.kind.eq(Mux(rq.read & rq.bar_known & ~rq.unbacked, ports.NP_READ, ports.NP_UR)),
            q.bar0.eq(rq.bar0), q.dw_addr.eq(cq.address), q.dw_count.eq(dw_count),
            q.fbe.eq(fbe), q.lbe.eq(lbe),
            q.req_id.eq(cq.requester_id), q.tag.eq(cq.tag), q.func.eq(cq.target_function),
            q.tc.eq(cq.tc), q.attr.eq(cq.attr),
            q.locked.eq(t == ReqType.MEM_READ_LOCKED),
            q.bc_fixed.eq(~t.matches(ReqType.MEM_READ, ReqType.MEM_READ_LOCKED)),
            q.bc.eq(Mux(t.matches(*ATOMIC_TYPES), atomic_bytes, 4)),
        ]
        return rq, cq.address

    def _count(self, m, rq, at_desc):
        ev = self.events
        write = rq.write & rq.bar_known & ~rq.discard & ~rq.long_write
        queued = self.np.valid & self.np.ready
        served_read = rq.read & rq.bar_known & ~rq.unbacked
        with m.If(at_desc):
            m.d.comb += [
                ev.stat_writes.eq(write & ~rq.unbacked),
                ev.err_unbacked_dropped.eq(write & rq.unbacked),
                ev.err_poisoned_dropped.eq(rq.write & rq.bar_known & rq.discard & ~rq.malformed),
                ev.err_malformed_dropped.eq(rq.malformed),
                ev.err_posted_dropped.eq(~rq.non_posted & ~(rq.write & rq.bar_known)
                                         & ~rq.malformed),
            ]
        m.d.comb += [
            ev.stat_reads.eq(queued & served_read),
            ev.err_ur.eq(queued & ~served_read),
        ]

    def _write(self, m, rq, address, at_desc, beat, desc_beat, writer):
        """Payload beats of a served write: to memory, or rotated to the
        register banks."""
        p, i, n = self.p, self.i, self.p.lanes
        logn = ports.log2(n)
        past_desc = beat > desc_beat
        addr_bits = ports.dword_address_bits(p)
        ctx = Signal(data.StructLayout({"on": 1, "bar0": 1, "len": 11, "fbe": 4, "lbe": 4}))
        t_ctx = Signal(addr_bits)               # dword address of lane 0 of the beat
        p_ctx = Signal(range(-n * 2, 1100))     # payload index of lane 0 of the beat
        # This beat's values: from the descriptor at its beat, else the context.
        now = Signal.like(ctx)
        t_now = Signal(addr_bits)
        p_now = Signal(range(-n * 2, 1100))
        served = rq.write & rq.bar_known & ~rq.discard & ~rq.long_write & ~rq.unbacked
        pop = i.valid & i.ready
        with m.If(at_desc):
            m.d.comb += [
                t_now.eq(address[:addr_bits] - 4 + desc_beat * n),
                p_now.eq(desc_beat * n - 4),
                now.eq(Cat(served, rq.bar0, rq.dw_count, rq.fbe, rq.lbe)),
            ]
        with m.Else():
            m.d.comb += [t_now.eq(t_ctx), p_now.eq(p_ctx),
                         now.eq(ctx), now.on.eq(ctx.on & past_desc)]
        with m.If(pop):
            with m.If(at_desc):
                m.d.sync += ctx.eq(Cat(served & ~i.payload.last, rq.bar0, rq.dw_count,
                                       rq.fbe, rq.lbe))
            m.d.sync += [t_ctx.eq(t_now + n), p_ctx.eq(p_now + n)]
            with m.If(i.payload.last):
                m.d.sync += ctx.on.eq(0)

        # Per-lane byte enables of the payload in this beat (lane domain).
        lane_be = []
        for lane in range(n):
            pi = Signal(range(-n * 2, 1100 + n), name=f"w_pidx{lane}")
            be = Signal(4, name=f"w_be{lane}")
            m.d.comb += pi.eq(p_now + lane)
            with m.If(now.on & i.payload.keep[lane] & (pi >= 0) & (pi < now.len)):
                with m.If(pi == 0):
                    m.d.comb += be.eq(now.fbe)
                with m.Elif(pi == now.len - 1):
                    m.d.comb += be.eq(now.lbe)
                with m.Else():
                    m.d.comb += be.eq(0xF)
            lane_be.append(be)
        lane_be = Cat(*lane_be)

        # Memory: a command at the descriptor, then the beats with payload
        # lanes (the descriptor's own from 256 bits up).
        cmd, beats = writer.cmd.payload, writer.beats.payload
        issued = Signal(8)                 # BAR2 writes handed to the writer
        with m.If(writer.cmd.valid & writer.cmd.ready):
            m.d.sync += issued.eq(issued + 1)
        lead = 4 if n >= 8 else 0          # dwords before the payload in the first beat fed
        m.d.comb += [
            cmd.first.eq(address), cmd.count.eq(rq.dw_count),
            cmd.lane0.eq((address - lead)[:logn] if logn else 0),
            beats.data.eq(i.payload.data), beats.be.eq(lane_be), beats.last.eq(i.payload.last),
            self.np.payload.ticket.eq(issued),
        ]
        fed = past_desc if n < 8 else (past_desc | at_desc)
        self._handshakes(m, at_desc & rq.non_posted, at_desc & served & ~rq.bar0,
                         now.on & ~now.bar0 & fed, now.on & now.bar0 & ~writer.idle, writer)

        # Registers: rotate lanes to banks: bank b takes lane (b - rot) mod N.
        rot = t_now[:logn] if logn else Const(0, 1)
        shift = Signal(range(n + 1))
        m.d.comb += shift.eq(n - rot)
        w = self.write
        m.d.comb += [
            w.data.eq(Cat(i.payload.data, i.payload.data).bit_select(shift * 32, p.data_width)),
            w.be.eq(Cat(lane_be, lane_be).bit_select(shift * 4, n * 4)),
            w.bar0.eq(now.bar0), w.en.eq(pop & now.on & now.bar0),
        ]
        for b in range(n):
            m.d.comb += w.row[b].eq(ports.bank_row(t_now[logn:], rot, b, logn))
