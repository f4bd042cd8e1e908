"""The one topology every testbench uses.

    RootComplex
        |
      Switch ---- endpoint A  (this project's RTL, UltraScale+ hard-IP model)
        |  \\---- endpoint B  (this project's RTL, UltraScale+ hard-IP model)
        |   \\--- MemoryEndpoint peer (cocotbext-pcie's model)

The hard-IP models drive each endpoint's clock and reset. The testbench
reads the build parameters from the environment (P2P_DAX_PARAMS, set by
hw.sim.tb.runner), so the same tests run at every data width.
"""

import itertools
import json
import logging
import os
import random

from cocotb.triggers import ClockCycles, RisingEdge, Timer
from cocotbext.axi import AxiStreamBus
from cocotbext.pcie.core import Device, MemoryEndpoint, RootComplex, Switch
from cocotbext.pcie.core.caps import PciCapId

from hw.flow import boards, hard_ip
from hw.params import EndpointParams
from hw.sim.tb.memory import MemoryModel, attach
from hw.spec import regmap
from hw.sim.tb.dut import INSTANCES
from hw.sim.tb.s7_model import S7PcieDevice
from hw.sim.tb.usp_model import UltraScalePlusHardIp

from hw.sim.tb.checker.adapters import InterfaceChecker, RequesterChecker

PEER_MEM_SIZE = 1 << 20


def params_from_env():
    raw = os.environ.get("P2P_DAX_PARAMS")
    return EndpointParams(**json.loads(raw)) if raw else EndpointParams()


