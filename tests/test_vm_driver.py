"""The driver in real Debian kernels under QEMU: ivshmem's BAR2 stands in for
the board's memory BAR (memory-only mode), two emulated NVMe devices sit on
the same PCIe switch. What the guest moves is checked on the host, in
ivshmem's backing file and the NVMe images, so a test does not trust the
guest's word for it."""

import os
import re

import pytest

from vm import guest, kernels
from vm.guest import images, read_at

pytestmark = pytest.mark.vm

KERNELS = kernels.under_test(*kernels.STOCK)
MiB = 1 << 20
IVSHMEM_SIZE = guest.IVSHMEM_SIZE
TOOL = guest.TOOL_GUEST_PATH


@pytest.mark.parametrize("kernel", KERNELS)
def test_dax_device_mmap_and_o_direct(kernel, tmp_path):
    """/dev/dax0.0 has BAR2's size; mmap writes land in the BAR; O_DIRECT moves
    NVMe -> BAR and BAR -> NVMe."""
    source = os.urandom(8 * MiB)
    iv, nvme = images(tmp_path, nvme0=source)
    r = guest.run_script(kernel, f"""
set -e
IV=$(ivshmem); N0=$(nvme n0); N1=$(nvme n1)
echo size=$(cat /sys/bus/dax/devices/dax0.0/size)
for a in mode kind bar bar_size dax_device dax_size; do echo $a=$(cat /sys/bus/pci/devices/$IV/p2p_dax/$a); done
ls /sys/bus/pci/devices/$IV/p2p_dax/
# The dax region's driver cannot be unbound on its own.
echo region_driver=$(ls /sys/bus/auxiliary/drivers/p2p_dax.dax/ | grep -v -e module -e uevent | tr '\n' ,)
{TOOL} fill /dev/dax0.0 {32 * MiB} {4 * MiB} 1234
{TOOL} check /dev/dax0.0 {32 * MiB} {4 * MiB} 1234
{TOOL} dio-in $N0 0 /dev/dax0.0 0 {8 * MiB}
{TOOL} dio-out /dev/dax0.0 {32 * MiB} $N1 {MiB} {4 * MiB}
""", ivshmem_file=iv, nvme_images=nvme)
    assert r.returncode == 0, r.output
    values = dict(re.findall(r"^(\w+)=(.*)$", r.output, re.M))
    assert values == {"size": str(IVSHMEM_SIZE), "mode": "dax", "kind": "memory-only",
                      "bar": "2", "bar_size": str(IVSHMEM_SIZE), "dax_device": "dax0.0",
                      "dax_size": str(IVSHMEM_SIZE), "region_driver": "p2p_dax.dax.0,"}
    # Memory-only devices have no gateware and nothing registered as p2pmem.
    assert "gateware_version" not in r.output and "p2pmem_size" not in r.output
    written = guest.pattern(1234, 4 * MiB)
    assert read_at(iv, 32 * MiB, 4 * MiB) == written, "mmap writes did not reach the BAR"
    assert read_at(iv, 0, 8 * MiB) == source, "NVMe -> BAR data differs in ivshmem's file"
    assert read_at(nvme[1], MiB, 4 * MiB) == written, "BAR -> NVMe data differs in the image"


