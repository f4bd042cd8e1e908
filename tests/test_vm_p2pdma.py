"""The driver's p2pdma and both modes, on Debian's 7.3, which has
CONFIG_PCI_P2PDMA (Debian's 6.1 and 6.12 build it out).
The NVMe moves data into and out of the BAR through a mapping of the PCI
device's p2pmem/allocate file, and the host checks ivshmem's backing file."""

import os

import pytest

from vm import guest, kernels
from vm.guest import images, read_at

IVSHMEM_SIZE = guest.IVSHMEM_SIZE
MiB = 1 << 20
TOOL = guest.TOOL_GUEST_PATH
pytestmark = [pytest.mark.vm, pytest.mark.p2pdma]

KERNELS = kernels.under_test(kernels.WITH_P2PDMA, p2pdma=True)


@pytest.mark.parametrize("kernel", KERNELS)
def test_p2pdma_mode(kernel, tmp_path):
    """mode=p2pdma: all of BAR2 is published p2pmem; O_DIRECT NVMe -> p2pmem -> NVMe."""
    source = os.urandom(8 * MiB)
    iv, nvme = images(tmp_path, nvme0=source)
    r = guest.run_script(kernel, f"""
set -e
IV=$(ivshmem); N0=$(nvme n0); N1=$(nvme n1)
P=/sys/bus/pci/devices/$IV/p2pmem
echo size=$(cat $P/size) published=$(cat $P/published)
echo mode=$(cat /sys/bus/pci/devices/$IV/p2p_dax/mode) p2pmem_size=$(cat /sys/bus/pci/devices/$IV/p2p_dax/p2pmem_size)
[ -e /dev/dax0.0 ] && echo "unexpected dax0.0"
{TOOL} dio-in $N0 0 $P/allocate 0 {8 * MiB}
{TOOL} dio-out $P/allocate 0 $N1 0 {8 * MiB}
bad_dmesg && exit 1
echo clean
""", ivshmem_file=iv, nvme_images=nvme, driver_params="memory_bar=2 mode=p2pdma")
    assert r.returncode == 0, r.output
    assert f"size={IVSHMEM_SIZE} published=1" in r.output
    assert f"mode=p2pdma p2pmem_size={IVSHMEM_SIZE}" in r.output
    assert "unexpected" not in r.output and r.output.rstrip().endswith("clean")
    # The allocator hands out BAR memory; where in the BAR is its choice.
    bar = iv.read_bytes()
    assert source[:4096] in bar, "NVMe -> p2pmem data is not in ivshmem's file"
    at = bar.index(source[:4096])
    assert bar[at:at + 8 * MiB] == source
    assert read_at(nvme[1], 0, 8 * MiB) == source, "p2pmem -> NVMe data differs in the image"


@pytest.mark.parametrize("kernel", KERNELS)
def test_both_modes_on_disjoint_parts(kernel, tmp_path):
    """mode=both: dax below, p2pmem in the top p2pdma_size bytes; each lands in its part;
    bind and unbind stay clean with both registered."""
    source = os.urandom(4 * MiB)
    iv, nvme = images(tmp_path, nvme0=source)
    r = guest.run_script(kernel, f"""
set -e
IV=$(ivshmem); N0=$(nvme n0)
A=/sys/bus/pci/devices/$IV/p2p_dax
echo dax=$(cat /sys/bus/dax/devices/dax0.0/size) p2pmem=$(cat /sys/bus/pci/devices/$IV/p2pmem/size)
echo attrs=$(cat $A/mode) $(cat $A/dax_size) $(cat $A/p2pmem_size)
{TOOL} fill /dev/dax0.0 0 {MiB} 77
{TOOL} dio-in $N0 0 /sys/bus/pci/devices/$IV/p2pmem/allocate 0 {4 * MiB}
for i in 1 2 3 4 5 6 7 8 9 10; do
    echo $IV > /sys/bus/pci/drivers/p2p_dax/unbind
    echo $IV > /sys/bus/pci/drivers/p2p_dax/bind
done
echo rebound=$(cat $A/dax_device) $(cat /sys/bus/pci/devices/$IV/p2pmem/size)
bad_dmesg && exit 1
echo clean
""", ivshmem_file=iv, nvme_images=nvme,
        driver_params=f"memory_bar=2 mode=both p2pdma_size={16 * MiB}")
    assert r.returncode == 0, r.output
    dax_size = IVSHMEM_SIZE - 16 * MiB
    assert f"dax={dax_size} p2pmem={16 * MiB}" in r.output
    assert f"attrs=both {dax_size} {16 * MiB}" in r.output
    assert f"rebound=dax0.0 {16 * MiB}" in r.output
    assert r.output.rstrip().endswith("clean")
    assert read_at(iv, 0, MiB) == guest.pattern(77, MiB)
    p2p_part = read_at(iv, dax_size, 16 * MiB)
    assert source[:4096] in p2p_part, "p2pmem data is outside the top 16 MiB of the BAR"
    at = p2p_part.index(source[:4096])
    assert p2p_part[at:at + 4 * MiB] == source
