"""What the driver keeps the users of a board's DMA node (the p2pdax group)
from, on the virtual board in Debian kernels under QEMU: memory the kernel
owns (the p2pmem part of BAR2), and pinning memory without bound (the
device's limits, RLIMIT_MEMLOCK, transfers left queued by a closed file),
and a BAR mapped with a memory type the driver cannot choose (nopat).
The rest of the DMA node's interface: tests/test_vm_dma.py."""

import re

import pytest

from vm import guest, kernels
from vm.qemu import run

pytestmark = pytest.mark.vm

MiB = 1 << 20
TOOL = guest.TOOL_GUEST_PATH
QUEUE_DEPTH = 16


@pytest.mark.parametrize("kernel", kernels.under_test(*kernels.STOCK))
def test_dma_limits_shared_by_all_users(kernel):
    """With the engine held (bus mastering off): the device-wide transfer cap
    holds across files; CANCEL drops a queued transfer and leaves one in the
    engine; closing a file frees what it left queued at once and the rest as
    the engine ends it, with nothing left pinned or charged. Then the pinned
    bytes cap, and a caller without CAP_IPC_LOCK held to its RLIMIT_MEMLOCK.
    The engine works afterwards. No kernel warning."""
    r = run(kernel, guest.SHELL_PRELUDE + f"""
B=$(basename $(readlink /sys/class/misc/p2p-dax0/device))
{TOOL} dma-limits /dev/p2p-dax0 $B || exit 1
{TOOL} dma-to-bar /dev/p2p-dax0 0 8192 3 ram || exit 1
{TOOL} dma-from-bar /dev/p2p-dax0 0 8192 3 ram || exit 1
bad_dmesg && exit 1
echo clean
""", board="virtual", driver_params="memory_bar=2 max_transfers=24 max_pinned=262144",
            timeout=600, extra_files={TOOL: guest.tool()})
    out = r.output
    assert r.returncode == 0, out
    assert f"limits: device_max_transfers 24, max_pinned 262144, queue_depth {QUEUE_DEPTH}" in out
    assert "device cap: 24 submits ok; one more: EAGAIN, from the other file: EAGAIN" in out
    assert "cancel queued: ok" in out and "cancel again: EALREADY" in out, out
    assert "cancelled: wait ECANCELED, status CANCELLED, bytes 0" in out, out
    assert "cancel in the engine: EALREADY" in out
    assert "cancel unknown: ENOENT" in out and "cancel flags: EINVAL" in out
    # 24 one-page transfers, one waited for: each page charged to the caller.
    assert "before close: transfers 23, VmLck 92 kB" in out, out
    # Closing: the queued transfers of both files go at once; what the engine
    # holds stays pinned until it ends, then nothing is left.
    assert (f"after close: transfers {QUEUE_DEPTH}, pinned {QUEUE_DEPTH * 4096}, "
            f"VmLck {QUEUE_DEPTH * 4} kB") in out, out
    assert "drained: transfers 0, pinned 0, VmLck 0 kB" in out, out
    assert "pinned cap: 4 submits ok; one page more: EAGAIN" in out, out
    assert "pinned cap: wait" not in out, out
    assert "memlock 64 KiB: 128 KiB ENOMEM, 32 KiB ok (VmLck 32 kB), wait ok" in out, out
    assert "end: transfers 0, pinned 0" in out
    assert out.count("checked 8192 bytes: ok") == 1
    assert out.rstrip().endswith("clean")


@pytest.mark.parametrize("kernel", kernels.under_test(kernels.WITH_P2PDMA, p2pdma=True))
def test_dma_confined_to_the_dax_part(kernel):
    """mode=both on Debian's 7.3 (CONFIG_PCI_P2PDMA): the top of the BAR is
    p2pmem, and SUBMIT refuses any byte of it (ERANGE) while the dax part
    below passes the range check. On ivshmem (memory-only: SUBMIT checks the
    range before it looks for an engine, which ivshmem lacks): the virtual
    board would need a BAR2 of 4 MiB backed by as much block RAM, which takes
    too long to build in simulation."""
    size, p2p = 64 * MiB, 16 * MiB
    r = run(kernel, guest.SHELL_PRELUDE + f"""
IV=$(ivshmem) || exit 2
echo p2pmem=$(cat /sys/bus/pci/devices/$IV/p2p_dax/p2pmem_size)
{TOOL} dma-confined /dev/p2p-dax0 {size - p2p} || exit 1
bad_dmesg && exit 1
echo clean
""", driver_params=f"memory_bar=2 mode=both p2pdma_size={p2p}", timeout=300,
            extra_files={TOOL: guest.tool()})
    out = r.output
    assert r.returncode == 0, out
    assert f"p2pmem={p2p}" in out, out
    # INFO reports the window only with an engine; the answers show where it ends.
    assert "confined: dma_window 0" in out, out
    assert ("confined: p2pmem start ERANGE, straddling ERANGE, p2pmem end ERANGE, "
            "last dax page EOPNOTSUPP") in out, out
    assert out.rstrip().endswith("clean")


