"""The driver's DMA engine interface (/dev/p2p-daxN, driver/p2p_dax_ioctl.h)
end to end: the unmodified driver in Debian kernels under QEMU, on the virtual
board (QEMU's p2p-dax-board device in front of the RTL's simulation,
vm/qemu.py board="virtual"), with the NVMe's CMB (p2pmem) as the
peer where the kernel has P2PDMA, and ivshmem's dax device as a peer that
must be refused. (The node on a device
without an engine: tests/test_vm_driver.py.)"""

import re

import pytest

from vm import guest, kernels, qemu
from vm.guest import images, read_at
from vm.qemu import run

pytestmark = pytest.mark.vm

KERNELS = kernels.under_test(*kernels.STOCK)
MiB = 1 << 20
TOOL = guest.TOOL_GUEST_PATH

DMA_ERRORS_BOARD = {
    "submit-good": "ok", "submit-larger-zeroed": "ok",     # left running: the file closes
    "submit-direction-0": "EINVAL", "submit-direction-3": "EINVAL", "submit-flags": "EINVAL",
    "submit-reserved": "EINVAL", "submit-zero-length": "EINVAL", "submit-too-long": "EINVAL",
    "submit-wrapping": "EINVAL", "submit-beyond-bar": "ERANGE",
    "submit-end-beyond-bar": "ERANGE", "submit-huge-offset": "ERANGE",
    "submit-unmapped": "EFAULT", "submit-kernel-address": "EFAULT",
    "submit-e2big": "E2BIG", "submit-too-small": "ENOTTY", "submit-bad-pointer": "EFAULT",
    "wait-unknown": "ENOENT", "wait-flags": "EINVAL",
    "info": "ok", "info-write-direction": "ENOTTY", "unknown-nr": "ENOTTY",
    "unknown-type": "ENOTTY", "tcgets": "ENOTTY",
}


