"""The boards p2p-dax builds for: what `BOARD=` names (`make boards` lists them).

A Board says which FPGA and PCIe hard IP it carries, how its PCIe edge is
wired (lanes, link speed, reference clock and PERST# pins), the endpoint's
build parameters for it (interface width, BAR2 and the memory behind it,
sized to fit the part), and how openFPGALoader reaches it. Pin facts and
their sources: docs/notes/xilinx-pcie-ip.md.

- vcu118: the AMD/Xilinx VCU118 (Virtex UltraScale+ xcvu9p), PCIe x16 Gen3
  on its edge connector, through the UltraScale+ hard IP that the endpoint
  speaks natively. Chosen over the Alveo U200 (the same die) because its
  schematics and pinout are public, it is the part the simulation and the
  synthesis reports already measure against, and openFPGALoader knows it
  (`-b vcu118`); it does not list the U200's JTAG ID.
- nitefury, litefury: the RHS Research NiteFury II (Artix-7 xc7a200t) and
  LiteFury (xc7a100t), M.2 cards, PCIe x4 Gen2 through the 7-series hard IP
  (pcie_7x). Their pins come from amaranth-boards' platforms.

    python -m hw.flow.boards              the names, one a line
    python -m hw.flow.boards --describe   every board, every field
"""

import argparse
import sys
from dataclasses import dataclass, fields

from hw.core import ports
from hw.flow import dram as dram_ip
from hw.flow import hard_ip
from hw.flow.dram import DramConfig
from hw.flow.hard_ip import HardIpConfig
from hw.params import EndpointParams

MiB = 1 << 20


@dataclass(frozen=True)
class Part:
    """An FPGA, with the resources synthesis reports a share of. From the
    data sheets: DS923 (Virtex UltraScale+), DS180 (7 series)."""
    name: str               # Vivado's part name
    family: str             # Yosys' synth_xilinx -family
    luts: int               # CLB LUTs
    ffs: int                # CLB flip-flops
    ramb36: int             # 36 Kb block RAMs
    lutram_luts: int        # LUTs that can be memory (distributed RAM / 64 bits)


XCVU9P = Part("xcvu9p-flga2104-2L-e", "xcup", 1_182_240, 2_364_480, 2_160, 591_840)
XC7A200T = Part("xc7a200tfbg484-2", "xc7", 134_600, 269_200, 365, 46_208)
XC7A100T = Part("xc7a100tfgg484-2", "xc7", 63_400, 126_800, 135, 19_008)

# Payload bits per second per lane (line rate after 8b/10b or 128b/130b encoding).
LANE_GBPS = {1: 2.5 * 8 / 10, 2: 5.0 * 8 / 10, 3: 8.0 * 128 / 130}
HARD_IP_FAMILY = {"pcie4_uscale_plus": "xcup", "pcie_7x": "xc7"}


@dataclass(frozen=True)
class Lane:
    """One PCIe lane, numbered as the hard IP numbers it: the transceiver
    channel it must sit on and that channel's package pins."""
    gt: str                 # the GT channel's site, e.g. GTYE4_CHANNEL_X1Y35
    rx: tuple               # (p, n) package pins
    tx: tuple


