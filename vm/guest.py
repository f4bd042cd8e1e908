"""What the driver's VM tests put in the guest, and how the host checks the result.

- `tool()`: p2p-dax-vmtool (guest_tool.c), built statically with the host's gcc
  and cached in build/vm/, so the initramfs needs no C library.
- `pattern()`: the tool's data pattern (splitmix64), to check on the host
  what the guest wrote into ivshmem's backing file or an NVMe image.
- `run_script()`: a shell script in the guest with the tool and the prelude;
  `images()` makes the ivshmem file and NVMe images a test checks with
  `read_at()`.
- `SHELL_PRELUDE`: shell functions for guest scripts: `ivshmem` (the PCI
  address of the ivshmem device), `nvme SERIAL` (the block device of the
  emulated NVMe with that serial), `p2pmem SERIAL` (the p2pmem/allocate
  file of that NVMe's CMB, on P2PDMA kernels), `bad_dmesg` (kernel
  warnings, oopses).
"""

import hashlib
import os
import struct
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOOL_SOURCE = Path(__file__).with_name("guest_tool.c")
TOOL_HEADERS = [ROOT / "driver" / "p2p_dax_ioctl.h"]     # what guest_tool.c includes
TOOL_GUEST_PATH = "/bin/p2p-dax-vmtool"

_MASK = (1 << 64) - 1
MiB = 1 << 20


def tool():
    """Path of the static guest tool, rebuilt when its source changes."""
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in [TOOL_SOURCE, *TOOL_HEADERS])
                            ).hexdigest()[:16]
    out = ROOT / "build" / "vm" / f"p2p-dax-vmtool-{digest}"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(f".{os.getpid()}.tmp")     # pytest -n: one build per worker
        cc = subprocess.run(["gcc", "-O2", "-static", "-Wall", "-Wextra", "-Werror",
                             "-o", str(tmp), str(TOOL_SOURCE)],
                            capture_output=True, text=True)
        if cc.returncode:
            raise RuntimeError(f"building {TOOL_SOURCE.name} failed:\n{cc.stderr}")
        os.replace(tmp, out)
    return out


def _splitmix64(x):
    x = (x + 0x9E3779B97F4A7C15) & _MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


def pattern(seed, length):
    """The bytes `p2p-dax-vmtool fill ... LENGTH SEED` writes."""
    assert length % 8 == 0
    return struct.pack(f"<{length // 8}Q", *(_splitmix64(seed + i) for i in range(length // 8)))


SHELL_PRELUDE = r"""
ivshmem() {
    for d in /sys/bus/pci/devices/*; do
        [ "$(cat $d/vendor):$(cat $d/device)" = "0x1af4:0x1110" ] && { echo ${d##*/}; return 0; }
    done
    echo "no ivshmem device" >&2; return 1
}
nvme() {
    for d in /sys/block/nvme*n1; do
        [ "$(tr -d ' ' < $d/device/serial)" = "$1" ] && { echo /dev/${d##*/}; return 0; }
    done
    echo "no NVMe with serial $1" >&2; return 1
}
p2pmem() {
    # The p2pmem/allocate file of the NVMe with serial $1 (its CMB), if the
    # kernel registered one (P2PDMA kernels).
    for d in /sys/block/nvme*n1; do
        [ "$(tr -d ' ' < $d/device/serial)" = "$1" ] || continue
        f=$(readlink -f $d/device/device)/p2pmem/allocate
        [ -e $f ] && { echo $f; return 0; }
    done
    return 1
}
bad_dmesg() {
    dmesg | grep -iE 'WARNING|BUG:|Oops|Call Trace|general protection|refcount_t|use-after-free'
}
"""


IVSHMEM_SIZE = 64 * MiB          # the ivshmem BAR images() makes


def run_script(kernel, script, **kw):
    """Run a shell script in the guest (vm.qemu.run) with the tool and SHELL_PRELUDE."""
    from vm.qemu import run
    kw.setdefault("extra_files", {TOOL_GUEST_PATH: tool()})
    return run(kernel, SHELL_PRELUDE + script, **kw)


def images(tmp_path, nvme0=b""):
    """An ivshmem backing file of IVSHMEM_SIZE and two 64 MiB NVMe images, the
    first starting with `nvme0`: (ivshmem file, [nvme0 image, nvme1 image])."""
    iv = tmp_path / "ivshmem.bin"
    iv.write_bytes(b"")
    os.truncate(iv, IVSHMEM_SIZE)
    n0, n1 = tmp_path / "nvme0.img", tmp_path / "nvme1.img"
    n0.write_bytes(nvme0)
    os.truncate(n0, 64 * MiB)
    n1.write_bytes(b"")
    os.truncate(n1, 64 * MiB)
    return iv, [n0, n1]


def read_at(path, offset, length):
    """`length` bytes of a file (an image the guest wrote) from `offset`."""
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read(length)
