"""The driver with an IOMMU translating every device's DMA (QEMU's
intel-iommu; intel_iommu=on, no passthrough), as most servers and every
cloud VM run, on each kernel: the virtual board's DMA engine, O_DIRECT
between NVMe and a BAR, peers through the kernel's P2P rules, and the
device held to what the driver mapped.

The guest's CPU is an AMD Zen model (vm/qemu.py, iommu=True), whose
host bridges the kernel trusts for P2P: the peer is the second NVMe's CMB on
the root bus, reached through the host bridge and the IOMMU. (QEMU sends
all DMA through its IOMMU, even between devices under one switch, where
hardware routes it past the root; such peers fault here, so none is used.)
"""

import os
import re

import pytest

from vm import guest, kernels
from vm.guest import images, read_at
from vm.qemu import run

pytestmark = pytest.mark.vm

MiB = 1 << 20
TOOL = guest.TOOL_GUEST_PATH
UNMAPPED = 0x10000000           # an IOVA the driver never mapped (IOVAs are given from 4 GiB down)


@pytest.mark.parametrize("kernel", kernels.under_test(*kernels.STOCK))
def test_iommu_translating(kernel, tmp_path):
    """Every device is in a translated (DMA) IOMMU domain. O_DIRECT NVMe ->
    ivshmem's dax device -> the other NVMe; the engine RAM <-> BAR2; on the
    P2PDMA kernel the engine to and from a peer's p2pmem and O_DIRECT NVMe
    -> p2pmem -> NVMe, IOMMU-mapped through the host bridge. A descriptor
    aimed at an address the driver did not map faults in the IOMMU: a read
    ends the transfer with EIO (Completer Abort) and writes nothing into
    BAR2; a write (posted: the engine hears nothing) arrives nowhere and the
    kernel logs the IOMMU fault. The engine works afterwards."""
    source = os.urandom(4 * MiB)
    iv, nvme = images(tmp_path, nvme0=source)
    r = run(kernel, guest.SHELL_PRELUDE + f"""
B=$(basename $(readlink /sys/class/misc/p2p-dax0/device))
IV=$(ivshmem); N0=$(nvme n0); N1=$(nvme n1)
for d in $B $IV $(basename $(readlink -f /sys/block/${{N0#/dev/}}/device/device)); do
    echo "domain $d $(cat /sys/bus/pci/devices/$d/iommu_group/type)"
done
# O_DIRECT through the IOMMU: NVMe -> ivshmem's BAR (dax) -> the other NVMe.
{TOOL} dio-in $N0 0 /dev/dax1.0 0 {4 * MiB} || exit 1
{TOOL} dio-out /dev/dax1.0 0 $N1 0 {4 * MiB} || exit 1
# The engine, RAM <-> BAR2.
{TOOL} dma-to-bar /dev/p2p-dax0 3 65536 5 ram || exit 1
{TOOL} dma-from-bar /dev/p2p-dax0 3 65536 5 ram || exit 1
# A peer's p2pmem (the CMB of the NVMe on the root bus), P2PDMA kernels.
if FAR=$(p2pmem n1); then
    {TOOL} dma-from-bar /dev/p2p-dax0 3 5000 5 $FAR:1000001 || exit 1
    {TOOL} dma-to-bar /dev/p2p-dax0 131072 5000 7 $FAR:8191 || exit 1
    {TOOL} dma-from-bar /dev/p2p-dax0 131072 5000 7 ram || exit 1
    {TOOL} dio-in $N0 0 $FAR 0 {4 * MiB} || exit 1
    {TOOL} dio-out $FAR 0 $N0 {8 * MiB} {4 * MiB} || exit 1
    echo p2pmem done
fi
# Descriptors aimed at an address the driver did not map.
mount -t debugfs none /sys/kernel/debug
F=/sys/kernel/debug/p2p_dax/p2p-dax0/fault_bus
echo {UNMAPPED:#x} > $F || exit 1
{TOOL} dma-from-bar /dev/p2p-dax0 0 4096 5 ram | sed 's/^/fault write: /'
echo "fault_bus after: $(cat $F)"
{TOOL} fill /dev/dax0.0 65536 4096 21 || exit 1
echo {UNMAPPED:#x} > $F || exit 1
{TOOL} dma-to-bar /dev/p2p-dax0 65536 4096 13 ram | sed 's/^/fault read: /'
{TOOL} check /dev/dax0.0 65536 4096 21 && echo "fault read: BAR2 untouched"
{TOOL} dma-to-bar /dev/p2p-dax0 0 8192 9 ram || exit 1
{TOOL} dma-from-bar /dev/p2p-dax0 0 8192 9 ram || exit 1
dmesg | grep -e DMAR -e p2p_dax | grep -e 'fault addr' -e 'completer abort' | sort -u
bad_dmesg && exit 1
echo clean
""", board="virtual", iommu=True, nvme1_on_root=True, ivshmem_file=iv, nvme_images=nvme,
            timeout=900, extra_files={TOOL: guest.tool()})
    out = r.output
    assert r.returncode == 0, out
    assert out.rstrip().endswith("clean")
    domains = re.findall(r"^domain (\S+) (\S+)$", out, re.M)
    assert len(domains) == 3 and {t for _, t in domains} == {"DMA"}, out
    assert read_at(iv, 0, 4 * MiB) == source, "NVMe -> BAR: the BAR's bytes differ"
    assert read_at(nvme[1], 0, 4 * MiB) == source, "BAR -> NVMe: the image differs"
    checked = re.findall(r"^checked \d+ bytes: ok$", out, re.M)
    assert len(checked) == (4 if kernel == kernels.WITH_P2PDMA else 2), out
    assert out.count("mismatch at") == 1, out              # the faulted write's, below
    if kernel == kernels.WITH_P2PDMA:
        assert "p2pmem done" in out
        assert read_at(nvme[0], 8 * MiB, 4 * MiB) == source, "NVMe -> p2pmem -> NVMe differs"
    board = domains[0][0]
    assert re.search(r"^fault read: dma to-bar 4096 bytes: wait EIO, status COMPLETER_ABORT, "
                     r"done 1, bytes 0,", out, re.M), out
    assert "fault read: BAR2 untouched" in out
    assert re.search(r"^fault write: dma from-bar 4096 bytes: wait ok, status OK", out, re.M)
    assert "fault write: mismatch at offset 0" in out        # nothing reached the buffer
    assert "fault_bus after: 0x0" in out                     # one descriptor only
    # QEMU records the first fault while the guest handles it and folds the
    # next ones into it: the write's is the one recorded.
    board_id = board.removeprefix("0000:")
    assert re.search(rf"DMAR: \[DMA Write[^\]]*\] Request device \[(0000:)?{board_id}\] "
                     rf"fault addr {UNMAPPED:#x}", out), out
    assert re.search(rf"p2p_dax {board}: DMA to BAR2 0x10000, 4096 bytes: completer abort", out)
