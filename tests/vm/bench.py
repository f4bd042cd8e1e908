"""O_DIRECT throughput from an emulated NVMe into the dax mapping of the BAR,
beside the same reads into an ordinary RAM buffer, in one boot (`make vm-bench`).

The devices are emulated, so absolute speeds say little; the ratio of the two
paths, measured alternately in the same run, is the figure. Printed, never
asserted.

    python -m tests.vm.bench [--kernel 6.12] [--params P] [--size MiB] [--rounds N]
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


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m tests.vm.bench",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--kernel", default="6.12", help="default: %(default)s")
    ap.add_argument("--size", type=int, default=128, help="MiB read per pass (default: %(default)s)")
    ap.add_argument("--params", default="memory_bar=2", help="p2p_dax module parameters, "
                    "e.g. 'memory_bar=2 align=2097152' (default: %(default)s)")
    ap.add_argument("--rounds", type=int, default=5, help="passes per path, best kept "
                    "(default: %(default)s)")
    args = ap.parse_args(argv)
    if not 4 <= args.size <= DEVICE_MiB or args.rounds < 1:
        ap.error(f"--size must be 4 to {DEVICE_MiB} (MiB), --rounds at least 1")
    length = args.size * MiB
    with tempfile.TemporaryDirectory() as tmp:
        n0, n1 = Path(tmp, "nvme0.img"), Path(tmp, "nvme1.img")
        n0.write_bytes(os.urandom(args.size * MiB))    # real data: no sparse-file shortcut
        os.truncate(n0, DEVICE_MiB * MiB)
        n1.write_bytes(b"")
        os.truncate(n1, DEVICE_MiB * MiB)
        lines = "\n".join(f"{guest.TOOL_GUEST_PATH} bench $N0 /dev/dax0.0 {length} {c} "
                          f"{args.rounds} || exit 1" for c in CHUNKS)
        r = run(args.kernel, guest.SHELL_PRELUDE + "N0=$(nvme n0) || exit 2\n" + lines,
                nvme_images=[n0, n1], driver_params=args.params, ivshmem_size=DEVICE_MiB * MiB, extra_files={guest.TOOL_GUEST_PATH: guest.tool()},
                timeout=600)
    if r.returncode:
        print(r.output, file=sys.stderr)
        return 1
    print(f"O_DIRECT reads from an emulated NVMe, {args.size} MiB per pass, best of "
          f"{args.rounds}, kernel {args.kernel}, p2p_dax {args.params}:")
    print(f"{'chunk':>8}  {'-> dax (MB/s)':>14}  {'-> RAM (MB/s)':>14}  {'ratio':>6}")
    for chunk, dax, ram, ratio in re.findall(
            r"bench chunk=(\d+) nvme->dax=([\d.]+) MB/s nvme->ram=([\d.]+) MB/s ratio=([\d.]+)",
            r.output):
        print(f"{int(chunk) // 1024:>6} K  {float(dax):>14.1f}  {float(ram):>14.1f}  {ratio:>6}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
