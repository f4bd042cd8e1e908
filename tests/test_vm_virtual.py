"""The virtual board: the unmodified driver in a Debian kernel under QEMU,
bound to QEMU's p2p-dax-board device, whose every BAR access goes to the
board's RTL in a cocotb simulation (hw/virtual/). What NVMe moves through the
board is checked on the host in the NVMe images; the simulation checks the
PCIe rules on the RTL's interfaces all along, and a broken rule fails the run.

Each test boots its own VM and simulation (the QEMU build, cached, comes
first: about 2.5 minutes cold)."""

import json
import os
import re
import shutil

import pytest

from hw.spec import regmap
from hw.virtual import PARAMS
from vm import guest, kernels
from vm.guest import images, read_at
from vm.qemu import run

# The slowest VM tests (the RTL in simulation): one kernel unless
# P2P_DAX_VM_KERNELS asks for more (vm/kernels.py under_test).
pytestmark = [pytest.mark.vm,
              pytest.mark.parametrize("kernel", kernels.under_test("6.1"))]
KiB, MiB = 1 << 10, 1 << 20
BAR2_SIZE = PARAMS["bar2_size"]     # the virtual board's build (hw/virtual/__init__.py)
MEM_SIZE = PARAMS["mem_size"]
TOOL = guest.TOOL_GUEST_PATH
PY = ".venv/bin/python"
BOARD_SYSFS = "/sys/bus/pci/devices/$(board)/p2p_dax"
PRELUDE = guest.SHELL_PRELUDE + r"""
board() { for d in /sys/bus/pci/devices/*; do
    [ "$(cat $d/vendor):$(cat $d/device)" = "%s" ] && { echo ${d##*/}; return; }
done; echo "no board on the bus" >&2; return 1; }
""" % f"0x{regmap.PCI_VENDOR_ID:04x}:0x{regmap.PCI_DEVICE_ID:04x}"


def vm(kernel, script, **kw):
    kw.setdefault("extra_files", {TOOL: guest.tool()})
    return run(kernel, PRELUDE + script, board="virtual", timeout=600, **kw)


def test_probe_reads_the_rtl_registers(kernel):
    """The driver binds the board by its ID, checks the RTL's ID, version and
    sizes, and creates /dev/dax0.0 over BAR2; ivshmem is the second device."""
    r = vm(kernel, f"""
set -e
B=$(board)
for a in kind bar bar_size dax_device dax_size mem_size gateware_version; do
    echo $a=$(cat {BOARD_SYSFS}/$a)
done
echo dax_bytes=$(cat /sys/bus/dax/devices/dax0.0/size)
echo peer=$(cat /sys/bus/dax/devices/dax1.0/size)
""")
    assert r.returncode == 0, r.output
    values = dict(re.findall(r"^(\w+)=(.*)$", r.output, re.M))
    assert values["kind"] == "board" and values["bar"] == "2"
    assert values["bar_size"] == values["dax_size"] == values["dax_bytes"] == str(BAR2_SIZE)
    assert values["mem_size"] == str(MEM_SIZE) and values["dax_device"] == "dax0.0"
    assert re.fullmatch(r"\d+\.\d+\.\d+", values["gateware_version"])
    assert values["peer"] == str(64 * MiB)
    # The answers came from the RTL: the bridge carried the probe's reads.
    assert r.board["mmio_reads"] >= 5 and r.board["cfg_writes"] > 0, r.board


def test_probe_refuses_a_board_with_too_little_memory(kernel):
    """A build whose BAR2 has only 256 KiB of memory behind it (block RAM):
    the driver registers nothing of it (device-dax needs 2 MiB), says why
    and what to change, and leaves no dax device."""
    r = vm(kernel, """
dmesg | grep p2p_dax
ls /sys/bus/dax/devices/
""", board_params={"memory": "bram", "bar2_size": 2 * MiB, "mem_size": 256 * KiB})
    assert r.returncode == 0, r.output
    assert "BAR2 is backed by 262144 bytes of memory (MEM_SIZE), less than the 2 MiB " \
        "device-dax and p2pdma need: build the gateware with mem_size of 2 MiB or more" \
        in r.output, r.output
    assert "dax0.0" in r.output and "dax1.0" not in r.output, r.output   # ivshmem only


