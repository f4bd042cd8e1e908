"""make bitstream (hw/flow/bitstream.py): each board's build tree, read back as Vivado would.

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

from hw.flow import bitstream, boards, dram, flash, hard_ip
from hw.spec import regmap

ROOT = Path(__file__).resolve().parents[1]
SCALE = {"Kilobytes": 1 << 10, "Megabytes": 1 << 20, "Gigabytes": 1 << 30}

# The hard IP's clock, reset and reference clock ports (PG213, PG054).
CLOCK_PORTS = {
    "pcie4_uscale_plus": ("user_clk", "user_reset", "user_lnk_up", "sys_clk", "sys_clk_gt",
                          "sys_reset"),
    "pcie_7x": ("user_clk_out", "user_reset_out", "user_lnk_up", "sys_clk", "sys_rst_n"),
}
REFCLK_BUFFER = {"pcie4_uscale_plus": "IBUFDS_GTE4", "pcie_7x": "IBUFDS_GTE2"}


@dataclasses.dataclass
class Tree:
    board: boards.Board
    root: Path
    stdout: str

    def read(self, name):
        return (self.root / name).read_text()


@pytest.fixture(scope="module", params=list(boards.BOARDS))
def tree(request, tmp_path_factory):
    """`python -m hw.flow.bitstream --board NAME --build-dir DIR`, in-process, without Vivado."""
    board = boards.get(request.param)
    root = tmp_path_factory.mktemp(board.name)
    out = io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(out):
        mp.setattr(bitstream._PcieBoard, "has_required_tools", lambda self: False, raising=False)
        assert bitstream.main(["--board", board.name, "--build-dir", str(root)]) == 0
    return Tree(board, root, out.getvalue())


def parse_tcl(text, module=hard_ip.MODULE):
    """The IPs' create_ip lines [(IP, module)], and the CONFIG properties of `module`'s
    one set_property block, from the whole build script."""
    created = re.findall(r"^create_ip -name (\S+) -vendor xilinx\.com -library ip "
                         r"(?:-version \S+ )?-module_name (\S+)$", text, re.M)
    (block,) = re.findall(rf"^set_property -dict \[list \\\n(.*?)^\] \[get_ips ({module})\]$",
                          text, re.M | re.S)
    props = dict(re.findall(r"^\s+CONFIG\.([\w.]+) \{([^{}]*)\} \\$", block[0], re.M))
    assert len(props) == block[0].count("CONFIG.")      # every line parsed
    return created, block[1], props


def parse_xdc(text):
    """{port: {property: value}} from set_property lines, and [(port or net, period)]
    from create_clock lines."""
    ports = {}
    for prop, value, quoted, braced, bare in re.findall(
            r'^set_property (\w+) "?([^"\s]+)"? \[get_ports (?:"([^"]+)"|\{([^}]+)\}|([^\]]+))\]',
            text, re.M):
        ports.setdefault(quoted or braced or bare, {})[prop] = value
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


def tcl_view(ip, p):
    """What the Tcl configures, decoded here from the IP's own property names
    (not through hw.flow.hard_ip), as HardIpConfig fields."""
    usp = ip == hard_ip.USP
    bar = (lambda n, f: p[f"pf0_bar{n}_{f.lower()}"]) if usp else (lambda n, f: p[f"Bar{n}_{f}"])
    size = lambda n: SCALE[bar(n, "Scale")] * int(bar(n, "Size"))
    hexes = lambda *keys: [int(p[k], 16) for k in keys]
    if usp:
        vendor, device, sub_vendor, sub, rev = hexes(
            "vendor_id", "PF0_DEVICE_ID", "PF0_SUBSYSTEM_VENDOR_ID", "PF0_SUBSYSTEM_ID",
            "PF0_REVISION_ID")
        cls = hexes("pf0_class_code_base", "pf0_class_code_sub", "pf0_class_code_interface")
        straddle = {name for name, key in (
            ("cq", "AXISTEN_IF_EXT_512_CQ_STRADDLE"), ("cc", "AXISTEN_IF_EXT_512_CC_STRADDLE"),
            ("rq", "AXISTEN_IF_EXT_512_RQ_STRADDLE"), ("rc", "AXISTEN_IF_EXT_512_RC_STRADDLE"),
            ("rc", "AXISTEN_IF_RC_STRADDLE"), ("rc_4tlp", "AXISTEN_IF_EXT_512_RC_4TLP_STRADDLE"))
            if p[key] != "false"}
        view = dict(
            lanes=int(p["PL_LINK_CAP_MAX_LINK_WIDTH"].lstrip("X")),
            data_width=int(p["axisten_if_width"].removesuffix("_bit")),
            client_tag=p["axisten_if_enable_client_tag"] == "true", straddle=frozenset(straddle),
            alignment={"DWORD_Aligned": "dword"}.get(p["AXISTEN_IF_CQ_ALIGNMENT_MODE"], "?")
            if p["AXISTEN_IF_RQ_ALIGNMENT_MODE"] == p["AXISTEN_IF_CQ_ALIGNMENT_MODE"] else "?",
            max_payload_supported=int(p["pf0_dev_cap_max_payload"].removesuffix("_bytes")),
            extended_tag=p["extended_tag_field"] == "true",
            legacy_interrupt=p["PF0_INTERRUPT_PIN"] != "NONE",
            # PG213: the table size is entered as N - 1
            msix_vectors=int(p["PF0_MSIX_CAP_TABLE_SIZE"], 16) + 1,
            msix_bar=int(p["PF0_MSIX_CAP_TABLE_BIR"].removeprefix("BAR_"))
            if p["PF0_MSIX_CAP_TABLE_BIR"] == p["PF0_MSIX_CAP_PBA_BIR"] else None,
            msix_table_offset=int(p["PF0_MSIX_CAP_TABLE_OFFSET"], 16),
            msix_pba_offset=int(p["PF0_MSIX_CAP_PBA_OFFSET"], 16))
    else:
        vendor, device, sub_vendor, sub, rev = hexes(
            "Vendor_ID", "Device_ID", "Subsystem_Vendor_ID", "Subsystem_ID", "Revision_ID")
        cls = hexes("Class_Code_Base", "Class_Code_Sub", "Class_Code_Interface")
        view = dict(
            lanes=int(p["Maximum_Link_Width"].lstrip("X")),
            data_width=int(p["Interface_Width"].removesuffix("_bit")),
            max_payload_supported=int(p["Max_Payload_Size"].removesuffix("_bytes")),
            extended_tag=p["Extended_Tag_Field"] == "true",
            legacy_interrupt=p["Legacy_Interrupt"].upper() != "NONE",
            # litepcie's reading: the number of entries (20 for 32)
            msix_vectors=int(p["MSIx_Table_Size"], 16),
            msix_bar=int(p["MSIx_Table_BIR"].removeprefix("BAR_"))
            if p["MSIx_Table_BIR"] == p["MSIx_PBA_BIR"] else None,
            msix_table_offset=int(p["MSIx_Table_Offset"], 16),
            msix_pba_offset=int(p["MSIx_PBA_Offset"], 16))
    assert bar(0, "64bit") == bar(0, "Prefetchable") == "false"   # registers
    assert bar(2, "64bit") == bar(2, "Prefetchable") == "true"    # memory
    assert bar(0, "Enabled") == bar(2, "Enabled") == "true"
    assert bar(1, "Enabled") == "false"     # BAR0 is 32-bit: BAR1 stays free
    ids = hard_ip.PciIdentity(vendor, device, sub_vendor, sub, cls[0] << 16 | cls[1] << 8 | cls[2],
                              rev)
    return dict(ip=ip, ids=ids, bar0_size=size(0), bar2_size=size(2), **view)


def usp_model_options_from_tcl(p):
    """cocotbext-pcie's UltraScalePlusPcieDevice options, from the Tcl."""
    return dict(
        pcie_generation={"5.0_GT/s": 2, "8.0_GT/s": 3}[p["PL_LINK_CAP_MAX_LINK_SPEED"]],
        pcie_link_width=int(p["PL_LINK_CAP_MAX_LINK_WIDTH"].lstrip("X")),
        user_clk_frequency=float(p["axisten_freq"]) * 1e6,
        alignment="dword" if p["AXISTEN_IF_CQ_ALIGNMENT_MODE"] == "DWORD_Aligned" else "address",
        cq_straddle=p["AXISTEN_IF_EXT_512_CQ_STRADDLE"] == "true",
        cc_straddle=p["AXISTEN_IF_EXT_512_CC_STRADDLE"] == "true",
        rq_straddle=p["AXISTEN_IF_EXT_512_RQ_STRADDLE"] == "true",
        rc_straddle=p["AXISTEN_IF_EXT_512_RC_STRADDLE"] == "true",
        rc_4tlp_straddle=p["AXISTEN_IF_EXT_512_RC_4TLP_STRADDLE"] == "true",
        enable_client_tag=p["axisten_if_enable_client_tag"] == "true",
        max_payload_size=int(p["pf0_dev_cap_max_payload"].removesuffix("_bytes")),
        enable_extended_tag=p["extended_tag_field"] == "true",
        pf0_msi_enable=p["pf0_msi_enabled"] == "true",
        pf0_msix_enable=p["pf0_msix_enabled"] == "true",
        pf0_msix_table_size=int(p["PF0_MSIX_CAP_TABLE_SIZE"], 16),
        pf0_msix_table_bir=int(p["PF0_MSIX_CAP_TABLE_BIR"].removeprefix("BAR_")),
        pf0_msix_table_offset=int(p["PF0_MSIX_CAP_TABLE_OFFSET"], 16),
        pf0_msix_pba_bir=int(p["PF0_MSIX_CAP_PBA_BIR"].removeprefix("BAR_")),
        pf0_msix_pba_offset=int(p["PF0_MSIX_CAP_PBA_OFFSET"], 16))


