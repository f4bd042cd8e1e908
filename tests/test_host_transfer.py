"""Transfers between files and memory buffers, without a device: the same
code paths that move NVMe data into a BAR, with a RAM buffer in its place."""

import errno
import os
import threading
import time

import pytest

from host import transfer
from host.transfer import BufferEnd, FileEnd, RamBuffer, TransferError

MiB = 1 << 20


@pytest.fixture
def source(tmp_path):
    path = tmp_path / "src.bin"
    data = os.urandom(3 * MiB)
    path.write_bytes(data)
    return path, data


@pytest.mark.parametrize("direct", [True, False])
def test_file_to_buffer_and_back(source, tmp_path, direct):
    path, data = source
    with RamBuffer(4 * MiB) as ram:
        r = transfer.copy(FileEnd(str(path), MiB), BufferEnd(ram, 8192), 2 * MiB,
                          chunk=256 * 1024, queue_depth=3, direct=direct)
        assert bytes(ram.buffer[8192:8192 + 2 * MiB]) == data[MiB:3 * MiB]
        assert r.length == 2 * MiB and r.crc32 is not None and r.mb_per_s > 0
        out = tmp_path / "out.bin"
        out.write_bytes(bytes(MiB))
        transfer.copy(BufferEnd(ram, 8192), FileEnd(str(out), 4096), 2 * MiB, direct=direct)
        assert out.read_bytes()[4096:4096 + 2 * MiB] == data[MiB:3 * MiB]


def test_buffer_to_buffer():
    with RamBuffer(MiB) as a, RamBuffer(MiB) as b:
        a.buffer[100:200] = bytes(range(100))
        transfer.copy(BufferEnd(a, 100), BufferEnd(b, 1), 100)
        assert bytes(b.buffer[1:101]) == bytes(range(100))


def test_verification_catches_a_bad_write(source, tmp_path, monkeypatch):
    path, data = source
    real = os.pwritev

    def flip_one_byte(fd, buffers, offset):
        bad = bytearray(buffers[0])
        bad[7] ^= 1
        return real(fd, [bad], offset)

    monkeypatch.setattr(transfer.os, "pwritev", flip_one_byte)
    with RamBuffer(MiB) as ram:
        ram.buffer[:MiB] = data[:MiB]
        with pytest.raises(TransferError, match="verification failed"):
            transfer.copy(BufferEnd(ram), FileEnd(str(tmp_path / "o.bin")), MiB, direct=False)


def test_bad_requests(source, tmp_path):
    path, _ = source
    with RamBuffer(MiB) as ram:
        with pytest.raises(TransferError, match="O_DIRECT needs offsets .* file offset 0x200"):
            transfer.copy(FileEnd(str(path), 512), BufferEnd(ram), 4096)
        with pytest.raises(TransferError, match="length 0x3e8"):
            transfer.copy(FileEnd(str(path)), BufferEnd(ram), 1000)
        with pytest.raises(ValueError, match="outside the RAM buffer"):
            transfer.copy(FileEnd(str(path)), BufferEnd(ram, 4096), MiB)
        with pytest.raises(ValueError, match="past its end"):
            transfer.copy(FileEnd(str(path), 3 * MiB - 4096), BufferEnd(ram), 8192)
        with pytest.raises(TransferError, match="not a peer transfer"):
            transfer.copy(FileEnd(str(path)), FileEnd(str(tmp_path / "x")), 4096)
        with pytest.raises(ValueError, match="positive length"):
            transfer.copy(FileEnd(str(path)), BufferEnd(ram), 0)


def test_o_direct_refused_names_the_buffered_path(source, monkeypatch):
    """A file system that refuses O_DIRECT (open fails with EINVAL, as tmpfs did
    before Linux 6.6): the error says so and names the buffered path, which works."""
    path, data = source
    real_open = os.open

    def no_direct(p, flags, *mode):
        if flags & os.O_DIRECT:
            raise OSError(errno.EINVAL, "Invalid argument", p)
        return real_open(p, flags, *mode)

    monkeypatch.setattr(transfer.os, "open", no_direct)
    with RamBuffer(MiB) as ram:
        with pytest.raises(TransferError, match="refuses O_DIRECT; use the buffered path"):
            transfer.copy(FileEnd(str(path)), BufferEnd(ram), 4096)
        transfer.copy(FileEnd(str(path)), BufferEnd(ram), 4096, direct=False)
        assert bytes(ram.buffer[:4096]) == data[:4096]


@pytest.mark.parametrize("direct", [True, False])
def test_relay_file_to_file_through_a_buffer(source, tmp_path, direct):
    """Each chunk passes through its worker's slot of the buffer: the data
    arrives whole, and only queue depth x chunk bytes of the buffer are used."""
    path, data = source
    out = tmp_path / "out.bin"
    out.write_bytes(bytes(4 * MiB))
    with RamBuffer(MiB) as ram:
        ram.buffer[:] = b"\xa5" * MiB
        r = transfer.relay(FileEnd(str(path), 4096), FileEnd(str(out), 8192),
                           BufferEnd(ram, 64 * 1024), 2 * MiB + 4096, chunk=128 * 1024,
                           queue_depth=3, direct=direct)
        assert r.length == 2 * MiB + 4096 and r.crc32 is not None
        assert out.read_bytes()[8192:8192 + 2 * MiB + 4096] == data[4096:2 * MiB + 8192]
        used = 64 * 1024 + 3 * 128 * 1024
        assert bytes(ram.buffer[:64 * 1024]) == b"\xa5" * (64 * 1024)
        assert bytes(ram.buffer[used:]) == b"\xa5" * (MiB - used)
        assert bytes(ram.buffer[64 * 1024:used]) != b"\xa5" * (used - 64 * 1024)


