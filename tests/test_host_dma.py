"""host.dma, the DMA engine's API, without a device: its structs against
driver/p2p_dax_ioctl.h, and the engine's ioctls answered by a fake driver
(FakeDriver, in place of native.ioctl) that moves the bytes at SUBMIT.
`p2pdax copy --via dma` and the bench's DMA paths over it. (With the
driver, on the virtual board: tests/test_vm_host_dma.py.)"""

import dataclasses
import errno
import os
import re
import zlib
from pathlib import Path

import pytest

from host import bench, cli, client, dma, native, transfer
from host._native_build import IOCTL_HEADER
from host.native import ffi, lib
from tests.fakes import fake_device

KiB, MiB = 1 << 10, 1 << 20
ROOT = Path(__file__).resolve().parent.parent
STRUCTS = {"p2p_dax_info": "INFO", "p2p_dax_dma_submit": "DMA_SUBMIT",
           "p2p_dax_dma_wait": "DMA_WAIT"}


def test_structs_are_the_headers():
    """cffi's view of each struct is the header's, member for member, and
    follows the header's own rules: __u32 and __u64 only, no implicit
    padding, the first version's size; the ioctl numbers are _IOR/_IOWR of
    those sizes."""
    text = IOCTL_HEADER.read_text()
    for name, short in STRUCTS.items():
        body = re.search(rf"^struct {name} \{{(.*?)^\}};", text, re.M | re.S).group(1)
        members = re.findall(r"^\s*__u(32|64) (\w+)(?:\[(\d+)\])?;", body, re.M)
        ctype = ffi.typeof(f"struct {name}")
        assert [f for f, _ in ctype.fields] == [m for _, m, _ in members], name
        offset = 0
        for (bits, member, count), (_, field) in zip(members, ctype.fields):
            size = int(bits) // 8 * int(count or 1)
            assert (field.offset, ffi.sizeof(field.type)) == (offset, size), (name, member)
            offset += size
        assert ffi.sizeof(ctype) == offset == getattr(lib, f"P2P_DAX_{short}_SIZE_VER1")
    magic = lib.P2P_DAX_IOC_MAGIC

    def ioc(direction, nr, struct):     # include/uapi/asm-generic/ioctl.h
        return direction << 30 | ffi.sizeof(f"struct {struct}") << 16 | magic << 8 | nr
    assert lib.P2P_DAX_IOC_INFO == ioc(2, 0, "p2p_dax_info")
    assert lib.P2P_DAX_IOC_SUBMIT == ioc(3, 1, "p2p_dax_dma_submit")
    assert lib.P2P_DAX_IOC_WAIT == ioc(3, 2, "p2p_dax_dma_wait")


def test_names_match_the_driver():
    """Every status of the header has its text; the engine states are named
    as the driver's sysfs attribute dma_engine names them."""
    assert set(dma.STATUSES.values()) == set(dma.STATUS_TEXT)
    source = (ROOT / "driver" / "p2p_dax.c").read_text()
    named = dict(re.findall(r'\[P2P_DAX_ENGINE_(\w+)\] = "(\w+)"', source))
    assert {getattr(lib, f"P2P_DAX_ENGINE_{k}"): v for k, v in named.items()} == dma.ENGINES
    assert set(dma.Info.__dataclass_fields__) == {
        f for f, _ in ffi.typeof("struct p2p_dax_info").fields} - {"reserved"}


