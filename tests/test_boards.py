"""Board definitions (hw/boards.py) and open-source synthesis for each board."""

import dataclasses
import subprocess
import sys

import pytest

from hw import boards
from hw.synth import synthesize


def test_list_is_one_name_a_line():
    out = subprocess.run([sys.executable, "-m", "hw.boards"], capture_output=True, text=True,
                         check=True).stdout
    assert out.splitlines() == list(boards.BOARDS) and len(boards.BOARDS) >= 2
    assert {b.part.family for b in boards.BOARDS.values()} == {"xcup", "xc7"}


def test_fury_pins_are_amaranth_boards_pcie_resource():
    """Cross-checked with RHS Research's own XDC: refclk F6/E6, PERST# J1."""
    for name in ("nitefury", "litefury"):
        b = boards.get(name)
        assert (b.refclk, b.perst, b.perst_iostandard) == (("F6", "E6"), "J1", "LVCMOS33")


@pytest.mark.parametrize("change, message", [
    ({"hard_ip": "pcie_7x"}, "hard IP pcie_7x is not on a xcup part"),
    ({"data_width": 256}, "a 256-bit interface at 250.0 MHz .* cannot carry x16 Gen3"),
    ({"mem_size": 3 << 20}, "mem_size 0x300000: use a power of two"),
])
def test_contradictions_are_refused(change, message):
    with pytest.raises(ValueError, match=f"board vcu118: {message}"):
        dataclasses.replace(boards.get("vcu118"), **change).check()


def test_unknown_board():
    with pytest.raises(ValueError, match="unknown board 'zcu106': use one of vcu118, nitefury"):
        boards.get("zcu106")


@pytest.mark.parametrize("name", list(boards.BOARDS))
def test_board_synthesizes_and_fits(name):
    """The endpoint with the board's parameters, for its part's family: BAR2's
    memory in block RAM, and everything within the part."""
    b = boards.get(name)
    r = synthesize(b.params, family=b.part.family)
    assert r["errors"] == 0, r["dir"]
    assert r["params"]["mem_size"] == b.mem_size and r["family"] == b.part.family
    assert r["bram36"] * 36 * 1024 >= b.mem_size * 8, r["cells"]
    assert r["lut"] + r["lutram"] < b.part.luts and r["ff"] < b.part.ffs, r
    assert r["bram36"] < b.part.ramb36 and r["lutram"] < b.part.lutram_luts, r


def run_flash(*args):
    return subprocess.run([sys.executable, "-m", "hw.flash", *args], capture_output=True,
                          text=True)


@pytest.mark.parametrize("name, persist, expected", [
    ("vcu118", False, "openFPGALoader -b vcu118 BIT"),
    ("nitefury", False, "openFPGALoader -c ft2232 --fpga-part xc7a200tfbg484 BIT"),
    ("nitefury", True, "openFPGALoader -c ft2232 --fpga-part xc7a200tfbg484 -f BIT"),
    ("litefury", True, "openFPGALoader -c ft2232 --fpga-part xc7a100tfgg484 -f BIT"),
])
def test_flash_commands(name, persist, expected, tmp_path):
    bit = tmp_path / "top.bit"
    r = run_flash("--board", name, "--bitstream", str(bit), "--dry-run",
                  *(["--persist"] if persist else []))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == expected.replace("BIT", str(bit))


def test_flash_errors(tmp_path):
    r = run_flash("--board", "vcu118", "--persist", "--dry-run")
    assert r.returncode == 2 and "vcu118: writing its dual-QSPI configuration flash" in r.stderr
    r = run_flash("--board", "nitefury", "--bitstream", str(tmp_path / "none.bit"))
    assert r.returncode == 1
    assert f"flash: no bitstream at {tmp_path / 'none.bit'}: build it with make bitstream " \
        "BOARD=nitefury" in r.stderr
    r = run_flash("--board", "zcu106", "--dry-run")
    assert r.returncode == 2 and "unknown board 'zcu106'" in r.stderr


SCALE = {"Kilobytes": 1 << 10, "Megabytes": 1 << 20, "Gigabytes": 1 << 30}