@pytest.mark.parametrize("kernel", KERNELS)
def test_bind_unbind_and_removal_while_mapped(kernel, tmp_path):
    """50 bind/unbind cycles, then unbind, rmmod and PCI hot-remove while a
    process has the dax device mapped: the process gets SIGBUS, the kernel
    no warning."""
    iv, nvme = images(tmp_path)
    r = guest.run_script(kernel, f"""
IV=$(ivshmem) || exit 2
D=/sys/bus/pci/drivers/p2p_dax
i=0
while [ $i -lt 50 ]; do
    echo $IV > $D/unbind || {{ echo "unbind $i failed"; exit 1; }}
    [ -e /dev/dax0.0 ] && {{ echo "dax0.0 still there after unbind $i"; exit 1; }}
    echo $IV > $D/bind || {{ echo "bind $i failed"; exit 1; }}
    [ "$(cat /sys/bus/pci/devices/$IV/p2p_dax/dax_device)" = dax0.0 ] || {{ echo "bind $i: no dax0.0"; exit 1; }}
    i=$((i + 1))
done
echo cycles=$i
{TOOL} hold-unbind /dev/dax0.0 {IVSHMEM_SIZE} $IV
echo $IV > $D/bind && echo rebound=$(cat /sys/bus/pci/devices/$IV/p2p_dax/dax_device)
{TOOL} hold-unbind /dev/dax0.0 {IVSHMEM_SIZE} rmmod
[ -d /sys/module/p2p_dax ] && echo "module still loaded"
ls /sys/bus/auxiliary/devices/ | grep p2p_dax && echo "auxiliary device left behind"
insmod /lib/modules/p2p_dax.ko memory_bar=2   # binds ivshmem: driver_override is still set
echo reloaded=$(cat /sys/bus/pci/devices/$IV/p2p_dax/dax_device)
{TOOL} hold-unbind /dev/dax0.0 {IVSHMEM_SIZE} remove:$IV
echo 1 > /sys/bus/pci/rescan
[ -e /sys/bus/pci/devices/$IV ] && echo "rescanned $(cat /sys/bus/pci/devices/$IV/vendor)"
bad_dmesg && exit 1
echo clean
""", ivshmem_file=iv, nvme_images=nvme, timeout=300)
    assert r.returncode == 0, r.output
    assert "cycles=50" in r.output
    assert r.output.count("before: ok") == 3
    assert r.output.count("after: read SIGBUS, write SIGBUS") == 3, r.output
    assert "rebound=dax0.0" in r.output
    assert "rmmod returned" in r.output
    assert "reloaded=dax0.0" in r.output and "rescanned 0x1af4" in r.output
    assert "left behind" not in r.output and "still loaded" not in r.output
    assert r.output.rstrip().endswith("clean")
    # The writes made before the device went away are in the BAR.
    assert read_at(iv, IVSHMEM_SIZE - 2 * MiB, 1) == b"\x5a"


BAD_PARAMS = [
    ("mode=bogus", "mode=bogus: use dax, p2pdma or both"),
    ("mode=p2pdma", "built without CONFIG_PCI_P2PDMA; use mode=dax"),
    ("align=12345", "align=12345: use 4096 or 2097152"),
    ("memory_bar=9", "memory_bar=9: use a BAR number, 0 to 5"),
    ("p2pdma_size=4194304", "p2pdma_size=4194304: only with mode=both"),
    ("max_transfers=0", "max_transfers=0 max_pinned=1073741824: the DMA node needs at least "
                        "one transfer and one page"),
    ("max_pinned=100", "max_pinned=100: the DMA node needs at least one transfer and one page"),
]


@pytest.mark.parametrize("kernel", KERNELS)
def test_bad_input(kernel, tmp_path):
    """Bad module parameters, binding a device that is not a board, BARs that
    cannot be used, and bad mmap requests: a clear error each, no oops."""
    iv, nvme = images(tmp_path)
    # mode=p2pdma is refused only where the kernel has no P2PDMA.
    bad = [(p, m) for p, m in BAD_PARAMS
           if not (p == "mode=p2pdma" and kernel == kernels.WITH_P2PDMA)]
    bad_loads = "\n".join(
        f"insmod /lib/modules/p2p_dax.ko {p} 2>/dev/null && echo 'LOADED with {p}' && rmmod p2p_dax"
        for p, _ in bad)
    r = guest.run_script(kernel, f"""
IV=$(ivshmem) || exit 2
D=/sys/bus/pci/drivers/p2p_dax
{bad_loads}
# driver_override: loading the driver probes ivshmem, as after a bind by hand.
echo p2p_dax > /sys/bus/pci/devices/$IV/driver_override
try_bind() {{  # try_bind PARAMS: load, report whether ivshmem is bound
    insmod /lib/modules/p2p_dax.ko "$@" || {{ echo "insmod $* failed"; return; }}
    if [ -e /sys/bus/pci/devices/$IV/driver ]; then echo "bound with $*"; else
        echo "refused with $*"
        echo $IV > $D/bind 2>/dev/null && echo "bind by hand succeeded with $*"
    fi
}}
try_bind
rmmod p2p_dax
try_bind memory_bar=0
rmmod p2p_dax
try_bind memory_bar=1
rmmod p2p_dax
try_bind memory_bar=2 align=2097152
{TOOL} mmap-errors /dev/dax0.0 {IVSHMEM_SIZE}
{TOOL} fill /dev/dax0.0 0 {2 * MiB} 5 && {TOOL} check /dev/dax0.0 0 {2 * MiB} 5
rmmod p2p_dax
dmesg | grep p2p_dax
bad_dmesg && exit 1
echo clean
""", ivshmem_file=iv, nvme_images=nvme, driver_params=None, bind_ivshmem=False)
    assert r.returncode == 0, r.output
    out = r.output
    assert "LOADED" not in out, out
    for _, message in bad:
        assert message in out, f"no message {message!r} in:\n{out}"
    assert "1af4:1110 is not a p2p-dax board; to use one of its BARs as memory, " \
           "load p2p_dax with memory_bar=N" in out
    assert "BAR0 is 32-bit non-prefetchable; p2p_dax needs a 64-bit prefetchable" in out
    assert "BAR1 is not a memory BAR: check memory_bar" in out
    assert "bound with memory_bar=2 align=2097152" in out
    assert "bind by hand succeeded" not in out
    for refused in ("refused with \n", "refused with memory_bar=0", "refused with memory_bar=1"):
        assert refused in out + "\n", out
    # With 2 MiB alignment, mappings must be whole 2 MiB units.
    mmap = dict(re.findall(r"^([\w-]+): (mmap .*)$", out, re.M))
    assert mmap == {"private": "mmap EINVAL", "zero-length": "mmap EINVAL",
                    "unaligned-offset": "mmap EINVAL", "half-unit-length": "mmap EINVAL",
                    "beyond-end": "mmap ok, access SIGBUS"}, out
    assert "checked 2097152 bytes at 0: ok" in out
    assert out.rstrip().endswith("clean")
    assert read_at(iv, 0, 2 * MiB) == guest.pattern(5, 2 * MiB)


