"""The DRAM behind BAR2 on each board: one description, read by the build
(Vivado Tcl, the 7-series controller's project file, pin constraints), the
board table (docs/boards.md), `make bench` (the limit the DRAM sets) and the
bitstream tests (which compare it with designs proven on the boards).

Every board uses Xilinx's memory controller (MIG), configured by Tcl like
the PCIe hard IP:

- vcu118: `ddr4` (PG150) on DDR4 channel C1, 64 bits at 2400 MT/s, 2 GiB,
  with data masks, so a TLP's byte enables become DM and no
  read-modify-write is needed. The AXI4 slave is 512 bits wide, as wide
  as the endpoint. LiteDRAM also drives this board, but only at 1000 MT/s
  (less than the x16 Gen3 link) and with open reports of failing memory
  tests; every proven VCU118 design with the link at full rate (corundum,
  cheshire) uses this controller.
- nitefury, litefury: `mig_7series` (UG586), DDR3-800 x16, 1 GiB / 512 MiB,
  a 128-bit AXI4 slave, as RHS's own sample design for these cards sets it
  up. Chosen over LiteDRAM, which litex-boards also proves on these cards,
  because the MIG calibrates in hardware: a LiteDRAM core needs a soft CPU
  with its firmware (and a RISC-V compiler in the build) or an external
  master to run its leveling, and RHS's design is the one that ships with
  the boards.

Both controllers' AXI4 slaves run in their own UI clock; the board's top
level (hw/flow/bitstream.py) crosses to the endpoint's clock with
hw.core.axi.AxiClockCrossing. Facts, their sources and what is open:
docs/notes/dram.md.
"""

import textwrap
from dataclasses import dataclass, field
from xml.sax.saxutils import quoteattr

MODULE = "p2p_dax_dram"     # the controller instance's module name
PRJ = f"{MODULE}.prj"       # the 7-series controller's project file, in the build tree
DDR4, MIG7 = "ddr4", "mig_7series"
PHY_RATIO = 4               # memory clock : UI clock, both controllers as configured here
# Bidirectional memory ports (the rest are outputs): data, strobes, and DDR4's DM/DBI.
INOUT = {"c0_ddr4_dq", "c0_ddr4_dqs_t", "c0_ddr4_dqs_c", "c0_ddr4_dm_dbi_n",
         "ddr3_dq", "ddr3_dqs_p", "ddr3_dqs_n"}
# The controllers' own port names (PG150 with AXI4; UG586 with AXI4), by role.
CONTROLLER_PORTS = {
    DDR4: {"sys_clk_p": "c0_sys_clk_p", "sys_clk_n": "c0_sys_clk_n", "sys_rst": "sys_rst",
           "ui_clk": "c0_ddr4_ui_clk", "ui_rst": "c0_ddr4_ui_clk_sync_rst",
           "aresetn": "c0_ddr4_aresetn", "calib": "c0_init_calib_complete",
           "axi": "c0_ddr4_s_axi_"},
    MIG7: {"sys_clk_p": "sys_clk_p", "sys_clk_n": "sys_clk_n", "sys_rst": "sys_rst",
           "ui_clk": "ui_clk", "ui_rst": "ui_clk_sync_rst", "aresetn": "aresetn",
           "calib": "init_calib_complete", "axi": "s_axi_"},
}


@dataclass(frozen=True)
class Pin:
    """A memory pin: the controller's port (with bit), the package pin, its IO standard."""
    port: str
    pin: str
    iostandard: str


