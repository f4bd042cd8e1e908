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
