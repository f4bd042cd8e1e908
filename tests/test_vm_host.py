"""The host library and CLI against the real driver, in the VM's host-root
mode (the project's .venv runs in the guest). Issue 5 widens this."""

import json
import os
import re
import tomllib
from pathlib import Path

import pytest

from vm import guest, kernels
from vm.guest import images, read_at
from vm.qemu import run

IVSHMEM_SIZE = guest.IVSHMEM_SIZE
pytestmark = pytest.mark.vm

PY = ".venv/bin/python"
VERSION = tomllib.loads((Path(__file__).resolve().parent.parent / "pyproject.toml")
                        .read_text())["project"]["version"]


@pytest.mark.parametrize("kernel", kernels.under_test(*kernels.STOCK))
def test_list_and_mapping(kernel, tmp_path):
    """`p2pdax list --json` describes the bound ivshmem; open_bar() writes land in the BAR."""
    iv, nvme = images(tmp_path)
    data = os.urandom(4096)
    r = run(kernel, f"""
{PY} -m host.cli list --json || exit 1
{PY} -m host.cli selftest dax0.0 || exit 1
echo ---
# Not root: refused until the node's group (the udev rule's job) includes the user.
NOBODY="setpriv --reuid=65534 --regid=65534"
$NOBODY --clear-groups {PY} -m host.cli selftest dax0.0; echo "nobody: $?"
chgrp 4242 /dev/dax0.0 && chmod 0660 /dev/dax0.0 || exit 2
$NOBODY --groups=4242 {PY} -m host.cli selftest dax0.0 --length 64K || exit 1
{PY} -m host.cli info dax0.0 | grep -E '^(address|dax_node) ' || exit 1
{PY} -c '
from host import client
with client.open_bar("dax0.0") as bar:
    bar.write(8192, bytes.fromhex("{data.hex()}"))
    print("readback", bar.read(8192, 4096) == bytes.fromhex("{data.hex()}"))
    try:
        bar.write(bar.size - 2, b"abc")
    except ValueError as e:
        print("refused:", e)
'
""", host_root=True, ivshmem_file=iv, nvme_images=nvme)
    assert r.returncode == 0, r.output
    listing, _, rest = r.output.partition("---\n")
    listing, _, selftest = listing.partition("]\n")
    (dev,) = json.loads(listing + "]")
    assert f"/dev/dax0.0 address {IVSHMEM_SIZE} bytes" in selftest
    assert f"/dev/dax0.0 random  {IVSHMEM_SIZE} bytes" in selftest
    assert selftest.count(", ok") == 2 and "PASSED" in selftest
    assert dev["vendor"] == 0x1AF4 and dev["device"] == 0x1110
    assert dev["kind"] == "memory-only" and dev["mode"] == "dax" and dev["bar"] == 2
    assert dev["dax_node"] == "/dev/dax0.0" and dev["dax_size"] == IVSHMEM_SIZE
    assert dev["dax_align"] == 4096 and dev["p2pmem_size"] == 0
    assert dev["mem_size"] == dev["bar_size"] == IVSHMEM_SIZE
    assert dev["driver_version"] == VERSION and dev["gateware_version"] is None
    assert f"address           {dev['address']}" in rest
    assert "readback True" in rest
    assert "p2pdax: /dev/dax0.0: permission denied; add yourself to the group 'p2pdax' " \
        "that driver/60-p2p-dax.rules gives the device to, or run as root" in rest
    assert "nobody: 1" in rest and "/dev/dax0.0 random  65536 bytes" in rest
    assert f"is outside /dev/dax0.0: offsets 0 to {IVSHMEM_SIZE:#x}" in rest
    assert read_at(iv, 8192, 4096) == data