@dataclass(frozen=True)
class DramConfig:
    controller: str             # Vivado IP: DDR4 or MIG7
    version: str                # the IP's version the settings were proven with
    memory: str                 # "DDR4" / "DDR3"
    part: str                   # memory part the controller is configured for
    size: int                   # bytes behind the controller
    dq_width: int               # data bits to the chips (ECC and spare bits unused)
    tck_ps: int                 # memory clock period
    sys_clk_mhz: float          # the controller's input clock
    sys_clk: tuple              # its (p, n) package pins
    sys_clk_iostandard: str
    axi_data_width: int
    axi_addr_width: int
    axi_id_width: int
    pins: tuple                 # Pin of every memory port bit
    settings: dict              # the rest of the controller's configuration (controller_settings())
    sources: dict = field(default_factory=dict)
    unverified: tuple = ()

    @property
    def mts(self):
        """Transfers a second per data pin, in millions."""
        return 2 * 1_000_000 / self.tck_ps

    @property
    def ui_clk_mhz(self):
        return 1_000_000 / self.tck_ps / PHY_RATIO

    @property
    def peak_gbps(self):
        """What the chips carry at most, reads and writes together."""
        return self.dq_width * self.mts / 1000

    @property
    def axi_gbps(self):
        """What the AXI4 slave carries in one direction at one beat a UI clock."""
        return self.axi_data_width * self.ui_clk_mhz / 1000

    @property
    def reset_active_low(self):
        """sys_rst's active level: ddr4's is high (PG150), mig_7series' as its project says."""
        return self.settings.get("SysResetPolarity") == "ACTIVE LOW"

    def summary(self):
        size = f"{self.size >> 30} GiB" if self.size >= 1 << 30 else f"{self.size >> 20} MiB"
        return (f"{self.memory} {self.part}, {size}, {self.dq_width} bits at {int(self.mts)} MT/s "
                f"({self.peak_gbps:.1f} Gb/s); {self.controller} {self.version}, AXI4 "
                f"{self.axi_data_width} bits at {self.ui_clk_mhz:.0f} MHz")

    def ports(self):
        """{port: width} of the memory pins, in the controller's names."""
        widths = {}
        for p in self.pins:
            name, _, bit = p.port.partition("[")
            widths[name] = max(widths.get(name, 0), int(bit[:-1]) + 1 if bit else 1)
        return widths

    def check(self):
        problems = []
        if self.size != 1 << (self.axi_addr_width):
            problems.append(f"an AXI address of {self.axi_addr_width} bits for {self.size} bytes")
        if self.axi_data_width != self.dq_width * 2 * PHY_RATIO:
            problems.append(f"AXI {self.axi_data_width} bits is not one UI clock's data "
                            f"({self.dq_width} pins x {2 * PHY_RATIO})")
        seen = {}
        for p in self.pins:
            if p.pin in seen:
                problems.append(f"pin {p.pin} on {seen[p.pin]} and {p.port}")
            seen[p.pin] = p.port
        if problems:
            raise ValueError(f"DRAM ({self.part}): " + "; ".join(problems))
        return self


def _bus(port, pins, iostandard):
    return tuple(Pin(f"{port}[{n}]", pin, iostandard) for n, pin in enumerate(pins.split()))


# ---------------------------------------------------------------------------
# VCU118: DDR4 C1
# ---------------------------------------------------------------------------

def _vcu118_pins():
    """C1's 64 data bits and its command pins, in the ddr4 IP's port names."""
    dq = ("F11 E11 F10 F9 H12 G12 E9 D9 R19 P19 M18 M17 N19 N18 N17 M16 "
          "L16 K16 L18 K18 J17 H17 H19 H18 F19 F18 E19 E18 G20 F20 E17 D16 "
          "D17 C17 C19 C18 D20 D19 C20 B20 N23 M23 R21 P21 R22 P22 T23 R23 "
          "K24 J24 M21 L21 K21 J21 K22 J22 H23 H22 E23 E22 F21 E21 F24 F23")
    c = "c0_ddr4_"
    return (
        *_bus(f"{c}adr", "D14 B15 B16 C14 C15 A13 A14 A15 A16 B12 C12 B13 C13 D15 H14 H15 F15",
              "SSTL12_DCI"),
        *_bus(f"{c}ba", "G15 G13", "SSTL12_DCI"),
        *_bus(f"{c}bg", "H13", "SSTL12_DCI"),
        *_bus(f"{c}ck_t", "F14", "DIFF_SSTL12_DCI"),
        *_bus(f"{c}ck_c", "E14", "DIFF_SSTL12_DCI"),
        *_bus(f"{c}cke", "A10", "SSTL12_DCI"),
        *_bus(f"{c}cs_n", "F13", "SSTL12_DCI"),
        *_bus(f"{c}odt", "C8", "SSTL12_DCI"),
        Pin(f"{c}act_n", "E13", "SSTL12_DCI"),
        Pin(f"{c}reset_n", "N20", "LVCMOS12"),
        *_bus(f"{c}dq", dq, "POD12_DCI"),
        *_bus(f"{c}dqs_t", "D11 P17 K19 F16 A19 N22 M20 H24", "DIFF_POD12_DCI"),
        *_bus(f"{c}dqs_c", "D10 P16 J19 E16 A18 M22 L20 G23", "DIFF_POD12_DCI"),
        *_bus(f"{c}dm_dbi_n", "G11 R18 K17 G18 B18 P20 L23 G22", "POD12_DCI"),
    )


