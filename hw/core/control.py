"""The blocks between the register file and the engines: the DMA engine's
descriptor queue and results (the DMA_* registers), and the poller that
reads the Extended Tag Field Enable bit from Device Control.
"""

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from hw.core import layouts, ports
from hw.spec import pcie, regmap, usp

STAGED = ("DMA_LOCAL", "DMA_BUS_LO", "DMA_BUS_HI", "DMA_LENGTH", "DMA_CONTROL")
SHOWN = ("DMA_SUBMIT", "DMA_SUBMITTED", "DMA_DONE", "DMA_STATE", "DMA_ERR_OVERFLOW",
         "DMA_READS") + tuple(f"DMA_RESULT{k}" for k in range(regmap.DMA_RESULTS))


class DmaQueue(wiring.Component):
    """Descriptors staged in DMA_LOCAL .. DMA_CONTROL are queued by a write to
    DMA_SUBMIT (`submit`) and offered to the engine in order; the engine's
    results land in DMA_RESULT[k % DMA_RESULTS]. `abort` (DMA_ABORT): the
    engine ends what it holds, and the descriptors waiting here that were
    submitted before the abort (one submitted by the same write included)
    go to it marked to end ABORTED. Members named after registers (lower
    case) are their values: STAGED come in, SHOWN go out."""

    def __init__(self, local_bits):
        self.local_bits = local_bits
        super().__init__({
            **{name.lower(): In(32) for name in STAGED},
            "submit": In(1), "abort": In(1), "clear": In(1),
            "desc": Out(ports.dma_descriptor_signature(local_bits)),
            "result": In(ports.dma_result_signature()),
            # From the engine and the hard IP, for DMA_STATE and DMA_READS.
            "busy": In(1), "aborting": In(1), "reads_out": In(9), "bus_master": In(1),
            **{name.lower(): Out(32) for name in SHOWN},
        })

    def elaborate(self, platform):
        m = Module()
        entry = data.StructLayout({"local": 32, "bus": 64, "length": 25, "from_bus": 1,
                                   "irq": 1, "id": 16, "vector": 2})
        m.submodules.fifo = fifo = SyncFIFO(width=entry.size, depth=regmap.DMA_QUEUE_DEPTH)
        ctl = layouts.register_view("DMA_CONTROL", self.dma_control)
        w, r, desc = data.View(entry, fifo.w_data), data.View(entry, fifo.r_data), self.desc
        m.d.comb += [
            w.local.eq(self.dma_local), w.bus.eq(Cat(self.dma_bus_lo, self.dma_bus_hi)),
            # Lengths beyond what the queue carries must not wrap into valid ones.
            w.length.eq(Mux(self.dma_length > regmap.DMA_MAX_LENGTH, 0, self.dma_length)),
            w.from_bus.eq(ctl.from_bus), w.irq.eq(ctl.irq), w.id.eq(ctl.id),
            w.vector.eq(ctl.vector),
            fifo.w_en.eq(self.submit),
            desc.valid.eq(fifo.r_rdy), fifo.r_en.eq(desc.ready),
            desc.local.eq(r.local), desc.bus.eq(r.bus), desc.length.eq(r.length),
            desc.from_bus.eq(r.from_bus), desc.irq.eq(r.irq), desc.id.eq(r.id),
            desc.vector.eq(r.vector),
        ]
        # Descriptors to end ABORTED: those queued before the abort.
        abort_queued = Signal(range(regmap.DMA_QUEUE_DEPTH + 1))
        with m.If(self.abort):
            m.d.sync += abort_queued.eq(fifo.level + (self.submit & fifo.w_rdy) - fifo.r_en)
        with m.Elif(fifo.r_en & (abort_queued != 0)):
            m.d.sync += abort_queued.eq(abort_queued - 1)
        m.d.comb += desc.abort.eq(abort_queued != 0)
        self._registers(m, fifo, abort_queued)
        return m

    def _registers(self, m, fifo, abort_queued):
        submitted, done, overflow = self.dma_submitted, self.dma_done, self.dma_err_overflow
        with m.If(self.submit):
            with m.If(fifo.w_rdy):
                m.d.sync += submitted.eq(submitted + 1)
            with m.Else():
                m.d.sync += overflow.eq(overflow + 1)
        res = self.result
        with m.If(res.valid):
            m.d.sync += done.eq(done + 1)
            with m.Switch(done[:ports.log2(regmap.DMA_RESULTS)]):
                for k in range(regmap.DMA_RESULTS):
                    with m.Case(k):
                        slot = layouts.register_view(f"DMA_RESULT{k}",
                                                     getattr(self, f"dma_result{k}"))
                        m.d.sync += [slot.id.eq(res.id), slot.status.eq(res.status),
                                     slot.seq.eq(done)]
        peak = Signal(9)
        with m.If(self.clear):
            m.d.sync += peak.eq(0)
        with m.Elif(self.reads_out > peak):
            m.d.sync += peak.eq(self.reads_out)
        state = layouts.register_view("DMA_STATE", self.dma_state)
        reads = layouts.register_view("DMA_READS", self.dma_reads)
        m.d.comb += [
            self.dma_submit.eq(regmap.DMA_QUEUE_DEPTH - fifo.level),
            state.busy.eq(self.busy | fifo.r_rdy), state.bus_master.eq(self.bus_master),
            state.aborting.eq(self.aborting | (abort_queued != 0)),
            reads.now.eq(self.reads_out), reads.peak.eq(peak),
        ]


class DevctlPoller(wiring.Component):
    """Reads Device Control through the hard IP's configuration management
    port every 256 cycles (one read at a time, held until done) and keeps
    its Extended Tag Field Enable bit."""

    def __init__(self):
        super().__init__({
            "addr": Out(10), "byte_enable": Out(4), "read": Out(1),
            "read_data": In(32), "done": In(1),
            "ext_tags": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        wait = Signal(8)
        busy = Signal()
        m.d.comb += [self.addr.eq(usp.DEVICE_CONTROL_DWORD), self.byte_enable.eq(0xF),
                     self.read.eq(busy)]
        devctl = layouts.view(pcie.DEVICE_CONTROL, self.read_data[:16])
        with m.If(busy):
            with m.If(self.done):
                m.d.sync += [busy.eq(0), self.ext_tags.eq(devctl.ext_tag)]
        with m.Else():
            m.d.sync += wait.eq(wait + 1)
            with m.If(wait == 255):
                m.d.sync += busy.eq(1)
        return m
