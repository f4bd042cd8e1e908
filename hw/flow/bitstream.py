"""The board's bitstream: the endpoint around the PCIe hard IP, through Vivado.

    python -m hw.flow.bitstream --board NAME [--build-dir DIR]

Builds the design through Amaranth's Xilinx platform (`make bitstream
BOARD=...`): a top level per board with the hard IP as an instance of
hw.flow.hard_ip.MODULE, the endpoint behind it in the IP's user clock domain, the
reference clock through the transceivers' clock buffer and PERST# from its
pin. The IP is created and configured by the Tcl of hw.flow.hard_ip (every value
from the register map and the board) in Amaranth's `script_after_read`; the
DRAM controller behind BAR2 follows it the same way (hw.flow.dram), its
AXI4 slave reached across hw.core.axi.AxiClockCrossing.

With Vivado on PATH (or AMARANTH_ENV_VIVADO naming its settings script) it
runs Vivado and prints the .bit's path; without, it writes the complete
build tree and prints the one command that finishes it where Vivado is.
The bitstream lands where `make flash` looks (hw.flow.flash.default_bitstream).

- UltraScale+ (pcie4_uscale_plus, PG213): the endpoint's ports are the IP's
  user-side ports seen from the user (its s_axis_cq is the IP's m_axis_cq).
- 7 series (pcie_7x, PG054): hw.top.S7Endpoint, the endpoint behind the
  shim, whose ports are the IP's user-side ports under their own names.

The PCIe lanes are top-level ports without a pin: the IP's own constraints
place its transceivers (its block and GT quad, from hw.flow.hard_ip), and the
lanes' pads follow. The reference clock's pins (with its 100 MHz clock) and
PERST# (IO standard, pull-up) come from the board definition.
"""

import argparse
import shlex
import subprocess
import sys
from pathlib import Path

from amaranth.build import Attrs, Clock, DiffPairs, PinsN, Resource
from amaranth.hdl import (Cat, ClockDomain, ClockSignal, Const, DomainRenamer, Elaboratable,
                          Instance, IOPort, Module, Signal)
from amaranth.lib import io
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out
from amaranth.vendor import XilinxPlatform

from hw.core import axi, ports as core_ports
from hw.flow import boards, dram, flash, hard_ip
from hw.flow.synth import ZERO_INIT

REFCLK_HZ = hard_ip.REFCLK_MHZ * 1_000_000
# The user clock's pin on each IP instance (hip: the hard IP, dram: the DRAM controller).
HIP_CLOCK = {hard_ip.USP: "hip/user_clk", hard_ip.S7: "hip/user_clk_out"}
DRAM_CLOCK = {c: f"dram/{ports['ui_clk']}" for c, ports in dram.CONTROLLER_PORTS.items()}
BOARD_XDC = "pcie_board.xdc"        # the board's constraints: board_constraints()
LANE_PORTS = ("pci_exp_txp", "pci_exp_txn", "pci_exp_rxp", "pci_exp_rxn")


def paths(board, build_dir=None):
    """(build directory, design name): by default where hw.flow.flash looks for the .bit."""
    bit = flash.default_bitstream(board)
    return Path(build_dir) if build_dir else bit.parent, bit.stem


# ---------------------------------------------------------------------------
# Platforms
# ---------------------------------------------------------------------------