def s7_model_options_from_tcl(p):
    """The pcie_7x model's options (hw/sim/tb/s7_model.py), from the Tcl."""
    return dict(
        width=int(p["Interface_Width"].removesuffix("_bit")),
        user_clk_frequency=float(p["User_Clk_Freq"]) * 1e6,
        max_payload_size=int(p["Max_Payload_Size"].removesuffix("_bytes")),
        enable_extended_tag=p["Extended_Tag_Field"] == "true",
        msix_table_size=int(p["MSIx_Table_Size"], 16) - 1,     # the capability's N - 1
        msix_table_bir=int(p["MSIx_Table_BIR"].removeprefix("BAR_")),
        msix_table_offset=int(p["MSIx_Table_Offset"], 16),
        msix_pba_bir=int(p["MSIx_PBA_BIR"].removeprefix("BAR_")),
        msix_pba_offset=int(p["MSIx_PBA_Offset"], 16))


def test_ip_configuration_matches_register_map_and_board(tree):
    b = tree.board
    tcl = tree.read("p2p_dax.tcl")
    created, ip_of_props, p = parse_tcl(tcl)
    assert created == [(b.hip.ip, hard_ip.MODULE), (b.dram.controller, dram.MODULE)]
    assert ip_of_props == hard_ip.MODULE and p == hard_ip.properties(b.hip)
    view = tcl_view(b.hip.ip, p)
    # The IDs the driver matches, from the register map.
    assert view["ids"] == hard_ip.PciIdentity(
        regmap.PCI_VENDOR_ID, regmap.PCI_DEVICE_ID, regmap.PCI_SUBSYSTEM_VENDOR_ID,
        regmap.PCI_SUBSYSTEM_ID, regmap.PCI_CLASS_CODE, regmap.PCI_REVISION_ID)
    assert (view["bar0_size"], view["bar2_size"]) == (regmap.BAR0_SIZE, b.hip.bar2_size)
    assert view["bar2_size"] == b.dram.size == b.params.mem_size      # BAR2 is all DRAM
    assert (view["msix_vectors"], view["msix_bar"], view["msix_table_offset"],
            view["msix_pba_offset"]) == (regmap.MSIX_VECTORS, 0, regmap.MSIX_TABLE_OFFSET,
                                         regmap.MSIX_PBA_OFFSET)
    # Everything the RTL relies on, as the Tcl configures it.
    config = hard_ip.HardIpConfig(**{**dataclasses.asdict(b.hip), "ids": b.hip.ids, **view})
    assert hard_ip.mismatches(config, b.params) == []
    # The IP is made part of the build before synthesis, which runs on the part and top.
    order = [f"create_project -force -name p2p_dax -part {b.part.name}",
             f"create_ip -name {b.hip.ip}",
             f"generate_target {{synthesis instantiation_template}} [get_ips {hard_ip.MODULE}]",
             f"synth_ip [get_ips {hard_ip.MODULE}]",
             "synth_design -top p2p_dax"]
    positions = [tcl.find(line) for line in order]
    assert -1 not in positions and positions == sorted(positions), positions