def test_mmap_and_o_direct_through_the_rtl(kernel, tmp_path):
    """mmap writes and reads reach the RTL's memory, and two places far
    apart in it hold their own data (no aliasing); O_DIRECT moves NVMe ->
    BAR2 (QEMU's NVMe writes into the RTL) and BAR2 -> the other NVMe,
    checked in the images."""
    n = 64 * KiB
    source = os.urandom(MiB)
    iv, nvme = images(tmp_path, nvme0=source)
    r = vm(kernel, f"""
set -e
N0=$(nvme n0); N1=$(nvme n1)
{TOOL} fill /dev/dax0.0 0 {n} 77
{TOOL} fill /dev/dax0.0 {MEM_SIZE - n} {n} 88
{TOOL} check /dev/dax0.0 0 {n} 77
{TOOL} check /dev/dax0.0 {MEM_SIZE - n} {n} 88
{TOOL} dio-in $N0 {128 * KiB} /dev/dax0.0 {n} {n}
{TOOL} dio-out /dev/dax0.0 {n} $N1 {256 * KiB} {n}
if bad_dmesg; then echo "kernel warnings above"; exit 1; fi
""", ivshmem_file=iv, nvme_images=nvme)
    assert r.returncode == 0, r.output
    assert read_at(nvme[1], 256 * KiB, n) == source[128 * KiB:128 * KiB + n], \
        "NVMe -> BAR2 -> NVMe through the RTL changed the data"
    # Combined writes and block reads: far fewer TLPs than guest accesses.
    assert r.board["write_tlps"] < r.board["mmio_writes"] // 4, r.board
    assert r.board["read_tlps"] < r.board["mmio_reads"] // 4, r.board


def test_host_library_selftest_and_relay(kernel, tmp_path):
    """`p2pdax list` and `p2pdax selftest` (address and random patterns) on the
    board; `p2pdax copy NVMe NVMe --through` (p2pmem-test's transfer): one NVMe
    writes each chunk into the RTL's memory, the other reads it from there."""
    source = os.urandom(MiB)
    iv, nvme = images(tmp_path, nvme0=source)
    r = vm(kernel, f"""
N0=$(nvme n0) && N1=$(nvme n1) || exit 2
{PY} -m host.cli list --json || exit 1
{PY} -m host.cli selftest dax0.0 --length 64K || exit 1
{PY} -m host.cli copy $N0 $N1 --through dax0.0:64K --length 128K --chunk 32K \
    --queue-depth 2 || exit 1
{PY} -m host.cli copy dax0.0:64K $N1 --offset 1M --length 64K || exit 1
""", host_root=True, ivshmem_file=iv, nvme_images=nvme)
    assert r.returncode == 0, r.output
    listing, _, selftest = r.output.partition("]\n")
    devices = {d["dax_node"]: d for d in json.loads(listing + "]")}
    board = devices["/dev/dax0.0"]
    assert board["kind"] == "board" and (board["vendor"], board["device"]) == (regmap.PCI_VENDOR_ID,
                                                                       regmap.PCI_DEVICE_ID)
    assert board["mem_size"] == MEM_SIZE and board["gateware_version"]
    assert selftest.count(", ok") == 2 and "PASSED" in selftest, selftest
    assert re.search(r"copied 131072 bytes /dev/nvme\dn1 -> /dev/nvme\dn1 through "
                     r"dax0.0:64K in .*, verified", selftest), selftest
    assert read_at(nvme[1], 0, 128 * KiB) == source[:128 * KiB]
    # Two slots of 32 KiB: the last two chunks stay in the RTL's memory.
    assert read_at(nvme[1], MiB, 64 * KiB) == source[64 * KiB:128 * KiB]