class _PcieBoard:
    """What every board's platform adds: the reference clock and PERST# as
    resources made from the board definition, and no pin constraint for the
    ports that have none (the lanes: the hard IP places them)."""

    def add_pcie_resources(self, board):
        if board.clkreq:
            self.add_resources([
                Resource("pcie_clkreq", 0, PinsN(board.clkreq, dir="o"),
                         Attrs(IOSTANDARD=board.io_standard))])
        self.add_resources([
            Resource("pcie_refclk", 0, DiffPairs(*board.refclk, dir="i"), Clock(REFCLK_HZ)),
            # amaranth-boards' Fury `pcie` resource declares PERST# an output: this one is
            # the input it is, active low, pulled up while the host does not drive it.
            Resource("pcie_perst", 0, PinsN(board.perst, dir="i"),
                     Attrs(IOSTANDARD=board.perst_iostandard, PULLUP="TRUE")),
            # The DRAM controller's input clock (its own buffer takes the pins).
            Resource("dram_sys_clk", 0, DiffPairs(*board.dram.sys_clk, dir="i"),
                     Clock(board.dram.sys_clk_mhz * 1e6),
                     Attrs(IOSTANDARD=board.dram.sys_clk_iostandard)),
        ])

    def iter_port_constraints_bits(self):
        for name, port, _dir in self._design.ports:
            for bit, meta in enumerate(port.metadata):
                if meta is not None:
                    yield (name if len(port) == 1 else f"{name}[{bit}]"), meta.name, meta.attrs


class _BarePlatform(_PcieBoard, XilinxPlatform):
    """A platform for a board amaranth-boards does not have (the VCU118): the
    part and the PCIe pins, all from the board definition."""
    resources = []
    connectors = []
    default_clk = None
    board = None


# The pcie_7x cell of each IP lane's transceiver channel, inside the IP
# (the same path litepcie's add_gt_loc_constraints uses).
S7_GT_CELL = "*pipe_lane[{n}].gt_wrapper_i/gtp_channel.gtpe2_channel_i"


def board_constraints(board, perst_port):
    """The board's constraints file: configuration settings, every lane's
    pins (a misplaced lane stops the build), the transceiver of each IP lane
    where the IP's own placement is wrong (pcie_7x on the Furies), and PERST#
    as a false path."""
    lines = [f"# {board.title}: generated by hw/flow/bitstream.py from hw/flow/boards.py; do not edit.",
             "# Configuration"]
    lines += [f"set_property {prop} {{{value}}} [current_design]"
              for prop, value in board.config_properties.items()]
    lines.append("# PCIe lanes, numbered as the hard IP numbers them")
    for n, lane in enumerate(board.lane_pins):
        for port, pin in zip(LANE_PORTS, (*lane.tx, *lane.rx)):
            lines.append(f"set_property LOC {pin} [get_ports {{{port}[{n}]}}]")
    lines += ["# PERST# is asynchronous to everything (Xilinx's example designs: the same)",
              f"set_false_path -from [get_ports {perst_port}]"]
    lines += dram.constraints(board.dram)
    clocks = lambda pin: f"[get_clocks -of_objects [get_pins {pin}]]"
    lines += ["# The endpoint's clock and the DRAM controller's cross only through",
              "# hw.core.axi.AxiClockCrossing's FIFOs and synchronisers",
              f"set_clock_groups -asynchronous -group {clocks(HIP_CLOCK[board.hip.ip])} "
              f"-group {clocks(DRAM_CLOCK[board.dram.controller])}", ""]
    return "\n".join(lines)


def gt_placement(board):
    """Tcl, after synthesis: each IP lane's transceiver channel, where the IP's
    own placement is wrong for the board (pcie_7x on the Furies: monotonic,
    which puts the host's lane 0 elsewhere). The IP's LOCs are cleared first,
    so that no two lanes claim a site in between."""
    if board.hip.ip != hard_ip.S7:
        return ""
    cells = lambda path: f"[get_cells -hierarchical -filter {{NAME =~ {path}}}]"
    lines = ["# The IP lanes' transceivers (hw/flow/boards.py lane_pins)",
             f"reset_property LOC {cells('*gtp_channel.gtpe2_channel_i')}"]
    lines += [f"set_property LOC {lane.gt} {cells(S7_GT_CELL.format(n=n))}"
              for n, lane in enumerate(board.lane_pins)]
    return "\n".join(lines) + "\n"


def _amaranth_boards_class(board):
    """amaranth-boards' platform class for the board's part, or None."""
    import amaranth_boards.nitefury as nitefury
    for cls_name in nitefury.__all__:
        cls = getattr(nitefury, cls_name)
        if f"{cls.device}{cls.package}-{cls.speed}" == board.part.name:
            return cls
    return None


