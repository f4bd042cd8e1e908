"""What a co-simulation costs: the virtual board's figures, in one VM boot
(`make vm-bench BOARD=virtual`).

In the guest (the host's root file system, so this module runs there too):

- guest BAR accesses per second through the bridge: 4-byte reads of a BAR0
  register (each one a round trip to the RTL; measured last, with the driver
  unbound, since it owns BAR0), and the BAR2 reads and writes of the paths
  below, counted by the bridge;
- seconds of wall time per MiB for each path on the board: CPU writes and
  reads through the /dev/dax0.0 mapping, O_DIRECT NVMe -> BAR2 and
  BAR2 -> NVMe, the DMA engine RAM -> BAR2, BAR2 -> RAM and BAR2 -> ivshmem
  (peer to peer), each beside the same path on ivshmem's BAR (/dev/dax1.0,
  plain memory in QEMU) where there is one, as the ratio to that reference.

Every path moves the same bytes and checks them. Printed, never asserted.

    python -m vm.virtual_bench [--kernel 6.1] [--size KiB] [--reads N]
"""

import argparse
import json
import mmap
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hw.virtual import PARAMS

KiB, MiB = 1 << 10, 1 << 20
BAR2_SIZE = PARAMS["bar2_size"]
IVSHMEM_SIZE = 64 * MiB


def _pci_of(vendor_device):
    for d in sorted(Path("/sys/bus/pci/devices").iterdir()):
        if f"{(d / 'vendor').read_text().strip()}:{(d / 'device').read_text().strip()}" == \
                vendor_device:
            return d
    raise SystemExit(f"virtual_bench: no PCI device {vendor_device}")


def _nvme(serial):
    for d in Path("/sys/class/nvme").iterdir():
        if (d / "serial").read_text().strip() == serial:
            return f"/dev/{d.name}n1"
    raise SystemExit(f"virtual_bench: no NVMe with serial {serial}")


def _timed(fn):
    t0 = time.monotonic()
    fn()
    return time.monotonic() - t0


def guest_main(size, reads, tool):
    """Runs in the guest; prints one JSON line of figures."""
    from hw.spec import regmap
    out = {"size": size}
    data = os.urandom(size)
    n0, n1 = _nvme("n0"), _nvme("n1")
    with open(n0, "r+b") as f:              # the NVMe source, buffered, then flushed
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    for name, dev, span in (("board", "/dev/dax0.0", BAR2_SIZE), ("ivshmem", "/dev/dax1.0",
                                                                    IVSHMEM_SIZE)):
        fd = os.open(dev, os.O_RDWR)
        m = mmap.mmap(fd, span)
        os.close(fd)
        view = memoryview(m)
        got = {}
        got["cpu_write"] = _timed(lambda: view.__setitem__(slice(0, size), data))
        got["cpu_read"] = _timed(lambda: got.__setitem__("readback", bytes(view[0:size])))
        assert got.pop("readback") == data, f"{dev}: mmap read-back differs"
        fd_in = os.open(n0, os.O_RDONLY | os.O_DIRECT)
        got["nvme_to_bar"] = _timed(lambda: os.preadv(fd_in, [view[size:2 * size]], 0))
        os.close(fd_in)
        assert view[size:2 * size] == data, f"{dev}: NVMe -> BAR data differs"
        fd_out = os.open(n1, os.O_WRONLY | os.O_DIRECT)
        got["bar_to_nvme"] = _timed(lambda: os.pwritev(fd_out, [view[size:2 * size]], 0))
        os.close(fd_out)
        with open(n1, "rb") as f:
            assert f.read(size) == data, f"{dev}: BAR -> NVMe data differs"
        view.release()
        m.close()
        out[name] = got
    # The DMA engine (the driver's /dev/p2p-dax0), by the static C tool.
    dma = {}
    for label, args in (("ram_to_bar", ["dma-to-bar", "0", str(size), "5", "ram"]),
                        ("bar_to_ram", ["dma-from-bar", "0", str(size), "5", "ram"]),
                        ("bar_to_peer", ["dma-from-bar", "0", str(size), "5",
                                         "/dev/dax1.0:0"])):
        t0 = time.monotonic()
        r = subprocess.run([tool, args[0], "/dev/p2p-dax0", *args[1:]], capture_output=True,
                           text=True)
        dma[label] = time.monotonic() - t0
        if r.returncode:
            raise SystemExit(f"virtual_bench: {' '.join(args)}: {r.stderr.strip()}")
    out["board"].update(dma)
    # Register reads, last: the driver owns BAR0 while bound, so unbind it first.
    board = _pci_of(f"0x{regmap.PCI_VENDOR_ID:04x}:0x{regmap.PCI_DEVICE_ID:04x}")
    (board / "driver" / "unbind").write_text(board.name)
    fd = os.open(board / "resource0", os.O_RDWR | os.O_SYNC)
    regs = mmap.mmap(fd, regmap.BAR0_SIZE)
    os.close(fd)
    ident = regmap.offset("ID")
    t = _timed(lambda: [regs[ident:ident + 4] for _ in range(reads)])
    assert int.from_bytes(regs[ident:ident + 4], "little") == regmap.MAGIC
    out["bar0_reads_per_s"] = reads / t
    print("VIRTUAL-BENCH " + json.dumps(out))


