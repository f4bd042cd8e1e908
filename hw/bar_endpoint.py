"""The p2p-dax PCIe endpoint: completer for BAR0 registers and BAR2 memory.

Connects to the Xilinx UltraScale+ hard IP (PG213) in dword-aligned mode
without straddling: requests arrive on CQ, completions leave on CC. The
requester side (RQ/RC) belongs to the DMA engine (hw/core/dma.py), whose
descriptors, results and MSI-X table (hw/core/msix.py) are BAR0 registers.

The blocks, each a component of hw/core/ with its interfaces in
hw/core/ports.py, joined here:

    CQ -> Ingress -> Dispatcher -+-> writes: MemoryBanks (BAR2) / RegisterFile (BAR0)
                                 +-> non-posted requests -> Completer -> CC
    RegisterFile <-> DmaQueue -> DmaEngine <-> RQ / RC, MemoryBanks
                                 DmaEngine results -> MsixSender -> hard IP
    EventCounters, DevctlPoller (Extended Tag Field Enable)

* Ingress stores and forwards whole packets (a flagged write is dropped
  whole, requests are served in arrival order) and gives non-posted credit.
* Memory and registers are N = width/32 dword-wide banks: the N dwords of
  a bus beat always fall in N different banks, so a beat at any dword
  alignment is written or read in one cycle.
* Completions are split at the Read Completion Boundary and never carry
  more than Max Payload Size, both from the hard IP's configuration
  outputs.
"""

from amaranth.hdl import Cat, Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hw.core import axi, layouts, ports
from hw.core.completer import Completer
from hw.core.control import SHOWN, STAGED, DevctlPoller, DmaQueue
from hw.core.dispatch import Dispatcher
from hw.core.dma import DmaEngine
from hw.core.ingress import Ingress
from hw.core.msix import MsixSender
from hw.core.storage import EventCounters, MemoryBanks, RegisterFile
from hw.params import EndpointParams
from hw.spec import regmap, usp
from hw.spec.usp import sideband


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


def memory_port_signature(p):
    """BAR2's memory port when it is outside (memory="axi"): AXI4 master
    ports m_axi_*, addressed by BAR offset."""
    sig = axi.axi_signature(ports.memory_addr_bits(p), p.data_width, ports.MEMORY_ID_BITS)
    return wiring.Signature({f"m_axi_{name}": member for name, member in sig.members.items()})


def register_constants(p):
    """The registers that never change, and their values."""
    regs = regmap.by_name()
    return {
        "ID": regmap.MAGIC, "VERSION": regs["VERSION"].reset,
        "CAPS": regs["CAPS"].pack(dma=1, msix=1,
                                  data_width_log2=ports.log2(p.data_width)),
        "BAR2_SIZE_LO": p.bar2_size & 0xFFFFFFFF, "BAR2_SIZE_HI": p.bar2_size >> 32,
        "MEM_SIZE_LO": p.mem_size & 0xFFFFFFFF, "MEM_SIZE_HI": p.mem_size >> 32,
        "DMA_BASE": regmap.DMA_BLOCK_OFFSET,
    }