def platform(board):
    """An Amaranth platform for the board, with its PCIe resources added."""
    base = _amaranth_boards_class(board)
    if base is None:
        device, package, speed = board.part.name.split("-", 2)
        cls = type(f"{board.name}_platform", (_BarePlatform,),
                   {"device": device, "package": package, "speed": speed, "board": board})
    else:
        cls = type(f"{board.name}_platform", (_PcieBoard, base), {})
    plat = cls()
    if plat._part != board.part.name:
        raise ValueError(f"{board.name}: platform part {plat._part} is not {board.part.name}")
    plat.add_pcie_resources(board)
    return plat


# ---------------------------------------------------------------------------
# Top levels
# ---------------------------------------------------------------------------

# UltraScale+: the endpoint names a stream as the user sees it, the IP as it sees it.
_USP_STREAMS = {"s_axis_cq_": "m_axis_cq_", "m_axis_cc_": "s_axis_cc_",
                "m_axis_rq_": "s_axis_rq_", "s_axis_rc_": "m_axis_rc_"}
# MSI-X completions come back on the MSI status ports (PG213; verilog-pcie's VCU118 fpga.v).
_USP_RENAMED = {"cfg_interrupt_msix_sent": "cfg_interrupt_msi_sent",
                "cfg_interrupt_msix_fail": "cfg_interrupt_msi_fail"}


def _usp_width(name, data_width):
    """The IP's width of a port where it differs from the endpoint's, else None."""
    if name in ("s_axis_rq_tready", "s_axis_cc_tready"):
        return 4                    # four copies of one ready
    if name in ("m_axis_cq_tready", "m_axis_rc_tready"):
        return 1 if data_width == 512 else 22   # 22 below 512: unconfirmed (docs/notes)
    if name == "cfg_max_payload":
        return 2                    # pcie4_uscale_plus: 128 to 1024 bytes
    return None


# Inputs of pcie4_uscale_plus the endpoint does not drive, and their values
# (verilog-pcie's VCU118 fpga.v ties the same ports). Others are left open.
_USP_TIES = {
    "cfg_mgmt_debug_access": Const(0, 1),
    "cfg_msg_transmit": Const(0, 1), "cfg_msg_transmit_type": Const(0, 3),
    "cfg_msg_transmit_data": Const(0, 32),
    "cfg_fc_sel": Const(0, 3),
    "cfg_dsn": Const(0, 64),
    "cfg_power_state_change_ack": Const(1, 1),
    "cfg_err_cor_in": Const(0, 1), "cfg_err_uncor_in": Const(0, 1),
    "cfg_flr_done": Const(0, 4), "cfg_vf_flr_func_num": Const(0, 8), "cfg_vf_flr_done": Const(0, 1),
    "cfg_link_training_enable": Const(1, 1),
    "cfg_interrupt_int": Const(0, 4), "cfg_interrupt_pending": Const(0, 4),   # legacy INTx
    "cfg_interrupt_msix_vec_pending": Const(0, 2),
    "cfg_pm_aspm_l1_entry_reject": Const(0, 1), "cfg_pm_aspm_tx_l0s_entry_disable": Const(0, 1),
    "cfg_config_space_enable": Const(1, 1),
    "cfg_req_pm_transition_l23_ready": Const(0, 1),
    "cfg_hot_reset_in": Const(0, 1),
    "cfg_ds_port_number": Const(0, 8), "cfg_ds_bus_number": Const(0, 8),
    "cfg_ds_device_number": Const(0, 5),
}