@dataclass(frozen=True)
class Board:
    name: str               # the BOARD= value
    title: str
    part: Part
    hip: HardIpConfig       # the hard IP's configuration: Tcl and simulation models
    dram: DramConfig        # the DRAM behind BAR2 and its controller (hw/flow/dram.py)
    lane_pins: tuple        # Lane per IP lane, lane 0 first
    refclk: tuple           # (p, n) package pins of the 100 MHz reference clock
    perst: str              # PERST# package pin (active low, input)
    perst_iostandard: str
    clkreq: str | None      # CLKREQ# package pin, driven low (M.2, CEM); None: not wired
    io_standard: str        # of the board's other configuration-bank pins (CLKREQ#)
    config_properties: dict # bitstream and configuration settings: {property: value}
    openfpgaloader: tuple   # how openFPGALoader reaches it: ("-b", name) or cable and part
    sources: dict           # setting: the design proven on this board that it is taken from
    unverified: tuple = ()  # what stays unverified until someone runs it on the board

    @property
    def mem_size(self):
        """Memory behind BAR2 from its start (beyond it: UR): the DRAM."""
        return self.dram.size

    @property
    def params(self):
        """The endpoint's build parameters on this board: BAR2's memory is the
        DRAM, through an AXI4 port."""
        hip = self.hip
        return EndpointParams(data_width=hip.data_width, bar2_size=hip.bar2_size,
                              mem_size=self.mem_size, memory="axi",
                              max_payload_supported=hip.max_payload_supported,
                              hard_ip=hip.family).validate()

    @property
    def link_gbps(self):
        return self.hip.lanes * LANE_GBPS[self.hip.gen]

    @property
    def interface_gbps(self):
        return self.hip.data_width * self.hip.user_clk_mhz / 1000

    def check(self):
        """Raise ValueError when the board's fields contradict each other."""
        hip, problems = self.hip, []
        if HARD_IP_FAMILY.get(hip.ip) != self.part.family:
            problems.append(f"hard IP {hip.ip} is not on a {self.part.family} part")
        if self.interface_gbps < self.link_gbps:
            problems.append(f"a {hip.data_width}-bit interface at {hip.user_clk_mhz} MHz "
                            f"({self.interface_gbps:g} Gb/s) cannot carry x{hip.lanes} Gen"
                            f"{hip.gen} ({self.link_gbps:g} Gb/s)")
        if len(self.lane_pins) != hip.lanes:
            problems.append(f"{len(self.lane_pins)} lanes' pins for an x{hip.lanes} link")
        problems += self._dram_problems()
        try:
            hip.check()
            self.params
        except ValueError as e:
            problems.append(str(e))
        problems += hard_ip.mismatches(hip, self.params) if not problems else []
        if problems:
            raise ValueError(f"board {self.name}: " + "; ".join(problems))
        return self

    def _dram_problems(self):
        """The DRAM controller's AXI4 slave against the endpoint's port: no
        width converter between them, IDs that fit, BAR2 all DRAM."""
        d, hip, out = self.dram, self.hip, []
        if d.axi_data_width != hip.data_width:
            out.append(f"the DRAM's AXI4 port is {d.axi_data_width} bits, the endpoint's "
                       f"{hip.data_width}")
        if d.axi_id_width < ports.MEMORY_ID_BITS:
            out.append(f"the DRAM's AXI4 IDs have {d.axi_id_width} bits, the endpoint uses "
                       f"{ports.MEMORY_ID_BITS}")
        if hip.bar2_size != d.size:
            out.append(f"BAR2 is {hip.bar2_size:#x} bytes over {d.size:#x} of DRAM")
        return out


