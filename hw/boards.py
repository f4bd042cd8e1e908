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

    python -m hw.boards              the names, one a line
    python -m hw.boards --describe   every board, every field
"""

import argparse
import sys
from dataclasses import dataclass, fields

from hw.bar_endpoint import EndpointParams

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
class Board:
    name: str               # the BOARD= value
    title: str
    part: Part
    hard_ip: str            # Vivado IP: pcie4_uscale_plus or pcie_7x
    lanes: int
    gen: int                # link speed: 2 = 5.0 GT/s, 3 = 8.0 GT/s
    data_width: int         # the hard IP's user interface, bits
    user_clk_mhz: float     # and its clock
    bar2_size: int
    mem_size: int           # backing memory: BAR2 mirrors it when smaller
    refclk: tuple           # (p, n) package pins of the 100 MHz reference clock
    perst: str              # PERST# package pin (active low, input)
    perst_iostandard: str
    pcie_block: str         # the hard IP's site, e.g. X1Y2
    gt_quad: str | None     # the GT quad of lane 0, where the IP asks for it
    openfpgaloader: tuple   # how openFPGALoader reaches it: ("-b", name) or cable and part

    @property
    def params(self):
        """The endpoint's build parameters on this board."""
        return EndpointParams(data_width=self.data_width, bar2_size=self.bar2_size,
                              mem_size=self.mem_size,
                              hard_ip="s7" if self.hard_ip == "pcie_7x" else "usp").validate()

    @property
    def link_gbps(self):
        return self.lanes * LANE_GBPS[self.gen]

    @property
    def interface_gbps(self):
        return self.data_width * self.user_clk_mhz / 1000

    def check(self):
        """Raise ValueError when the board's fields contradict each other."""
        problems = []
        if HARD_IP_FAMILY.get(self.hard_ip) != self.part.family:
            problems.append(f"hard IP {self.hard_ip} is not on a {self.part.family} part")
        if self.interface_gbps < self.link_gbps:
            problems.append(f"a {self.data_width}-bit interface at {self.user_clk_mhz} MHz "
                            f"({self.interface_gbps:g} Gb/s) cannot carry x{self.lanes} Gen"
                            f"{self.gen} ({self.link_gbps:g} Gb/s)")
        try:
            self.params
        except ValueError as e:
            problems.append(str(e))
        if problems:
            raise ValueError(f"board {self.name}: " + "; ".join(problems))
        return self


def _fury(name, title, platform_name, part, mem_size):
    """NiteFury II and LiteFury: pins from amaranth-boards' platform, whose
    `pcie` resource declares PERST# an output (it is an input to the
    endpoint): only its pin and IO standard are taken."""
    import amaranth_boards.nitefury as nitefury
    platform = getattr(nitefury, platform_name)
    pcie = platform().lookup("pcie", 0)
    sub = {s.name: s for s in pcie.ios}
    clk, rst = sub["clk"].ios[0], sub["rst"].ios[0]
    return Board(
        name=name, title=title, part=part, hard_ip="pcie_7x", lanes=4, gen=2,
        data_width=128, user_clk_mhz=125.0, bar2_size=2 * MiB, mem_size=mem_size,
        refclk=(clk.p.names[0], clk.n.names[0]), perst=rst.names[0],
        perst_iostandard=sub["rst"].attrs["IOSTANDARD"], pcie_block="X0Y0", gt_quad=None,
        openfpgaloader=("-c", "ft2232", "--fpga-part", part.name.split("-")[0]))


def _boards():
    return [
        Board(name="vcu118", title="AMD VCU118 (Virtex UltraScale+ VU9P), PCIe x16 Gen3",
              part=XCVU9P, hard_ip="pcie4_uscale_plus", lanes=16, gen=3, data_width=512,
              user_clk_mhz=250.0, bar2_size=2 * MiB, mem_size=2 * MiB,
              refclk=("AL9", "AL8"), perst="AM17", perst_iostandard="LVCMOS18",
              pcie_block="X1Y2", gt_quad="GTY_Quad_227", openfpgaloader=("-b", "vcu118")),
        _fury("nitefury", "RHS Research NiteFury II (Artix-7 XC7A200T), M.2, PCIe x4 Gen2",
              "NitefuryIIPlatform", XC7A200T, 512 << 10),
        _fury("litefury", "RHS Research LiteFury (Artix-7 XC7A100T), M.2, PCIe x4 Gen2",
              "LitefuryPlatform", XC7A100T, 256 << 10),
    ]


BOARDS = {b.name: b.check() for b in _boards()}


def get(name):
    """The board called name; ValueError naming the known boards otherwise."""
    try:
        return BOARDS[name]
    except KeyError:
        raise ValueError(f"unknown board {name!r}: use one of {', '.join(BOARDS)} "
                         "(make boards lists them)") from None


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m hw.boards", description=__doc__.split("\n\n")[0])
    ap.add_argument("--describe", action="store_true", help="every board, every field")
    args = ap.parse_args(argv)
    for b in BOARDS.values():
        if not args.describe:
            print(b.name)
            continue
        print(f"{b.name}: {b.title}")
        for f in fields(b):
            if f.name not in ("name", "title"):
                value = getattr(b, f.name)
                print(f"  {f.name:18} {value.name if isinstance(value, Part) else value}")
        print(f"  {'link':18} {b.link_gbps:g} Gb/s over a {b.interface_gbps:g} Gb/s interface")
    return 0


if __name__ == "__main__":
    sys.exit(main())