_COR = "corundum fpga/mqnic/VCU118/fpga_100g"
VCU118_C1 = DramConfig(
    controller=DDR4, version="2.2", memory="DDR4", part="MT40A256M16GE-083E",
    size=2 << 30, dq_width=64, tck_ps=833, sys_clk_mhz=250.0,
    sys_clk=("E12", "D12"), sys_clk_iostandard="DIFF_SSTL12",
    axi_data_width=512, axi_addr_width=31, axi_id_width=4,
    pins=_vcu118_pins(),
    settings={
        "System_Clock": "Differential",
        "C0_CLOCK_BOARD_INTERFACE": "Custom",
        "C0_DDR4_BOARD_INTERFACE": "Custom",
        "C0.DDR4_MemoryType": "Components",
        "C0.DDR4_DataMask": "DM_NO_DBI",
        "C0.DDR4_Ecc": "false",
        "C0.BANK_GROUP_WIDTH": "1",
        "C0.DDR4_AxiSelection": "true",
        "C0.DDR4_AxiNarrowBurst": "false",
        "C0.DDR4_AxiArbitrationScheme": "RD_PRI_REG",
    },
    sources={
        "controller and part": "Xilinx BoardStore boards/Xilinx/vcu118/2.4 preset.xml "
                               "(ddr4_sdram_preset_083: MT40A256M16GE-083E, TimePeriod 833, "
                               "InputClockPeriod 4000, DataWidth 64, AXI 512 bits, 31 address "
                               "bits); pulp-platform/cheshire target/xilinx/scripts/impl_ip.tcl "
                               "(the same at 833 ps with the board's newer LY-062E part)",
        "data mask": "cheshire impl_ip.tcl (DM_NO_DBI, MCS_ECC false, BANK_GROUP_WIDTH 1)",
        "arbitration": f"{_COR}/ip/ddr4_0.tcl (RD_PRI_REG)",
        "pins": f"{_COR}/fpga.xdc (every C1 pin and IO standard; the first 64 data bits); "
                "litex-hub/litex-boards platforms/xilinx_vcu118.py ddram 0 (the same pins)",
        "sys_clk": f"{_COR}/fpga.xdc (E12/D12 DIFF_SSTL12, 250 MHz, clk_250mhz_1); BoardStore "
                   "2.4 part0_pins.xml default_250mhz_clk1",
        "reset": f"{_COR}/rtl/fpga.v (sys_rst from the PCIe user reset; c0_ddr4_aresetn from "
                 "the UI clock's reset)",
    },
    unverified=(
        "which chip the board carries: board files 2.4 list MT40A256M16GE-083E (older boards) "
        "and MT40A256M16LY-062E (newer); 833 ps with the -083E's timings is within both",
        "the controller on hardware: no Vivado run and no board yet",
    ),
).check()


# ---------------------------------------------------------------------------
# NiteFury II and LiteFury: DDR3, one x16 chip
# ---------------------------------------------------------------------------

FURY_DQ = "D19 B20 E19 A20 F19 C19 F20 C18 E22 G21 D20 E21 C22 D21 B22 D22"
FURY_ADDR = "M15 L21 M16 L18 K21 M18 M21 N20 M20 N19 J21 M22 K22 N18 N22 J22"