def test_mismatches_name_what_the_rtl_needs():
    """A configuration without client tags, or with straddling, does not fit."""
    b = boards.get("vcu118")
    wrong = b.hip.replace(client_tag=False, straddle=frozenset({"rc"}), msix_vectors=32)
    problems = hard_ip.mismatches(wrong, b.params)
    assert [line.split(":")[0] for line in problems] == ["msix_vectors", "client_tag",
                                                         "straddle"]
    assert "the DMA engine issues its own tags" in problems[1]
    with pytest.raises(ValueError, match="client_tag: the endpoint needs True"):
        dataclasses.replace(b, hip=wrong).check()


def test_models_are_configured_as_the_tcl(tree):
    """The simulation's model options, decoded from the Tcl, are the ones the
    simulation of this board's build runs with."""
    b = tree.board
    _, _, p = parse_tcl(tree.read("p2p_dax.tcl"))
    config, name, differs = boards.sim_config(b.params)
    # The LiteFury's is the NiteFury's but for BAR2, the size of its DRAM.
    assert config == b.hip and set(differs) <= {"bar2_size"}
    if b.hip.ip == hard_ip.USP:
        assert usp_model_options_from_tcl(p) == hard_ip.usp_model_options(config)
    else:
        assert s7_model_options_from_tcl(p) == hard_ip.s7_model_options(config)