@pytest.mark.parametrize("fault", ["crash", "hang"])
def test_simulation_gone(kernel, fault):
    """The simulation crashing, or no longer answering, fails the guest's
    accesses with all ones and gives QEMU one clear message: no hang."""
    r = vm(kernel, f"""
{PY} -c '
import mmap, os
fd = os.open("/dev/dax0.0", os.O_RDWR)
m = mmap.mmap(fd, {BAR2_SIZE})
m[0:8] = b"12345678"
print("before", m[0:8])
m[0x1000:0x1008] = b"fault!!!"
print("after", m[0:8].hex())
'
""", host_root=True, board_env={"P2P_DAX_FAULT": f"{fault}@0x1000"},
           board_timeout_ms=3000)
    assert r.returncode == 0, r.output
    assert "before b'12345678'" in r.output
    assert "after ffffffffffffffff" in r.output
    why = ("the simulation closed the connection (it stopped or crashed)" if fault == "crash"
           else "the simulation did not answer in time (timeout-ms)")
    assert f"p2p-dax-board: {why}; the board is gone: reads return all ones" in r.output
    assert "return code: 3" in r.board["error"], r.board      # P2P_DAX_FAULT's exit


def test_daxctl_and_fio(kernel):
    """Third-party tools on the board's dax device: daxctl lists the region
    with its PCI path; fio writes verified data from buffers in BAR2 to the
    NVMe with O_DIRECT and reads it back into BAR2 (the NVMe DMAs into and out
    of the RTL's memory), checking every block."""
    r = vm(kernel, """
set -e
N0=$(nvme n0)
daxctl list -D -R
echo ---
fio --name=board --filename=$N0 --direct=1 --ioengine=psync --rw=write --bs=64k \
    --size=128k --iomem=mmapshared:/dev/dax0.0 --verify=crc32c --do_verify=1 \
    --output-format=json > /tmp/fio.json
python3 -c '
import json
j = json.load(open("/tmp/fio.json"))["jobs"][0]
print("fio error", j["error"], "written", j["write"]["io_bytes"], "read", j["read"]["io_bytes"])
'
""", host_root=True)
    assert r.returncode == 0, r.output
    listing, _, rest = r.output.partition("---\n")
    regions = json.loads(listing)
    region = next(reg for reg in (regions if isinstance(regions, list) else [regions])
                  if any(d["chardev"] == "dax0.0" for d in reg.get("devices", [])))
    assert region["size"] == BAR2_SIZE and "0000:" in region["path"], region
    assert "fio error 0 written 131072 read 131072" in rest, rest


@pytest.mark.skipif(shutil.which("p2pmem-test") is None,
                    reason="p2pmem-test is not installed: no package has it (Debian, PyPI); "
                    "build it from its source and put it on PATH to run this test")
def test_p2pmem_test(kernel, tmp_path):
    """p2pmem-test itself, where the host has it (the guest runs in the host's
    root file system): 4 chunks of 32 KiB, 2 threads, from one NVMe into the
    board's dax device and out to the other, with its data check. CI's
    machines cannot install it; `p2pdax copy --through` above moves data
    the same way (test_host_library_selftest_and_relay)."""
    iv, nvme = images(tmp_path)
    r = vm(kernel, """
N0=$(nvme n0) && N1=$(nvme n1) || exit 2
p2pmem-test $N0 $N1 /dev/dax0.0 -c 4 -s 32k -t 2 --check || exit 1
""", host_root=True, ivshmem_file=iv, nvme_images=nvme)
    assert r.returncode == 0, r.output
    assert "MATCH on data check" in r.output and "MISMATCH" not in r.output, r.output
    assert "Transfer:" in r.output
    # --check wrote random data to the first NVMe: the second holds the same.
    written = read_at(nvme[0], 0, 128 * KiB)
    assert written != bytes(128 * KiB) and read_at(nvme[1], 0, 128 * KiB) == written
