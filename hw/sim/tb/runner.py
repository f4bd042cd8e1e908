"""The one way to build and run a cocotb testbench on the endpoint (Icarus Verilog).

    from hw.params import EndpointParams
    from hw.sim.tb.runner import run
    run("test_endpoint", EndpointParams(data_width=128))

Layout under build/sim/:

    <key>/                      key: hash of the params and of the HDL sources
        p2p_dax_tb.v            the simulation toplevel (hw.sim.tb.dut), generated once
        icarus/ icarus-waves/   compiled simulation, without / with waveform dump
        <module>-<testcase|all>-<pid>-<n>/
            results.xml  sim.log  [p2p_dax_tb.fst]

The testbench reads the params from the environment variable P2P_DAX_PARAMS
(JSON of dataclasses.asdict(params)). Logging defaults to COCOTB_LOG_LEVEL=WARNING.
WAVES=1 in the environment turns waveforms on (it wins over the argument, as in cocotb).
"""

import dataclasses
import fcntl
import hashlib
import itertools
import json
import logging
import os
import shutil
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from cocotb_tools.runner import Icarus

ROOT = Path(__file__).resolve().parents[3]
HW = ROOT / "hw"
SIM = HW / "sim"
BUILD = ROOT / "build" / "sim"
TIMESCALE = ("1ns", "1ps")       # Amaranth's Verilog has no `timescale; Icarus would use 1 s
_runs = itertools.count()


class _Icarus(Icarus):
    """cocotb's Icarus runner with a Verilog-2005 waveform dump module.

    cocotb's own dump module declares a SystemVerilog `string`, which Icarus
    rejects under -g2005. This one writes <toplevel>.fst into the directory
    the simulation runs in (the run directory).
    """

    def _create_iverilog_dump_file(self):
        self.iverilog_dump_file.write_text(
            "module cocotb_iverilog_dump();\n"
            "initial begin\n"
            f'    $dumpfile("{self.hdl_toplevel}.fst");\n'
            f"    $dumpvars(0, {self.hdl_toplevel});\n"
            "end\n"
            "endmodule\n")


# The tests of the engine's data path, whose logic changes with the interface
# width (packing, splitting, lane shifts); the others test its control (the
# queue, timeouts, tags, MSI-X, abort), the same logic at every width.
# tests/test_sim.py runs these (hw/sim/test_dma.py) at every width, all of
# them at the boards' widths.
DMA_DATA_PATH = ("test_dma_write_to_peer_endpoint", "test_dma_write_alignments",
             "test_dma_read_from_peer_endpoint", "test_dma_read_alignments",
             "test_dma_backpressure", "test_dma_read_discontinued")


# The 7-series core has no discontinue on completions (it poisons them).
NOT_ON_S7 = ("test_dma_read_discontinued",)


def applicable(params, names):
    """Of `names`, the tests that apply to a build. A test named to cocotb
    runs even if marked skip, so callers filter here."""
    return [n for n in names if not (params.hard_ip == "s7" and n in NOT_ON_S7)]


def _hdl_sources():
    """Files the Verilog depends on: all of hw/ except the testbenches (but with
    hw/sim/tb/dut.py) and the virtual board's bridge (hw/virtual/)."""
    virtual = HW / "virtual"
    return sorted(p for p in HW.rglob("*.py")
                  if (SIM not in p.parents or p == SIM / "tb" / "dut.py") and virtual not in p.parents)


def build_key(params, memory=None):
    h = hashlib.sha256(json.dumps(dataclasses.asdict(params), sort_keys=True).encode())
    if memory is not None and params.memory == "axi":
        h.update(json.dumps(dataclasses.asdict(memory), sort_keys=True).encode())
    for path in _hdl_sources():
        h.update(path.relative_to(ROOT).as_posix().encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:16]


def _waves_default(waves):
    env = os.environ.get("WAVES", "").strip().lower()
    if env:                      # cocotb's runner lets WAVES override the argument
        return env in ("1", "yes", "y", "on", "true", "enable")
    return bool(waves)