class FakeDriver:
    """INFO, SUBMIT, WAIT and CANCEL as driver/p2p_dax_ioctl.h says, over
    `memory` (BAR2's memory, a writable buffer): a transfer moves its bytes at
    SUBMIT. Set `fail` to a status (and `fail_at`) to end the next transfers
    with it, `refuse` to an errno for the next SUBMIT, `hold` to leave them
    running (CANCEL then takes them back: nothing moved)."""

    def __init__(self, memory, engine="READY", max_transfers=4, bar_size=2 * MiB):
        self.memory = memoryview(memory).cast("B")
        self.engine = getattr(lib, f"P2P_DAX_ENGINE_{engine}")
        self.max_transfers, self.bar_size = max_transfers, bar_size
        self.fail, self.fail_at, self.refuse, self.hold = None, 0, None, False
        self.pending, self.next_id = {}, 1
        self.most_pending = 0
        self.submits = []

    def __call__(self, fd, request, arg):
        if request == lib.P2P_DAX_IOC_INFO:
            ready = self.engine == lib.P2P_DAX_ENGINE_READY
            for name, value in {
                    "api_version": lib.P2P_DAX_API_VERSION, "engine": self.engine,
                    "mem_size": len(self.memory), "bar_size": self.bar_size,
                    "dma_window": len(self.memory) if ready else 0,
                    "max_transfer": 256 * MiB, "max_segment": 16 * MiB, "queue_depth": 16,
                    "max_transfers": self.max_transfers,
                    "transfers": len(self.pending)}.items():
                setattr(arg, name, value)
            return 0
        if request == lib.P2P_DAX_IOC_SUBMIT:
            return self._submit(arg)
        if request == lib.P2P_DAX_IOC_WAIT:
            return self._wait(arg)
        if request == lib.P2P_DAX_IOC_CANCEL:
            return self._cancel(arg)
        return errno.ENOTTY

    def _cancel(self, c):
        if c.flags or c.reserved0 or any(c.reserved):
            return errno.EINVAL
        if c.id not in self.pending:
            return errno.ENOENT
        if not self.hold or self.pending[c.id][0] == lib.P2P_DAX_DMA_STATUS_CANCELLED:
            return errno.EALREADY           # it has ended (or was cancelled already)
        self.pending[c.id] = (lib.P2P_DAX_DMA_STATUS_CANCELLED, 0)
        return 0

    def _submit(self, s):
        if s.direction not in (dma.TO_BAR, dma.FROM_BAR) or s.flags or not s.length:
            return errno.EINVAL
        if s.offset + s.length > len(self.memory):
            return errno.ERANGE
        if self.engine != lib.P2P_DAX_ENGINE_READY:
            return errno.EOPNOTSUPP
        if self.refuse:
            err, self.refuse = self.refuse, None
            return err
        if len(self.pending) >= self.max_transfers:
            return errno.EAGAIN
        user = ffi.buffer(ffi.cast("char *", s.addr), s.length)
        bar = self.memory[s.offset:s.offset + s.length]
        status, moved = lib.P2P_DAX_DMA_STATUS_OK, s.length
        if self.fail is not None:
            status, moved = self.fail, self.fail_at
        if s.direction == dma.TO_BAR:
            bar[:moved] = user[:moved]
        else:
            user[:moved] = bar[:moved]
        s.id, self.next_id = self.next_id, self.next_id + 1
        self.pending[s.id] = (status, moved)
        self.submits.append((s.direction, s.offset, s.length))
        self.most_pending = max(self.most_pending, len(self.pending))
        return 0

    def _wait(self, w):
        if w.id not in self.pending:
            return errno.ENOENT
        status, moved = self.pending[w.id]
        if self.hold:
            w.done, w.status, w.bytes = 0, lib.P2P_DAX_DMA_STATUS_RUNNING, 0
            return errno.ETIMEDOUT
        del self.pending[w.id]
        w.done, w.status, w.bytes = 1, status, moved
        w.error_offset = moved if status else 0
        return {lib.P2P_DAX_DMA_STATUS_OK: 0,
                lib.P2P_DAX_DMA_STATUS_TIMEOUT: errno.ETIMEDOUT,
                lib.P2P_DAX_DMA_STATUS_CANCELLED: errno.ECANCELED}.get(status, errno.EIO)


class FakeNodes:
    """native.ioctl for DMA nodes that are files: each answered by its FakeDriver."""

    def __init__(self):
        self.drivers = {}

    def __call__(self, fd, request, arg):
        return self.drivers[os.readlink(f"/proc/self/fd/{fd}")](fd, request, arg)


@pytest.fixture
def nodes(monkeypatch):
    fake = FakeNodes()
    monkeypatch.setattr(native, "ioctl", fake)
    return fake


def fake_board(tmp_path, nodes, memory, engine="READY", dax="dax0.0",
               address="0000:03:00.0", **kw):
    """(a client.Device whose DMA node is a file, its FakeDriver over memory)."""
    node = tmp_path / f"p2p-{dax}"
    node.write_bytes(b"")
    nodes.drivers[str(node)] = driver = FakeDriver(memory, engine, **kw)

    class FileDevice(client.Device):
        dma_node = str(node)

    dev = client._describe(fake_device(tmp_path / dax, address, dax), sysfs=tmp_path / dax)
    return FileDevice(**dataclasses.asdict(dev) | {
        "dma_device": f"p2p-{dax}", "dma_engine": engine.lower()}), driver