def _fury_pins(row_bits):
    """The DDR3 chip's pins, in mig_7series' port names; the LiteFury's
    4 Gb chip has one row address bit fewer (A15 unused)."""
    addr = " ".join(FURY_ADDR.split()[:row_bits])
    return (
        *_bus("ddr3_addr", addr, "SSTL15"),
        *_bus("ddr3_ba", "L19 J20 L20", "SSTL15"),
        Pin("ddr3_ras_n", "H20", "SSTL15"), Pin("ddr3_cas_n", "K18", "SSTL15"),
        Pin("ddr3_we_n", "L16", "SSTL15"),
        *_bus("ddr3_ck_p", "K17", "DIFF_SSTL15"), *_bus("ddr3_ck_n", "J17", "DIFF_SSTL15"),
        *_bus("ddr3_cke", "H22", "SSTL15"), *_bus("ddr3_odt", "K19", "SSTL15"),
        Pin("ddr3_reset_n", "K16", "LVCMOS15"),
        *_bus("ddr3_dm", "A19 G22", "SSTL15"),
        *_bus("ddr3_dq", FURY_DQ, "SSTL15"),
        *_bus("ddr3_dqs_p", "F18 B21", "DIFF_SSTL15"),
        *_bus("ddr3_dqs_n", "E18 A21", "DIFF_SSTL15"),
    )


_RHS = "RHSResearchLLC/NiteFury-and-LiteFury Sample-Projects/Project-0/FPGA"
_RHS_MIG = {"nitefury": f"{_RHS}/Nitefury-II/project/project.srcs/sources_1/bd/Top/ip/"
                        "Top_mig_7series_0_0_1/mig_a.prj",
            "litefury": f"{_RHS}/LiteFury/project/project.srcs/sources_1/bd/Top/ip/"
                        "Top_mig_7series_0_0/mig_b.prj"}
# Controller settings both cards' MIG projects share (mig_a.prj, mig_b.prj).
_FURY_COMMON = {
    "SystemClock": "Differential", "ReferenceClock": "Use System Clock",
    "SysResetPolarity": "ACTIVE LOW", "InternalVref": "0", "dci_hr_inouts_inputs": "50 Ohms",
    "VccAuxIO": "1.8V", "DataMask": "1",
    "ECC": "Disabled", "Ordering": "Strict", "BankMachineCnt": "4",
    "MemoryVoltage": "1.5V", "UserMemoryAddressMap": "BANK_ROW_COLUMN",
    "CasLatency": "6", "CasWriteLatency": "5", "OutputDriveStrength": "RZQ/7",
    "RttNom": "RZQ/4", "RttWr": "Dynamic ODT off", "Arbitration": "RD_PRI_REG",
    # The controller reads the die temperature itself (RHS: Disabled, with the
    # temperature then an input that something else must drive).
    "XADC_En": "Enabled",
}


def _fury(name, size, row_bits, part, custom_part, timing):
    return DramConfig(
        controller=MIG7, version="4.2", memory="DDR3", part=custom_part or part,
        size=size, dq_width=16, tck_ps=2500, sys_clk_mhz=200.0,
        sys_clk=("J19", "H19"), sys_clk_iostandard="DIFF_SSTL15",
        axi_data_width=128, axi_addr_width=size.bit_length() - 1, axi_id_width=4,
        pins=_fury_pins(row_bits),
        settings={**_FURY_COMMON, "MemoryDevice": f"DDR3_SDRAM/Components/{part}",
                  "CustomPart": "TRUE" if custom_part else "FALSE",
                  "NewPartName": custom_part or "", "RowAddress": str(row_bits),
                  "ColAddress": "10", "BankAddress": "3", "Timing": timing},
        sources={
            "controller and part": f"{_RHS_MIG[name]} (the card's own sample design: "
                                   "mig_7series 4.2 behind XDMA)",
            "pins": f"{_RHS_MIG[name]} PinSelection; litex-hub/litex-boards platforms/"
                    "sqrl_acorn.py ddram; amaranth-boards nitefury.py ddr3 (the same pins)",
            "sys_clk": f"{_RHS_MIG[name]} System_Clock (J19/H19, bank 15, 200 MHz); "
                       "amaranth-boards nitefury.py clk200 (DIFF_SSTL15)",
            "size": "RHS README.md (NiteFury II 1 GB, LiteFury 512 MB DDR3-800)",
            "XADC_En": "ours: RHS disables it; the controller's temperature input is then "
                       "left to the design",
        },
        unverified=(
            "the controller on hardware: no Vivado run and no board yet",
            "the exact chip: RHS names no part for the shipped cards (issue 24: IS43TR16512BL-125KBLI "
            "or MT41K512M16HA-125:A on the NiteFury II); the settings are their sample design's",
        ),
    ).check()