@pytest.mark.parametrize("kernel", KERNELS)
def test_bar_too_small(kernel, tmp_path):
    """A 1 MiB memory BAR is refused with the sizes in the message."""
    r = guest.run_script(kernel, """
IV=$(ivshmem) || exit 2
[ -e /dev/dax0.0 ] && echo "dax0.0 exists"
dmesg | grep p2p_dax
bad_dmesg && exit 1
echo clean
""", ivshmem_size=MiB)
    assert r.returncode == 0, r.output
    assert "dax0.0 exists" not in r.output
    assert "BAR2 is 1048576 bytes at" in r.output
    assert "p2p_dax needs at least 2 MiB, a multiple of 2 MiB, at a 2 MiB aligned address" in r.output


@pytest.mark.parametrize("kernel", ["6.12", "7.3"])
def test_check_abi_catches_a_struct_mismatch(kernel, tmp_path):
    """check-abi.sh fails the build when p2p_dax_compat.h's struct dev_dax_data
    differs from the kernel's: here without the memmap_on_memory member; 7.3's
    build runs in its Debian 13 root."""
    source = tmp_path / "driver-bad-compat"
    source.mkdir()
    for f in kernels.DRIVER_SOURCE.iterdir():
        if f.is_file() and f.suffix in (".c", ".h", ".sh") or f.name in ("Kbuild", "Makefile"):
            (source / f.name).write_bytes(f.read_bytes())
    compat = source / "p2p_dax_compat.h"
    text = compat.read_text()
    assert "KERNEL_VERSION(6, 8, 0)" in text
    compat.write_text(text.replace("KERNEL_VERSION(6, 8, 0)", "KERNEL_VERSION(99, 0, 0)"))
    with pytest.raises(kernels.KernelError, match="does not match the kernel"):
        kernels.build_driver(kernels.get(kernel), source=source)


DMA_ERRORS_MEMORY_ONLY = {
    # Arguments are checked first, on every device alike ...
    "submit-direction-0": "EINVAL", "submit-direction-3": "EINVAL", "submit-flags": "EINVAL",
    "submit-reserved": "EINVAL", "submit-zero-length": "EINVAL", "submit-too-long": "EINVAL",
    "submit-wrapping": "EINVAL", "submit-beyond-bar": "ERANGE",
    "submit-end-beyond-bar": "ERANGE", "submit-huge-offset": "ERANGE",
    "submit-e2big": "E2BIG", "submit-too-small": "ENOTTY", "submit-bad-pointer": "EFAULT",
    "wait-flags": "EINVAL",
    # ... then there is no engine to run them.
    "submit-good": "EOPNOTSUPP", "submit-unmapped": "EOPNOTSUPP",
    "submit-kernel-address": "EOPNOTSUPP", "submit-larger-zeroed": "EOPNOTSUPP",
    "wait-unknown": "EOPNOTSUPP",
    "info": "ok", "info-write-direction": "ENOTTY", "unknown-nr": "ENOTTY",
    "unknown-type": "ENOTTY", "tcgets": "ENOTTY",
}