# Inputs of pcie_7x the shim does not drive, with the port groups hw.flow.hard_ip
# enables (cfg_mgmt_if, cfg_ctl_if, cfg_status_if, pl_interface; names and
# widths as in a Vivado stub of pcie_7x with those groups). Legacy and MSI
# interrupts off (cfg_interrupt*), no configuration writes (cfg_mgmt_*), no
# power management requests (cfg_pm_*), no directed link changes (pl_*).
# The error-reporting ports (cfg_err_*) are not in the module: hw.flow.hard_ip
# turns that group off. cfg_turnoff_ok is driven below.
_S7_TIES = {
    "cfg_interrupt": Const(0, 1), "cfg_interrupt_assert": Const(0, 1),
    "cfg_interrupt_di": Const(0, 8), "cfg_interrupt_stat": Const(0, 1),
    "cfg_pciecap_interrupt_msgnum": Const(0, 5),
    "cfg_mgmt_di": Const(0, 32), "cfg_mgmt_byte_en": Const(0, 4), "cfg_mgmt_dwaddr": Const(0, 10),
    "cfg_mgmt_wr_en": Const(0, 1), "cfg_mgmt_rd_en": Const(0, 1),
    "cfg_mgmt_wr_readonly": Const(0, 1), "cfg_mgmt_wr_rw1c_as_rw": Const(0, 1),
    "cfg_trn_pending": Const(0, 1),
    "cfg_pm_halt_aspm_l0s": Const(0, 1), "cfg_pm_halt_aspm_l1": Const(0, 1),
    "cfg_pm_force_state_en": Const(0, 1), "cfg_pm_force_state": Const(0, 2),
    "cfg_pm_wake": Const(0, 1), "cfg_pm_send_pme_to": Const(0, 1),
    "cfg_dsn": Const(0, 64),
    "cfg_ds_bus_number": Const(0, 8), "cfg_ds_device_number": Const(0, 5),
    "cfg_ds_function_number": Const(0, 3),
    "pl_directed_link_change": Const(0, 2), "pl_directed_link_width": Const(0, 2),
    "pl_directed_link_speed": Const(0, 1), "pl_directed_link_auton": Const(0, 1),
    "pl_upstream_prefer_deemph": Const(1, 1),   # as Xilinx's example design
    "pl_transmit_hot_rst": Const(0, 1), "pl_downstream_deemph_source": Const(0, 1),
}


class MemoryHold(Elaboratable):
    """`down` while the endpoint must stay in reset for the memory: from
    `reset` (the IP's) until `ready` (the controller calibrated, from its
    own clock) has been seen low and then high again. Its clock is the
    endpoint's; it has no reset of its own (it must see the reset)."""

    def __init__(self, reset=None, ready=None):
        self.reset = Signal() if reset is None else reset
        self.ready = Signal() if ready is None else ready
        self.down = Signal()

    def elaborate(self, platform):
        m = Module()
        ready = Signal()
        m.submodules.ready_sync = FFSynchronizer(self.ready, ready, reset_less=True)
        stale = Signal(init=1)          # reset, and the controller not yet seen in reset
        with m.If(self.reset):
            m.d.sync += stale.eq(1)
        with m.Elif(~ready):
            m.d.sync += stale.eq(0)
        m.d.comb += self.down.eq(stale | ~ready)
        return m