def parse_ip_tcl(text):
    """(IP name, {property: value}) from the Tcl of hw.hard_ip, read as Vivado would."""
    import re
    (ip,) = re.findall(r"^create_ip -name (\S+) -vendor xilinx.com -library ip "
                       r"-module_name pcie_hip$", text, re.M)
    props = dict(re.findall(r"^\s+CONFIG\.(\w+) \{([^{}]*)\} \\$", text, re.M))
    assert re.search(r"^\] \[get_ips pcie_hip\]$", text, re.M)
    return ip, props


@pytest.mark.parametrize("name", list(boards.BOARDS))
def test_hard_ip_tcl_matches_register_map_and_board(name):
    """Decode the generated IP configuration and compare it with its sources."""
    from hw import regmap
    b = boards.get(name)
    out = subprocess.run([sys.executable, "-m", "hw.hard_ip", "--board", name],
                         capture_output=True, text=True, check=True).stdout
    ip, p = parse_ip_tcl(out)
    assert ip == b.hard_ip
    if ip == "pcie4_uscale_plus":
        bar = lambda n, f: p[f"pf0_bar{n}_{f.lower()}"]
        ids = (p["vendor_id"], p["PF0_DEVICE_ID"], p["PF0_CLASS_CODE"])
        link = (p["PL_LINK_CAP_MAX_LINK_WIDTH"], p["PL_LINK_CAP_MAX_LINK_SPEED"],
                p["axisten_if_width"], p["axisten_freq"])
        msix = (p["pf0_msix_enabled"], p["PF0_MSIX_CAP_TABLE_SIZE"], p["PF0_MSIX_CAP_TABLE_BIR"],
                p["PF0_MSIX_CAP_TABLE_OFFSET"], p["PF0_MSIX_CAP_PBA_BIR"],
                p["PF0_MSIX_CAP_PBA_OFFSET"])
        assert (p["pcie_blk_locn"], p["select_quad"]) == (b.pcie_block, b.gt_quad)
    else:
        bar = lambda n, f: p[f"Bar{n}_{f}"]
        ids = (p["Vendor_ID"], p["Device_ID"],
               p["Class_Code_Base"] + p["Class_Code_Sub"] + p["Class_Code_Interface"])
        link = (p["Maximum_Link_Width"], p["Link_Speed"], p["Interface_Width"],
                p["User_Clk_Freq"])
        msix = (p["MSIx_Enabled"], p["MSIx_Table_Size"], p["MSIx_Table_BIR"],
                p["MSIx_Table_Offset"], p["MSIx_PBA_BIR"], p["MSIx_PBA_Offset"])
        assert p["PCIe_Blk_Locn"] == b.pcie_block
    assert [int(x, 16) for x in ids] == [regmap.PCI_VENDOR_ID, regmap.PCI_DEVICE_ID,
                                         regmap.PCI_CLASS_CODE]
    width, speed, if_width, clk = link
    assert int(width.lstrip("X")) == b.lanes
    assert speed == {2: "5.0_GT/s", 3: "8.0_GT/s"}[b.gen]
    assert int(if_width.removesuffix("_bit")) == b.data_width
    assert float(clk) == b.user_clk_mhz
    for n, size, wide in ((0, regmap.BAR0_SIZE, "false"), (2, b.bar2_size, "true")):
        assert bar(n, "Enabled") == "true" and bar(n, "Type") == "Memory"
        assert SCALE[bar(n, "Scale")] * int(bar(n, "Size")) == size
        assert bar(n, "64bit") == bar(n, "Prefetchable") == wide
    assert bar(1, "Enabled") == "false"     # BAR0 is 32-bit: BAR1 stays free
    enabled, table_size, table_bir, table_off, pba_bir, pba_off = msix
    assert enabled == "true" and int(table_size, 16) + 1 == regmap.MSIX_VECTORS
    assert table_bir == pba_bir == "BAR_0"
    assert (int(table_off, 16), int(pba_off, 16)) == (regmap.MSIX_TABLE_OFFSET,
                                                      regmap.MSIX_PBA_OFFSET)