def _vcu118():
    """The VCU118's x16 edge: lanes, clock and PERST# as verilog-pcie's and
    corundum's VCU118 fpga.xdc place them (identical in both): lane n on
    GTYE4_CHANNEL_X1Y(35 - n), quads 227 down to 224."""
    rx_p = "AA4 AB2 AC4 AD2 AE4 AF2 AG4 AH2 AJ4 AK2 AM2 AP2 AT2 AV2 AY2 BB2".split()
    rx_n = "AA3 AB1 AC3 AD1 AE3 AF1 AG3 AH1 AJ3 AK1 AM1 AP1 AT1 AV1 AY1 BB1".split()
    tx_p = "Y7 AB7 AD7 AF7 AH7 AK7 AM7 AN5 AP7 AR5 AT7 AU5 AW5 BA5 BC5 BE5".split()
    tx_n = "Y6 AB6 AD6 AF6 AH6 AK6 AM6 AN4 AP6 AR4 AT6 AU4 AW4 BA4 BC4 BE4".split()
    lanes = tuple(Lane(f"GTYE4_CHANNEL_X1Y{35 - n}", (rx_p[n], rx_n[n]), (tx_p[n], tx_n[n]))
                  for n in range(16))
    vp = "verilog-pcie example/VCU118/fpga"
    cor = "corundum fpga/mqnic/VCU118/fpga_100g"
    return Board(
        name="vcu118", title="AMD VCU118 (Virtex UltraScale+ VU9P), PCIe x16 Gen3",
        part=XCVU9P, dram=dram_ip.VCU118_C1,
        hip=HardIpConfig(
            ip=hard_ip.USP, lanes=16, gen=3, data_width=512, user_clk_mhz=250.0,
            pcie_block="X1Y2", gt_quad="GTY_Quad_227", bar2_size=dram_ip.VCU118_C1.size,
            max_payload_supported=1024, extended_tag=True, client_tag=True,
            straddle=frozenset(), alignment="dword", legacy_interrupt=False),
        lane_pins=lanes, refclk=("AL9", "AL8"), perst="AM17", perst_iostandard="LVCMOS18",
        clkreq=None, io_standard="LVCMOS18",
        config_properties={
            "CFGBVS": "GND", "CONFIG_VOLTAGE": "1.8",
            "BITSTREAM.GENERAL.COMPRESS": "true",
            "BITSTREAM.CONFIG.EXTMASTERCCLK_EN": "DIV-1",
            "BITSTREAM.CONFIG.SPI_32BIT_ADDR": "YES",
            "BITSTREAM.CONFIG.SPI_BUSWIDTH": "8",
            "BITSTREAM.CONFIG.SPI_FALL_EDGE": "YES",
            "BITSTREAM.CONFIG.OVERTEMPSHUTDOWN": "Enable",
        },
        openfpgaloader=("-b", "vcu118"),
        sources={
            "link and interface": f"{vp}/ip/pcie4_uscale_plus_0.tcl; {cor}/ip/pcie4_uscale_plus_0.tcl",
            "client_tag": f"{vp}/ip/pcie4_uscale_plus_0.tcl (axisten_if_enable_client_tag true); "
                          f"{cor}/ip/pcie4_uscale_plus_0.tcl",
            "straddle": "the references turn straddling on and handle it; this endpoint takes one "
                        "TLP per beat, so every option is set false (their defaults differ: "
                        "AXISTEN_IF_EXT_512_RC_STRADDLE is true, Vivado 2024.2 "
                        "pcie4_uscale_plus_0.xml in markthumes/pcie_ttl)",
            "max_payload_supported, extended_tag": f"{vp}/ip/pcie4_uscale_plus_0.tcl",
            "class code": f"{cor}/ip/pcie4_uscale_plus_0.tcl (PF0_Use_Class_Code_Lookup_"
                          "Assistant false); pf0_class_code_base/sub/interface from the 2024.2 "
                          "pcie4_uscale_plus_0.xml (markthumes/pcie_ttl)",
            "legacy_interrupt": "PF0_INTERRUPT_PIN NONE: pcie4_uscale_plus_0.xml (markthumes/pcie_ttl)",
            "msix": f"{cor}/ip/pcie4_uscale_plus_0.tcl (MSI-X_External, table size N - 1: 01F "
                    "for 32; PG213 'Table Size')",
            "pcie_block, gt_quad": f"{vp}/fpga.xdc (lane 0 on GTYE4_CHANNEL_X1Y35, quad 227)",
            "lane_pins": f"{vp}/fpga.xdc; {cor}/fpga.xdc (all 16 lanes, identical)",
            "refclk, perst": f"{vp}/fpga.xdc (AL9/AL8 MGTREFCLK0_225; AM17 LVCMOS18 pull-up, "
                             "false path)",
            "config_properties": f"{vp}/fpga.xdc (SPI x8, 32-bit addresses, EXTMASTERCCLK, "
                                 f"compression); {cor}/fpga.xdc (over-temperature shutdown)",
            "user_reset": f"{cor}/rtl/fpga.v (two registers, then BUFG)",
        },
        unverified=(
            "the whole flow: no Vivado run and no board yet",
            "PCIe pblock: corundum's placement.xdc adds one for timing margin at 250 MHz; "
            "this build has none",
            "flash writes with openFPGALoader (dual QSPI)",
        ))