@pytest.mark.parametrize("kernel", kernels.under_test(*kernels.STOCK))
def test_cli_copy_nvme_to_bar_and_back(kernel, tmp_path):
    """`p2pdax copy` with O_DIRECT: NVMe -> BAR and BAR -> the other NVMe, and
    NVMe -> NVMe relayed through the BAR (p2pmem-test's transfer), verified,
    and checked here in ivshmem's file and the second NVMe's image."""
    source = os.urandom(8 << 20)
    iv, nvme = images(tmp_path, nvme0=source)
    r = run(kernel, guest.SHELL_PRELUDE + f"""
N0=$(nvme n0) && N1=$(nvme n1) || exit 2
{PY} -m host.cli copy $N0 dax0.0:4M --length 8M || exit 1
{PY} -m host.cli copy dax0.0:4M $N1 --offset 1M --length 8M --queue-depth 8 || exit 1
{PY} -m host.cli copy $N0 dax0.0:0x1001 --length 4K; echo "misaligned: $?"
{PY} -m host.cli copy $N0 dax0.0:63M --length 2M; echo "too long: $?"
{PY} -m host.cli copy dax0.0:0 /tmp/out --length 4K; echo "to tmpfs: $?"
{PY} -m host.cli copy dax0.0:0 /tmp/out --length 4K --buffered || exit 1
{PY} -m host.cli copy $N0 $N1 --through dax0.0:16M --length 1M --chunk 256K || exit 1
""", host_root=True, ivshmem_file=iv, nvme_images=nvme)
    assert r.returncode == 0, r.output
    assert r.output.count(f"copied {8 << 20} bytes") == 2, r.output
    assert re.search(rf"copied {1 << 20} bytes /dev/nvme\dn1 -> /dev/nvme\dn1 through "
                     r"dax0.0:16M in .*, verified", r.output), r.output
    assert r.output.count("verified (CRC-32") == r.output.count("copied ")
    assert "O_DIRECT needs offsets that are multiples of 4096" in r.output
    assert "misaligned: 1" in r.output and "too long: 1" in r.output
    assert "is outside /dev/dax0.0: offsets 0 to 0x4000000" in r.output
    if kernel == "6.1":     # tmpfs takes O_DIRECT from 6.6 on
        assert "p2pdax: /tmp/out: its file system refuses O_DIRECT; use the buffered path " \
            "(direct=False, --buffered)" in r.output
        assert "to tmpfs: 1" in r.output
    else:
        assert "to tmpfs: 0" in r.output
    assert r.output.count("bytes dax0.0:0 -> /tmp/out") == (1 if kernel == "6.1" else 2)
    assert read_at(iv, 4 << 20, 8 << 20) == source
    assert read_at(nvme[1], 1 << 20, 8 << 20) == source
    # The relay: four slots of 256 KiB, one chunk each, left in the BAR.
    assert read_at(nvme[1], 0, 1 << 20) == read_at(iv, 16 << 20, 1 << 20) == source[:1 << 20]


@pytest.mark.parametrize("kernel", kernels.under_test("6.12"))
def test_monitor_sees_unbind_and_bind(kernel, tmp_path):
    """client.monitor() reports an unbind (the address) and a bind (a Device) of
    a p2p_dax device, and not the unbind of an NVMe from its driver."""
    r = run(kernel, f"""
IV=$(ls /sys/bus/pci/drivers/p2p_dax | grep :) || exit 2
{PY} -c '
import sys
from host import client
events = client.monitor(timeout=20)
print("ready", flush=True)
for n, (action, dev) in zip(range(2), events):
    print(action, dev if isinstance(dev, str) else (dev.address, dev.dax_device), flush=True)
' > /tmp/events &
while ! grep -q ready /tmp/events 2>/dev/null; do sleep 0.2; done
NV=$(ls /sys/bus/pci/drivers/nvme | grep : | head -1)
echo $NV > /sys/bus/pci/drivers/nvme/unbind     # not ours: no event
echo $IV > /sys/bus/pci/drivers/p2p_dax/unbind
echo $IV > /sys/bus/pci/drivers/p2p_dax/bind
wait
echo address=$IV
cat /tmp/events
""", host_root=True)
    assert r.returncode == 0, r.output
    address = r.output.split("address=")[1].split()[0]
    events = r.output.split("ready\n")[1].splitlines()
    assert events[0] == f"unbind {address}", r.output
    assert f"bind ('{address}', 'dax0.0')" in r.output


@pytest.mark.parametrize("kernel", kernels.under_test(*kernels.STOCK))
def test_device_removed_while_mapped(kernel, tmp_path):
    """Unbinding the device under an open mapping: reads, writes and O_DIRECT
    raise clear errors, the process lives on, and nothing lands in the BAR."""
    iv, nvme = images(tmp_path)
    r = run(kernel, guest.SHELL_PRELUDE + f"""
N0=$(nvme n0) || exit 2
{PY} -c '
from host import client, transfer
bar = client.open_bar("dax0.0")
bar.write(0, b"x" * 4096)
with open("/sys/bus/pci/drivers/p2p_dax/unbind", "w") as f:
    f.write(bar.device.address)
for name, action in [("read", lambda: bar.read(0, 4096)),
                     ("write", lambda: bar.write(8192, b"y" * 4096)),
                     ("o_direct", lambda: transfer.copy(transfer.FileEnd("'$N0'"),
                                                        transfer.BufferEnd(bar, 16384), 4096))]:
    try:
        action()
        print(name, "succeeded")
    except OSError as e:
        print(name, type(e).__name__, e)
print("alive")
'
{PY} -m host.cli info dax0.0; echo "info: $?"
{PY} -m host.cli list; echo "list: $?"
""", host_root=True, ivshmem_file=iv, nvme_images=nvme)
    assert r.returncode == 0, r.output
    assert "read DeviceGoneError [Errno 6] /dev/dax0.0: the device went away" in r.output
    assert "write DeviceGoneError [Errno 6] /dev/dax0.0: the device went away" in r.output
    assert "o_direct OSError [Errno 14] Bad address" in r.output
    assert "succeeded" not in r.output and "alive\n" in r.output
    # With nothing bound, the CLI says how to load and bind the driver.
    assert r.output.count("p2pdax: no device is bound to p2p_dax: load the driver (sudo "
                          "modprobe p2p_dax") == 2
    assert "info: 1" in r.output and "list: 1" in r.output
    bar = iv.read_bytes()
    assert bar[:4096] == b"x" * 4096 and bar[4096:] == bytes(len(bar) - 4096)