@pytest.mark.parametrize("kernel", KERNELS)
def test_dma_on_the_virtual_board(kernel, tmp_path):
    """RAM to and from the board's BAR2, at odd offsets and lengths and over
    more descriptors than the engine queues; a peer's BAR (the NVMe's CMB)
    as P2PDMA memory on the P2PDMA kernel, and refused (EXDEV) as a plain
    dax mapping (ivshmem's /dev/dax1.0, the board's own); bad requests get
    their errno; unbinding with a
    transfer in flight wakes its waiter with ENODEV, and after a rebind the
    engine works again. No kernel warning. A peer across the host bridge is
    refused (EREMOTEIO) without the IOMMU and reached through it with the
    IOMMU on (make vm-test IOMMU=1)."""
    iv, nvme = images(tmp_path)
    iommu = qemu.iommu_default()
    r = run(kernel, guest.SHELL_PRELUDE + f"""
B=$(basename $(readlink /sys/class/misc/p2p-dax0/device))
P=/sys/bus/pci/devices/$B/p2p_dax
echo dma_engine=$(cat $P/dma_engine)
{TOOL} dma-info /dev/p2p-dax0 | sed 's/^/info_/'
MEM=$(cat $P/mem_size)
# RAM -> BAR2 -> RAM, 128 KiB: more descriptors than the queue holds (no IOMMU).
{TOOL} dma-to-bar /dev/p2p-dax0 0 131072 7 ram || exit 1
{TOOL} dma-from-bar /dev/p2p-dax0 0 131072 7 ram || exit 1
# Odd offsets and lengths.
{TOOL} dma-to-bar /dev/p2p-dax0 3 5000 9 ram || exit 1
{TOOL} dma-from-bar /dev/p2p-dax0 3 5000 9 ram || exit 1
# A plain dax mapping of a peer (ivshmem's /dev/dax1.0) or of the board: refused, the kernel
# would map its pages as RAM, past the P2P checks.
{TOOL} dma-from-bar /dev/p2p-dax0 3 5000 9 /dev/dax1.0:1000001 | sed 's/^/dax peer /'
{TOOL} dma-to-bar /dev/p2p-dax0 3 5000 9 /dev/dax0.0:1253376 | sed 's/^/own dax /'
# The peer as P2PDMA memory (the NVMe's CMB, on P2PDMA kernels): BAR2 -> CMB,
# CMB -> BAR2 -> RAM, checked through the CPU's mapping of the CMB.
if CMB=$(p2pmem n0); then
    {TOOL} dma-from-bar /dev/p2p-dax0 3 5000 9 $CMB:1000001 || exit 1
    {TOOL} dma-to-bar /dev/p2p-dax0 8191 12345 11 $CMB:2097157 || exit 1
    {TOOL} dma-from-bar /dev/p2p-dax0 8191 12345 11 ram || exit 1
fi
# A peer across the host bridge: the other NVMe's CMB, on the root bus. The
# P2P rules forbid it where the host bridge is not on the kernel's list
# (without the IOMMU: QEMU's "max" CPU), and allow it through the IOMMU on an
# AMD Zen model (with the IOMMU on, vm/qemu.py).
if FAR=$(p2pmem n1); then
    {TOOL} dma-from-bar /dev/p2p-dax0 3 5000 9 $FAR:0 | sed 's/^/far peer /'
fi
mount -t debugfs none /sys/kernel/debug
# Fault injection needs an IOMMU translating (tested in tests/test_vm_iommu.py).
if [ {int(iommu)} = 0 ]; then
    echo 0x10000000 > /sys/kernel/debug/p2p_dax/p2p-dax0/fault_bus
    echo "fault_bus without IOMMU: $? $(cat /sys/kernel/debug/p2p_dax/p2p-dax0/fault_bus)"
    dmesg | grep -o 'fault_bus: .*'
fi
# The memory type of BAR2 in the kernel's mappings (PAT reservations).
set -- $(sed -n 3p /sys/bus/pci/devices/$B/resource)
echo bar2=$1-$2
grep -i '^PAT: .mem ' /sys/kernel/debug/x86/pat_memtype_list | sed 's/^/pat /'
{TOOL} dma-errors /dev/p2p-dax0 $MEM
{TOOL} dma-info /dev/p2p-dax0 | sed 's/^/after_/'
dmesg | grep -e 'buffer refused' -e 'peer-to-peer DMA'
{TOOL} dma-gone /dev/p2p-dax0 $B
echo $B > /sys/bus/pci/drivers/p2p_dax/bind
echo rebound=$(cat $P/dma_device) $(cat $P/dma_engine)
{TOOL} dma-to-bar /dev/p2p-dax0 100 4096 13 ram || exit 1
{TOOL} dma-from-bar /dev/p2p-dax0 100 4096 13 ram || exit 1
bad_dmesg && exit 1
echo clean
""", board="virtual", ivshmem_file=iv, nvme_images=nvme, nvme1_on_root=True, timeout=600,
            extra_files={TOOL: guest.tool()})
    assert r.returncode == 0, r.output
    out = r.output
    values = dict(re.findall(r"^(\w+)=(\S*)", out, re.M))
    p2p = kernel == kernels.WITH_P2PDMA
    assert values["dma_engine"] == "ready" and values["info_engine"] == "ready"
    assert values["info_dma_window"] == values["info_mem_size"] != "0"
    assert values["info_queue_depth"] == "16" and values["info_max_segment"] == str(16 * MiB)
    for length in (131072, 5000) + ((12345,) if p2p else ()):
        for way in ("to-bar", "from-bar"):
            assert re.search(rf"^dma {way} {length} bytes: wait ok, status OK, done 1, "
                             rf"bytes {length}, error_offset 0,", out, re.M), (way, length, out)
    assert out.count("checked") == (6 if p2p and iommu else 5 if p2p else 3), out
    assert "mismatch" not in out
    # Peers only through the kernel's P2P rules (driver/p2p_dax_ioctl.h).
    assert "dax peer submit: EXDEV" in out and "own dax submit: EXDEV" in out
    assert re.search(r"buffer refused: it maps BAR2 of \S+ without P2PDMA", out), out
    if p2p and iommu:
        assert re.search(r"^far peer dma from-bar 5000 bytes: wait ok, status OK", out, re.M)
    elif p2p:
        assert "far peer submit: EREMOTEIO" in out
        assert "do not share an upstream bridge or whitelisted host bridge" in out, out
    if not iommu:
        assert "fault_bus without IOMMU: 1 0x0" in out
        assert "fault_bus: no IOMMU translates this device's DMA, so the address would " \
               "reach memory; boot with the IOMMU on" in out, out
    # Every PAT reservation over BAR2 is write-combining: never cacheable.
    start, end = (int(x, 16) for x in re.search(r"^bar2=(\w+)-(\w+)$", out, re.M).groups())
    types = [t for a, b, t in re.findall(r"^pat PAT: \[mem (\w+)-(\w+)\] (.+)$", out, re.M)
             if int(a, 16) <= end and int(b, 16) > start]
    assert types and set(types) == {"write-combining"}, out
    # 4 KiB pages are a descriptor each: more than the queue holds. The
    # IOMMU maps a buffer at contiguous addresses: a descriptor or two for
    # each transfer above (4 with RAM, 4 with peers on the P2PDMA kernel).
    submitted = int(values["after_descriptors_submitted"])
    assert submitted >= (8 if p2p else 4) if iommu else submitted > 2 * 16, submitted
    assert values["after_descriptors_failed"] == "0" and values["after_transfers"] == "0"
    errors = dict(re.findall(r"^((?:submit|wait|unknown)-[\w-]+|info[\w-]*|tcgets): (\S+)$",
                             out, re.M))
    assert errors == DMA_ERRORS_BOARD, out
    # Unbind with a transfer in flight: its waiter wakes with ENODEV (the
    # transfer ended within the unbind's grace period, or was cut off).
    assert "in flight: submit ok" in out and "rmmod while open: EAGAIN" in out
    assert re.search(r"^waiter: ENODEV, done 1, status (OK|GONE)", out, re.M), out
    assert "after: info ENODEV, submit ENODEV, wait ENODEV, unknown ENODEV" in out
    assert "close: ok" in out and "rebound=p2p-dax0 ready" in out
    assert out.rstrip().endswith("clean")
    # Nothing reached the peer's plain mapping.
    assert read_at(iv, 0, 4 * MiB) == bytes(4 * MiB), "the engine wrote into ivshmem's dax part"