# What the designs proven on each board set (shared/notes/boards-proven.md),
# typed here from those designs, not from hw/flow/boards.py.
PROVEN_TCL = {
    "vcu118": {  # verilog-pcie and corundum example/VCU118 ... pcie4_uscale_plus_0.tcl
        "axisten_if_enable_client_tag": "true", "extended_tag_field": "true",
        "axisten_if_width": "512_bit", "axisten_freq": "250",
        "PL_LINK_CAP_MAX_LINK_WIDTH": "X16", "PL_LINK_CAP_MAX_LINK_SPEED": "8.0_GT/s",
        "pf0_dev_cap_max_payload": "1024_bytes", "MSI_X_OPTIONS": "MSI-X_External",
        "PF0_Use_Class_Code_Lookup_Assistant": "false", "mode_selection": "Advanced",
        "pcie_blk_locn": "X1Y2", "select_quad": "GTY_Quad_227",
        # not straddling: this endpoint's choice; every option named, as the defaults differ
        "AXISTEN_IF_EXT_512_CQ_STRADDLE": "false", "AXISTEN_IF_EXT_512_CC_STRADDLE": "false",
        "AXISTEN_IF_EXT_512_RQ_STRADDLE": "false", "AXISTEN_IF_EXT_512_RC_STRADDLE": "false",
        "AXISTEN_IF_EXT_512_RC_4TLP_STRADDLE": "false",
        "PF0_INTERRUPT_PIN": "NONE",
    },
    "nitefury": {  # litepcie s7pciephy.py; BAR-Tender pcie_7x_0.xci
        "Maximum_Link_Width": "X4", "Link_Speed": "5.0_GT/s", "Trgt_Link_Speed": "4'h2",
        "Interface_Width": "128_bit", "User_Clk_Freq": "125", "Buf_Opt_BMA": "true",
        "Legacy_Interrupt": "NONE", "PCIe_Blk_Locn": "X0Y0", "mode_selection": "Advanced",
        "MSIx_Table_Size": f"{regmap.MSIX_VECTORS:X}",    # entries, not N - 1 (litepcie)
    },
}
PROVEN_TCL["litefury"] = PROVEN_TCL["nitefury"]
PROVEN_CONFIG = {
    "vcu118": {  # verilog-pcie example/VCU118/fpga/fpga.xdc
        "CFGBVS": "GND", "CONFIG_VOLTAGE": "1.8", "BITSTREAM.GENERAL.COMPRESS": "true",
        "BITSTREAM.CONFIG.EXTMASTERCCLK_EN": "DIV-1", "BITSTREAM.CONFIG.SPI_32BIT_ADDR": "YES",
        "BITSTREAM.CONFIG.SPI_BUSWIDTH": "8", "BITSTREAM.CONFIG.SPI_FALL_EDGE": "YES"},
    "nitefury": {  # RHS Sample-Projects/Project-0/FPGA/common/Constraints/normal.xdc
        "CFGBVS": "VCCO", "CONFIG_VOLTAGE": "3.3", "CONFIG_MODE": "SPIx4",
        "BITSTREAM.CONFIG.SPI_BUSWIDTH": "4", "BITSTREAM.CONFIG.EXTMASTERCCLK_EN": "Div-1",
        "BITSTREAM.GENERAL.COMPRESS": "TRUE"},
}
PROVEN_CONFIG["litefury"] = PROVEN_CONFIG["nitefury"]
# (IP lane, rx_p, tx_p) where the references pin them: verilog-pcie/corundum VCU118
# fpga.xdc; RHS early.xdc (the port that pairs with pipe_lane[n]).
PROVEN_LANES = {
    "vcu118": [(0, "AA4", "Y7"), (1, "AB2", "AB7"), (8, "AJ4", "AP7"), (15, "BB2", "BE5")],
    "nitefury": [(0, "B10", "B6"), (1, "B8", "B4"), (2, "D11", "D5"), (3, "D9", "D7")],
}
PROVEN_LANES["litefury"] = PROVEN_LANES["nitefury"]
# RHS early.xdc: the GT channel of each pcie_7x pipe_lane.
PROVEN_GT = {"nitefury": ["X0Y6", "X0Y4", "X0Y5", "X0Y7"]}
PROVEN_GT["litefury"] = PROVEN_GT["nitefury"]


def test_ip_settings_match_designs_proven_on_the_board(tree):
    _, _, p = parse_tcl(tree.read("p2p_dax.tcl"))
    want = PROVEN_TCL[tree.board.name]
    assert {k: p.get(k) for k in want} == want
    if tree.board.hip.ip == hard_ip.USP:
        # PF0_CLASS_CODE is derived from base/sub/interface: set, it is ignored.
        assert "PF0_CLASS_CODE" not in p
        assert int(p["pf0_class_code_base"] + p["pf0_class_code_sub"]
                   + p["pf0_class_code_interface"], 16) == regmap.PCI_CLASS_CODE


def config_properties(text):
    """{property: value} of set_property ... [current_design], the last one winning."""
    return {k: v for k, v in re.findall(
        r"^\s*set_property (\S+) \{?([^\s{}]+)\}? \[current_design\]", text, re.M)}


def test_configuration_and_lanes_match_designs_proven_on_the_board(tree):
    b = tree.board
    xdc = tree.read(bitstream.BOARD_XDC)
    assert f'read_xdc "{bitstream.BOARD_XDC}"' in tree.read("p2p_dax.tcl")
    # Configuration from flash fast enough to enumerate; later settings win
    # (amaranth-boards' own, in the Vivado script, come after the XDC).
    settings = config_properties(xdc) | config_properties(tree.read("p2p_dax.tcl"))
    want = PROVEN_CONFIG[b.name]
    assert {k: settings.get(k) for k in want} == want
    # Every lane pin constrained: a misplaced lane stops the build.
    ports, _ = parse_xdc(xdc)
    lane_ports = {f"{port}[{n}]" for port in bitstream.LANE_PORTS for n in range(b.hip.lanes)}
    assert lane_ports <= set(ports)
    pins = [ports[port]["LOC"] for port in lane_ports]
    assert len(set(pins)) == len(pins) == 4 * b.hip.lanes
    for n, rx_p, tx_p in PROVEN_LANES[b.name]:
        assert (ports[f"pci_exp_rxp[{n}]"]["LOC"], ports[f"pci_exp_txp[{n}]"]["LOC"]) == (rx_p, tx_p)