@pytest.mark.parametrize("kernel", KERNELS)
def test_dma_node_in_memory_only_mode(kernel, tmp_path):
    """/dev/p2p-dax0 exists without a DMA engine: INFO says so, bad requests
    get their errno, good ones EOPNOTSUPP; with the file open, unbind and
    hot-remove make every ioctl ENODEV, rmmod is refused, and closing it
    later is clean."""
    iv, nvme = images(tmp_path)
    r = guest.run_script(kernel, f"""
IV=$(ivshmem) || exit 2
D=/sys/bus/pci/drivers/p2p_dax
P=/sys/bus/pci/devices/$IV/p2p_dax
[ -c /dev/p2p-dax0 ] && echo node=char
echo dma_device=$(cat $P/dma_device); echo dma_engine=$(cat $P/dma_engine)
{TOOL} dma-info /dev/p2p-dax0 | sed 's/^/info_/'
{TOOL} dma-errors /dev/p2p-dax0 {IVSHMEM_SIZE}
{TOOL} dma-to-bar /dev/p2p-dax0 0 4096 1 ram; echo to_bar_exit=$?
{TOOL} dma-gone /dev/p2p-dax0 $IV
[ -e /dev/p2p-dax0 ] && echo "node left behind"
echo $IV > $D/bind && echo rebound=$(cat $P/dma_device) $(cat $P/dax_device)
{TOOL} dma-gone /dev/p2p-dax0 remove:$IV
rmmod p2p_dax && echo unloaded
bad_dmesg && exit 1
echo clean
""", ivshmem_file=iv, nvme_images=nvme)
    assert r.returncode == 0, r.output
    out = r.output
    values = dict(re.findall(r"^(\w+)=(\S*)", out, re.M))
    assert values["node"] == "char" and values["dma_device"] == "p2p-dax0"
    assert values["dma_engine"] == "none" and values["info_engine"] == "none"
    assert values["info_api_version"] == "2"
    assert values["info_mem_size"] == values["info_bar_size"] == str(IVSHMEM_SIZE)
    assert values["info_dma_window"] == values["info_max_transfer"] == "0"
    assert values["info_transfers"] == values["info_descriptors_submitted"] == "0"
    errors = dict(re.findall(r"^((?:submit|wait|unknown)-[\w-]+|info[\w-]*|tcgets): (\S+)$",
                             out, re.M))
    assert errors == DMA_ERRORS_MEMORY_ONLY, out
    assert "submit: EOPNOTSUPP" in out and "to_bar_exit=1" in out
    assert out.count("before: info ok") == 2
    assert out.count("in flight: submit EOPNOTSUPP") == 2
    assert out.count("rmmod while open: EAGAIN") == 2, out      # the open file holds the module
    assert out.count("node gone") == 2 and "left behind" not in out, out
    assert out.count("after: info ENODEV, submit ENODEV, wait ENODEV, unknown ENODEV") == 2, out
    assert out.count("close: ok") == 2
    assert "rebound=p2p-dax0 dax0.0" in out and "unloaded" in out
    assert out.rstrip().endswith("clean")


@pytest.mark.parametrize("kernel", KERNELS)
def test_dax_names_beside_pmem(kernel):
    """A pmem-style dax device exists first (legacy pmem from memmap=, set up
    as ndctl create-namespace -m devdax would: dax0.0, region id 0 from the
    kernel's memregion allocator): the driver's dax region takes its id
    from the same allocator, so the BAR becomes dax1.0 and both work. (With
    ids of its own the driver asked for dax0.0 too and its probe failed.)"""
    r = guest.run_script(kernel, """
set -e
D=/sys/bus/nd/devices
NS=$(cd $D && ls -d namespace*.0 | head -1); R=${NS#namespace}; R=region${R%.0}
echo $NS > /sys/bus/nd/drivers/nd_pmem/unbind
SEED=$(cat $D/$R/dax_seed)
cat /proc/sys/kernel/random/uuid > $D/$SEED/uuid
echo ram > $D/$SEED/mode
echo $NS > $D/$SEED/namespace
echo $SEED > /sys/bus/nd/drivers/dax_pmem/bind
echo "before:" $(ls /sys/bus/dax/devices)
insmod /lib/modules/p2p_dax.ko memory_bar=2
IV=$(ivshmem)
echo p2p_dax > /sys/bus/pci/devices/$IV/driver_override
echo $IV > /sys/bus/pci/drivers_probe
echo "after:" $(ls /sys/bus/dax/devices) "ivshmem:" $(cat /sys/bus/pci/devices/$IV/p2p_dax/dax_device)
{TOOL} fill /dev/dax1.0 0 65536 3
{TOOL} fill /dev/dax0.0 0 65536 4
{TOOL} check /dev/dax1.0 0 65536 3
bad_dmesg && exit 1
echo clean
""".replace("{TOOL}", TOOL), driver_params=None, extra_append="memmap=16M!512M")
    assert r.returncode == 0, r.output
    assert "before: dax0.0\n" in r.output
    assert "after: dax0.0 dax1.0 ivshmem: dax1.0" in r.output, r.output
    assert r.output.rstrip().endswith("clean")