def _failures(results_xml):
    """(number of tests, [(name, first line of the failure message)])."""
    tests, failed = 0, []
    for case in ET.parse(results_xml).getroot().iter("testcase"):
        tests += 1
        for bad in (*case.iter("failure"), *case.iter("error")):
            msg = (bad.get("message") or bad.text or "").strip().splitlines()
            failed.append((case.get("name"), msg[0] if msg else bad.tag))
            break
    return tests, failed


def run(test_module, params, *, testcase=None, extra_env=None, waves=None, build_root=None,
        memory=None):
    """Build the simulation of `params` (cached) and run cocotb test module hw.sim.<test_module>.
    With params.memory == "axi", `memory` (a MemoryModel) is the external memory's behaviour.

    Returns the run directory. Raises AssertionError if a test failed or none ran.
    """
    from hw.sim.tb import dut  # imports Amaranth

    from hw.sim.tb.memory import MemoryModel

    params = params.validate()
    memory = memory or MemoryModel()
    waves = _waves_default(waves)
    key_dir = Path(build_root or BUILD) / build_key(params, memory)
    key_dir.mkdir(parents=True, exist_ok=True)
    verilog = key_dir / f"{dut.TOPLEVEL}.v"
    build_dir = key_dir / ("icarus-waves" if waves else "icarus")
    module = test_module if "." in test_module else f"hw.sim.{test_module}"
    short = module.rsplit(".", 1)[-1]
    label = testcase if isinstance(testcase, str) else f"{len(testcase)}cases" if testcase else "all"
    run_dir = key_dir / f"{short}-{label}-{os.getpid()}-{next(_runs)}"
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir()

    if shutil.which("iverilog") is None:
        raise RuntimeError("iverilog not found on PATH: run `make setup` "
                           "(or `sudo apt-get install iverilog`)")
    if str(ROOT) not in sys.path:    # the simulator's PYTHONPATH is this process' sys.path
        sys.path.insert(0, str(ROOT))
    runner = _Icarus()
    runner.log.setLevel(logging.CRITICAL)   # failures are reported below, with paths

    # Parallel workers (pytest-xdist) may want the same build: one builds, the others wait.
    with open(key_dir / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not verilog.exists():
            tmp = verilog.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(dut.generate_verilog(params, memory))
            tmp.replace(verilog)
        build_dir.mkdir(exist_ok=True)
        try:
            # -g2005 after cocotb's -g2012: Amaranth's `always @*` blocks must run at time 0.
            runner.build(sources=[verilog], hdl_toplevel=dut.TOPLEVEL, build_args=["-g2005"],
                         build_dir=build_dir, timescale=TIMESCALE, waves=waves,
                         log_file=build_dir / "build.log")
        except RuntimeError as e:
            raise RuntimeError(f"Icarus build failed ({e}): see {build_dir / 'build.log'}") from None

    env = {"P2P_DAX_PARAMS": json.dumps(dataclasses.asdict(params)),
           "COCOTB_LOG_LEVEL": os.environ.get("COCOTB_LOG_LEVEL", "WARNING"),
           **memory.env()}
    env.update(extra_env or {})
    results, log = run_dir / "results.xml", run_dir / "sim.log"
    exit_code = 0
    try:
        runner.test(test_module=module, hdl_toplevel=dut.TOPLEVEL, testcase=testcase,
                    build_dir=build_dir, test_dir=run_dir, results_xml=str(results),
                    extra_env=env, waves=waves, timescale=TIMESCALE, log_file=log)
    except SystemExit as e:      # cocotb exits on a simulator error, and on failures under pytest
        exit_code = e.code

    wave_file = run_dir / f"{dut.TOPLEVEL}.fst"
    if waves:
        print(f"waveform: {wave_file}")
    where = f"\n  log: {log}\n  " + (f"waveform: {wave_file}" if waves
                                     else "rerun with WAVES=1 for a waveform")
    if not results.exists():
        raise AssertionError(f"{module}: the simulator wrote no results "
                             f"(exit code {exit_code}){where}")
    tests, failed = _failures(results)
    if not tests:
        raise AssertionError(f"{module}: no test ran (testcase={testcase!r}){where}")
    if failed:
        lines = "".join(f"\n  {name}: {msg}" for name, msg in failed)
        raise AssertionError(f"{module}: {len(failed)} of {tests} tests failed:{lines}{where}")
    return run_dir