def test_fury_transceivers_are_placed_for_the_m2_wiring(tree):
    """Left to pcie_7x, IP lane n goes on channel X0Y(7 - n): the host's lane 0
    lands where lane reversal cannot bring it back, and the link does not train."""
    if tree.board.name not in PROVEN_GT:
        pytest.skip("the IP's own placement is right on this board")
    tcl = tree.read("p2p_dax.tcl")
    after_synth = tcl[tcl.index("synth_design -top"):tcl.index("opt_design")]
    cleared = re.findall(r"^reset_property LOC \[get_cells -hierarchical -filter "
                         r"\{NAME =~ \*gtp_channel\.gtpe2_channel_i\}\]$", after_synth, re.M)
    placed = re.findall(r"^set_property LOC GTPE2_CHANNEL_(\w+) \[get_cells -hierarchical "
                        r"-filter \{NAME =~ \*pipe_lane\[(\d)\]\.gt_wrapper_i/gtp_channel\."
                        r"gtpe2_channel_i\}\]$", after_synth, re.M)
    assert len(cleared) == 1 and after_synth.index("reset_property") < after_synth.index(
        "set_property LOC GTPE2")
    assert [site for site, lane in sorted(placed, key=lambda x: x[1])] == PROVEN_GT[tree.board.name]


def test_clkreq_is_driven_low(tree):
    b = tree.board
    ports, _ = parse_xdc(tree.read("p2p_dax.xdc"))
    clkreq = [port for port in ports if "clkreq" in port]
    if b.clkreq is None:
        assert clkreq == []
        return
    (port,) = clkreq
    assert (ports[port]["LOC"], ports[port]["IOSTANDARD"]) == ("G1", "LVCMOS33")   # RHS, litex
    verilog = tree.read("p2p_dax.v")
    # The pin's output buffer: enabled (T = 0) and driving 0.
    (buf,) = instances(verilog, r"\p2p_dax.clkreq_buf.buf")
    assert (buf["o"], buf["t"]) == ("1'h0", "1'h0")
    (obuft,) = instances(verilog[verilog.index(r"module \p2p_dax.clkreq_buf.buf"):], "OBUFT")
    assert (obuft["I"], obuft["T"], obuft["O"]) == ("o", "t", port)


def test_user_reset_reaches_the_endpoint_through_a_global_buffer(tree):
    if tree.board.hip.ip != hard_ip.USP:
        pytest.skip("pcie_7x's user_reset_out: as the IP gives it")
    verilog = tree.read("p2p_dax.v")
    (hip,) = instances(verilog, hard_ip.MODULE)
    (bufg,) = instances(verilog, "BUFG")
    assert hip["user_reset"] == "hip_user_reset"
    # Two registers in the user clock (no shift-register extraction), then BUFG.
    regs = re.findall(r'\(\* shreg_extract = "no" \*\)\s*reg (user_reset_reg\d) = 1\'h1;', verilog)
    assert regs == ["user_reset_reg1", "user_reset_reg2"]
    # The first takes the IP's reset or the memory's hold (MemoryHold, tested below).
    (first,) = re.findall(r"user_reset_reg1 <= (\S+) ;", verilog)
    assert re.search(rf"assign {re.escape(first)}\s*= hip_user_reset \| memory_down;", verilog)
    assert re.search(r"user_reset_reg2 <= user_reset_reg1;", verilog)
    assert bufg["I"] == "user_reset_reg2"
    assert re.search(rf"\.pcie_rst\({re.escape(bufg['O'])}\)", verilog)


def test_constraints_match_board(tree):
    b = tree.board
    xdc = tree.read("p2p_dax.xdc")
    ports, clocks = parse_xdc(xdc)
    verilog = tree.read("p2p_dax.v")
    (buf,) = instances(verilog, REFCLK_BUFFER[b.hip.ip])
    refclk_p, refclk_n = buf["I"], buf["IB"]
    pin = lambda port: ports[port].get("PACKAGE_PIN", ports[port].get("LOC"))
    assert (pin(refclk_p), pin(refclk_n)) == b.refclk
    assert "IOSTANDARD" not in ports[refclk_p]         # a transceiver clock pad has none
    (dram_p, dram_n) = dram_sys_clk_ports(verilog, b)
    assert (pin(dram_p), pin(dram_n)) == b.dram.sys_clk
    assert ports[dram_p]["IOSTANDARD"] == ports[dram_n]["IOSTANDARD"] == b.dram.sys_clk_iostandard
    # 100 MHz on the reference clock; the DRAM controller's input clock.
    assert clocks == [(refclk_p, 10.0), (dram_p, pytest.approx(1000 / b.dram.sys_clk_mhz))]
    (perst,) = [port for port in ports if "perst" in port]
    assert pin(perst) == b.perst
    assert ports[perst]["IOSTANDARD"] == b.perst_iostandard
    assert ports[perst]["PULLUP"].upper() == "TRUE"
    # The board's other pins (the lanes: in pcie_board.xdc, checked below).
    assert set(ports) - {refclk_p, refclk_n, perst, dram_p, dram_n} == (
        {"pcie_clkreq_0__io"} if b.clkreq else set())
    # PERST# is asynchronous: a false path in a constraints file the Tcl reads.
    assert f"set_false_path -from [get_ports {perst}]" in tree.read(bitstream.BOARD_XDC)