# NiteFury II and LiteFury (the same PCB): the M.2 lanes do not map in order
# onto the transceivers. IP lane n sits on the channel RHS's early.xdc places
# pipe_lane[n] on, with the pins of the port it pairs with it (RHS, litex-boards'
# sqrl_acorn and amaranth-boards' nitefury list the same pins in this order).
FURY_LANES = (
    Lane("GTPE2_CHANNEL_X0Y6", ("B10", "A10"), ("B6", "A6")),
    Lane("GTPE2_CHANNEL_X0Y4", ("B8", "A8"), ("B4", "A4")),
    Lane("GTPE2_CHANNEL_X0Y5", ("D11", "C11"), ("D5", "C5")),
    Lane("GTPE2_CHANNEL_X0Y7", ("D9", "C9"), ("D7", "C7")),
)
_RHS = "RHSResearchLLC/NiteFury-and-LiteFury Sample-Projects/Project-0/FPGA/common/Constraints"
FURY_CONFIG = {
    "CFGBVS": "VCCO", "CONFIG_VOLTAGE": "3.3",
    "CONFIG_MODE": "SPIx4",
    "BITSTREAM.CONFIG.SPI_BUSWIDTH": "4",
    "BITSTREAM.CONFIG.EXTMASTERCCLK_EN": "Div-1",
    "BITSTREAM.CONFIG.SPI_FALL_EDGE": "YES",
    "BITSTREAM.GENERAL.COMPRESS": "TRUE",
    "BITSTREAM.CONFIG.OVERTEMPPOWERDOWN": "ENABLE",
}
FURY_SOURCES = {
    "link and interface": "litepcie litepcie/phy/s7pciephy.py (x4 Gen2, 128 bits at 125 MHz)",
    "buf_opt_bma": "litepcie litepcie/phy/s7pciephy.py (Buf_Opt_BMA True); defparam/BAR-Tender "
                   "pcie_7x_0.xci",
    "legacy_interrupt": "litepcie litepcie/phy/s7pciephy.py (Legacy_Interrupt None); BAR-Tender "
                        "pcie_7x_0.xci (NONE)",
    "max_payload_supported, extended_tag": "defparam/BAR-Tender pcie_7x_0.xci (Artix-7: "
                                           "Max_Payload_Size 1024_bytes, Extended_Tag_Field)",
    "msix": "litepcie litepcie/phy/s7pciephy.py (MSIx_Table_Size 20, hex, for 32 entries: the "
            "number of entries, not N - 1)",
    "lane_pins": f"{_RHS}/early.xdc (GT channel of each pipe_lane and its port's pins); "
                 "litex-boards platforms/sqrl_acorn.py, amaranth-boards nitefury.py (pins)",
    "gt placement": "litepcie litepcie/phy/s7pciephy.py add_gt_loc_constraints (reset the "
                    "IP's channel LOCs, then place each pipe_lane) before placement",
    "refclk, perst": "amaranth-boards nitefury.py; RHS early.xdc (F6/E6, J1 LVCMOS33)",
    "clkreq": "RHS Top.bd (CLKREQ# from a constant 0); litex-boards targets/sqrl_acorn.py",
    "config_properties": f"{_RHS}/normal.xdc (SPI x4, EXTMASTERCCLK divide 1, compression)",
}
FURY_UNVERIFIED = (
    "the whole flow: no Vivado run and no board yet (RHS's design is built on XDMA, which "
    "wraps the same pcie_7x; this build uses pcie_7x directly)",
    "MSIx_Table_Size as the number of entries: litepcie's reading; check Count= in lspci -vv",
    "whether the lanes train at x4 (lspci -vv LnkSta) rather than lower widths",
    "the GT placement through script_after_synth rather than RHS's early XDC",
)


def _fury(name, title, platform_name, part, dram):
    """NiteFury II and LiteFury: pins from amaranth-boards' platform, whose
    `pcie` resource declares PERST# an output (it is an input to the
    endpoint): only its pin and IO standard are taken."""
    import amaranth_boards.nitefury as nitefury
    platform = getattr(nitefury, platform_name)
    pcie = platform().lookup("pcie", 0)
    sub = {s.name: s for s in pcie.ios}
    clk, rst = sub["clk"].ios[0], sub["rst"].ios[0]
    return Board(
        name=name, title=title, part=part, dram=dram,
        hip=HardIpConfig(
            ip=hard_ip.S7, lanes=4, gen=2, data_width=128, user_clk_mhz=125.0,
            pcie_block="X0Y0", bar2_size=dram.size, max_payload_supported=1024,
            extended_tag=True, client_tag=True, legacy_interrupt=False, buf_opt_bma=True),
        lane_pins=FURY_LANES, refclk=(clk.p.names[0], clk.n.names[0]), perst=rst.names[0],
        perst_iostandard=sub["rst"].attrs["IOSTANDARD"],
        clkreq=sub["clkreq"].ios[0].names[0], io_standard=sub["clkreq"].attrs["IOSTANDARD"],
        config_properties=FURY_CONFIG,
        openfpgaloader=("-c", "ft2232", "--fpga-part", part.name.split("-")[0]),
        sources=FURY_SOURCES, unverified=FURY_UNVERIFIED)


def _boards():
    return [
        _vcu118(),
        _fury("nitefury", "RHS Research NiteFury II (Artix-7 XC7A200T), M.2, PCIe x4 Gen2",
              "NitefuryIIPlatform", XC7A200T, dram_ip.NITEFURY_DDR3),
        _fury("litefury", "RHS Research LiteFury (Artix-7 XC7A100T), M.2, PCIe x4 Gen2",
              "LitefuryPlatform", XC7A100T, dram_ip.LITEFURY_DDR3),
    ]


BOARDS = {b.name: b.check() for b in _boards()}