@pytest.fixture
def engine(tmp_path, nodes):
    mem = bytearray(256 * KiB)
    dev, driver = fake_board(tmp_path, nodes, mem)
    with dma.open_engine(dev) as eng:
        yield eng, driver, mem


def test_round_trips_in_pieces(engine):
    """to_bar and from_bar with bytes, bytearray and numpy buffers, split in
    chunks with at most queue_depth in flight; the buffers are free after."""
    eng, driver, mem = engine
    info = eng.info()
    assert info.ready and info.engine_name == "ready" and info.dma_window == 256 * KiB
    data = os.urandom(100 * KiB + 3)
    assert eng.to_bar(5, data, chunk=16 * KiB, queue_depth=3) == len(data)
    assert mem[5:5 + len(data)] == data
    assert len(driver.submits) == 7 and driver.most_pending == 3
    assert [s[1] for s in driver.submits] == [5 + i * 16 * KiB for i in range(7)]
    back = bytearray(len(data))
    assert eng.from_bar(5, back) == len(data) and back == data
    back.extend(b"x")           # resizable again: no export is left behind
    np = pytest.importorskip("numpy")
    words = np.zeros(8, "<u4")
    eng.from_bar(8, words)
    assert words.tobytes() == bytes(mem[8:40])
    t = eng.submit(dma.TO_BAR, 0, b"abc")
    assert "DMA of 3 bytes from the buffer to BAR2 offset 0x0" in repr(t)
    assert t.wait() == 3 and mem[:3] == b"abc"


def test_bad_requests_are_refused_before_the_driver(engine):
    eng, driver, _ = engine
    with pytest.raises(ValueError, match=r"BAR2 offset 0x3f000 \+ 0x2000 is outside what the "
                       r"DMA engine of .* reaches: offsets 0 to 0x40000 \(262144 bytes, the "
                       r"memory behind the BAR\)"):
        eng.to_bar(0x3F000, bytes(0x2000))
    with pytest.raises(ValueError, match="an empty DMA buffer"):
        eng.to_bar(0, b"")
    with pytest.raises(ValueError, match="a transfer from BAR2 writes its buffer: give a "
                       "writable one"):
        eng.from_bar(0, b"read-only")
    with pytest.raises(ValueError, match="not contiguous"):
        eng.to_bar(0, memoryview(bytearray(64))[::2])
    assert driver.submits == []


@pytest.mark.parametrize("status, err, text", [
    ("COMPLETER_ABORT", errno.EIO, "completer abort: the target answered the engine with CA"),
    ("TIMEOUT", errno.ETIMEDOUT, "completion timeout: the target did not answer"),
    ("UNSUPPORTED_REQUEST", errno.EIO, "unsupported request"),
])
def test_a_failed_transfer_names_the_status(engine, status, err, text):
    eng, driver, _ = engine
    driver.fail, driver.fail_at = getattr(lib, f"P2P_DAX_DMA_STATUS_{status}"), 4096
    with pytest.raises(dma.TransferFailed) as e:
        eng.from_bar(0x100, bytearray(8192))
    assert e.value.errno == err and e.value.status_name == status
    assert (e.value.bytes, e.value.error_offset) == (4096, 4096)
    assert str(e.value) == (f"{eng.node}: DMA of 8192 bytes from BAR2 offset 0x100 to the "
                            f"buffer failed at byte 0x1000 of it: {dma.STATUS_TEXT[status]} "
                            f"(status {status}); 4096 of 8192 bytes moved")
    assert text in str(e.value)


def test_a_failure_waits_for_the_rest(engine):
    """One piece fails: the pieces queued after it are waited for before the
    error is raised, so that no buffer is left in the engine's hands."""
    eng, driver, _ = engine
    driver.fail = lib.P2P_DAX_DMA_STATUS_COMPLETER_ABORT
    with pytest.raises(dma.TransferFailed, match="completer abort"):
        eng.to_bar(0, bytes(64 * KiB), chunk=8 * KiB, queue_depth=4)
    assert driver.pending == {}