def test_top_level_has_hard_ip_and_endpoint(tree):
    b = tree.board
    verilog = tree.read("p2p_dax.v")
    top = re.search(r"^module p2p_dax\((.*?)\);", verilog, re.M | re.S).group(1)
    assert set(re.split(r",\s*", top)) >= set(bitstream.LANE_PORTS)
    for lane in bitstream.LANE_PORTS:
        direction = "output" if "tx" in lane else "input"
        assert re.search(rf"^\s*{direction} \[{b.hip.lanes - 1}:0\] {lane};", verilog, re.M), lane
    (hip,) = instances(verilog, hard_ip.MODULE)
    (buf,) = instances(verilog, REFCLK_BUFFER[b.hip.ip])
    for port in (*CLOCK_PORTS[b.hip.ip], *bitstream.LANE_PORTS):
        assert port in hip, port
    assert hip["sys_clk"] == (buf["ODIV2"] if b.hip.ip == "pcie4_uscale_plus" else buf["O"])
    if b.hip.ip == "pcie4_uscale_plus":
        assert hip["sys_clk_gt"] == buf["O"]
        from hw.bar_endpoint import endpoint_signature
        names = {n.replace("s_axis_cq", "m_axis_cq").replace("m_axis_cc", "s_axis_cc")
                  .replace("m_axis_rq", "s_axis_rq").replace("s_axis_rc", "m_axis_rc")
                  .replace("msix_sent", "msi_sent").replace("msix_fail", "msi_fail")
                 for n in endpoint_signature(b.params).members}
    else:
        from hw.phy.s7 import s7_signature
        names = set(s7_signature(b.hip.data_width).members)
        assert not [port for port in hip if port.startswith(("cfg_err_", "fc_", "pipe_"))]
    assert names <= set(hip), names - set(hip)
    # The endpoint's module, instantiated in the top, clocked by the IP's user clock.
    assert re.search(r"^module \\p2p_dax\.endpoint ", verilog, re.M)
    assert re.search(r"^\s*\\p2p_dax\.endpoint\s+endpoint\s*\(", verilog, re.M)
    user_clk = hip[CLOCK_PORTS[b.hip.ip][0]]
    assert re.search(rf"^\s*\.pcie_clk\({re.escape(user_clk)}\)", verilog, re.M)


# ---------------------------------------------------------------------------
# The DRAM behind BAR2
# ---------------------------------------------------------------------------

def dram_sys_clk_ports(verilog, board):
    """The top-level ports of the DRAM controller's input clock, (p, n)."""
    (ctl,) = instances(verilog, dram.MODULE)
    names = dram.CONTROLLER_PORTS[board.dram.controller]
    return ctl[names["sys_clk_p"]], ctl[names["sys_clk_n"]]


# What the designs proven on each board configure, typed here from them
# (docs/notes/dram.md), not from hw/flow/dram.py.
PROVEN_DDR4 = {  # vcu118: BoardStore 2.4 preset.xml ddr4_sdram_preset_083; cheshire impl_ip.tcl;
    # corundum ip/ddr4_0.tcl (arbitration)
    "C0.DDR4_MemoryPart": "MT40A256M16GE-083E", "C0.DDR4_TimePeriod": "833",
    "C0.DDR4_InputClockPeriod": "4000", "C0.DDR4_DataWidth": "64",
    "C0.DDR4_AxiDataWidth": "512", "C0.DDR4_AxiAddressWidth": "31",
    "C0.DDR4_AxiSelection": "true", "System_Clock": "Differential",
    "C0.DDR4_DataMask": "DM_NO_DBI", "C0.BANK_GROUP_WIDTH": "1",
    "C0.DDR4_AxiArbitrationScheme": "RD_PRI_REG",
}
# corundum fpga/mqnic/VCU118/fpga_100g/fpga.xdc: (port, pin, IO standard), a sample of C1.
PROVEN_DDR4_PINS = [
    ("c0_ddr4_adr[0]", "D14", "SSTL12_DCI"), ("c0_ddr4_adr[16]", "F15", "SSTL12_DCI"),
    ("c0_ddr4_ba[1]", "G13", "SSTL12_DCI"), ("c0_ddr4_bg", "H13", "SSTL12_DCI"),
    ("c0_ddr4_ck_t", "F14", "DIFF_SSTL12_DCI"), ("c0_ddr4_ck_c", "E14", "DIFF_SSTL12_DCI"),
    ("c0_ddr4_act_n", "E13", "SSTL12_DCI"), ("c0_ddr4_cs_n", "F13", "SSTL12_DCI"),
    ("c0_ddr4_cke", "A10", "SSTL12_DCI"), ("c0_ddr4_odt", "C8", "SSTL12_DCI"),
    ("c0_ddr4_reset_n", "N20", "LVCMOS12"),
    ("c0_ddr4_dq[0]", "F11", "POD12_DCI"), ("c0_ddr4_dq[15]", "M16", "POD12_DCI"),
    ("c0_ddr4_dq[31]", "D16", "POD12_DCI"), ("c0_ddr4_dq[63]", "F23", "POD12_DCI"),
    ("c0_ddr4_dqs_t[0]", "D11", "DIFF_POD12_DCI"), ("c0_ddr4_dqs_c[7]", "G23", "DIFF_POD12_DCI"),
    ("c0_ddr4_dm_dbi_n[0]", "G11", "POD12_DCI"), ("c0_ddr4_dm_dbi_n[7]", "G22", "POD12_DCI"),
]
# RHS's MIG projects (mig_a.prj NiteFury II, mig_b.prj LiteFury): element: value.
PROVEN_MIG7 = {
    "nitefury": {
        "TimePeriod": "2500", "PHYRatio": "4:1", "InputClkFreq": "200",
        "SystemClock": "Differential", "ReferenceClock": "Use System Clock",
        "SysResetPolarity": "ACTIVE LOW", "DataWidth": "16", "DataMask": "1", "ECC": "Disabled",
        "RowAddress": "16", "ColAddress": "10", "BankAddress": "3", "MemoryVoltage": "1.5V",
        "C0_MEM_SIZE": "1073741824", "CustomPart": "TRUE", "mrCasLatency": "6",
        "mr2CasWriteLatency": "5", "emrRTT": "RZQ/4", "emrOutputDriveStrength": "RZQ/7",
        "mr2RTTWR": "Dynamic ODT off", "C0_S_AXI_DATA_WIDTH": "128", "C0_S_AXI_ADDR_WIDTH": "30",
        "C0_C_RD_WR_ARB_ALGORITHM": "RD_PRI_REG", "UserMemoryAddressMap": "BANK_ROW_COLUMN",
        "trfc": "350",
    },
}
PROVEN_MIG7["litefury"] = {
    **PROVEN_MIG7["nitefury"], "RowAddress": "15", "C0_MEM_SIZE": "536870912",
    "CustomPart": "FALSE", "MemoryDevice": "DDR3_SDRAM/Components/MT41J256m16XX-125",
    "C0_S_AXI_ADDR_WIDTH": "29", "trfc": "260"}
