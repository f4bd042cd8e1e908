"""Transfers between files and memory buffers, without a device: the same
code paths that move NVMe data into a BAR, with a RAM buffer in its place."""

import errno
import os

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
