"""make bitstream (hw/bitstream.py): each board's build tree, read back as Vivado would.

No Vivado here: the tree is written and its Tcl, constraints and top-level
Verilog are parsed and compared with the register map and the board.
"""

import contextlib
import dataclasses
import io
import re
import subprocess
import sys
from pathlib import Path

import pytest

from hw import bitstream, boards, flash, hard_ip, regmap

ROOT = Path(__file__).resolve().parents[1]
SCALE = {"Kilobytes": 1 << 10, "Megabytes": 1 << 20, "Gigabytes": 1 << 30}

# The IP's property names for what the tests check, per hard IP.
KEYS = {
    "pcie4_uscale_plus": dict(
        vendor="vendor_id", device="PF0_DEVICE_ID", width="PL_LINK_CAP_MAX_LINK_WIDTH",
        speed="PL_LINK_CAP_MAX_LINK_SPEED", table="PF0_MSIX_CAP_TABLE_OFFSET",
        pba="PF0_MSIX_CAP_PBA_OFFSET", bar=lambda n, f: f"pf0_bar{n}_{f.lower()}"),
    "pcie_7x": dict(
        vendor="Vendor_ID", device="Device_ID", width="Maximum_Link_Width", speed="Link_Speed",
        table="MSIx_Table_Offset", pba="MSIx_PBA_Offset", bar=lambda n, f: f"Bar{n}_{f}"),
}
# The hard IP's clock, reset and reference clock ports (PG213, PG054).
CLOCK_PORTS = {
    "pcie4_uscale_plus": ("user_clk", "user_reset", "user_lnk_up", "sys_clk", "sys_clk_gt",
                          "sys_reset"),
    "pcie_7x": ("user_clk_out", "user_reset_out", "user_lnk_up", "sys_clk", "sys_rst_n"),
}
REFCLK_BUFFER = {"pcie4_uscale_plus": "IBUFDS_GTE4", "pcie_7x": "IBUFDS_GTE2"}