def test_relay_verification_and_refusals(source, tmp_path, monkeypatch):
    path, data = source
    out = str(tmp_path / "out.bin")
    with RamBuffer(256 * 1024) as ram:
        with pytest.raises(ValueError, match=r"outside the RAM buffer of 262144 bytes: "
                           r"the relay uses 0x40000 bytes of it from the offset on "
                           r"\(4 slot\(s\) of 0x10000 bytes: queue depth x chunk\)"):
            transfer.relay(FileEnd(str(path)), FileEnd(out), BufferEnd(ram, 4096), MiB,
                           chunk=64 * 1024, queue_depth=4)
        with pytest.raises(ValueError, match="past its end"):
            transfer.relay(FileEnd(str(path), 2 * MiB), FileEnd(out), BufferEnd(ram), 2 * MiB,
                           chunk=64 * 1024)
        with pytest.raises(ValueError, match="overlaps the destination range"):
            transfer.relay(FileEnd(str(path)), FileEnd(str(path), 64 * 1024), BufferEnd(ram),
                           MiB, chunk=64 * 1024)
        with pytest.raises(TransferError, match="O_DIRECT needs offsets .* file offset 0x200"):
            transfer.relay(FileEnd(str(path)), FileEnd(out, 512), BufferEnd(ram), 4096)
        with pytest.raises(TransferError, match="give two files and a DEV:OFFSET"):
            transfer.relay(FileEnd(str(path)), BufferEnd(ram), BufferEnd(ram), 4096)
        # One chunk changed on its way out of the buffer: the check names both ends.
        real = os.pwritev

        def flip_one_byte(fd, buffers, offset):
            bad = bytearray(buffers[0])
            bad[7] ^= offset == 64 * 1024
            return real(fd, [bad], offset)

        monkeypatch.setattr(transfer.os, "pwritev", flip_one_byte)
        with pytest.raises(TransferError, match=f"verification failed: {path} at 0x0 and "
                           f"{out} at 0x0 differ"):
            transfer.relay(FileEnd(str(path)), FileEnd(out), BufferEnd(ram), MiB,
                           chunk=64 * 1024, queue_depth=2, direct=False)


def test_relay_stops_at_the_first_failed_io(source, tmp_path, monkeypatch):
    """A failed read ends every worker's loop: the other worker finishes the
    chunk it holds and takes no other."""
    path, _ = source
    real, writes, holding = os.preadv, [], threading.Event()

    def fail_first(fd, buffers, offset):
        if offset == 0:                 # worker 0's first chunk, once worker 1 holds one
            assert holding.wait(10)
            raise OSError(5, "Input/output error")
        holding.set()
        time.sleep(0.5)                 # worker 1 holds its chunk until after the failure
        return real(fd, buffers, offset)

    monkeypatch.setattr(transfer.os, "preadv", fail_first)
    real_write = os.pwritev
    monkeypatch.setattr(transfer.os, "pwritev",
                        lambda fd, b, off: writes.append(off) or real_write(fd, b, off))
    with RamBuffer(MiB) as ram, pytest.raises(OSError, match="Input/output error"):
        transfer.relay(FileEnd(str(path)), FileEnd(str(tmp_path / "o")), BufferEnd(ram),
                       3 * MiB, chunk=64 * 1024, queue_depth=2, direct=False)
    assert writes == [64 * 1024]


@pytest.mark.parametrize("queue_depth", [1, 3])
def test_a_failed_io_leaves_the_buffer_closable(source, monkeypatch, queue_depth):
    """The I/O error reaches the caller, and the buffer closes while it is on
    its way (as in `with open_bar(...)`): no view of it is left in the
    error's traceback, which would turn the error into a BufferError."""
    path, _ = source

    def failed(fd, buffers, offset):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(transfer.os, "preadv", failed)
    with pytest.raises(OSError, match="Input/output error"):
        with RamBuffer(MiB) as ram:
            transfer.copy(FileEnd(str(path)), BufferEnd(ram), MiB, chunk=64 * 1024,
                          queue_depth=queue_depth, direct=False)
    with pytest.raises(OSError, match="Input/output error"):
        with RamBuffer(MiB) as ram:
            transfer.relay(FileEnd(str(path)), FileEnd(str(path) + ".out"), BufferEnd(ram),
                           MiB, chunk=64 * 1024, queue_depth=queue_depth, direct=False)


def test_a_short_io_is_an_error(source, tmp_path, monkeypatch):
    """A read that moves fewer bytes than asked (a device that shrank under
    the transfer) fails the copy or relay, naming the file and offset."""
    path, _ = source
    monkeypatch.setattr(transfer.os, "preadv", lambda fd, buffers, offset: 100)
    with RamBuffer(MiB) as ram:
        with pytest.raises(TransferError, match=f"{path}: short read at 0x10000: 100 of "
                           "65536 bytes"):
            transfer.copy(FileEnd(str(path), 64 * 1024), BufferEnd(ram), 64 * 1024,
                          direct=False)
        with pytest.raises(TransferError, match=f"{path}: short read at 0x0: 100 of 65536"):
            transfer.relay(FileEnd(str(path)), FileEnd(str(tmp_path / "o")), BufferEnd(ram),
                           64 * 1024, chunk=64 * 1024, direct=False)