@pytest.mark.parametrize("err, text", [
    (errno.EFAULT, "refused with EFAULT: the buffer is not mapped in this process"),
    (errno.EIO, "refused with EIO: the kernel refused to map the buffer for the board "
                "(an IOMMU refusal"),
    (errno.EXDEV, "refused with EXDEV: the buffer is a PCI device's BAR mapped without "
                  "P2PDMA"),
    (errno.EREMOTEIO, "refused with EREMOTEIO: the kernel's P2P rules do not let this board "
                      "reach the peer's p2pmem"),
    (errno.ENODEV, "refused with ENODEV: the board was unbound or removed"),
])
def test_a_refused_submit_names_the_errno(engine, err, text):
    eng, driver, _ = engine
    driver.refuse = err
    with pytest.raises(dma.DmaError) as e:
        eng.to_bar(0, bytes(4096))
    assert e.value.errno == err
    assert str(e.value).startswith(f"{eng.node}: DMA of 4096 bytes from the buffer to BAR2 "
                                   f"offset 0x0 {text}")


def test_still_running_after_the_timeout(engine):
    """DmaTimeout: the transfers still hold the buffer; waiting again ends them."""
    eng, driver, mem = engine
    driver.hold = True
    data = bytearray(os.urandom(8192))
    with pytest.raises(dma.DmaTimeout, match=r"still running after 0.01 s; the buffer stays "
                       r"in use until it ends: wait again") as e:
        eng.to_bar(0, data, chunk=4096, timeout=0.01)
    transfers = e.value.transfers
    assert len(transfers) == 2 and e.value.errno == errno.ETIMEDOUT
    del e
    with pytest.raises(BufferError):
        data.extend(b"x")           # still pinned: the engine may read it
    driver.hold = False
    assert sum(t.wait() for t in transfers) == 8192 and mem[:8192] == data
    data.extend(b"x")
    with pytest.raises(dma.DmaError, match="WAIT for the DMA of 4096 bytes from the buffer to "
                       "BAR2 offset 0x0 refused with ENOENT: no such transfer"):
        transfers[0].wait()


def test_cancel(engine):
    """cancel() takes back a running transfer (its wait then says CANCELLED
    with the bytes moved), is False once it has ended, and a forgotten one is
    an error that says so."""
    eng, driver, mem = engine
    driver.hold = True
    t = eng.submit(dma.TO_BAR, 0, bytearray(4096))
    assert t.cancel() is True
    assert t.cancel() is False
    driver.hold = False
    with pytest.raises(dma.TransferFailed, match=r"failed: cancelled before it ended \(status "
                       r"CANCELLED\); 0 of 4096 bytes moved") as e:
        t.wait()
    assert e.value.errno == errno.ECANCELED and e.value.status_name == "CANCELLED"
    done = eng.submit(dma.TO_BAR, 0, bytearray(4096))
    assert done.cancel() is False and done.wait() == 4096
    with pytest.raises(dma.DmaError, match="CANCEL of the DMA of 4096 bytes from the buffer to "
                       "BAR2 offset 0x0 refused with ENOENT: no such transfer"):
        done.cancel()


@pytest.mark.parametrize("state, text", [
    ("NONE", "a memory-only device has no DMA engine (engine none)"),
    ("ABSENT", "the board's gateware has no DMA engine (engine absent: CAPS.dma is 0)"),
    ("UNUSABLE", "(engine unusable); dmesg says why"),
])
def test_no_usable_engine(tmp_path, nodes, state, text):
    dev, driver = fake_board(tmp_path, nodes, bytearray(64 * KiB), state, dax="dax1.0")
    with pytest.raises(dma.NoEngineError) as e:
        dma.open_engine(dev)
    assert str(e.value).startswith(f"{dev.dma_node} (dax1.0): no usable DMA engine: ")
    assert text in str(e.value) and e.value.errno == errno.EOPNOTSUPP
    with dma.open_engine(dev, require_ready=False) as eng:
        assert eng.info().engine_name == state.lower() and not eng.ready
        with pytest.raises(dma.NoEngineError, match="no usable DMA engine"):
            eng.to_bar(0, b"abc")
    assert driver.submits == []