class Top(Elaboratable):
    """The board's top level: hard IP, reference clock buffer, PERST#, endpoint."""

    def __init__(self, board):
        self.board = board

    def elaborate(self, platform):
        b = self.board
        m = Module()
        m.domains.pcie = pcie = ClockDomain("pcie")     # the IP's user clock and reset

        refclk = platform.request("pcie_refclk", 0, dir="-")
        perst_pin = platform.request("pcie_perst", 0, dir="-")
        m.submodules.perst_buf = perst = io.Buffer("i", perst_pin)
        if b.clkreq:
            # CLKREQ# low: the host may gate the reference clock on it (M.2).
            clkreq = platform.request("pcie_clkreq", 0, dir="-")
            m.submodules.clkreq_buf = clkreq_buf = io.Buffer("o", clkreq)
            m.d.comb += clkreq_buf.o.eq(1)      # asserted: the pin is active low
        platform.add_file(BOARD_XDC, board_constraints(b, perst_pin.io.name))
        lanes = {name: IOPort(b.hip.lanes, name=name) for name in LANE_PORTS}
        ports = {"o_pci_exp_txp": lanes["pci_exp_txp"], "o_pci_exp_txn": lanes["pci_exp_txn"],
                 "i_pci_exp_rxp": lanes["pci_exp_rxp"], "i_pci_exp_rxn": lanes["pci_exp_rxn"]}
        sys_clk = Signal()          # reference clock for the IP's fabric side
        sys_clk_gt = Signal()       # and for its transceivers (UltraScale+)
        link_up = Signal()

        hip_reset = Signal(name="hip_user_reset")   # the IP's user reset
        memory_down = Signal()      # the DRAM is not ready (in the user clock)
        if b.hip.ip == hard_ip.USP:
            from hw.bar_endpoint import BarEndpoint
            m.submodules.refclk_buf = Instance(
                "IBUFDS_GTE4", p_REFCLK_HROW_CK_SEL=Const(0, 2),   # ODIV2 = O, 100 MHz
                i_I=refclk.p, i_IB=refclk.n, i_CEB=Const(0, 1),
                o_O=sys_clk_gt, o_ODIV2=sys_clk)
            m.submodules.endpoint = ep = DomainRenamer("pcie")(BarEndpoint(b.params))
            self._user_reset(m, pcie, hip_reset, memory_down)
            ports |= {"o_user_clk": pcie.clk, "o_user_reset": hip_reset,
                      "o_user_lnk_up": link_up, "i_sys_clk": sys_clk,
                      "i_sys_clk_gt": sys_clk_gt, "i_sys_reset": ~perst.i}   # active low
            ports |= self._usp_ports(m, ep)
            ports |= {f"i_{name}": value for name, value in _USP_TIES.items()}
        elif b.hip.ip == hard_ip.S7:
            from hw.phy.s7 import s7_signature
            from hw.top import S7Endpoint
            m.submodules.refclk_buf = Instance(
                "IBUFDS_GTE2", i_I=refclk.p, i_IB=refclk.n, i_CEB=Const(0, 1), o_O=sys_clk)
            m.submodules.endpoint = ep = DomainRenamer("pcie")(S7Endpoint(b.params))
            m.d.comb += pcie.rst.eq(hip_reset | memory_down)
            ports |= {"o_user_clk_out": pcie.clk, "o_user_reset_out": hip_reset,
                      "o_user_lnk_up": link_up, "i_sys_clk": sys_clk,
                      "i_sys_rst_n": ~perst.i}
            for name, member in s7_signature(b.hip.data_width).members.items():
                ports[f"{'o' if member.flow == In else 'i'}_{name}"] = getattr(ep, name)
            ports |= {f"i_{name}": value for name, value in _S7_TIES.items()}
            # PME_Turn_Off: nothing to finish first, so acknowledge it at once.
            to_turnoff = Signal()
            turnoff_ok = Signal()
            m.d.pcie += turnoff_ok.eq(to_turnoff)
            ports |= {"o_cfg_to_turnoff": to_turnoff, "i_cfg_turnoff_ok": turnoff_ok}
        else:
            raise ValueError(f"{b.name}: no top level for hard IP {b.hip.ip}")

        m.submodules.hip = Instance(hard_ip.MODULE, **ports)
        self._dram(m, platform, ep, hip_reset, memory_down)
        return m

    @staticmethod
    def _user_reset(m, pcie, from_ip, memory_down):
        """The endpoint's reset: the IP's user_reset (or the DRAM not ready),
        registered twice in its user clock and put on a global buffer to
        reach the whole endpoint at 250 MHz (corundum's VCU118 fpga.v)."""
        m.domains.hip_user = raw = ClockDomain("hip_user", reset_less=True)
        m.d.comb += raw.clk.eq(pcie.clk)
        stages = [Signal(init=1, name=f"user_reset_reg{i}", attrs={"shreg_extract": "no"})
                  for i in (1, 2)]
        m.d.hip_user += [stages[0].eq(from_ip | memory_down), stages[1].eq(stages[0])]
        m.submodules.user_reset_bufg = Instance("BUFG", i_I=stages[1], o_O=pcie.rst)

    def _dram(self, m, platform, ep, hip_reset, memory_down):
        """The DRAM controller behind the endpoint's memory port, across
        hw.core.axi.AxiClockCrossing into the controller's UI clock. The
        controller is reset with the PCIe side (corundum's VCU118 fpga.v does
        the same), and `memory_down` holds the endpoint in reset from the
        IP's reset until the controller has been reset and has calibrated
        again, so no response to a request from before a reset reaches it."""
        d = self.board.dram
        names = dram.CONTROLLER_PORTS[d.controller]
        m.domains.dram = ui = ClockDomain("dram")
        clk = platform.request("dram_sys_clk", 0, dir="-")
        calibrated, ready, aresetn = Signal(), Signal(), Signal()
        m.d.dram += [ready.eq(calibrated), aresetn.eq(1)]      # both 0 in reset
        ports = {f"i_{names['sys_clk_p']}": clk.p, f"i_{names['sys_clk_n']}": clk.n,
                 f"i_{names['sys_rst']}": ~hip_reset if d.reset_active_low else hip_reset,
                 f"o_{names['ui_clk']}": ui.clk, f"o_{names['ui_rst']}": ui.rst,
                 f"i_{names['aresetn']}": aresetn, f"o_{names['calib']}": calibrated}
        if d.controller == dram.MIG7:     # no self-refresh, refresh or ZQ requests of ours
            ports |= {f"i_app_{r}_req": Const(0, 1) for r in ("sr", "ref", "zq")}
        for name, width in d.ports().items():
            ports[f"{'io' if name in dram.INOUT else 'o'}_{name}"] = IOPort(width, name=name)
        m.submodules.dram_cdc = cdc = axi.AxiClockCrossing(
            core_ports.memory_addr_bits(ep.p), d.axi_data_width, core_ports.MEMORY_ID_BITS,
            up="pcie", down="dram")
        m.d.comb += cdc.down_ready.eq(ready)
        axi.join_named(m, ep, cdc.up, master_prefix="m_axi_")
        ports |= self._controller_axi(m, cdc.down, names["axi"])
        m.submodules.dram = Instance(dram.MODULE, **ports)

        m.domains.dram_hold = hold = ClockDomain("dram_hold", reset_less=True)
        m.d.comb += hold.clk.eq(ClockSignal("pcie"))
        m.submodules.dram_hold = gate = DomainRenamer("dram_hold")(MemoryHold(hip_reset, ready))
        m.d.comb += memory_down.eq(gate.down)

    def _controller_axi(self, m, port, prefix):
        """An AXI4 master port as the controller's slave ports, Instance keywords:
        IDs widened to the controller's, the signals AXI4 has and the
        endpoint does not use (lock, cache, protection, QoS) zero."""
        d, out = self.board.dram, {}
        for name, member in port.signature.members.items():
            value = getattr(port, name)
            if member.flow == Out:
                if name in ("awid", "arid"):
                    value = Cat(value, Const(0, d.axi_id_width - len(value)))
                out[f"i_{prefix}{name}"] = value
            else:
                if name in ("bid", "rid"):
                    wide = Signal(d.axi_id_width, name=f"dram_{name}")
                    m.d.comb += value.eq(wide)
                    value = wide
                out[f"o_{prefix}{name}"] = value
        for ch in ("aw", "ar"):
            out |= {f"i_{prefix}{ch}lock": Const(0, 1), f"i_{prefix}{ch}cache": Const(0, 4),
                    f"i_{prefix}{ch}prot": Const(0, 3), f"i_{prefix}{ch}qos": Const(0, 4)}
        return out

    def _usp_ports(self, m, ep):
        """The endpoint's ports under the IP's names and widths, as Instance keywords."""
        ports = {}
        for name, member in ep.signature.members.items():
            if name.startswith("m_axi_"):       # the memory port: to the DRAM, not the IP
                continue
            ip_name = _USP_RENAMED.get(name, name)
            for ours, theirs in _USP_STREAMS.items():
                if name.startswith(ours):
                    ip_name = theirs + name[len(ours):]
            value, width = getattr(ep, name), _usp_width(ip_name, self.board.hip.data_width)
            if member.flow == In:           # driven by the IP
                if width is not None:
                    wire = Signal(width, name=ip_name)
                    m.d.comb += value.eq(wire[0] if "tready" in ip_name else wire)
                    value = wire
                ports[f"o_{ip_name}"] = value
            else:                           # driven by the endpoint
                if width is not None:
                    value = value.replicate(width) if "tready" in ip_name else value[:width]
                ports[f"i_{ip_name}"] = value
        return ports