# Simulation-only hard-IP configurations: interfaces no board uses, each a
# board's own configuration with these changes (and BAR2's size and the
# payload limit of the build under test). docs/boards.md lists them.
SIM_VARIANTS = {
    ("usp", 64): ("vcu118", {"data_width": 64, "lanes": 2}),      # what 64 bits at 250 MHz carry
    ("usp", 128): ("vcu118", {"data_width": 128, "lanes": 4}),
    ("usp", 256): ("vcu118", {"data_width": 256, "lanes": 8}),
    ("s7", 64): ("nitefury", {"data_width": 64, "user_clk_mhz": 250.0}),
}


def sim_config(params):
    """The hard-IP configuration a simulation of the endpoint built with
    `params` runs its model with: that of the board with the same hard IP and
    interface width, or else a SIM_VARIANTS entry. Returns (configuration,
    board name, {field: (board's value, simulation's value)} of what differs)."""
    for board in BOARDS.values():
        if (board.hip.family, board.hip.data_width) == (params.hard_ip, params.data_width):
            name, changes = board.name, {}
            break
    else:
        try:
            name, changes = SIM_VARIANTS[(params.hard_ip, params.data_width)]
        except KeyError:
            raise ValueError(f"no hard-IP configuration for a {params.data_width}-bit "
                             f"{params.hard_ip} endpoint: add one to SIM_VARIANTS") from None
    base = BOARDS[name].hip
    changes = {**changes, "bar2_size": params.bar2_size,
               "max_payload_supported": params.max_payload_supported}
    differs = {k: (getattr(base, k), v) for k, v in changes.items() if getattr(base, k) != v}
    return base.replace(**changes), name, differs


def get(name):
    """The board called name; ValueError naming the known boards otherwise."""
    try:
        return BOARDS[name]
    except KeyError:
        raise ValueError(f"unknown board {name!r}: use one of {', '.join(BOARDS)} "
                         "(make boards lists them)") from None


# Which sources entry speaks for a setting (a field of the hard IP's
# configuration or of the board), for the table in docs/boards.md.
_SOURCE_OF = {
    "ip": "link and interface", "lanes": "link and interface", "gen": "link and interface",
    "data_width": "link and interface", "user_clk_mhz": "link and interface",
    "max_payload_supported": "max_payload_supported, extended_tag",
    "extended_tag": "max_payload_supported, extended_tag",
    "pcie_block": "pcie_block, gt_quad", "gt_quad": "pcie_block, gt_quad",
    "ids": "ids", "msix_vectors": "msix", "msix_bar": "msix", "msix_table_offset": "msix",
    "msix_pba_offset": "msix", "refclk": "refclk, perst", "perst": "refclk, perst",
    "perst_iostandard": "refclk, perst",
}
_OURS = {
    "ids": "hw/spec/regmap.py: an ID no other driver claims, and the driver matches all four",
    "bar0_size": "hw/spec/regmap.py (registers)", "bar2_size": "the endpoint's BAR2 (DESIGN.md)",
    "mem_size": "the DRAM (below)", "msix_vectors": "hw/spec/regmap.py",
    "msix_bar": "hw/spec/regmap.py", "msix_table_offset": "hw/spec/regmap.py",
    "msix_pba_offset": "hw/spec/regmap.py", "alignment": "the endpoint: dword-aligned payloads",
    "io_standard": "the configuration bank's voltage",
}


def _cell(value):
    if isinstance(value, hard_ip.PciIdentity):
        return (f"{value.vendor:04x}:{value.device:04x}, subsystem {value.subsystem_vendor:04x}:"
                f"{value.subsystem:04x}, class {value.class_code:06x}, revision {value.revision}")
    if isinstance(value, (tuple, list)):
        return " ".join(str(v) for v in value)
    return str(value).replace("|", "\\|")


def _source(board, name):
    key = _SOURCE_OF.get(name, name)
    return board.sources.get(key) or _OURS.get(name, "")


def _blank_repeats(lines):
    """A table's source column, said once for the rows that share it."""
    out, last = [], None
    for line in lines:
        if line.startswith("| ") and line.endswith(" |") and not line.startswith("| setting"):
            head, _, source = line[:-2].rpartition(" | ")
            if source and source == last:
                line = f"{head} | (as above) |"
            last = source or last
        out.append(line)
    return out