def test_a_driver_without_the_dma_node(tmp_path):
    dev = client._describe(fake_device(tmp_path), sysfs=tmp_path)
    assert dev.dma_device is None and dev.dma_node is None
    with pytest.raises(dma.NoEngineError, match="its p2p_dax driver has no DMA node"):
        dma.Engine(dev)
    pci = fake_device(tmp_path / "b")
    (pci / "p2p_dax" / "dma_device").write_text("p2p-dax0\n")
    (pci / "p2p_dax" / "dma_engine").write_text("ready\n")
    dev = client._describe(pci, sysfs=tmp_path / "b")
    assert (dev.dma_node, dev.dma_engine) == ("/dev/p2p-dax0", "ready")
    assert dev.as_dict()["dma_node"] == "/dev/p2p-dax0"
    dev = dataclasses.replace(dev, dma_device="p2p-dax-absent")
    with pytest.raises(dma.NoEngineError, match="/dev/p2p-dax-absent does not exist, though the "
                       "driver names it for 0000:03:00.0: udev .* did not create it"):
        dma.Engine(dev)


class FakeBar(transfer.RamBuffer):
    """A RamBuffer with a client.Bar's device, which the CLI cannot close."""

    def __init__(self, size, device=None):
        super().__init__(size)
        self.device = device

    def close(self):
        pass


@pytest.fixture
def boards(tmp_path, nodes, monkeypatch):
    """dax0.0: a board with an engine over its 256 KiB; dax1.0: a memory-only
    peer of 8 MiB. client.open_bar gives their memory by name."""
    bar, peer = FakeBar(256 * KiB), FakeBar(8 * MiB)
    bar.device, driver = fake_board(tmp_path, nodes, bar.buffer)
    peer.device, _ = fake_board(tmp_path, nodes, peer.buffer, "NONE", "dax1.0", "0000:05:00.0")
    by_name = {"dax0.0": bar, "dax1.0": peer}
    monkeypatch.setattr(client, "open_bar", lambda name: by_name[name])
    return bar, peer, driver


def test_cli_copy_via_dma(boards, tmp_path, capsys):
    """A file -> BAR2 -> a file, and BAR2 -> the peer and back, through the
    engine, each verified; the lines say which engine and the CRC-32."""
    bar, peer, driver = boards
    data = os.urandom(64 * KiB)
    src, out = tmp_path / "in.bin", tmp_path / "out.bin"
    src.write_bytes(data)
    assert cli.main(["copy", str(src), "dax0.0:4K", "--via", "dma", "--chunk", "16K"]) == 0
    assert bytes(bar.buffer[4096:4096 + len(data)]) == data
    assert cli.main(["copy", "dax0.0:4K", str(out), "--length", "64K", "--via", "dma"]) == 0
    assert out.read_bytes() == data
    assert cli.main(["copy", "dax0.0:4K", "dax1.0:4M", "--length", "64K", "--via", "dma"]) == 0
    assert bytes(peer.buffer[4 * MiB:4 * MiB + len(data)]) == data
    bar.buffer[4096:4096 + len(data)] = bytes(len(data))
    assert cli.main(["copy", "dax1.0:4M", "dax0.0:4K", "--length", "64K", "--via", "dma"]) == 0
    assert bytes(bar.buffer[4096:4096 + len(data)]) == data
    lines = capsys.readouterr().out.splitlines()
    crc = f"verified (CRC-32 {zlib.crc32(data):#010x})"
    assert lines[0].startswith(f"copied 65536 bytes {src} -> dax0.0:4K by the DMA engine of "
                               f"{bar.device.dma_node} in ") and lines[0].endswith(crc)
    assert all(line.endswith(crc) and "by the DMA engine" in line for line in lines), lines
    assert [d for d, _, _ in driver.submits] == [dma.TO_BAR] * 4 + [dma.FROM_BAR] * 2 + \
        [dma.TO_BAR]