# ---------------------------------------------------------------------------
# Build
# ---------------------------------------------------------------------------

def prepare(board, build_dir=None, do_build=None):
    """Write the build tree, and run Vivado when do_build (by default: when it
    is there). Returns (build directory, design name, whether Vivado ran)."""
    plat = platform(board)
    root, name = paths(board, build_dir)
    if do_build is None:
        do_build = plat.has_required_tools()
    # The IP's Tcl (hw.flow.hard_ip.tcl) ends with generate_target {synthesis
    # instantiation_template} and synth_ip: the IP is synthesized out of context
    # into its own checkpoint, which synth_design links in place of the pcie_hip
    # black box, with the IP's own constraints (its block and transceiver sites).
    # Only what synthesis needs is generated: no simulation model, no example design.
    # The DRAM controller's Tcl follows the hard IP's, the same way; mig_7series
    # reads its configuration from a project file beside the Tcl.
    ip_tcl = hard_ip.tcl(board.hip, board.title) + dram.tcl(board.dram, board.title)
    if board.dram.controller == dram.MIG7:
        plat.add_file(dram.PRJ, dram.prj(board.dram, board.part))
    plan = plat.build(Top(board), name=name, build_dir=str(root), do_build=False,
                      emit_src=False, script_after_read=ip_tcl,
                      script_after_synth=gt_placement(board))
    # Amaranth writes every memory's initial contents, zeros included, one word a
    # line (13 MB of Verilog for the VCU118's 2 MiB); zero is what block RAM holds
    # after configuration anyway (hw/flow/synth.py does the same).
    verilog = f"{name}.v"
    plan.files[verilog] = ZERO_INIT.sub("", plan.files[verilog])
    if do_build:
        plan.execute_local(str(root))
    else:
        plan.extract(str(root))
    return root, name, do_build