# The paths it times are tested on every kernel above; make test times them
# on the newest kernel, the release matrix (KERNELS=all) on each.
@pytest.mark.parametrize("kernel", kernels.under_test("7.3"))
def test_cli_bench(kernel, tmp_path):
    """`p2pdax bench` with both NVMe devices: every path at each size, as JSON,
    and a plot; the data it moved is checked here in ivshmem's file and the
    target NVMe's image."""
    source = os.urandom(4 << 20)
    iv, nvme = images(tmp_path, nvme0=source)
    out = tmp_path / "out"
    out.mkdir()
    r = run(kernel, guest.SHELL_PRELUDE + f"""
N0=$(nvme n0) && N1=$(nvme n1) || exit 2
{PY} -m host.cli bench dax0.0 --source $N0 --target $N1 --total 4M --sizes 64K,1M \\
    --rounds 1 --json --plot {out}/bench.png > {out}/bench.json || exit 1
head -c 8192 /dev/zero > /tmp/small
{PY} -m host.cli bench dax0.0 --source /tmp/small --total 64K; echo "small source: $?"
""", host_root=True, ivshmem_file=iv, nvme_images=nvme, shares=[out], timeout=300)
    assert r.returncode == 0, r.output
    result = json.loads((out / "bench.json").read_text())
    assert result["dax_node"] == "/dev/dax0.0" and result["total"] == 4 << 20
    rows = {(row["path"], row["size"]): row for row in result["results"]}
    assert set(rows) == {(p, s) for p in ("cpu-read", "cpu-write", "nvme->bar", "bar->nvme",
                                          "library") for s in (64 << 10, 1 << 20)}
    assert all(row["mb_per_s"] > 0 and row["reference_mb_per_s"] > 0 for row in rows.values())
    assert (out / "bench.png").read_bytes()[:4] == b"\x89PNG"
    assert read_at(iv, 0, 4 << 20) == source            # the library path read it in last
    assert read_at(nvme[1], 0, 4 << 20) == source       # bar->nvme wrote what nvme->bar read
    assert "p2pdax: /tmp/small holds 8192 bytes, less than the 65536 bytes a pass reads; " \
        "give a smaller --total" in r.output
    assert "small source: 1" in r.output


@pytest.mark.parametrize("kernel", kernels.under_test(*kernels.STOCK))
def test_cli_rescan(kernel):
    """`p2pdax rescan`: the device is removed and found again below its bridge
    (ivshmem comes back unbound: it is bound by hand), by address and by dax
    name; an absent address is refused; the kernel stays quiet."""
    r = run(kernel, guest.SHELL_PRELUDE + f"""
IV=$(ivshmem) || exit 2
{PY} -m host.cli rescan dax0.0 || exit 1
[ -e /sys/bus/pci/devices/$IV/driver ] && echo "still bound"
echo p2p_dax > /sys/bus/pci/devices/$IV/driver_override
echo $IV > /sys/bus/pci/drivers/p2p_dax/bind || exit 3
{PY} -m host.cli list || exit 1
{PY} -m host.cli rescan ${{IV#0000:}} || exit 1
{PY} -m host.cli rescan 00:1f.7; echo "absent: $?"
bad_dmesg && exit 4
echo address=$IV
""", host_root=True)
    assert r.returncode == 0, r.output
    address = r.output.split("address=")[1].split()[0]
    assert r.output.count(f"{address} is back, bound to no driver: load p2p_dax, or bind it "
                          "by hand") == 2, r.output
    assert "still bound" not in r.output and f"{address}  1af4:1110" in r.output
    assert "p2pdax: no PCI device 0000:00:1f.7" in r.output and "absent: 1" in r.output
