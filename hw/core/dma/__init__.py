"""The DMA engine: the requester side of the endpoint (UltraScale+ RQ/RC).

Moves data between BAR2's memory and any bus address: a peer's BAR, or
host memory: BAR2 -> bus as Memory Write TLPs, bus -> BAR2 as Memory Read
TLPs whose completions are written into BAR2.

    descriptors -> Sequencer -+-> WindowReader -> WritePacker -+-> RqArbiter -> RQ
                    (slots,   +-> TlpSplitter ---^             |
                     results) +-> ReadRequester ---------------+
                                    ^ TagTable v
                  RC -> CompletionReceiver -> BAR2

BAR2 is an AXI4 port (`mem`, hw/core/axi.py): the reader reads it, the
receiver writes it (hw/core/memport.py).

The sequencer (sequencer.py) ends descriptors in the order they were
queued; the write direction is in writes.py, the read direction and the
arbiter in reads.py.

Abort (`abort`, a strobe): every descriptor in a slot, and every one
offered with `desc.abort`, ends ABORTED, in order. While `aborting`:

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
  `desc.abort` wait until the abort is over.
"""

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hw.core import axi, ports
from hw.core.dma.common import log2
from hw.core.dma.reads import CompletionReceiver, ReadRequester, RqArbiter, TagTable
from hw.core.dma.sequencer import Sequencer
from hw.core.dma.writes import TlpSplitter, WindowReader, WritePacker
from hw.spec.usp import sideband


def dma_signature(data_width, local_bits):
    sb = sideband(data_width)
    return wiring.Signature({
        # Descriptors, from the queue; results, one per descriptor, in order.
        "desc": In(ports.dma_descriptor_signature(local_bits)),
        "result": Out(ports.dma_result_signature()),
        # Abort: every descriptor queued or moving ends ABORTED (module docstring).
        "abort": In(1), "aborting": Out(1),
        # BAR2's memory, by BAR offset.
        "mem": Out(axi.axi_signature(local_bits, data_width, 1)),
        # Requester Completion stream from the hard IP; reQuest stream to it.
        "rc": In(ports.axis_signature(data_width, sb.rc_user)),
        "rq": Out(ports.axis_signature(data_width, sb.rq_user)),
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
    def __init__(self, data_width, bar2_size, mem_size=None, cpl_buffer=32768):
        # mem_size: bytes of memory from BAR2's start; a descriptor reaching
        # beyond it is refused. cpl_buffer: bytes of completion data the hard
        # IP can hold (PG213 gives 32 KiB); outstanding reads never ask for more.
        self.mem_size = mem_size or bar2_size
        self.cpl_credits = cpl_buffer // 16
        self.width = data_width
        self.n = data_width // 32
        self.local_bits = log2(bar2_size)
        super().__init__(dma_signature(data_width, self.local_bits))

    def elaborate(self, platform):
        m = Module()
        w, lb = self.width, self.local_bits
        m.submodules.sequencer = seq = Sequencer(w, lb, self.mem_size)
        m.submodules.reader = reader = WindowReader(w, lb)
        m.submodules.splitter = splitter = TlpSplitter(w)
        m.submodules.packer = packer = WritePacker(w)
        m.submodules.requester = requester = ReadRequester(lb, self.cpl_credits)
        m.submodules.tags = tags = TagTable(lb, self.cpl_credits)
        m.submodules.arbiter = arbiter = RqArbiter(w)
        m.submodules.receiver = receiver = CompletionReceiver(w, lb)

        wiring.connect(m, wiring.flipped(self.desc), seq.desc)
        wiring.connect(m, seq.result, wiring.flipped(self.result))
        wiring.connect(m, seq.windows, reader.windows)
        wiring.connect(m, seq.writes, splitter.writes)
        wiring.connect(m, seq.reads, requester.reads)
        wiring.connect(m, reader.words, packer.words)
        wiring.connect(m, splitter.tlps, packer.tlps)
        wiring.connect(m, packer.packet, arbiter.packet)
        wiring.connect(m, requester.request, arbiter.request)
        wiring.connect(m, requester.tags, tags.alloc)
        wiring.connect(m, receiver.tags, tags.lookup)
        wiring.connect(m, arbiter.rq, wiring.flipped(self.rq))
        wiring.connect(m, wiring.flipped(self.rc), receiver.rc)

        aborting = seq.aborting
        axi.join(m, reader.mem, wiring.flipped(self.mem))
        axi.join(m, receiver.mem, wiring.flipped(self.mem))
        m.d.comb += [
            seq.abort.eq(self.abort), self.aborting.eq(aborting),
            seq.read_issued.eq(requester.issued), seq.read_ended.eq(tags.ended),
            seq.rq_seq_num0.eq(self.rq_seq_num0), seq.rq_seq_vld0.eq(self.rq_seq_vld0),
            seq.rq_seq_num1.eq(self.rq_seq_num1), seq.rq_seq_vld1.eq(self.rq_seq_vld1),
            seq.bus_master.eq(self.bus_master), seq.handed.eq(packer.handed),
            seq.packer_idle.eq(~packer.active), seq.arbiter_idle.eq(arbiter.idle),
            seq.w_stop.eq(packer.stop),
            # The write direction.
            reader.stop.eq(packer.stop),
            splitter.max_payload.eq(self.max_payload), splitter.aborting.eq(aborting),
            packer.bus_master.eq(self.bus_master), packer.aborting.eq(aborting),
            packer.shown.eq(arbiter.shown),
            # The read direction.
            requester.max_read_req.eq(self.max_read_req), requester.aborting.eq(aborting),
            tags.ext_tags.eq(self.ext_tags), tags.timeout.eq(self.timeout),
            tags.aborting.eq(aborting), self.reads_out.eq(tags.reads_out),
            arbiter.packet_mid.eq(packer.mid), arbiter.bus_master.eq(self.bus_master),
            arbiter.aborting.eq(aborting),
            receiver.aborting.eq(aborting),
            self.busy.eq(seq.busy | requester.active | ~arbiter.idle | receiver.busy),
        ]
        return m