@pytest.mark.parametrize("kernel", kernels.under_test("6.1"))
def test_no_dax_device_without_pat(kernel):
    """Booted with nopat, the kernel cannot give BAR2 a memory type of the
    driver's choosing (the dax core would map it write-back unless the MTRRs
    say otherwise): the probe refuses with the reason and the fix, and no dax
    device appears. (With PAT: BAR2 is write-combining in every reservation,
    tests/test_vm_dma.py.)"""
    r = run(kernel, guest.SHELL_PRELUDE + """
IV=$(ivshmem)
[ -e /dev/dax0.0 ] && echo "unexpected dax0.0"
[ -e /sys/bus/pci/devices/$IV/driver ] && echo "unexpected binding"
dmesg | grep p2p_dax
bad_dmesg && exit 1
echo clean
""", extra_append="nopat")
    out = r.output
    assert r.returncode == 0, out
    assert "unexpected" not in out and out.rstrip().endswith("clean")
    assert "PAT is off (nopat, or the CPU lacks it): BAR2 would be mapped with whatever " \
           "memory type the MTRRs give it, possibly cacheable; boot without nopat" in out, out


@pytest.mark.parametrize("kernel", kernels.under_test(*kernels.STOCK))
def test_hung_transfers_are_aborted(kernel):
    """With the engine held (bus mastering off, so nothing it holds can move):
    a transfer ends ABORTED (ETIMEDOUT) once no descriptor has ended for
    dma_deadline_ms, with a kernel message; and unbinding with a transfer
    hung aborts the engine at once (the waiter wakes with ENODEV, status
    GONE), leaves it empty, and the board binds again with the engine ready.
    The engine works after each. No kernel warning."""
    r = run(kernel, guest.SHELL_PRELUDE + f"""
B=$(basename $(readlink /sys/class/misc/p2p-dax0/device))
{TOOL} bus-master $B off
{TOOL} dma-to-bar /dev/p2p-dax0 0 4096 3 ram | sed 's/^/held: /'
{TOOL} bus-master $B on
{TOOL} dma-to-bar /dev/p2p-dax0 0 8192 5 ram || exit 1
{TOOL} dma-from-bar /dev/p2p-dax0 0 8192 5 ram || exit 1
{TOOL} bus-master $B off
T0=$(date +%s)
{TOOL} dma-gone /dev/p2p-dax0 $B | sed 's/^/unbind: /'
echo "unbind took $(($(date +%s) - T0)) s"
echo $B > /sys/bus/pci/drivers/p2p_dax/bind
echo rebound=$(cat /sys/bus/pci/devices/$B/p2p_dax/dma_engine)
{TOOL} dma-to-bar /dev/p2p-dax0 100 4096 7 ram || exit 1
{TOOL} dma-from-bar /dev/p2p-dax0 100 4096 7 ram || exit 1
dmesg | grep -o 'DMA engine: .*'
dmesg | grep -c 'from before' | sed 's/^/leftovers: /'
bad_dmesg && exit 1
echo clean
""", board="virtual", driver_params="memory_bar=2 dma_deadline_ms=2000", timeout=600,
            extra_files={TOOL: guest.tool()})
    out = r.output
    assert r.returncode == 0, out
    assert re.search(r"^held: dma to-bar 4096 bytes: wait ETIMEDOUT, status ABORTED, done 1, "
                     r"bytes 0,", out, re.M), out
    assert "DMA engine: no descriptor ended for 2000 ms, 1 in flight (bus mastering off): " \
           "aborted, their transfers end ABORTED" in out, out
    assert re.search(r"^unbind: waiter: ENODEV, done 1, status GONE", out, re.M), out
    unbind = int(re.search(r"^unbind took (\d+) s$", out, re.M)[1])
    assert unbind < 10, out         # the waiter's 200 ms head start and the abort, not a timeout
    assert "rebound=ready" in out and "leftovers: 0" in out, out
    assert out.count("checked") == 2 and out.rstrip().endswith("clean")


@pytest.mark.parametrize("kernel", kernels.under_test(*kernels.STOCK))
def test_shutdown_stops_the_engine(kernel):
    """Power-off (as reboot and kexec) with a transfer in the engine: the
    driver's shutdown writes DMA_ABORT and clears bus mastering, so nothing
    the old kernel queued moves afterwards. The transfer is held (bus
    mastering off) until it is queued, then let go just before power-off.
    The guest powers off after every command (vm/qemu.py); the
    virtual board counts the aborts and reports the bus-master bit it was
    left with."""
    r = run(kernel, guest.SHELL_PRELUDE + f"""
B=$(basename $(readlink /sys/class/misc/p2p-dax0/device))
D=/dev/p2p-dax0
{TOOL} bus-master $B off
{TOOL} dma-to-bar $D 0 262144 3 ram > /dev/null 2>&1 &
for i in $(seq 50); do
    {TOOL} dma-info $D | grep -q '^device_transfers=1$' && break
    sleep 0.1
done
{TOOL} dma-info $D | grep '^device_transfers='
{TOOL} bus-master $B on
echo "powering off"
""", board="virtual", timeout=600, extra_files={TOOL: guest.tool()})
    out = r.output
    assert r.returncode == 0, out
    assert "device_transfers=1" in out, f"no transfer queued: {out}"
    assert r.board["dma_abort_writes"] == 1, r.board
    assert r.board["bus_master_at_exit"] == 0, r.board