def _shown(path):
    """A path as the user typed it: relative to the current directory when under it."""
    path = Path(path).resolve()
    try:
        return path.relative_to(Path.cwd())
    except ValueError:
        return path


def finish_command(root, name):
    """The command that runs the build tree's Vivado script."""
    return f"cd {shlex.quote(str(_shown(root)))} && sh build_{name}.sh"


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m hw.flow.bitstream",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--board", required=True, help=f"one of {', '.join(boards.BOARDS)}")
    ap.add_argument("--build-dir", type=Path,
                    help="where the build tree goes (default: build/bitstream/BOARD)")
    args = ap.parse_args(argv)
    try:
        board = boards.get(args.board)
    except ValueError as e:
        print(f"bitstream: {e}", file=sys.stderr)
        return 2
    root, name = paths(board, args.build_dir)
    d = board.dram
    print(f"{board.name}: {board.part.name}, {board.hip.ip} x{board.hip.lanes} Gen{board.hip.gen}, "
          f"BAR2 {d.size >> 20} MiB of {d.memory} ({d.controller}), build tree in {_shown(root)}",
          flush=True)
    flash_hint = "" if args.build_dir else f", which make flash BOARD={board.name} loads"
    try:
        root, name, ran = prepare(board, args.build_dir)
    except subprocess.CalledProcessError as e:
        print(f"bitstream: Vivado failed (exit {e.returncode}): see {_shown(root / name)}.log",
              file=sys.stderr)
        return 1
    bit = _shown(root / f"{name}.bit")
    if ran:
        print(f"bitstream: {bit}{flash_hint}")
        return 0
    print("Vivado is not on PATH; where it is, finish the build with:")
    print(f"  {finish_command(root, name)}")
    print(f"it writes {bit}{flash_hint}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