# amaranth-boards nitefury.py `ddr3` subsignal: the controller's port (RHS's names).
FURY_DDR3_PORTS = {"a": "ddr3_addr", "ba": "ddr3_ba", "ras": "ddr3_ras_n",
                   "cas": "ddr3_cas_n", "we": "ddr3_we_n", "dq": "ddr3_dq", "dm": "ddr3_dm",
                   "odt": "ddr3_odt", "clk_en": "ddr3_cke", "rst": "ddr3_reset_n"}


def test_dram_controller_is_configured_as_designs_proven_on_the_board(tree):
    b = tree.board
    if b.dram.controller == dram.DDR4:
        created, _, p = parse_tcl(tree.read("p2p_dax.tcl"), dram.MODULE)
        assert {k: p.get(k) for k in PROVEN_DDR4} == PROVEN_DDR4
        # The AXI4 slave the clock crossing meets: the endpoint's width, our IDs fit.
        assert int(p["C0.DDR4_AxiDataWidth"]) == b.hip.data_width
        assert 1 << int(p["C0.DDR4_AxiAddressWidth"]) == b.mem_size
        return
    import xml.etree.ElementTree as ET
    tcl = tree.read("p2p_dax.tcl")
    assert f"file copy -force [file normalize {dram.PRJ}] $dram_dir" in tcl
    assert f"CONFIG.XML_INPUT_FILE {{{dram.PRJ}}}" in tcl
    root = ET.fromstring(tree.read(dram.PRJ))
    got = {e.tag: (e.text or "").strip() for e in root.iter()}
    got |= root.find("Controller/TimingParameters/Parameters").attrib
    want = PROVEN_MIG7[b.name]
    assert {k: got.get(k) for k in want} == want
    assert got["TargetFPGA"].split("/")[0] == b.part.name[:-len("fbg484-2")] + "-" + \
        b.part.name.split("-")[0][-6:]
    assert got["ModuleName"] == dram.MODULE and int(got["C0_S_AXI_DATA_WIDTH"]) == b.hip.data_width
    assert int(got["C0_MEM_SIZE"]) == b.mem_size
    # The system clock's pins, as the board's 200 MHz clock (amaranth-boards clk200).
    clk = root.find("Controller/System_Clock/Pin").attrib["PADName"]
    assert clk.startswith("J19/H19") and b.dram.sys_clk == ("J19", "H19")