class BarEndpoint(wiring.Component):
    def __init__(self, params=EndpointParams()):
        self.p = params.validate()
        members = dict(endpoint_signature(self.p).members)
        if self.p.memory == "axi":
            members.update(memory_port_signature(self.p).members)
        super().__init__(wiring.Signature(members))

    def elaborate(self, platform):
        p = self.p
        m = Module()
        m.submodules.ingress = ingress = Ingress(p)
        m.submodules.dispatch = dispatch = Dispatcher(p)
        m.submodules.completer = completer = Completer(p)
        m.submodules.dma = dma = DmaEngine(p.data_width, p.bar2_size, p.mem_size)
        m.submodules.mem_arbiter = arbiter = axi.AxiArbiter(ports.memory_addr_bits(p),
                                                          p.data_width, 1)
        self._memory(m, arbiter.s)
        m.submodules.regs = regs = RegisterFile(p, register_constants(p))
        m.submodules.counters = counters = EventCounters()
        m.submodules.descq = descq = DmaQueue(dma.local_bits)
        m.submodules.msix = msix = MsixSender(regmap.MSIX_VECTORS)
        m.submodules.devctl = devctl = DevctlPoller()

        # Requests: CQ through the ingress to the dispatcher, which writes the
        # banks and queues non-posted requests for the completer.
        self._hard_ip_stream(m, "s_axis_cq", ingress.cq)
        wiring.connect(m, ingress.o, dispatch.i)
        wiring.connect(m, dispatch.np, completer.np)
        wiring.connect(m, dispatch.write, regs.write)
        axi.join(m, dispatch.mem, arbiter.m0)
        axi.join(m, completer.mem, arbiter.m0)
        self._register_reads(m, completer, regs)
        self._hard_ip_stream(m, "m_axis_cc", completer.cc)
        m.d.comb += [
            ingress.np_taken.eq(completer.np.valid & completer.np.ready),
            ingress.np_queued.eq(completer.queued),
            self.pcie_cq_np_req.eq(ingress.np_req),
            completer.max_payload.eq(self.cfg_max_payload),
            completer.mem_done.eq(dispatch.mem_done),
            completer.rcb_128.eq(self.cfg_rcb_status[0]),
        ]

        # DMA: descriptors staged in registers, through the queue to the
        # engine, which shares BAR2's banks and has RQ and RC to itself.
        self._hard_ip_stream(m, "m_axis_rq", dma.rq)
        self._hard_ip_stream(m, "s_axis_rc", dma.rc)
        wiring.connect(m, dma.mem, arbiter.m1)
        wiring.connect(m, descq.desc, dma.desc)
        wiring.connect(m, dma.result, descq.result)
        bus_master = layouts.view(usp.FUNCTION_STATUS,
                                              self.cfg_function_status[:4]).bus_master
        m.d.comb += [getattr(descq, name.lower()).eq(getattr(regs, name.lower()))
                     for name in STAGED]
        m.d.comb += [
            descq.submit.eq(regs.submit), descq.abort.eq(regs.abort),
            descq.clear.eq(regs.clear_counters),
            descq.busy.eq(dma.busy), descq.aborting.eq(dma.aborting),
            descq.reads_out.eq(dma.reads_out), descq.bus_master.eq(bus_master),
            dma.abort.eq(regs.abort), dma.timeout.eq(regs.dma_timeout),
            dma.max_payload.eq(self.cfg_max_payload), dma.max_read_req.eq(self.cfg_max_read_req),
            dma.bus_master.eq(bus_master), dma.ext_tags.eq(devctl.ext_tags),
            dma.rq_seq_num0.eq(self.pcie_rq_seq_num0), dma.rq_seq_vld0.eq(self.pcie_rq_seq_num_vld0),
            dma.rq_seq_num1.eq(self.pcie_rq_seq_num1), dma.rq_seq_vld1.eq(self.pcie_rq_seq_num_vld1),
        ]
        self._registers(m, regs, counters, descq, msix, devctl, dispatch, completer)
        self._msix(m, regs, msix, dma)
        m.d.comb += [
            self.cfg_mgmt_addr.eq(devctl.addr), self.cfg_mgmt_byte_enable.eq(devctl.byte_enable),
            self.cfg_mgmt_read.eq(devctl.read), devctl.read_data.eq(self.cfg_mgmt_read_data),
            devctl.done.eq(self.cfg_mgmt_read_write_done),
        ]
        return m

    def _memory(self, m, port):
        """BAR2's memory: block RAM here, or the m_axi_* ports."""
        if self.p.memory == "bram":
            m.submodules.banks = banks = MemoryBanks(self.p)
            wiring.connect(m, port, banks.axi)
            return
        axi.join_named(m, port, self, slave_prefix="m_axi_")

    def _register_reads(self, m, completer, regs):
        """The completer reads registers as it reads memory: over AXI4, a
        row of every bank a beat."""
        p = self.p
        row_bits = ports.log2(p.bar0_size // 4) - ports.log2(p.lanes)
        m.submodules.reg_reads = reads = axi.AxiBankReads(
            ports.log2(p.bar0_size), p.data_width, 1, row_bits)
        axi.join(m, completer.regs, reads.axi)
        m.d.comb += [regs.read.en.eq(reads.bank_en), reads.bank_data.eq(regs.read.data),
                     *(regs.read.row[b].eq(reads.bank_row) for b in range(p.lanes))]

    def _hard_ip_stream(self, m, prefix, stream):
        """Joins a block's AXI4-Stream to the hard-IP ports named prefix_t*."""
        for name, member in stream.signature.members.items():
            port, inner = getattr(self, f"{prefix}_{name}"), getattr(stream, name)
            m.d.comb += inner.eq(port) if member.flow == In else port.eq(inner)

    def _registers(self, m, regs, counters, descq, msix, devctl, dispatch, completer):
        """What the register file shows that other blocks hold."""
        for events in (dispatch.events, completer.events):
            m.d.comb += [counters.inc[name].eq(events[name]) for name in events.shape().members]
        cfg = layouts.register_view("CFG", regs.cfg)
        m.d.comb += [
            counters.clear.eq(regs.clear_counters),
            *(getattr(regs, name.lower()).eq(getattr(counters, name.lower()))
              for name in regmap.COUNTERS),
            *(getattr(regs, name).eq(getattr(descq, name))
              for name in (n.lower() for n in SHOWN)),
            regs.msix_pba.eq(msix.pending),
            cfg.max_payload.eq(self.cfg_max_payload), cfg.max_read_req.eq(self.cfg_max_read_req),
            cfg.rcb_128.eq(self.cfg_rcb_status[0]), cfg.ext_tags.eq(devctl.ext_tags),
        ]

    def _msix(self, m, regs, msix, dma):
        """MSI-X: the table is in the register file; the sender asks the hard
        IP to send the messages."""
        for v in range(regmap.MSIX_VECTORS):
            vec = lambda part: getattr(regs, f"msix_vec{v}_{part}")     # noqa: E731
            m.d.comb += [
                msix.addr[v].eq(Cat(vec("addr_lo") & 0xFFFF_FFFC, vec("addr_hi"))),
                msix.data[v].eq(vec("data")),
                msix.masked[v].eq(layouts.register_view(f"MSIX_VEC{v}_CTRL", vec("ctrl")).mask),
            ]
        m.d.comb += [
            msix.event.eq(dma.result.valid & dma.result.irq),
            msix.event_vector.eq(dma.result.vector),
            msix.cfg_enable.eq(self.cfg_interrupt_msix_enable[0]),
            msix.cfg_mask.eq(self.cfg_interrupt_msix_mask[0]),
            msix.cfg_sent.eq(self.cfg_interrupt_msix_sent),
            msix.cfg_fail.eq(self.cfg_interrupt_msix_fail),
            self.cfg_interrupt_msix_int.eq(msix.cfg_int),
            self.cfg_interrupt_msix_address.eq(msix.cfg_address),
            self.cfg_interrupt_msix_data.eq(msix.cfg_data),
        ]
