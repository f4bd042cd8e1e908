"""Benchmarks in one VM boot (`make vm-bench`), in the host's root file system:

1. the driver alone: O_DIRECT reads from an emulated NVMe into the dax
   mapping of the BAR, beside the same reads into an ordinary RAM buffer,
   by the static C tool (guest_tool.c `bench`), for 64 KiB to 4 MiB chunks;
2. the host library: `p2pdax list`, then `p2pdax bench` with both NVMe
   devices (CPU read and write of the mapping, NVMe -> BAR, BAR -> NVMe,
   the library's O_DIRECT loop against a plain C one), each against its
   reference in the same run, with its plot written to build/vm-bench/.

The devices are emulated, so absolute speeds say little; the ratios are the
figures. Printed, never asserted.

    python -m tests.vm.bench [--kernel 6.12] [--params P] [--size MiB] [--rounds N]
                             [--only tool|library]
"""

import argparse
import os
import re
import sys
import tempfile
from pathlib import Path

from . import guest
from .qemu import run

MiB = 1 << 20
CHUNKS = (64 * 1024, 256 * 1024, MiB, 4 * MiB)
DEVICE_MiB = 256        # the BAR (ivshmem) and the NVMe namespaces
ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "build" / "vm-bench"


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m tests.vm.bench",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--kernel", default="6.12", help="default: %(default)s")
    ap.add_argument("--size", type=int, default=128, help="MiB moved per pass (default: "
                    "%(default)s; p2pdax bench: at most 64)")
    ap.add_argument("--params", default="memory_bar=2", help="p2p_dax module parameters, "
                    "e.g. 'memory_bar=2 align=2097152' (default: %(default)s)")
    ap.add_argument("--rounds", type=int, default=5, help="passes per path, best kept "
                    "(default: %(default)s; p2pdax bench: 3)")
    ap.add_argument("--only", choices=("tool", "library"), help="run one of the two")
    args = ap.parse_args(argv)
    if not 4 <= args.size <= DEVICE_MiB or args.rounds < 1:
        ap.error(f"--size must be 4 to {DEVICE_MiB} (MiB), --rounds at least 1")
    length = args.size * MiB
    tool = guest.tool()
    OUT.mkdir(parents=True, exist_ok=True)
    plot = OUT / f"p2pdax-bench-{args.kernel}.png"
    script = guest.SHELL_PRELUDE + "N0=$(nvme n0) && N1=$(nvme n1) || exit 2\n"
    pages = "2m" if re.search(r"\balign=2097152\b", args.params) else "4k"
    if args.only != "library":
        script += "".join(f"{tool} bench $N0 /dev/dax0.0 {length} {c} {args.rounds} {pages} "
                          "|| exit 1\n" for c in CHUNKS)
    if args.only != "tool":
        script += (f".venv/bin/p2pdax list && echo && .venv/bin/p2pdax bench dax0.0 "
                   f"--source $N0 --target $N1 --total {min(args.size, 64)}M "
                   f"--rounds {min(args.rounds, 3)} --plot {plot} || exit 1\n")
    with tempfile.TemporaryDirectory() as tmp:
        n0, n1 = Path(tmp, "nvme0.img"), Path(tmp, "nvme1.img")
        n0.write_bytes(os.urandom(length))    # real data: no sparse-file shortcut
        os.truncate(n0, DEVICE_MiB * MiB)
        n1.write_bytes(b"")
        os.truncate(n1, DEVICE_MiB * MiB)
        r = run(args.kernel, script, host_root=True, cwd=ROOT, shares=[OUT],
                nvme_images=[n0, n1], driver_params=args.params,
                ivshmem_size=DEVICE_MiB * MiB, timeout=1800)
    if r.returncode:
        print(r.output, file=sys.stderr)
        return 1
    print(f"kernel {args.kernel}, p2p_dax {args.params}\n")
    if args.only != "library":
        print(f"The driver alone: O_DIRECT reads from an emulated NVMe by the C tool, "
              f"{args.size} MiB per pass, best of {args.rounds}, RAM in {pages} pages:")
        print(f"{'chunk':>8}  {'-> dax (MB/s)':>14}  {'-> RAM (MB/s)':>14}  {'ratio':>6}")
        for chunk, dax, ram, ratio in re.findall(
                r"bench chunk=(\d+) pages=\w+ nvme->dax=([\d.]+) MB/s nvme->ram=([\d.]+) MB/s "
                r"ratio=([\d.]+)", r.output):
            print(f"{int(chunk) // 1024:>6} K  {float(dax):>14.1f}  {float(ram):>14.1f}  "
                  f"{ratio:>6}")
        print()
    if args.only != "tool":
        print("The host library: p2pdax list, then p2pdax bench with both NVMe devices:\n")
        print(r.output[r.output.index("0000:"):].rstrip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
