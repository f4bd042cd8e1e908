"""Board definitions (hw/flow/boards.py) and open-source synthesis for each board."""

import dataclasses
import subprocess
import sys

import pytest

from hw.flow import boards, hard_ip
from hw.flow.synth import synthesize


def test_list_is_one_name_a_line():
    out = subprocess.run([sys.executable, "-m", "hw.flow.boards"], capture_output=True, text=True,
                         check=True).stdout
    assert out.splitlines() == list(boards.BOARDS) and len(boards.BOARDS) >= 2
    assert {b.part.family for b in boards.BOARDS.values()} == {"xcup", "xc7"}


def test_tcl_of_one_board():
    """`--tcl BOARD` prints the hard IP's Tcl from the board's definition; an
    unknown board gets one line of help and exit code 2."""
    run = lambda *a: subprocess.run([sys.executable, "-m", "hw.flow.boards", *a],
                                    capture_output=True, text=True)
    b = boards.get("litefury")
    out = run("--tcl", "litefury")
    assert out.returncode == 0 and out.stdout == hard_ip.tcl(b.hip, b.title)
    assert "create_ip -name pcie_7x" in out.stdout
    bad = run("--tcl", "nope")
    assert bad.returncode == 2 and "unknown board 'nope'" in bad.stderr


def test_fury_pins_are_amaranth_boards_pcie_resource():
    """Cross-checked with RHS Research's own XDC: refclk F6/E6, PERST# J1."""
    for name in ("nitefury", "litefury"):
        b = boards.get(name)
        assert (b.refclk, b.perst, b.perst_iostandard) == (("F6", "E6"), "J1", "LVCMOS33")
        assert (b.clkreq, b.io_standard) == ("G1", "LVCMOS33")


@pytest.mark.parametrize("hip_change, change, message", [
    ({"ip": "pcie_7x", "gt_quad": None}, {}, "hard IP pcie_7x is not on a xcup part"),
    ({"data_width": 256}, {}, "a 256-bit interface at 250.0 MHz .* cannot carry x16 Gen3"),
    ({"bar2_size": 4 << 30}, {}, "BAR2 is 0x100000000 bytes over 0x80000000 of DRAM"),
    ({}, {"axi_data_width": 256}, "the DRAM's AXI4 port is 256 bits, the endpoint's 512"),
    ({}, {"axi_id_width": 1}, "the DRAM's AXI4 IDs have 1 bits, the endpoint uses 2"),
    ({"lanes": 8}, {}, "16 lanes' pins for an x8 link"),
    ({"straddle": frozenset({"cq"})}, {}, "straddle: the endpoint needs none"),
])
def test_contradictions_are_refused(hip_change, change, message):
    b = boards.get("vcu118")
    hip = dataclasses.replace(b.hip, **hip_change)
    dram = dataclasses.replace(b.dram, **change)
    with pytest.raises(ValueError, match=f"board vcu118: {message}"):
        dataclasses.replace(b, hip=hip, dram=dram).check()


def test_dram_contradictions_are_refused():
    d = boards.get("nitefury").dram
    with pytest.raises(ValueError, match="an AXI address of 29 bits for 1073741824 bytes"):
        dataclasses.replace(d, axi_addr_width=29).check()
    with pytest.raises(ValueError, match=r"AXI 256 bits is not one UI clock's data \(16 pins x 8\)"):
        dataclasses.replace(d, axi_data_width=256).check()
    pins = (*d.pins[:-1], dataclasses.replace(d.pins[-1], pin=d.pins[0].pin))
    with pytest.raises(ValueError, match=f"pin {d.pins[0].pin} on ddr3_addr\\[0\\] and "):
        dataclasses.replace(d, pins=pins).check()


@pytest.mark.parametrize("name, size, limit_gbps", [
    ("vcu118", 2 << 30, 153.6), ("nitefury", 1 << 30, 12.8), ("litefury", 512 << 20, 12.8)])
def test_every_board_has_dram_behind_bar2(name, size, limit_gbps):
    """BAR2 is the board's DRAM (RHS README: 1 GB / 512 MB; VCU118 C1's 64 bits:
    2 GiB), reported by the build's MEM_SIZE, and what the chips carry at most."""
    b = boards.get(name)
    assert b.params.memory == "axi" and b.params.mem_size == b.params.bar2_size == size
    assert b.dram.peak_gbps == pytest.approx(limit_gbps, rel=1e-3)
    assert b.dram.axi_gbps == pytest.approx(limit_gbps, rel=1e-3)    # no width lost at the UI


def test_docs_boards_md_is_current():
    """docs/boards.md is generated from the board definitions."""
    from pathlib import Path
    committed = (Path(__file__).resolve().parents[1] / "docs" / "boards.md").read_text()
    assert committed == boards.markdown(), \
        "docs/boards.md is stale: run `python -m hw.flow.boards --markdown > docs/boards.md`"


@pytest.mark.parametrize("family, width, board, differs", [
    ("usp", 512, "vcu118", {}),
    ("s7", 128, "nitefury", {}),
    ("usp", 256, "vcu118", {"data_width": (512, 256), "lanes": (16, 8)}),
    ("s7", 64, "nitefury", {"data_width": (128, 64), "user_clk_mhz": (125.0, 250.0)}),
])
def test_simulations_run_with_a_boards_configuration(family, width, board, differs):
    """Every simulated interface has a board's hard-IP settings, changed only
    where no board has that interface; the RTL's requirements hold for each."""
    from hw.flow import hard_ip
    from hw.params import EndpointParams
    base = boards.get(board).hip.bar2_size
    params = EndpointParams(data_width=width, hard_ip=family, bar2_size=base)
    config, name, got = boards.sim_config(params)
    assert (name, got) == (board, differs)
    assert config.client_tag and not config.straddle
    assert hard_ip.mismatches(config, params) == []
    # A build whose BAR2 differs from the board's takes its own, and says so.
    config, _, got = boards.sim_config(dataclasses.replace(params, bar2_size=4 << 20))
    assert config.bar2_size == 4 << 20 and got["bar2_size"] == (base, 4 << 20)



def test_unknown_board():
    with pytest.raises(ValueError, match="unknown board 'zcu106': use one of vcu118, nitefury"):
        boards.get("zcu106")


@pytest.mark.parametrize("name", list(boards.BOARDS))
def test_board_synthesizes_and_fits(name):
    """The endpoint with the board's parameters, for its part's family: BAR2's
    memory outside (the DRAM, through the m_axi_* port), and everything
    within the part."""
    b = boards.get(name)
    r = synthesize(b.params, family=b.part.family)
    assert r["errors"] == 0, r["dir"]
    assert r["params"]["mem_size"] == b.mem_size and r["family"] == b.part.family
    assert r["params"]["memory"] == "axi"
    assert r["lut"] + r["lutram"] < b.part.luts and r["ff"] < b.part.ffs, r
    assert r["bram36"] < b.part.ramb36 and r["lutram"] < b.part.lutram_luts, r


def run_flash(*args):
    return subprocess.run([sys.executable, "-m", "hw.flow.flash", *args], capture_output=True,
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
