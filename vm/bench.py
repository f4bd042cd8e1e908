"""Benchmarks in one VM boot (`make vm-bench`), in the host's root file system:

1. the driver alone: O_DIRECT reads from an emulated NVMe into the dax
   mapping of the BAR, beside the same reads into an ordinary RAM buffer,
   by the static C tool (guest_tool.c `bench`), for 64 KiB to 4 MiB chunks;
2. the host library: `p2pdax list`, then `p2pdax bench` with both NVMe
   devices (CPU read and write of the mapping, NVMe -> BAR, BAR -> NVMe,
   the library's O_DIRECT loop against a plain C one), each against its
   reference in the same run, with its plot written to build/vm-bench/.

With --iommu the guest boots with QEMU's IOMMU translating (vm/qemu.py
iommu=True) and part 1 runs twice in that boot, from the NVMe on the root
bus: with its IOMMU group translating (DMA), then switched to identity
(no translation) through sysfs, so the two tables show what translation
costs. --kernel takes a comma-separated list (or "all": every stock kernel),
one boot each.

The devices are emulated, so absolute speeds say little; the ratios are the
figures. Printed, never asserted.

    python -m vm.bench [--kernel 6.12|6.1,7.3|all] [--iommu] [--params P]
                             [--size MiB] [--rounds N] [--only tool|library]
"""

import argparse
import os
import re
import sys
import tempfile
from pathlib import Path

from vm import guest, kernels
from vm.qemu import run

MiB = 1 << 20
CHUNKS = (64 * 1024, 256 * 1024, MiB, 4 * MiB)
DEVICE_MiB = 256        # the BAR (ivshmem) and the NVMe namespaces
ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "build" / "vm-bench"


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m vm.bench",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--kernel", default="6.12", help="a kernel, a comma-separated list, or "
                    "all (default: %(default)s)")
    ap.add_argument("--iommu", action="store_true", help="boot with the IOMMU translating; "
                    "the C tool's bench runs translated and untranslated in that boot")
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
    names = kernels.STOCK if args.kernel == "all" else args.kernel.split(",")
    if not set(names) <= set(kernels.NAMES):
        ap.error(f"--kernel {args.kernel}: use {', '.join(kernels.NAMES)}, a list, or all")
    return max(_bench(args, name) for name in names)


def _tool_bench(args, source, pages, label):
    tool = guest.tool()
    return "".join(f"{tool} bench {source} /dev/dax0.0 {args.size * MiB} {c} {args.rounds} "
                   f"{pages} > /tmp/bench || {{ cat /tmp/bench; exit 1; }}\n"
                   f"sed 's/^bench /bench {label} /' /tmp/bench\n" for c in CHUNKS)


# The root-bus NVMe's IOMMU group holds it alone: its type can be switched.
IDENTITY = """P=$(basename $(readlink -f /sys/block/${N1#/dev/}/device/device))
echo $P > /sys/bus/pci/drivers/nvme/unbind
echo identity > /sys/bus/pci/devices/$P/iommu_group/type || exit 1
echo $P > /sys/bus/pci/drivers/nvme/bind
i=0; while [ $i -lt 50 ] && ! N1=$(nvme n1 2>/dev/null); do sleep 0.1; i=$((i + 1)); done
echo "nvme n1 group: $(cat /sys/bus/pci/devices/$P/iommu_group/type)"
"""


def _bench(args, kernel):
    length = args.size * MiB
    OUT.mkdir(parents=True, exist_ok=True)
    plot = OUT / f"p2pdax-bench-{kernel}{'-iommu' if args.iommu else ''}.png"
    script = guest.SHELL_PRELUDE + "N0=$(nvme n0) && N1=$(nvme n1) || exit 2\n"
    pages = "2m" if re.search(r"\balign=2097152\b", args.params) else "4k"
    if args.only != "library" and args.iommu:
        script += _tool_bench(args, "$N1", pages, "translated") + IDENTITY
        script += _tool_bench(args, "$N1", pages, "identity")
    elif args.only != "library":
        script += _tool_bench(args, "$N0", pages, "plain")
    if args.only != "tool":
        script += (f".venv/bin/p2pdax list && echo && .venv/bin/p2pdax bench dax0.0 "
                   f"--source $N0 --target $N1 --total {min(args.size, 64)}M "
                   f"--rounds {min(args.rounds, 3)} --plot {plot} || exit 1\n")
    with tempfile.TemporaryDirectory() as tmp:
        n0, n1 = Path(tmp, "nvme0.img"), Path(tmp, "nvme1.img")
        data = os.urandom(length)            # real data: no sparse-file shortcut
        for img in (n0, n1):
            img.write_bytes(data if img == n0 or args.iommu else b"")
            os.truncate(img, DEVICE_MiB * MiB)
        r = run(kernel, script, host_root=True, cwd=ROOT, shares=[OUT],
                nvme_images=[n0, n1], driver_params=args.params, iommu=args.iommu,
                nvme1_on_root=args.iommu, ivshmem_size=DEVICE_MiB * MiB, timeout=1800)
    if r.returncode:
        print(r.output, file=sys.stderr)
        return 1
    print(f"kernel {kernel}, p2p_dax {args.params}, IOMMU {'on' if args.iommu else 'off'}\n")
    if args.only != "library":
        _print_tool(args, r.output, pages)
    if args.only != "tool":
        print("The host library: p2pdax list, then p2pdax bench with both NVMe devices:\n")
        print(r.output[r.output.index("0000:"):].rstrip())
    print()
    return 0


def _print_tool(args, output, pages):
    rows = re.findall(r"bench (\w+) chunk=(\d+) pages=\w+ nvme->dax=([\d.]+) MB/s "
                      r"nvme->ram=([\d.]+) MB/s ratio=([\d.]+)", output)
    print(f"The driver alone: O_DIRECT reads from an emulated NVMe by the C tool, "
          f"{args.size} MiB per pass, best of {args.rounds}, RAM in {pages} pages:")
    print(f"{'NVMe DMA':>10}  {'chunk':>7}  {'-> dax (MB/s)':>14}  {'-> RAM (MB/s)':>14}  "
          f"{'dax/RAM':>7}")
    for label, chunk, dax, ram, ratio in rows:
        print(f"{label:>10}  {int(chunk) // 1024:>5} K  {float(dax):>14.1f}  "
              f"{float(ram):>14.1f}  {ratio:>7}")
    by = {(label, chunk): (float(dax), float(ram)) for label, chunk, dax, ram, _ in rows}
    if args.iommu:
        print("\nWhat translation costs, per chunk: translated / identity throughput")
        for _, chunk, *_ in rows[:len(CHUNKS)]:
            (tdax, tram), (idax, iram) = by[("translated", chunk)], by[("identity", chunk)]
            print(f"{int(chunk) // 1024:>6} K  -> dax {tdax / idax:.2f}   -> RAM {tram / iram:.2f}")
    print()
if __name__ == "__main__":
    sys.exit(main())
