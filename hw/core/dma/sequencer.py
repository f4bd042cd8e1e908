"""The DMA engine's sequencer: takes descriptors, checks them, hands them
to the write path (reader and splitter, each through a small queue) or
the read path, and ends them in order, one slot (16) a descriptor.

A write descriptor has gone when the hard IP reports, on pcie_rq_seq_num,
that its last packet has entered the transmit pipeline; a read
descriptor once its last request is out and every request has ended.
While aborting, every descriptor held ends ABORTED once nothing of them
moves any more (`drained`)."""

from amaranth.hdl import Module, Mux, ResetInserter, Signal
from amaranth.lib import data, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from hw.core import ports
from hw.spec import regmap
from hw.core.dma.common import (SEQ_LAST, SEQ_WRITE, SLOTS, DmaStatus, log2, read_command,
                                window_command, write_command)

# Read-path events: a request issued (and whether it was its descriptor's
# last), a request ended (last completion, error or timeout).
READ_ISSUED = data.StructLayout({"valid": 1, "slot": 4, "all": 1})
READ_ENDED = data.StructLayout({"valid": 1, "slot": 4, "error": 4})


class Sequencer(wiring.Component):
    def __init__(self, data_width, local_bits, mem_size=None):
        self.n = data_width // 32
        self.local_bits = local_bits
        self.mem_size = mem_size or 1 << local_bits
        super().__init__({
            "desc": In(ports.dma_descriptor_signature(local_bits)),
            "abort": In(1), "aborting": Out(1),
            "result": Out(ports.dma_result_signature()),
            "windows": Out(window_command(local_bits - 2)),
            "writes": Out(write_command()),
            "reads": Out(read_command(local_bits)),
            "read_issued": In(READ_ISSUED), "read_ended": In(READ_ENDED),
            "rq_seq_num0": In(6), "rq_seq_vld0": In(1), "rq_seq_num1": In(6), "rq_seq_vld1": In(1),
            "bus_master": In(1),
            # Write packets handed to the hard IP; the write path and the RQ
            # arbiter idle; the reader may stop (aborting, no packet under way).
            "handed": In(1), "packer_idle": In(1), "arbiter_idle": In(1), "w_stop": In(1),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        acc_seq = Signal(8)                # descriptors accepted
        ret_seq = Signal(8)                # descriptors ended
        drained = Signal()
        accept, halt, bad, moves = self._plan(m, acc_seq, ret_seq)
        slots = self._slots(m, accept, acc_seq[:4], halt, bad, moves)
        m.d.sync += acc_seq.eq(acc_seq + accept)
        self._results(m, slots, acc_seq, ret_seq, drained)
        self._drain(m, drained)
        m.d.comb += self.busy.eq((acc_seq != ret_seq) | self.reads.valid)
        return m

    def _plan(self, m, acc_seq, ret_seq):
        """Checks the offered descriptor and queues its commands."""
        n, lb, desc = self.n, self.local_bits, self.desc
        windows = SyncFIFO(width=self.windows.payload.shape().size, depth=2)
        writes = SyncFIFO(width=self.writes.payload.shape().size, depth=2)
        reads = SyncFIFO(width=self.reads.payload.shape().size, depth=2)
        # An abort empties them (the reader's once no write packet needs it).
        m.submodules.windows = ResetInserter(self.w_stop)(windows)
        m.submodules.writes = ResetInserter(self.aborting)(writes)
        m.submodules.reads = ResetInserter(self.aborting)(reads)
        for fifo, out in ((windows, self.windows), (writes, self.writes), (reads, self.reads)):
            m.d.comb += [out.valid.eq(fifo.r_rdy), out.payload.eq(fifo.r_data),
                         fifo.r_en.eq(out.ready)]

        length = desc.length
        bad = (length == 0) | (length > regmap.DMA_MAX_LENGTH) \
            | (desc.local + length > self.mem_size)          # no memory there
        a_lo = desc.bus[:2]
        start = Signal(lb)                 # first byte of the continuous payload region
        m.d.comb += start.eq(desc.local - a_lo)
        payload_dw = Signal(24)            # dwords in all the TLPs of the descriptor
        m.d.comb += payload_dw.eq((a_lo + length + 3) >> 2)
        halt = desc.abort | self.abort     # ends ABORTED, moving nothing
        moves = ~bad & ~halt
        accept = Signal()
        m.d.comb += [
            accept.eq(desc.valid & ((acc_seq - ret_seq)[:8] < SLOTS)
                      & (halt | (~self.aborting & windows.w_rdy & writes.w_rdy & reads.w_rdy))),
            desc.ready.eq(accept),
        ]
        win = data.View(self.windows.payload.shape(), windows.w_data)
        wr = data.View(self.writes.payload.shape(), writes.w_data)
        rd = data.View(self.reads.payload.shape(), reads.w_data)
        slot = acc_seq[:4]
        m.d.comb += [
            win.dw.eq(start[2:]), win.shift.eq(start[:2]),
            win.words.eq((payload_dw + n - 1) >> log2(n)),
            windows.w_en.eq(accept & moves & ~desc.from_bus),
            wr.bus.eq(desc.bus), wr.length.eq(length), wr.slot.eq(slot),
            writes.w_en.eq(accept & moves & ~desc.from_bus),
            rd.bus.eq(desc.bus), rd.length.eq(length), rd.local.eq(desc.local), rd.slot.eq(slot),
            reads.w_en.eq(accept & moves & desc.from_bus),
        ]
        return accept, halt, bad, moves

    def _seq_done(self, k):
        """The hard IP reports the last packet of the write descriptor in slot k."""
        last = SEQ_WRITE | SEQ_LAST | k
        return ((self.rq_seq_vld0 & (self.rq_seq_num0 == last)) |
                (self.rq_seq_vld1 & (self.rq_seq_num1 == last)))

    def _slots(self, m, accept, slot, halt, bad, moves):
        desc, issued, ended = self.desc, self.read_issued, self.read_ended
        layout = data.StructLayout({
            "id": 16, "irq": 1, "vector": 2, "status": 4, "read": 1,
            "sent": 1,                     # all its TLPs are out
            "reads": range(257),           # read requests outstanding
        })
        slots = [Signal(layout, name=f"slot{k}") for k in range(SLOTS)]
        for k, s in enumerate(slots):
            with m.If(accept & (slot == k)):
                m.d.sync += [
                    s.id.eq(desc.id), s.irq.eq(desc.irq), s.vector.eq(desc.vector),
                    s.status.eq(Mux(halt, DmaStatus.ABORTED,
                                    Mux(bad, DmaStatus.BAD_DESCRIPTOR, DmaStatus.OK))),
                    s.read.eq(desc.from_bus & moves), s.sent.eq(~moves),
                ]
            with m.Else():
                with m.If(self._seq_done(k) | (issued.valid & issued.all & (issued.slot == k))):
                    m.d.sync += s.sent.eq(1)
                with m.If(ended.valid & (ended.slot == k) & (ended.error != DmaStatus.OK)
                          & (s.status == DmaStatus.OK)):
                    m.d.sync += s.status.eq(ended.error)
                with m.If(self.abort):
                    m.d.sync += s.status.eq(DmaStatus.ABORTED)
            inc = issued.valid & (issued.slot == k)
            dec = ended.valid & (ended.slot == k)
            with m.If(accept & (slot == k)):
                m.d.sync += s.reads.eq(0)
            with m.Elif(inc & ~dec):
                m.d.sync += s.reads.eq(s.reads + 1)
            with m.Elif(dec & ~inc):
                m.d.sync += s.reads.eq(s.reads - 1)
        return slots

    def _results(self, m, slots, acc_seq, ret_seq, drained):
        """The oldest descriptor ends once all its TLPs are out and, for
        reads, all its requests have ended; while aborting, once drained."""
        head = Signal.like(slots[0])
        with m.Switch(ret_seq[:4]):
            for k, s in enumerate(slots):
                with m.Case(k):
                    m.d.comb += head.eq(s)
        ending = ((head.sent & (head.reads == 0)) | (self.aborting & drained)) \
            & (ret_seq != acc_seq)
        m.d.sync += ret_seq.eq(ret_seq + ending)
        with m.If(self.abort):
            m.d.sync += self.aborting.eq(1)
        with m.Elif(drained & (ret_seq == acc_seq)):
            m.d.sync += self.aborting.eq(0)
        m.d.comb += [
            self.result.valid.eq(ending), self.result.id.eq(head.id),
            self.result.status.eq(head.status), self.result.irq.eq(head.irq),
            self.result.vector.eq(head.vector),
        ]

    def _drain(self, m, drained):
        """Write packets handed to the hard IP that it has not reported on
        pcie_rq_seq_num yet (once reported, a completion the endpoint sends
        later cannot pass them). Nothing goes out while bus mastering is
        off (the hard IP drops what it still has): none is awaited then."""
        unreported = Signal(8)
        handed = Signal(9)
        reports = ((self.rq_seq_vld0 & self.rq_seq_num0[5]) +
                   (self.rq_seq_vld1 & self.rq_seq_num1[5]))
        m.d.comb += handed.eq(unreported + self.handed)
        with m.If(~self.bus_master | (handed < reports)):
            m.d.sync += unreported.eq(0)
        with m.Else():
            m.d.sync += unreported.eq(handed - reports)
        m.d.comb += drained.eq(self.packer_idle & self.arbiter_idle & (unreported == 0))