def _dram_markdown(d):
    """A board's DRAM: the controller's settings and where they come from."""
    out = ["", f"DRAM behind BAR2: {d.summary()}.", "",
           "| DRAM setting | value |", "|---|---|"]
    settings = dram_ip.controller_settings(d)
    shown = {k: v for k, v in settings.items() if k != "Timing"}
    if "Timing" in settings:
        shown["timing (ns)"] = ", ".join(f"{k} {v}" for k, v in settings["Timing"].items())
    out += [f"| {k} | {_cell(v)} |" for k, v in shown.items()]
    out += ["", "| DRAM fact | source |", "|---|---|"]
    out += [f"| {k} | {_cell(v)} |" for k, v in d.sources.items()]
    return out


def markdown():
    """docs/boards.md: every board's settings, their values and sources."""
    out = ["# Boards: every setting, its value and where it comes from", "",
           "Generated by `python -m hw.flow.boards --markdown` from hw/flow/boards.py (a test",
           "fails when this file is stale). Values are checked against designs that",
           "were built in Vivado and run on the same boards; the last list of each",
           "board says what no such check covers.", ""]
    for b in BOARDS.values():
        start = len(out)
        out += [f"## {b.name}: {b.title}", "", f"Part {b.part.name}, hard IP {b.hip.ip}.", "",
                "| setting | value | source |", "|---|---|---|"]
        for name, value in hard_ip.describe(b.hip):
            out.append(f"| {name} | {_cell(value)} | {_source(b, name)} |")
        for name in ("mem_size", "refclk", "perst", "perst_iostandard", "clkreq",
                     "io_standard"):
            out.append(f"| {name} | {_cell(getattr(b, name))} | {_source(b, name)} |")
        for n, lane in enumerate(b.lane_pins):
            out.append(f"| lane {n} | {lane.gt}, RX {_cell(lane.rx)}, TX {_cell(lane.tx)} | "
                       f"{_source(b, 'lane_pins') if n == 0 else ''} |")
        for prop, value in b.config_properties.items():
            out.append(f"| {prop} | {value} | {_source(b, 'config_properties')} |")
        extra = [k for k in b.sources if k not in set(_SOURCE_OF.values()) | {
            f.name for f in fields(HardIpConfig)} | {f.name for f in fields(Board)}]
        for key in extra:
            out.append(f"| {key} | | {b.sources[key]} |")
        out[start:] = _blank_repeats(out[start:])
        out += _dram_markdown(b.dram)
        out += ["", "Not verified until someone runs it on the board:", ""]
        out += [f"- {item}" for item in b.unverified + b.dram.unverified] + [""]
    out += ["## Simulation-only hard-IP configurations", "",
            "Every simulation runs its hard-IP model with a board's configuration",
            "(`hw.flow.boards.sim_config`): the board's own where a board uses that hard IP",
            "and interface width, else one of these, with BAR2's size and the payload",
            "limit of the build under test.", "",
            "| hard IP, width | from | what differs |", "|---|---|---|"]
    for (family, width), (name, changes) in SIM_VARIANTS.items():
        base = BOARDS[name].hip
        diff = ", ".join(f"{k} {getattr(base, k)} -> {v}" for k, v in changes.items())
        out.append(f"| {family}, {width} bits | {name} | {diff} |")
    return "\n".join(out) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m hw.flow.boards", description=__doc__.split("\n\n")[0])
    ap.add_argument("--describe", action="store_true", help="every board, every field")
    ap.add_argument("--markdown", action="store_true",
                    help="every board's settings with their sources (docs/boards.md)")
    ap.add_argument("--tcl", metavar="BOARD",
                    help="the Tcl that creates and configures BOARD's hard IP in Vivado")
    args = ap.parse_args(argv)
    if args.tcl:
        try:
            board = get(args.tcl)
        except ValueError as e:
            ap.error(str(e))
        sys.stdout.write(hard_ip.tcl(board.hip, board.title))
        return 0
    if args.markdown:
        sys.stdout.write(markdown())
        return 0
    for b in BOARDS.values():
        if not args.describe:
            print(b.name)
            continue
        print(f"{b.name}: {b.title}")
        for name, value in hard_ip.describe(b.hip):
            print(f"  {name:22} {value}")
        for f in fields(b):
            if f.name not in ("name", "title", "hip", "sources", "unverified"):
                value = getattr(b, f.name)
                shown = value.name if isinstance(value, Part) else value
                print(f"  {f.name:22} {value.summary() if f.name == 'dram' else shown}")
        print(f"  {'link':22} {b.link_gbps:g} Gb/s over a {b.interface_gbps:g} Gb/s interface")
        print(f"  {'mem_size':22} {b.mem_size:#x}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