def test_dram_pins_match_designs_proven_on_the_board(tree):
    b = tree.board
    if b.dram.controller == dram.DDR4:
        ports, _ = parse_xdc(tree.read(bitstream.BOARD_XDC))
        for port, pin, std in PROVEN_DDR4_PINS:
            assert (ports[port]["LOC"], ports[port]["IOSTANDARD"]) == (pin, std), port
        # Every bit of every memory port constrained, each on its own pin.
        verilog = tree.read("p2p_dax.v")
        wanted = set()
        for name, width in b.dram.ports().items():
            assert re.search(rf"^\s*(output|inout) (\[{width - 1}:0\] )?{name};", verilog, re.M)
            wanted |= {name} if width == 1 else {f"{name}[{n}]" for n in range(width)}
        dram_ports = {k for k in ports if k.startswith("c0_ddr4_")}
        assert dram_ports == wanted
        assert len({ports[k]["LOC"] for k in wanted}) == len(wanted)
        return
    import xml.etree.ElementTree as ET
    import amaranth_boards.nitefury as nitefury
    root = ET.fromstring(tree.read(dram.PRJ))
    prj = {p.attrib["name"]: (p.attrib["PADName"], p.attrib["IOSTANDARD"])
           for p in root.find("Controller/PinSelection")}
    # An independent source: amaranth-boards' ddr3 resource for these cards.
    res = nitefury.NitefuryIIPlatform().lookup("ddr3", 0)
    boards_pins = {}
    for sub in res.ios:
        ios = sub.ios[0]
        if sub.name in ("clk", "dqs"):
            kind = "ck" if sub.name == "clk" else "dqs"
            for pol in ("p", "n"):
                for n, pin in enumerate(getattr(ios, pol).names):
                    boards_pins[f"ddr3_{kind}_{pol}[{n}]"] = pin
            continue
        names = ios.names
        if sub.name == "a":
            names = names[:int(PROVEN_MIG7[b.name]["RowAddress"])]     # LiteFury: A0-A14
        for n, pin in enumerate(names):
            port = FURY_DDR3_PORTS[sub.name]
            one = port in ("ddr3_ras_n", "ddr3_cas_n", "ddr3_we_n", "ddr3_reset_n")
            boards_pins[port if one else f"{port}[{n}]"] = pin
    assert {k: v[0] for k, v in prj.items()} == boards_pins
    # IO standards as RHS's projects set them (1.5 V DDR3).
    assert {v[1] for k, v in prj.items() if "_p[" in k or "_n[" in k} == {"DIFF_SSTL15"}
    assert prj["ddr3_reset_n"][1] == "LVCMOS15" and prj["ddr3_dq[0]"][1] == "SSTL15"
    # The top level's memory ports are the controller's, straight through.
    verilog = tree.read("p2p_dax.v")
    (ctl,) = instances(verilog, dram.MODULE)
    for name in b.dram.ports():
        assert ctl[name] == name


def test_dram_controller_is_wired_to_the_endpoint(tree):
    """Clocks, resets and the AXI4 port between the controller and the clock
    crossing; the two clocks declared asynchronous."""
    b = tree.board
    verilog = tree.read("p2p_dax.v")
    names = dram.CONTROLLER_PORTS[b.dram.controller]
    (ctl,) = instances(verilog, dram.MODULE)
    (cdc,) = instances(verilog, r"\p2p_dax.dram_cdc")
    assert ctl[names["ui_clk"]] == cdc["dram_clk"] and ctl[names["ui_rst"]] == cdc["dram_rst"]
    # Reset with the PCIe side, at the level the controller takes.
    rst = ctl[names["sys_rst"]]
    if b.dram.reset_active_low:
        assert re.search(rf"assign {re.escape(rst)}\s*= ~\s*hip_user_reset;", verilog), rst
    else:
        assert rst == "hip_user_reset"
    for ch in ("awvalid", "wvalid", "arvalid", "rready", "bready"):
        assert ctl[names["axi"] + ch] == f"down__{ch}"
    for ch in ("aw", "ar"):
        assert ctl[f"{names['axi']}{ch}id"].startswith(f"{{ {b.dram.axi_id_width - 2}'h0, ")
        assert ctl[f"{names['axi']}{ch}lock"] == "1'h0"
    line = (f"set_clock_groups -asynchronous -group [get_clocks -of_objects [get_pins "
            f"{bitstream.HIP_CLOCK[b.hip.ip]}]] -group [get_clocks -of_objects [get_pins "
            f"dram/{names['ui_clk']}]]")
    assert line in tree.read(bitstream.BOARD_XDC)


def test_endpoint_waits_for_the_memory_after_every_reset():
    """MemoryHold: after the IP's reset the endpoint stays in reset until the
    controller has gone through reset and calibrated again, however short
    the reset and however late the controller's ready falls."""
    from amaranth.sim import Simulator
    dut = bitstream.MemoryHold()
    seen = []

    async def bench(ctx):
        async def cycles(n, **drive):
            for name, value in drive.items():
                ctx.set(getattr(dut, name), value)
            for _ in range(n):
                await ctx.tick()
                seen.append(ctx.get(dut.down))
        await cycles(10)                        # power-up: not calibrated
        assert seen[-1] == 1
        await cycles(5, ready=1)
        assert seen[-1] == 0                    # calibrated: go
        await cycles(1, reset=1)                # a one-cycle reset of the IP
        await cycles(20, reset=0)               # the controller's ready not yet down
        assert set(seen[-20:]) == {1}
        await cycles(10, ready=0)               # the controller in reset
        assert set(seen[-10:]) == {1}
        await cycles(5, ready=1)                # calibrated again
        assert seen[-1] == 0

    sim = Simulator(dut)
    sim.add_clock(4e-9)
    sim.add_testbench(bench)
    sim.run()


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
    r = subprocess.run([sys.executable, "-m", "hw.flow.bitstream", "--board", "zcu106"],
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
    assert r.stdout.strip().endswith("-m hw.flow.bitstream --board litefury"), r.stdout
    assert "make bitstream" in make("help").stdout
