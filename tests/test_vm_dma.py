"""The driver's DMA engine interface (/dev/p2p-daxN, driver/p2p_dax_ioctl.h)
end to end: the unmodified driver in Debian kernels under QEMU, on the virtual
board (QEMU's p2p-dax-board device in front of the RTL's simulation,
tests/vm/qemu.py board="virtual"), with ivshmem as the peer. Data moved into
ivshmem is checked on the host, in its backing file. (The node on a device
without an engine: tests/test_vm_driver.py.)"""

import os
import re

import pytest

from tests.vm import guest, kernels
from tests.vm.qemu import run

pytestmark = pytest.mark.vm

KERNELS = kernels.STOCK
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


def pattern(seed, length):
    return guest.pattern(seed, (length + 7) // 8 * 8)[:length]


@pytest.mark.parametrize("kernel", KERNELS)
def test_dma_on_the_virtual_board(kernel, tmp_path):
    """RAM and a peer's BAR (ivshmem, mapped from /dev/dax1.0) to and from the
    board's BAR2, at odd offsets and lengths and over more descriptors than
    the engine queues; bad requests get their errno; unbinding with a
    transfer in flight wakes its waiter with ENODEV, and after a rebind the
    engine works again. No kernel warning."""
    iv = tmp_path / "ivshmem.bin"
    iv.write_bytes(b"")
    os.truncate(iv, 64 * MiB)
    r = run(kernel, guest.SHELL_PRELUDE + f"""
B=$(basename $(readlink /sys/class/misc/p2p-dax0/device))
P=/sys/bus/pci/devices/$B/p2p_dax
echo dma_engine=$(cat $P/dma_engine)
{TOOL} dma-info /dev/p2p-dax0 | sed 's/^/info_/'
MEM=$(cat $P/mem_size)
# RAM -> BAR2 -> RAM, 128 KiB: more descriptors than the queue holds.
{TOOL} dma-to-bar /dev/p2p-dax0 0 131072 7 ram || exit 1
{TOOL} dma-from-bar /dev/p2p-dax0 0 131072 7 ram || exit 1
# Odd offsets and lengths, and the peer: RAM -> BAR2 -> ivshmem, ivshmem -> BAR2 -> RAM.
{TOOL} dma-to-bar /dev/p2p-dax0 3 5000 9 ram || exit 1
{TOOL} dma-from-bar /dev/p2p-dax0 3 5000 9 /dev/dax1.0:1000001 || exit 1
{TOOL} dma-to-bar /dev/p2p-dax0 8191 12345 11 /dev/dax1.0:2097157 || exit 1
{TOOL} dma-from-bar /dev/p2p-dax0 8191 12345 11 ram || exit 1
{TOOL} dma-errors /dev/p2p-dax0 $MEM
{TOOL} dma-info /dev/p2p-dax0 | sed 's/^/after_/'
{TOOL} dma-gone /dev/p2p-dax0 $B
echo $B > /sys/bus/pci/drivers/p2p_dax/bind
echo rebound=$(cat $P/dma_device) $(cat $P/dma_engine)
{TOOL} dma-to-bar /dev/p2p-dax0 100 4096 13 ram || exit 1
{TOOL} dma-from-bar /dev/p2p-dax0 100 4096 13 ram || exit 1
bad_dmesg && exit 1
echo clean
""", board="virtual", ivshmem_file=iv, timeout=600, extra_files={TOOL: guest.tool()})
    assert r.returncode == 0, r.output
    out = r.output
    values = dict(re.findall(r"^(\w+)=(\S*)", out, re.M))
    assert values["dma_engine"] == "ready" and values["info_engine"] == "ready"
    assert values["info_dma_window"] == values["info_mem_size"] != "0"
    assert values["info_queue_depth"] == "16" and values["info_max_segment"] == str(16 * MiB)
    for length in (131072, 5000, 12345):
        for way in ("to-bar", "from-bar"):
            assert re.search(rf"^dma {way} {length} bytes: wait ok, status OK, done 1, "
                             rf"bytes {length}, error_offset 0,", out, re.M), (way, length, out)
    assert out.count("checked") == 4 and "mismatch" not in out
    assert int(values["after_descriptors_submitted"]) > 2 * 16
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
    # What the board's engine wrote into the peer, seen in ivshmem's file.
    with open(iv, "rb") as f:
        f.seek(1000001)
        assert f.read(5000) == pattern(9, 5000), "BAR2 -> ivshmem data differs in its file"
        f.seek(2097157)
        assert f.read(12345) == pattern(11, 12345)