def test_cli_copy_via_dma_errors(boards, tmp_path, capsys):
    bar, peer, driver = boards
    (tmp_path / "in.bin").write_bytes(bytes(64 * KiB))
    cases = [
        (["copy", str(tmp_path / "in.bin"), "dax1.0:0", "--via", "dma"],
         f"p2pdax: {peer.device.dma_node} (dax1.0): no usable DMA engine: a memory-only "
         "device has no DMA engine (engine none); move its data with the CPU or O_DIRECT "
         "(copy without --via dma), or make it the peer of a board's engine"),
        (["copy", "dax0.0:0", "dax0.0:64K", "--length", "4K", "--via", "dma"],
         "p2pdax: both ends are BAR memory of dax0.0: its DMA engine moves data between its "
         "BAR2 and another buffer; give a file or a peer's p2pmem:ADDRESS as the other end"),
        (["copy", str(tmp_path / "in.bin"), str(tmp_path / "o"), "--via", "dma"],
         "p2pdax: --via dma: one end must be BAR memory of a board with a DMA engine "
         "(DEV:OFFSET)"),
        (["copy", "dax0.0:0", str(tmp_path / "o"), "--length", "512K", "--via", "dma"],
         "p2pdax: 0x0 + 0x80000 is outside the RAM buffer of 262144 bytes"),
    ]
    for argv, message in cases:
        assert cli.main(argv) == 1, argv
        assert capsys.readouterr().err == message + "\n", argv
    # A failed transfer, to the peer and from a file staged in RAM (whose
    # buffer is closed while the error is on its way: nothing may hold it).
    for argv in (["dax0.0:0", "dax1.0:0", "--length", "4K"],
                 [str(tmp_path / "in.bin"), "dax0.0:0", "--chunk", "16K"]):
        driver.fail = lib.P2P_DAX_DMA_STATUS_COMPLETER_ABORT
        assert cli.main(["copy"] + argv + ["--via", "dma"]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "failed: completer abort" in err, err
    with pytest.raises(SystemExit) as e:
        cli.main(["copy", "a", "b", "--via", "engine"])
    assert e.value.code == 2
    assert "argument --via: invalid choice: 'engine' (choose from" in capsys.readouterr().err


def test_dma_copy_verification_catches_a_bad_byte(boards, tmp_path):
    """The engine writes one wrong byte: the CRC-32 of BAR2 read by the CPU differs."""
    bar, peer, driver = boards
    real = driver._submit

    def corrupt(s):
        rc = real(s)
        bar.buffer[s.offset + 7] ^= 1
        return rc
    driver._submit = corrupt
    src = tmp_path / "in.bin"
    src.write_bytes(os.urandom(8192))
    with dma.open_engine(bar.device) as eng:
        with pytest.raises(transfer.TransferError, match=r"verification failed: BAR2 of "
                           r"/dev/dax0.0 at 0x0 and .*in.bin at 0x0 differ \(CRC-32"):
            transfer.dma_copy(eng, transfer.FileEnd(str(src)), transfer.BufferEnd(bar), 8192)


def test_bench_dma_paths(tmp_path, nodes, capsys, monkeypatch):
    """The bench runs dma-read and dma-write over what the engine reaches (a
    2 MiB BAR mirroring 256 KiB), with the CPU's memcpy as their reference,
    and says so under the table."""
    bar = FakeBar(2 * MiB)
    bar.device, driver = fake_board(tmp_path, nodes, bar.buffer[:256 * KiB])
    bar.buffer[:256 * KiB] = os.urandom(256 * KiB)
    with dma.open_engine(bar.device) as eng:
        b = bench.Bench(bar, total=MiB, sizes=[64 * KiB, MiB], rounds=2, engine=eng)
        assert b.paths == ["cpu-read", "cpu-write", "dma-read", "dma-write"]
        assert b.dma_total == 256 * KiB and b.dma_sizes == (64 * KiB,)
        assert b.steps == (2 + 2 + 1 + 1) * 2 * 2
        rows = b.run()
    assert [(r.path, r.size) for r in rows][4:] == [("dma-read", 64 * KiB),
                                                    ("dma-write", 64 * KiB)]
    assert rows[4].reference == "memcpy BAR -> RAM" and rows[5].reference == "memcpy RAM -> BAR"
    assert all(r.mb_per_s > 0 and r.reference_mb_per_s > 0 for r in rows)
    assert {s[2] for s in driver.submits} == {64 * KiB}
    monkeypatch.setattr(client, "find", lambda name=None: bar.device)
    monkeypatch.setattr(client, "open_bar", lambda d: bar)
    assert cli.main(["bench", "dax0.0", "--total", "1M", "--sizes", "64K", "--rounds", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[:2] for line in lines[2:6]] == [
        ["cpu-read", "64K"], ["cpu-write", "64K"], ["dma-read", "64K"], ["dma-write", "64K"]]
    assert lines[6] == (f"dma: the engine reaches 256 KiB of the BAR ({bar.device.dma_node} "
                        "dma_window): the DMA paths move that much per pass")
    assert cli.main(["bench", "dax0.0", "--total", "64K", "--sizes", "64K", "--rounds", "1",
                     "--paths", "dma-write,dma-read"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[:2] for line in lines[2:]] == [["dma-read", "64K"],
                                                        ["dma-write", "64K"]]