LABELS = [("cpu_write", "CPU write through the mapping"),
          ("cpu_read", "CPU read through the mapping"),
          ("nvme_to_bar", "O_DIRECT NVMe -> BAR2"),
          ("bar_to_nvme", "O_DIRECT BAR2 -> NVMe"),
          ("ram_to_bar", "DMA engine RAM -> BAR2"),
          ("bar_to_ram", "DMA engine BAR2 -> RAM"),
          ("bar_to_peer", "DMA engine BAR2 -> ivshmem (peer)")]


def report(figures, board_stats):
    size = figures["size"]
    mib = size / MiB
    lines = [f"virtual board, {size // KiB} KiB per path (seconds of wall time per MiB; "
             "the reference is the same path on ivshmem's BAR in the same run)",
             f"  {'path':36} {'s/MiB':>9} {'reference':>10} {'ratio':>8}"]
    for key, label in LABELS:
        t = figures["board"][key] / mib
        ref = figures["ivshmem"].get(key)
        if ref is None:
            lines.append(f"  {label:36} {t:9.2f} {'-':>10} {'-':>8}")
        else:
            r = ref / mib
            lines.append(f"  {label:36} {t:9.2f} {r:10.4f} {t / max(r, 1e-9):7.0f}x")
    lines.append(f"  BAR0 register reads (one RTL round trip each): "
                 f"{figures['bar0_reads_per_s']:.0f} per second")
    if board_stats:
        sim = board_stats.get("seconds") or 1
        guest = board_stats.get("mmio_reads", 0) + board_stats.get("mmio_writes", 0)
        lines.append(f"  bridge, whole session: {guest} guest BAR accesses in {sim:.1f} s "
                     f"({guest / sim:.0f} per second), carried by "
                     f"{board_stats.get('read_tlps', 0)} read and "
                     f"{board_stats.get('write_tlps', 0)} write TLPs; "
                     f"{board_stats.get('dma_read_bytes', 0) // KiB} KiB read and "
                     f"{board_stats.get('dma_write_bytes', 0) // KiB} KiB written by the RTL "
                     "through QEMU")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m vm.virtual_bench",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--kernel", default="6.1")
    ap.add_argument("--size", type=int, default=128, help="KiB per path (default: 128)")
    ap.add_argument("--reads", type=int, default=200, help="BAR0 reads timed (default: 200)")
    ap.add_argument("--guest", metavar="TOOL", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if not 4 <= args.size <= 1024 or args.size % 4:
        ap.error("--size: 4 to 1024 KiB, a multiple of 4 (each path moves it through the "
                 "simulated RTL)")
    if args.guest:
        guest_main(args.size * KiB, args.reads, args.guest)
        return 0

    from vm import guest
    from vm.qemu import VMError, run
    with tempfile.TemporaryDirectory(prefix="p2p-dax-vbench-") as tmp:
        try:
            r = run(args.kernel, f"{sys.executable} -m vm.virtual_bench --guest "
                    f"{guest.tool()} --size {args.size} --reads {args.reads}",
                    board="virtual", host_root=True, timeout=1800,
                    ivshmem_file=Path(tmp) / "ivshmem", ivshmem_size=IVSHMEM_SIZE)
        except VMError as e:
            print(f"virtual_bench: {e}", file=sys.stderr)
            return 1
    m = re.search(r"^VIRTUAL-BENCH (.*)$", r.output, re.M)
    if r.returncode or not m:
        print(f"virtual_bench: the guest part failed (exit {r.returncode}):\n{r.output}",
              file=sys.stderr)
        return 1
    print(report(json.loads(m[1]), r.board))
    return 0


if __name__ == "__main__":
    sys.exit(main())