def small(board):
    """The board with the least memory behind BAR2. The memory is the endpoint's
    alone (the IP's configuration, the constraints and the ports do not depend
    on it), and Amaranth takes about 50 s to write the VCU118's 2 MiB."""
    return dataclasses.replace(board, mem_size=16 * board.data_width // 8)


@dataclasses.dataclass
class Tree:
    board: boards.Board
    root: Path
    stdout: str

    def read(self, name):
        return (self.root / name).read_text()


@pytest.fixture(scope="module", params=list(boards.BOARDS))
def tree(request, tmp_path_factory):
    """`python -m hw.bitstream --board NAME --build-dir DIR`, in-process, without Vivado."""
    board = boards.get(request.param)
    root = tmp_path_factory.mktemp(board.name)
    out = io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(out):
        mp.setitem(boards.BOARDS, board.name, small(board))
        mp.setattr(bitstream._PcieBoard, "has_required_tools", lambda self: False, raising=False)
        assert bitstream.main(["--board", board.name, "--build-dir", str(root)]) == 0
    return Tree(board, root, out.getvalue())


def parse_tcl(text):
    """The hard IP's create_ip and its CONFIG properties, from the whole build script."""
    created = re.findall(r"^create_ip -name (\S+) -vendor xilinx\.com -library ip "
                         r"-module_name (\S+)$", text, re.M)
    (block,) = re.findall(r"^set_property -dict \[list \\\n(.*?)^\] \[get_ips (\S+)\]$",
                          text, re.M | re.S)
    props = dict(re.findall(r"^\s+CONFIG\.(\w+) \{([^{}]*)\} \\$", block[0], re.M))
    assert len(props) == block[0].count("CONFIG.")      # every line parsed
    return created, block[1], props


def parse_xdc(text):
    """{port: {property: value}} from set_property lines, and [(port or net, period)]
    from create_clock lines."""
    ports = {}
    for prop, value, port in re.findall(
            r'^set_property (\w+) "?([^"\s]+)"? \[get_ports "?([^"\]]+)"?\]', text, re.M):
        ports.setdefault(port, {})[prop] = value
    clocks = [(target, float(period)) for period, target in re.findall(
        r'^create_clock .*-period (\S+) \[get_(?:nets|ports) "?([^"\]]+)"?\]', text, re.M)]
    return ports, clocks


def instances(verilog, module):
    """{port: connection} of each instance of `module` in the Verilog."""
    found = []
    for body in re.findall(rf"^\s*{re.escape(module)}\s+(?:#\(.*?\)\s*)?\S+\s*\((.*?)\);",
                           verilog, re.M | re.S):
        found.append(dict(re.findall(r"\.(\w+)\(\s*(.*?)\s*\),?\s*$", body, re.M)))
    return found


def test_ip_configuration_matches_register_map_and_board(tree):
    b = tree.board
    tcl = tree.read("p2p_dax.tcl")
    created, ip_of_props, p = parse_tcl(tcl)
    assert created == [(b.hard_ip, hard_ip.MODULE)] and ip_of_props == hard_ip.MODULE
    assert p == hard_ip.properties(b)
    # And straight from the sources, not through hw.hard_ip:
    k = KEYS[b.hard_ip]
    assert (int(p[k["vendor"]], 16), int(p[k["device"]], 16)) == (regmap.PCI_VENDOR_ID,
                                                                  regmap.PCI_DEVICE_ID)
    assert p[k["width"]] == f"X{b.lanes}"
    assert p[k["speed"]] == {2: "5.0_GT/s", 3: "8.0_GT/s"}[b.gen]
    bar = k["bar"]
    for n, size in ((0, regmap.BAR0_SIZE), (2, b.bar2_size)):
        assert bar(n, "Enabled") in p and p[bar(n, "Enabled")] == "true"
        assert SCALE[p[bar(n, "Scale")]] * int(p[bar(n, "Size")]) == size
    assert p[bar(2, "64bit")] == p[bar(2, "Prefetchable")] == "true"
    assert int(p[k["table"]], 16) == regmap.MSIX_TABLE_OFFSET
    assert int(p[k["pba"]], 16) == regmap.MSIX_PBA_OFFSET
    # The IP is made part of the build before synthesis, which runs on the part and top.
    order = [f"create_project -force -name p2p_dax -part {b.part.name}",
             f"create_ip -name {b.hard_ip}",
             f"generate_target {{synthesis instantiation_template}} [get_ips {hard_ip.MODULE}]",
             f"synth_ip [get_ips {hard_ip.MODULE}]",
             "synth_design -top p2p_dax"]
    positions = [tcl.find(line) for line in order]
    assert -1 not in positions and positions == sorted(positions), positions


def test_constraints_match_board(tree):
    b = tree.board
    xdc = tree.read("p2p_dax.xdc")
    ports, clocks = parse_xdc(xdc)
    verilog = tree.read("p2p_dax.v")
    (buf,) = instances(verilog, REFCLK_BUFFER[b.hard_ip])
    refclk_p, refclk_n = buf["I"], buf["IB"]
    pin = lambda port: ports[port].get("PACKAGE_PIN", ports[port].get("LOC"))
    assert (pin(refclk_p), pin(refclk_n)) == b.refclk
    assert "IOSTANDARD" not in ports[refclk_p]         # a transceiver clock pad has none
    assert clocks == [(refclk_p, 10.0)]                # 100 MHz, on the reference clock
    (perst,) = [port for port in ports if "perst" in port]
    assert pin(perst) == b.perst
    assert ports[perst]["IOSTANDARD"] == b.perst_iostandard
    assert ports[perst]["PULLUP"].upper() == "TRUE"
    # Only those three have pins: the lanes go where the IP puts its transceivers.
    assert set(ports) == {refclk_p, refclk_n, perst}
    # PERST# is asynchronous: a false path in a constraints file the Tcl reads.
    assert f"set_false_path -from [get_ports {perst}]" in tree.read("pcie_perst.xdc")
    assert 'read_xdc "pcie_perst.xdc"' in tree.read("p2p_dax.tcl")


def test_top_level_has_hard_ip_and_endpoint(tree):
    b = tree.board
    verilog = tree.read("p2p_dax.v")
    top = re.search(r"^module p2p_dax\((.*?)\);", verilog, re.M).group(1)
    assert set(re.split(r",\s*", top)) >= set(bitstream.LANE_PORTS)
    for lane in bitstream.LANE_PORTS:
        direction = "output" if "tx" in lane else "input"
        assert re.search(rf"^\s*{direction} \[{b.lanes - 1}:0\] {lane};", verilog, re.M), lane
    (hip,) = instances(verilog, hard_ip.MODULE)
    (buf,) = instances(verilog, REFCLK_BUFFER[b.hard_ip])
    for port in (*CLOCK_PORTS[b.hard_ip], *bitstream.LANE_PORTS):
        assert port in hip, port
    assert hip["sys_clk"] == (buf["ODIV2"] if b.hard_ip == "pcie4_uscale_plus" else buf["O"])
    if b.hard_ip == "pcie4_uscale_plus":
        assert hip["sys_clk_gt"] == buf["O"]
        from hw.bar_endpoint import endpoint_signature
        names = {n.replace("s_axis_cq", "m_axis_cq").replace("m_axis_cc", "s_axis_cc")
                  .replace("m_axis_rq", "s_axis_rq").replace("s_axis_rc", "m_axis_rc")
                  .replace("msix_sent", "msi_sent").replace("msix_fail", "msi_fail")
                 for n in endpoint_signature(b.params).members}
    else:
        from hw.s7 import s7_signature
        names = set(s7_signature(b.data_width).members)
        assert not [port for port in hip if port.startswith(("cfg_err_", "fc_", "pipe_"))]
    assert names <= set(hip), names - set(hip)
    # The endpoint's module, instantiated in the top, clocked by the IP's user clock.
    assert re.search(r"^module \\p2p_dax\.endpoint ", verilog, re.M)
    assert re.search(r"^\s*\\p2p_dax\.endpoint\s+endpoint\s*\(", verilog, re.M)
    user_clk = hip[CLOCK_PORTS[b.hard_ip][0]]
    assert re.search(rf"^\s*\.pcie_clk\({re.escape(user_clk)}\)", verilog, re.M)


def test_prints_the_command_that_finishes_it(tree):
    name = flash.default_bitstream(tree.board).stem
    lines = tree.stdout.splitlines()
    assert len(lines) <= 4, tree.stdout
    assert f"  cd {tree.root} && sh build_{name}.sh" in lines
    script = tree.read(f"build_{name}.sh")
    assert f"-source {name}.tcl" in script
    # The bitstream Vivado writes is the one make flash loads.
    assert f"write_bitstream -force -bin_file {flash.default_bitstream(tree.board).name}" \
        in tree.read(f"{name}.tcl")
    assert bitstream.paths(tree.board) == (flash.default_bitstream(tree.board).parent, name)


def test_unknown_board_is_one_line():
    r = subprocess.run([sys.executable, "-m", "hw.bitstream", "--board", "zcu106"],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.splitlines() == [
        "bitstream: unknown board 'zcu106': use one of vcu118, nitefury, litefury "
        "(make boards lists them)"]


def make(*args):
    # -o: take the set-up stamp as done, so that make does not set up .venv here.
    return subprocess.run(["make", "-s", "--no-print-directory", "-o", ".venv/.setup-stamp",
                           *args], capture_output=True, text=True, cwd=ROOT)


def test_make_bitstream():
    r = make("bitstream")
    assert r.returncode == 2 and r.stdout == ""
    # make's own "make: *** ... Error 2" (make[1] when run under make test) aside
    ours = [line for line in r.stderr.splitlines() if not re.match(r"make(\[\d+\])?: ", line)]
    assert ours == ["make bitstream: name a board: make bitstream BOARD=... "
                    "(make boards lists them)"]
    r = make("-n", "bitstream", "BOARD=litefury")
    assert r.returncode == 0
    assert r.stdout.strip().endswith("-m hw.bitstream --board litefury"), r.stdout
    assert "make bitstream" in make("help").stdout