NITEFURY_DDR3 = _fury(
    "nitefury", 1 << 30, 16, "MT41J256m16XX-125", "IS43TR16512-125",
    {"tcke": "7.5", "tfaw": "40", "tras": "35", "trcd": "13.75", "trefi": "7.8", "trfc": "350",
     "trp": "13.75", "trrd": "10", "trtp": "10", "twtr": "10"})
LITEFURY_DDR3 = _fury(
    "litefury", 512 << 20, 15, "MT41J256m16XX-125", None,
    {"tcke": "5", "tfaw": "40", "tras": "35", "trcd": "13.75", "trefi": "7.8", "trfc": "260",
     "trp": "13.75", "trrd": "7.5", "trtp": "7.5", "twtr": "7.5"})


# ---------------------------------------------------------------------------
# Vivado
# ---------------------------------------------------------------------------

def controller_settings(dram):
    """Every setting the controller is given: those that follow from the
    fields above (part, clocks, widths), then the rest (`settings`)."""
    if dram.controller == DDR4:
        derived = {
            "C0.DDR4_MemoryPart": dram.part, "C0.DDR4_TimePeriod": str(dram.tck_ps),
            "C0.DDR4_InputClockPeriod": str(round(1_000_000 / dram.sys_clk_mhz)),
            "C0.DDR4_DataWidth": str(dram.dq_width),
            "C0.DDR4_AxiDataWidth": str(dram.axi_data_width),
            "C0.DDR4_AxiAddressWidth": str(dram.axi_addr_width),
            "C0.DDR4_AxiIDWidth": str(dram.axi_id_width)}
    else:
        derived = {"InputClkFreq": f"{dram.sys_clk_mhz:g}", "PHYRatio": f"{PHY_RATIO}:1"}
    return derived | dram.settings


def tcl(dram, title):
    """create_ip and its configuration, for script_after_read (after the hard IP's)."""
    head = [f"# {dram.controller} for {title}: generated by hw/flow/dram.py; do not edit.",
            f"create_ip -name {dram.controller} -vendor xilinx.com -library ip "
            f"-version {dram.version} -module_name {MODULE}"]
    if dram.controller == DDR4:
        body = ["set_property -dict [list \\"]
        body += [f"    CONFIG.{k} {{{v}}} \\" for k, v in controller_settings(dram).items()]
        body += [f"] [get_ips {MODULE}]"]
    else:
        # mig_7series takes its configuration from a project file in the IP's directory.
        body = [f"set dram_dir [get_property IP_DIR [get_ips {MODULE}]]",
                f"file copy -force [file normalize {PRJ}] $dram_dir",
                "set_property -dict [list \\",
                f"    CONFIG.XML_INPUT_FILE {{{PRJ}}} \\",
                "    CONFIG.RESET_BOARD_INTERFACE {Custom} \\",
                "    CONFIG.MIG_DONT_TOUCH_PARAM {Custom} \\",
                "    CONFIG.BOARD_MIG_PARAM {Custom} \\",
                f"] [get_ips {MODULE}]"]
    tail = [f"generate_target {{synthesis instantiation_template}} [get_ips {MODULE}]",
            f"synth_ip [get_ips {MODULE}]", ""]
    return "\n".join(head + body + tail)


