"""The cocotb testbenches, run for each data width and build variant.

Each item is one simulation (its log and, with WAVES=1, its waveform are
under build/sim/; a failure names them). P2P_DAX_FULL=1 runs the
exhaustive sweeps, and 10,000 operations of randomized traffic per variant;
P2P_DAX_RANDOM_OPS=N sets the number of random operations alone (RANDOM_SEED,
RANDOM_FIRST: see hw/sim/test_random.py), e.g.

    P2P_DAX_RANDOM_OPS=10000 .venv/bin/python -m pytest tests/test_sim.py -k 'random and w256'
"""

import ast
import gc
import os
from pathlib import Path

import pytest

pytest.importorskip("cocotb", reason="simulation extra not installed (pip install .[sim])")

from hw.params import EndpointParams  # noqa: E402
from hw.sim.tb.memory import MemoryModel  # noqa: E402
from hw.sim.tb.runner import DMA_DATA_PATH, applicable  # noqa: E402
from hw.sim.tb.runner import run as run_sim  # noqa: E402

FULL = os.environ.get("P2P_DAX_FULL") == "1"
VARIANTS = {
    "w64": EndpointParams(data_width=64),
    "w128": EndpointParams(data_width=128),
    "w256": EndpointParams(data_width=256),
    "w512": EndpointParams(data_width=512),
    # A larger BAR over a small memory, and a short non-posted queue.
    "w128-bar4m-mem64k-npq4": EndpointParams(data_width=128, bar2_size=4 << 20,
                                              mem_size=64 << 10, np_queue_depth=4),
    # Behind the 7-series shim (hw/phy/s7.py), with the pcie_7x model (hw/sim/tb/s7_model.py).
    "s7-w64": EndpointParams(data_width=64, hard_ip="s7"),
    "s7-w128": EndpointParams(data_width=128, hard_ip="s7"),
    # BAR2's memory outside (memory="axi") behind a DRAM-like model: 150
    # cycles to every read and write response, ready and valid held low a
    # fifth of the time (hw/sim/tb/memory.py).
    # The boards' builds are so: the VCU118's 512 bits, the Furies' 128 behind the shim.
    "w256-dram": EndpointParams(data_width=256, memory="axi", mem_size=2 << 20),
    "w512-dram": EndpointParams(data_width=512, memory="axi", mem_size=2 << 20),
    "s7-w128-dram": EndpointParams(data_width=128, hard_ip="s7", memory="axi", mem_size=2 << 20),
}
MEMORY = {name: MemoryModel(latency=150, busy=0.2) for name in VARIANTS if name.endswith("-dram")}


def run(module, variant, **kwargs):
    return run_sim(module, VARIANTS[variant], memory=MEMORY.get(variant), **kwargs)


@pytest.mark.parametrize("variant", VARIANTS)
def test_endpoint(variant):
    run("test_endpoint", variant)


@pytest.mark.parametrize("variant", ["w512-dram", "s7-w128-dram", "w256-dram"])
def test_dma(variant):
    """Every DMA test at the boards' configurations (VCU118, the Furies:
    BAR2 in DRAM), and at 256 bits."""
    run("test_dma", variant)


@pytest.mark.parametrize("variant", ["w64", "w128", "w256", "s7-w64"])
def test_dma_data_path(variant):
    """The DMA tests whose logic changes with the width, at the other widths
    (all of them with P2P_DAX_FULL=1)."""
    cases = None if FULL else applicable(VARIANTS[variant], DMA_DATA_PATH)
    run("test_dma", variant, testcase=cases)


def test_dma_data_path_names():
    """The names test_dma_data_path picks are tests of hw/sim/test_dma.py."""
    source = (Path(__file__).parents[1] / "hw" / "sim" / "test_dma.py").read_text()
    gc.collect()        # no finalizer during compilation: see tests/test_layout.py's _parse
    gc.disable()
    try:
        tree = ast.parse(source)
    finally:
        gc.enable()
    names = {f.name for f in tree.body if isinstance(f, ast.AsyncFunctionDef)}
    assert set(DMA_DATA_PATH) <= names, set(DMA_DATA_PATH) - names


def test_demo_512():
    """The `make sim` story, at the widest interface."""
    run_sim("test_demo", EndpointParams(data_width=512))


@pytest.mark.parametrize("variant", ["w128", "w512", "s7-w128"])
def test_peers(variant):
    """The DMA test peers (hw.sim.tb.peers): latency, splitting, reordering, faults;
    at 512 and 128 bits (7-series) with the boards' own hard-IP settings."""
    run("test_peers", variant)


@pytest.mark.parametrize("variant", ["w64", "w128", "w256", "w512", "s7-w128", "w256-dram"])
def test_random(variant):
    """Randomized mixed traffic with a byte-exact scoreboard (hw.sim.test_random)."""
    run("test_random", variant)


@pytest.mark.parametrize("variant", ["w64", "s7-w64", "w256-dram"])
def test_verilog_runs_every_always_block(variant):
    """No `always @*` block of the simulated Verilog assigns a constant: it
    has no inputs, Icarus never runs it, and the bits stay X (Yosys writes
    one for the constant bits of a signal assigned partly under an If: use
    a Mux there)."""
    import re
    from hw.sim.tb import dut
    text = dut.generate_verilog(VARIANTS[variant], MEMORY.get(variant, MemoryModel()))
    dead = re.findall(r"always @\*\n\s+(\S+ \[[0-9:]+\]) = [0-9]+'[hbd][0-9a-fA-F]+;", text)
    assert not dead, f"constant bits Icarus leaves X: {dead[:5]}"
