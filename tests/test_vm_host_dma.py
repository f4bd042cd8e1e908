"""The host library's DMA path (host/dma.py, `p2pdax copy --via dma`, the
bench's DMA paths) against the real driver on the virtual board (QEMU's
p2p-dax-board device in front of the RTL's simulation, vm/qemu.py
board="virtual"), with ivshmem (/dev/dax1.0, no engine) as a peer mapped
without P2PDMA, which the driver refuses. What the guest wrote is checked
here: the copied file in a shared directory, ivshmem's backing file
untouched. (Without a device:
tests/test_host_dma.py; the driver's side: tests/test_vm_dma.py.)

The simulation moves tens of kB/s: transfers stay at 64 KiB. One VM boot."""

import json
import os
import re
import zlib

import pytest

from vm import guest, kernels
from hw.virtual import PARAMS
from vm.qemu import run

pytestmark = pytest.mark.vm

KERNELS = kernels.under_test("6.1")
PY = ".venv/bin/python"
KiB, MiB = 1 << 10, 1 << 20
MEM_SIZE = PARAMS["mem_size"]   # the virtual board's memory: all of its BAR2


@pytest.mark.parametrize("kernel", KERNELS)
def test_copy_and_bench_through_the_engine(kernel, tmp_path):
    """A file -> BAR2 -> a file (several transfers in flight), each verified
    with CRC-32 and checked here; a peer's plain dax mapping (ivshmem's
    dax1.0), a device without an engine and a range beyond the engine's
    reach are refused with one line; bench measures dma-read and dma-write."""
    share = tmp_path / "share"
    share.mkdir()
    data = os.urandom(64 * KiB)
    (share / "in.bin").write_bytes(data)
    iv = tmp_path / "ivshmem.bin"
    iv.write_bytes(b"")
    os.truncate(iv, 64 * MiB)
    # The copies in one Python (each process's imports take seconds under TCG),
    # through the CLI's main(): its return value is p2pdax's exit code.
    copies = [f"copy {share}/in.bin dax0.0:4K --via dma --chunk 16K --queue-depth 3",
              f"copy dax0.0:4K {share}/out.bin --length 64K --via dma",
              "copy dax0.0:4K dax1.0:4M --length 64K --via dma",
              f"copy {share}/in.bin dax1.0:0 --via dma",         # no engine
              f"copy {share}/in.bin dax0.0:{MEM_SIZE // KiB - 16}K --via dma"]  # beyond its reach
    r = run(kernel, f"""
{PY} -c '
import sys
from host import cli
for argv in {json.dumps([c.split() for c in copies])}:
    print("exit", cli.main(argv), flush=True)
    sys.stderr.flush()
' 2>&1 || exit 2
{PY} -m host.cli bench dax0.0 --total 64K --sizes 64K --rounds 1 --paths dma-read,dma-write \\
    || exit 1
""", board="virtual", host_root=True, ivshmem_file=iv, shares=[share], timeout=900)
    assert r.returncode == 0, r.output
    out = r.output
    assert re.findall(r"^exit (\d+)$", out, re.M) == ["0", "0", "1", "1", "1"], out
    crc = f"verified (CRC-32 {zlib.crc32(data):#010x})"
    copied = re.findall(r"^copied 65536 bytes (\S+) -> (\S+) by the DMA engine of "
                        r"/dev/p2p-dax0 in [\d.]+ s \([\d.e+-]+ MB/s\), (.*)$", out, re.M)
    assert copied == [(f"{share}/in.bin", "dax0.0:4K", crc),
                      ("dax0.0:4K", f"{share}/out.bin", crc)], out
    assert (share / "out.bin").read_bytes() == data
    # A peer's plain dax mapping is past the kernel's P2P checks: refused.
    assert re.search(r"^p2pdax: .*/dev/p2p-dax0: DMA of 65536 bytes from BAR2 offset 0x1000 "
                     r"to the buffer refused with EXDEV: the buffer is a PCI device's BAR "
                     r"mapped without P2PDMA .*\nexit 1$", out, re.M), out
    with open(iv, "rb") as f:
        f.seek(4 * MiB)
        assert f.read(len(data)) == bytes(len(data)), "the engine wrote into ivshmem"
    assert re.search(r"^p2pdax: /dev/p2p-dax1 \(dax1.0\): no usable DMA engine: a "
                     r"memory-only device has no DMA engine \(engine none\); .*\n"
                     r"exit 1$", out, re.M), out
    # Past the end of BAR2 (all memory): the dax device's bounds say so first.
    assert re.search(rf"^p2pdax: {MEM_SIZE - 16 * KiB:#x} \+ 0x10000 is outside /dev/dax0.0: "
                     rf"offsets 0 to {MEM_SIZE:#x} \({MEM_SIZE} bytes\) are allowed\nexit 1$",
                     out, re.M), out
    rows = re.findall(r"^(dma-read|dma-write) +64K +([\d.e+-]+) +(memcpy \S+ -> \S+) +"
                      r"([\d.e+-]+) +([\d.e+-]+)$", out, re.M)
    assert [(p, ref) for p, _, ref, _, _ in rows] == [("dma-read", "memcpy BAR -> RAM"),
                                                      ("dma-write", "memcpy RAM -> BAR")], out
    assert all(float(rate) > 0 and float(ref) > 0 for _, rate, _, ref, _ in rows), out
    # Every DMA went through the RTL: the bridge carried the engine's reads and writes.
    assert r.board["dma_read_bytes"] >= 2 * len(data), r.board
    assert r.board["dma_write_bytes"] >= 2 * len(data), r.board
    print("\n".join(line for line in out.splitlines() if line.startswith(("copied", "dma-"))))