def prj(dram, part):
    """mig_7series' project file (UG586's MIG project, .prj) for `part` (boards.Part)."""
    s = controller_settings(dram)
    base, speed = part.name.rsplit("-", 1)          # xc7a200tfbg484, 2
    device, package = base[:-6], base[-6:]
    pins = "\n".join(
        f'              <Pin IN_TERM="" IOSTANDARD="{p.iostandard}" PADName="{p.pin}" SLEW="" '
        f'VCCAUX_IO="" name="{p.port}"/>' for p in sorted(dram.pins, key=lambda p: p.port))
    timing = " ".join(f"{k}={quoteattr(v)}" for k, v in s["Timing"].items())
    clk_p, clk_n = dram.sys_clk
    return textwrap.dedent(f"""\
        <?xml version="1.0" encoding="UTF-8" standalone="no" ?>
        <Project NoOfControllers="1">
          <!-- Generated by hw/flow/dram.py from hw/flow/boards.py; do not edit. -->
          <ModuleName>{MODULE}</ModuleName>
          <dci_inouts_inputs>1</dci_inouts_inputs>
          <dci_inputs>1</dci_inputs>
          <Debug_En>OFF</Debug_En>
          <DataDepth_En>1024</DataDepth_En>
          <LowPower_En>ON</LowPower_En>
          <XADC_En>{s["XADC_En"]}</XADC_En>
          <TargetFPGA>{device}-{package}/-{speed}</TargetFPGA>
          <Version>{dram.version}</Version>
          <SystemClock>{s["SystemClock"]}</SystemClock>
          <ReferenceClock>{s["ReferenceClock"]}</ReferenceClock>
          <SysResetPolarity>{s["SysResetPolarity"]}</SysResetPolarity>
          <BankSelectionFlag>FALSE</BankSelectionFlag>
          <InternalVref>{s["InternalVref"]}</InternalVref>
          <dci_hr_inouts_inputs>{s["dci_hr_inouts_inputs"]}</dci_hr_inouts_inputs>
          <dci_cascade>0</dci_cascade>
          <Controller number="0">
            <MemoryDevice>{s["MemoryDevice"]}</MemoryDevice>
            <TimePeriod>{dram.tck_ps}</TimePeriod>
            <VccAuxIO>{s["VccAuxIO"]}</VccAuxIO>
            <PHYRatio>{s["PHYRatio"]}</PHYRatio>
            <InputClkFreq>{s["InputClkFreq"]}</InputClkFreq>
            <UIExtraClocks>1</UIExtraClocks>
            <MMCM_VCO>800</MMCM_VCO>
            <MMCMClkOut0> 8.000</MMCMClkOut0>
            <MMCMClkOut1>1</MMCMClkOut1>
            <MMCMClkOut2>1</MMCMClkOut2>
            <MMCMClkOut3>1</MMCMClkOut3>
            <MMCMClkOut4>1</MMCMClkOut4>
            <DataWidth>{dram.dq_width}</DataWidth>
            <DeepMemory>1</DeepMemory>
            <DataMask>{s["DataMask"]}</DataMask>
            <ECC>{s["ECC"]}</ECC>
            <Ordering>{s["Ordering"]}</Ordering>
            <BankMachineCnt>{s["BankMachineCnt"]}</BankMachineCnt>
            <CustomPart>{s["CustomPart"]}</CustomPart>
            <NewPartName>{s["NewPartName"]}</NewPartName>
            <RowAddress>{s["RowAddress"]}</RowAddress>
            <ColAddress>{s["ColAddress"]}</ColAddress>
            <BankAddress>{s["BankAddress"]}</BankAddress>
            <MemoryVoltage>{s["MemoryVoltage"]}</MemoryVoltage>
            <C0_MEM_SIZE>{dram.size}</C0_MEM_SIZE>
            <UserMemoryAddressMap>{s["UserMemoryAddressMap"]}</UserMemoryAddressMap>
            <PinSelection>
{pins}
            </PinSelection>
            <System_Clock>
              <Pin Bank="15" PADName="{clk_p}/{clk_n}(CC_P/N)" name="sys_clk_p/n"/>
            </System_Clock>
            <System_Control>
              <Pin Bank="Select Bank" PADName="No connect" name="sys_rst"/>
              <Pin Bank="Select Bank" PADName="No connect" name="init_calib_complete"/>
              <Pin Bank="Select Bank" PADName="No connect" name="tg_compare_error"/>
            </System_Control>
            <TimingParameters>
              <Parameters {timing}/>
            </TimingParameters>
            <mrBurstLength name="Burst Length">8 - Fixed</mrBurstLength>
            <mrBurstType name="Read Burst Type and Length">Sequential</mrBurstType>
            <mrCasLatency name="CAS Latency">{s["CasLatency"]}</mrCasLatency>
            <mrMode name="Mode">Normal</mrMode>
            <mrDllReset name="DLL Reset">No</mrDllReset>
            <mrPdMode name="DLL control for precharge PD">Slow Exit</mrPdMode>
            <emrDllEnable name="DLL Enable">Enable</emrDllEnable>
            <emrOutputDriveStrength name="Output Driver Impedance Control">{s["OutputDriveStrength"]}</emrOutputDriveStrength>
            <emrMirrorSelection name="Address Mirroring">Disable</emrMirrorSelection>
            <emrCSSelection name="Controller Chip Select Pin">Disable</emrCSSelection>
            <emrRTT name="RTT (nominal) - On Die Termination (ODT)">{s["RttNom"]}</emrRTT>
            <emrPosted name="Additive Latency (AL)">0</emrPosted>
            <emrOCD name="Write Leveling Enable">Disabled</emrOCD>
            <emrDQS name="TDQS enable">Enabled</emrDQS>
            <emrRDQS name="Qoff">Output Buffer Enabled</emrRDQS>
            <mr2PartialArraySelfRefresh name="Partial-Array Self Refresh">Full Array</mr2PartialArraySelfRefresh>
            <mr2CasWriteLatency name="CAS write latency">{s["CasWriteLatency"]}</mr2CasWriteLatency>
            <mr2AutoSelfRefresh name="Auto Self Refresh">Enabled</mr2AutoSelfRefresh>
            <mr2SelfRefreshTempRange name="High Temparature Self Refresh Rate">Normal</mr2SelfRefreshTempRange>
            <mr2RTTWR name="RTT_WR - Dynamic On Die Termination (ODT)">{s["RttWr"]}</mr2RTTWR>
            <PortInterface>AXI</PortInterface>
            <AXIParameters>
              <C0_C_RD_WR_ARB_ALGORITHM>{s["Arbitration"]}</C0_C_RD_WR_ARB_ALGORITHM>
              <C0_S_AXI_ADDR_WIDTH>{dram.axi_addr_width}</C0_S_AXI_ADDR_WIDTH>
              <C0_S_AXI_DATA_WIDTH>{dram.axi_data_width}</C0_S_AXI_DATA_WIDTH>
              <C0_S_AXI_ID_WIDTH>{dram.axi_id_width}</C0_S_AXI_ID_WIDTH>
              <C0_S_AXI_SUPPORTS_NARROW_BURST>0</C0_S_AXI_SUPPORTS_NARROW_BURST>
            </AXIParameters>
          </Controller>
        </Project>
        """)


def constraints(dram):
    """XDC lines: the system clock's pins and every memory pin with its IO
    standard. The ddr4 IP takes its pins from these; mig_7series from its
    project file, whose pins and IO standards are the same."""
    if dram.controller != DDR4:
        return [f"# The DRAM's pins: in {PRJ}, which the controller's Tcl reads"]
    lines = ["# The DRAM's pins (hw/flow/dram.py)"]
    for p in dram.pins:
        port = top_port(dram, p)
        lines += [f"set_property LOC {p.pin} [get_ports {{{port}}}]",
                  f"set_property IOSTANDARD {p.iostandard} [get_ports {{{port}}}]"]
    return lines


def top_port(dram, pin):
    """A pin's top-level port name: the controller's, without the index of a one-bit port."""
    name = pin.port.partition("[")[0]
    return name if dram.ports()[name] == 1 else pin.port
