"""The pcie_7x bus model (hw/sim/tb/s7_model.py) in one short simulation:
hw/sim/test_s7_model.py, on a toplevel of bare ports (written here)."""

import logging
import os
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

pytest.importorskip("cocotb", reason="simulation extra not installed (pip install .[sim])")

from cocotb_tools.runner import Icarus  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "build" / "sim" / "s7_model"
TOPLEVEL = "s7_model_tb"
# (name, width or None for the data width, width divisor for tkeep)
PORTS = [("user_clk", 1), ("user_reset", 1), ("user_lnk_up", 1),
         ("m_axis_rx_tdata", "W"), ("m_axis_rx_tkeep", "K"), ("m_axis_rx_tlast", 1),
         ("m_axis_rx_tuser", 22), ("m_axis_rx_tvalid", 1), ("m_axis_rx_tready", 1),
         ("rx_np_ok", 1),
         ("s_axis_tx_tdata", "W"), ("s_axis_tx_tkeep", "K"), ("s_axis_tx_tlast", 1),
         ("s_axis_tx_tuser", 4), ("s_axis_tx_tvalid", 1), ("s_axis_tx_tready", 1),
         ("cfg_command", 16), ("cfg_dcommand", 16), ("cfg_lcommand", 16),
         ("cfg_bus_number", 8), ("cfg_device_number", 5), ("cfg_function_number", 3),
         ("cfg_interrupt_msixenable", 1), ("cfg_interrupt_msixfm", 1)]


def verilog(widths):
    ports = []
    for prefix, width in widths.items():
        for name, w in PORTS:
            w = width if w == "W" else width // 8 if w == "K" else w
            ports.append(f"    input wire [{w - 1}:0] {prefix}{name}")
    return f"module {TOPLEVEL}(\n" + ",\n".join(ports) + "\n);\nendmodule\n"


def test_s7_model():
    from hw.sim.tb.s7_model import BENCH_WIDTHS
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    BUILD.mkdir(parents=True, exist_ok=True)
    src = BUILD / f"{TOPLEVEL}.v"
    src.write_text(verilog(BENCH_WIDTHS))
    runner = Icarus()
    runner.log.setLevel(logging.CRITICAL)
    runner.build(sources=[src], hdl_toplevel=TOPLEVEL, build_dir=BUILD,
                 timescale=("1ns", "1ps"), log_file=BUILD / "build.log")
    results = BUILD / "results.xml"
    results.unlink(missing_ok=True)
    try:
        runner.test(test_module="hw.sim.test_s7_model", hdl_toplevel=TOPLEVEL,
                    build_dir=BUILD, test_dir=BUILD, results_xml=str(results),
                    timescale=("1ns", "1ps"), log_file=BUILD / "sim.log",
                    extra_env={"COCOTB_LOG_LEVEL": os.environ.get("COCOTB_LOG_LEVEL",
                                                                   "WARNING")})
    except SystemExit:
        pass
    assert results.exists(), f"no results: see {BUILD / 'sim.log'}"
    cases = list(ET.parse(results).getroot().iter("testcase"))
    failed = [c.get("name") for c in cases if c.find("failure") is not None
              or c.find("error") is not None]
    assert cases and not failed, f"{failed} failed: see {BUILD / 'sim.log'}"