class Endpoint:
    """One of this project's endpoints: the RTL, its hard-IP model, its PCI view."""

    def __init__(self, dut, inst, params):
        self.inst = inst
        self.params = params
        # The hard IP as a board's Tcl configures it (or a simulation-only
        # variant: hw.flow.boards.sim_config says which, and how it differs).
        self.hip, self.board, self.hip_changes = boards.sim_config(params)
        problems = hard_ip.mismatches(self.hip, params)
        if problems:
            raise AssertionError(f"endpoint {inst}: the {self.board} hard-IP configuration does "
                                 "not fit the RTL: " + "; ".join(problems))
        sig = lambda name: getattr(dut, f"{inst}_{name}")
        bus = lambda prefix: AxiStreamBus.from_prefix(dut, f"{inst}_{prefix}")
        self.clk = sig("clk")
        self.rst = sig("rst")
        # BAR2's memory outside the endpoint (memory="axi"): a model on m_axi_*.
        self.ram = None
        if params.memory == "axi":
            model = MemoryModel.from_env(os.environ.get("P2P_DAX_MEMORY"))
            self.ram = attach(dut, f"{inst}_m_axi", self.clk, self.rst, params.mem_size, model)
        self.model = (self._s7_model(dut, inst) if params.hard_ip == "s7"
                      else self._usp_model(sig, bus))
        func = self.model.functions[0]
        attrs, bars = hard_ip.function_setup(self.hip)
        for name, value in attrs.items():
            setattr(func, name, value)
        for n, size, wide, prefetch in bars:
            func.configure_bar(n, size, ext=wide, prefetch=prefetch)
        self.pci = None                  # cocotbext PciDevice, after enumeration
        # PCIe rules, checked on every packet: completer side (CQ/CC) and
        # requester side (RQ/RC, the DMA engine). On the 7-series build they
        # watch the endpoint's side of the shim; the model checks the TLPs.
        self.checker = InterfaceChecker(
            dut=_Prefixed(dut, inst), clk=self.clk, rst=self.rst,
            width=params.data_width, mps_fn=self.mps, rcb_fn=self.rcb,
            memory={2: (params.bar2_size, params.mem_size)})
        self.req_checker = RequesterChecker.for_function(
            _Prefixed(dut, inst), self.clk, self.rst, params.data_width, self.function)

    def _s7_model(self, dut, inst):
        return S7PcieDevice(dut, f"{inst}_", user_clk=self.clk, user_reset=self.rst,
                            **hard_ip.s7_model_options(self.hip))

    def _usp_model(self, sig, bus):
        return UltraScalePlusHardIp(
            **hard_ip.usp_model_options(self.hip),
            user_clk=self.clk,
            user_reset=self.rst,
            rq_bus=bus("m_axis_rq"),
            rc_bus=bus("s_axis_rc"),
            cq_bus=bus("s_axis_cq"),
            cc_bus=bus("m_axis_cc"),
            pcie_cq_np_req=sig("pcie_cq_np_req"),
            pcie_cq_np_req_count=sig("pcie_cq_np_req_count"),
            cfg_max_payload=sig("cfg_max_payload"),
            cfg_max_read_req=sig("cfg_max_read_req"),
            cfg_rcb_status=sig("cfg_rcb_status"),
            cfg_function_status=sig("cfg_function_status"),
            cfg_mgmt_addr=sig("cfg_mgmt_addr"),
            cfg_mgmt_function_number=sig("cfg_mgmt_function_number"),
            cfg_mgmt_write=sig("cfg_mgmt_write"),
            cfg_mgmt_write_data=sig("cfg_mgmt_write_data"),
            cfg_mgmt_byte_enable=sig("cfg_mgmt_byte_enable"),
            cfg_mgmt_read=sig("cfg_mgmt_read"),
            cfg_mgmt_read_data=sig("cfg_mgmt_read_data"),
            cfg_mgmt_read_write_done=sig("cfg_mgmt_read_write_done"),
            pcie_rq_seq_num0=sig("pcie_rq_seq_num0"),
            pcie_rq_seq_num_vld0=sig("pcie_rq_seq_num_vld0"),
            pcie_rq_seq_num1=sig("pcie_rq_seq_num1"),
            pcie_rq_seq_num_vld1=sig("pcie_rq_seq_num_vld1"),
            cfg_interrupt_msix_enable=sig("cfg_interrupt_msix_enable"),
            cfg_interrupt_msix_mask=sig("cfg_interrupt_msix_mask"),
            cfg_interrupt_msix_address=sig("cfg_interrupt_msix_address"),
            cfg_interrupt_msix_data=sig("cfg_interrupt_msix_data"),
            cfg_interrupt_msix_int=sig("cfg_interrupt_msix_int"),
            cfg_interrupt_msix_sent=sig("cfg_interrupt_msix_sent"),
            cfg_interrupt_msix_fail=sig("cfg_interrupt_msix_fail"),
            cfg_interrupt_msi_function_number=sig("cfg_interrupt_msi_function_number"),
        )

    @property
    def s7(self):
        return self.params.hard_ip == "s7"

    def pause(self, cq=None, cc=None, rq=None, rc=None):
        """Per-cycle pause patterns (generators of bools; None: no pauses) on
        the hard IP's streams. On 7-series, requests and completions share a
        stream each way: receive takes cq or rc, transmit cc or rq."""
        if self.s7:
            self.model.set_rx_pause_generator(cq if cq is not None else rc)
            self.model.set_tx_backpressure_generator(cc if cc is not None else rq)
            return
        m = self.model
        for port, gen in ((m.cq_source, cq), (m.cc_sink, cc), (m.rq_sink, rq), (m.rc_source, rc)):
            if gen is None:
                port.clear_pause_generator()
                port.pause = False      # cocotbext leaves it at the pattern's last value
            else:
                port.set_pause_generator(gen)

    def hold_completions(self, hold):
        """Stall the endpoint's completions (CC; on 7-series all it sends)."""
        if self.s7:
            self.model.set_tx_backpressure_generator(itertools.repeat(True) if hold else None)
        else:
            self.model.cc_sink.pause = hold

    def forget_reads(self):
        """What the hard IP does when its own completion timeout fires: forget
        the reads (cocotbext's US+ model has no timeout and would keep their
        tags and completion credits forever; the 7-series IP tracks none). The
        checker is told the same."""
        if not self.s7:
            self.model.active_request = [None] * 256
            self.model.cpld_credit_count = 0
            self.model.tag_available_count = self.model.get_available_tag_count()
        self.req_checker.expire()

    @property
    def function(self):
        return self.model.functions[0]

    def mps(self):
        return 128 << self.function.pcie_cap.max_payload_size

    def rcb(self):
        return 128 if self.function.pcie_cap.read_completion_boundary else 64

    @property
    def bar0(self):
        return self.pci.bar_window[0]

    @property
    def bar2(self):
        return self.pci.bar_window[2]

    @property
    def bar2_addr(self):
        return self.pci.bar_addr[2]

    async def read_reg(self, name):
        return await self.bar0.read_dword(regmap.offset(name))

    async def write_reg(self, name, value):
        await self.bar0.write_dword(regmap.offset(name), value)

    async def dma_submit(self, local, bus, length, from_bus=False, irq=False, ident=0,
                         vector=0):
        """Queue one DMA descriptor; returns its number (counting from 0)."""
        number = await self.read_reg("DMA_SUBMITTED")
        await self.write_reg("DMA_LOCAL", local)
        await self.write_reg("DMA_BUS_LO", bus & 0xFFFFFFFF)
        await self.write_reg("DMA_BUS_HI", bus >> 32)
        await self.write_reg("DMA_LENGTH", length)
        await self.write_reg("DMA_CONTROL", regmap.by_name()["DMA_CONTROL"].pack(
            from_bus=int(from_bus), irq=int(irq), vector=vector, id=ident))
        await self.write_reg("DMA_SUBMIT", 1)
        return number

    async def dma_wait(self, number, timeout_cycles=200_000):
        """Wait until descriptor `number` has ended; return (id, status)."""
        for _ in range(timeout_cycles // 64):
            done = await self.read_reg("DMA_DONE")
            if (done - number - 1) & 0xFFFFFFFF < 0x80000000:    # done > number, wrapping
                break
            await ClockCycles(self.clk, 64)
        else:
            raise AssertionError(f"endpoint {self.inst}: DMA descriptor {number} did not end")
        slot = f"DMA_RESULT{number % regmap.DMA_RESULTS}"
        result = regmap.by_name()[slot].unpack(await self.read_reg(slot))
        assert result["seq"] == number & 0xFF, f"result slot holds descriptor {result['seq']}"
        return result["id"], regmap.DmaStatus(result["status"])

    async def dma_abort(self, timeout_cycles=20_000):
        """Write DMA_ABORT and wait until it has ended every descriptor
        submitted before it; return DMA_DONE (then equal to DMA_SUBMITTED)."""
        submitted = await self.read_reg("DMA_SUBMITTED")
        await self.write_reg("DMA_ABORT", 1)
        state = regmap.by_name()["DMA_STATE"]
        for _ in range(timeout_cycles // 64):
            done = await self.read_reg("DMA_DONE")
            if done == submitted and not state.unpack(await self.read_reg("DMA_STATE"))["aborting"]:
                return done
            await ClockCycles(self.clk, 64)
        raise AssertionError(f"endpoint {self.inst}: DMA_ABORT left descriptors {done} to "
                             f"{submitted - 1} running")

    async def set_mps(self, nbytes):
        await self.pci.set_mps((nbytes // 128).bit_length() - 1)

    async def set_rcb(self, nbytes):
        """Set the Link Control RCB bit (64 or 128 bytes)."""
        ctl = await self.pci.capability_read_dword(PciCapId.EXP, 0x10)
        ctl = (ctl & ~0x8) | (0x8 if nbytes == 128 else 0)
        await self.pci.capability_write_dword(PciCapId.EXP, 0x10, ctl & 0xFFFF)


class _Prefixed:
    """Gives the checker the view of one endpoint: dut.s_axis_cq_tdata ..."""

    def __init__(self, dut, inst):
        self._dut = dut
        self._inst = inst
        self._name = f"{inst}"

    def __getattr__(self, name):
        return getattr(self._dut, f"{self._inst}_{name}")


class Topology:
    """Build with ``tb = await Topology.create(dut)``."""

    @classmethod
    async def create(cls, dut, **kwargs):
        await cls.quiet_inputs(dut, kwargs.get("params") or params_from_env())
        return cls(dut, **kwargs)

    @staticmethod
    async def quiet_inputs(dut, params):
        """Drive every input before the first clock edge: a clock edge at time
        zero with undriven inputs leaves registers X in simulation."""
        s7 = params.hard_ip == "s7"
        for inst in INSTANCES:
            if params.memory == "axi":     # the memory model drives an ID only with data
                for name in ("awready", "wready", "bvalid", "bid", "bresp", "arready",
                             "rvalid", "rdata", "rresp", "rlast", "rid"):
                    getattr(dut, f"{inst}_m_axi_{name}").value = 0
            if s7:                  # the 7-series model drives its outputs itself
                for name in ("clk", "rst", "m_axis_rx_tvalid", "s_axis_tx_tready"):
                    getattr(dut, f"{inst}_{name}").value = 0
                continue
            for name in ("clk", "rst", "s_axis_cq_tvalid", "m_axis_cc_tready",
                         "m_axis_rq_tready", "s_axis_rc_tvalid", "cfg_max_payload",
                         "cfg_max_read_req", "cfg_rcb_status", "cfg_function_status",
                         "pcie_cq_np_req_count", "cfg_mgmt_read_data",
                         "cfg_mgmt_read_write_done", "pcie_rq_seq_num_vld0",
                         "pcie_rq_seq_num_vld1", "cfg_interrupt_msix_enable",
                         "cfg_interrupt_msix_mask", "cfg_interrupt_msix_sent",
                         "cfg_interrupt_msix_fail"):
                getattr(dut, f"{inst}_{name}").value = 0
        await Timer(1, "ns")

    def __init__(self, dut, params=None, max_payload=1024, seed=None, peer=None):
        self.dut = dut
        self.params = params or params_from_env()
        self.log = logging.getLogger("cocotb.tb")
        # The bus models log every enumeration probe as a warning: keep them quiet.
        logging.getLogger("cocotb.pcie").setLevel(logging.ERROR)
        self.rng = random.Random(seed if seed is not None else int(os.environ.get("SEED", "1")))
        self.rc = RootComplex()
        self.rc.max_payload_size = (max_payload // 128).bit_length() - 1
        self.rc.max_read_request_size = 5         # 4096: the host reads 4 KiB in one request
        self.switch = Switch()
        self.rc.make_port().connect(self.switch)
        self.endpoints = [Endpoint(dut, inst, self.params) for inst in INSTANCES]
        for ep in self.endpoints:
            if ep.s7:
                # pcie_7x straddles TLPs at 128 bits (the model's default) and
                # may start one at byte 8 after an idle beat: a quarter of them.
                unaligned = random.Random(self.rng.random())
                ep.model.set_rx_unaligned_start_generator(lambda r=unaligned: r.random() < 0.25)
        for ep in self.endpoints:
            self.switch.make_port().connect(ep.model)
        # The memory peer: cocotbext's, or one given (hw.sim.tb.peers has one with
        # completion latency and faults).
        self.peer = peer if peer is not None else MemoryEndpoint()
        self.peer_mem = self.peer.add_mem_region(PEER_MEM_SIZE) if peer is None else peer.mem
        self.switch.make_port().connect(Device(self.peer))
        self.peer_pci = None

    @property
    def a(self):
        return self.endpoints[0]

    @property
    def b(self):
        return self.endpoints[1]

    async def start(self):
        """Reset, enumerate, enable memory decoding and bus mastering."""
        for ep in self.endpoints:
            await RisingEdge(ep.clk)
        while any(ep.rst.value == 1 for ep in self.endpoints) or \
                any(not ep.rst.value.is_resolvable for ep in self.endpoints):
            await Timer(10, "ns")
        await ClockCycles(self.a.clk, 4)
        await self.rc.enumerate()
        for ep in self.endpoints:
            ep.pci = self.rc.find_device(ep.function.pcie_id)
            await ep.pci.enable_device()
            await ep.pci.set_master()
        self.peer_pci = self.rc.find_device(self.peer.pcie_id)
        await self.peer_pci.enable_device()
        await self.peer_pci.set_master()

    async def set_mps(self, nbytes):
        """Max Payload Size for every device, as Linux keeps it: the same along
        the path (a TLP over the receiver's MPS is malformed)."""
        code = (nbytes // 128).bit_length() - 1
        for pci in (self.a.pci, self.b.pci, self.peer_pci):
            await pci.set_mps(code)

    def describe(self):
        """Lines a newcomer can read: the topology and the enumerated devices."""
        lines = ["Root complex -> switch -> "
                 f"[endpoint A, endpoint B, memory peer]  ({self.params.data_width}-bit interface)"]
        for name, pci in [("endpoint A", self.a.pci), ("endpoint B", self.b.pci),
                          ("memory peer", self.peer_pci)]:
            bars = []
            for i in range(6):
                if pci.bar_size[i]:
                    kind = "64-bit pref" if pci.bar[i] & 0xC == 0xC else \
                        "64-bit" if pci.bar[i] & 0x4 else "32-bit"
                    bars.append(f"BAR{i} {kind} {pci.bar_size[i] // 1024} KiB @ {pci.bar_addr[i]:#x}")
            lines.append(f"  {pci.pcie_id} {name}: {pci.vendor_id:04x}:{pci.device_id:04x}  "
                         + ", ".join(bars))
        return lines

    def assert_clean(self):
        for ep in self.endpoints:
            if ep.s7:
                assert not ep.model.tx_errors, \
                    f"endpoint {ep.inst}: TLPs against the rules: {ep.model.tx_errors[:5]}"
            for checker in (ep.checker, ep.req_checker):
                checker.assert_clean()
                checker.assert_idle()