@pytest.mark.parametrize("kernel", KERNELS)
def test_a_transfer_the_board_fails(kernel, tmp_path):
    """The RTL's DMA read answered with a Completer Abort (P2P_DAX_FAULT=abort@ARM:
    each guest write to BAR2 at ARM fails the RTL's next DMA read): the driver
    ends the transfer with EIO, the engine's status and where it failed, and a
    kernel message; `p2pdax copy --via dma` says so in one line and exits 1;
    the next transfer works. No kernel warning."""
    arm = 0x3F000                       # in the BAR's memory, away from the copies
    share = tmp_path / "share"
    share.mkdir()
    data = os.urandom(16 * KiB)
    (share / "in.bin").write_bytes(data)
    tool = guest.tool()                 # in the host's file system, which the guest runs in
    r = run(kernel, guest.SHELL_PRELUDE + f"""
TOOL={tool}
arm() {{ $TOOL fill /dev/dax0.0 {arm} 8 1 > /dev/null || exit 2; }}
arm; $TOOL dma-to-bar /dev/p2p-dax0 0 8192 7 ram; echo "tool exit $?"
$TOOL dma-to-bar /dev/p2p-dax0 0 8192 7 ram || exit 1
$TOOL dma-from-bar /dev/p2p-dax0 0 8192 7 ram || exit 1
arm; {PY} -m host.cli copy {share}/in.bin dax0.0:16K --via dma 2>&1; echo "copy exit $?"
{PY} -m host.cli copy {share}/in.bin dax0.0:16K --via dma || exit 1
{PY} -m host.cli copy dax0.0:16K {share}/out.bin --length 16K --via dma || exit 1
if bad_dmesg; then exit 1; fi
dmesg | grep -c 'p2p_dax.*completer abort' | sed 's/^/kernel messages: /'
""", board="virtual", board_env={"P2P_DAX_FAULT": f"abort@{arm:#x}"}, host_root=True,
            shares=[share], timeout=900)
    assert r.returncode == 0, r.output
    out = r.output
    failed = re.search(r"^dma to-bar 8192 bytes: wait EIO, status COMPLETER_ABORT, done 1, "
                       r"bytes (\d+), error_offset (\d+),.*\ntool exit 1$", out, re.M)
    assert failed and int(failed[1]) < 8192 and int(failed[2]) < 8192, out
    assert re.search(r"^dma to-bar 8192 bytes: wait ok, status OK", out, re.M), out
    assert "checked 8192 bytes: ok" in out
    assert re.search(r"^p2pdax: .*/dev/p2p-dax0: DMA of 16384 bytes from the buffer to BAR2 "
                     r"offset 0x4000 failed.*: completer abort: the target answered the engine "
                     r"with CA \(status COMPLETER_ABORT\); \d+ of 16384 bytes moved\n"
                     r"copy exit 1$", out, re.M), out
    assert out.count("copied 16384 bytes") == 2 and (share / "out.bin").read_bytes() == data
    messages = re.search(r"^kernel messages: (\d+)$", out, re.M)
    assert messages and int(messages[1]) >= 2, out
    assert r.board["dma_reads_aborted"] == 2, r.board


@pytest.mark.parametrize("kernel", kernels.under_test(kernels.WITH_P2PDMA, p2pdma=True))
def test_copy_to_and_from_a_peers_p2pmem(kernel, tmp_path):
    """On the kernel with P2PDMA: `p2pdax copy --via dma` between the board's
    BAR2 and a peer's p2pmem (the NVMe's CMB, under the same switch: bus
    addresses): the CLI BAR2 -> p2pmem, the library BAR2 -> p2pmem -> BAR2 in
    one allocation, each verified with CRC-32, the data checked here too."""
    share = tmp_path / "share"
    share.mkdir()
    data = os.urandom(16 * KiB)
    (share / "in.bin").write_bytes(data)
    r = run(kernel, guest.SHELL_PRELUDE + f"""
CMB=$(p2pmem n0) || exit 2
N0=$(basename $(dirname $(dirname $CMB)))
N0=$N0 {PY} -c '
import os, sys
from host import cli
cmb = "p2pmem:" + os.environ["N0"]
def copy(*argv):
    print("exit", cli.main(["copy", *argv, "--via", "dma"]), flush=True)
    sys.stderr.flush()
copy("{share}/in.bin", "dax0.0:4K")
copy("dax0.0:4K", cmb, "--length", "16K")
# The library: BAR2 -> p2pmem -> BAR2 in one allocation.
from host import client, dma, transfer
dev = client.find("dax0.0")
with client.open_p2pmem(os.environ["N0"], 16384) as mem, client.open_bar(dev) as bar, \
        dma.open_engine(dev) as eng:
    for a, b in ((bar, 4096), (mem, 0)), ((mem, 0), (bar, 65536)):
        r = transfer.dma_copy(eng, transfer.BufferEnd(*a), transfer.BufferEnd(*b), 16384)
        print(f"library: {{r.length}} bytes, crc {{r.crc32:#010x}}", flush=True)
copy("dax0.0:64K", "{share}/out.bin", "--length", "16K")
' 2>&1 || exit 1
""", board="virtual", host_root=True, shares=[share], timeout=900)
    assert r.returncode == 0, r.output
    out = r.output
    assert re.findall(r"^exit (\d+)$", out, re.M) == ["0"] * 3, out
    crc = f"verified (CRC-32 {zlib.crc32(data):#010x})"
    copied = re.findall(r"^copied 16384 bytes (\S+) -> (\S+) by the DMA engine of "
                        r"/dev/p2p-dax0 in .*, (.*)$", out, re.M)
    assert [(a.split(":")[0], b.split(":")[0], c) for a, b, c in copied] == [
        (f"{share}/in.bin", "dax0.0", crc), ("dax0.0", "p2pmem", crc),
        ("dax0.0", f"{share}/out.bin", crc)], out
    assert out.count(f"library: 16384 bytes, crc {zlib.crc32(data):#010x}") == 2, out
    assert (share / "out.bin").read_bytes() == data
