"""host.native, the cffi helpers: built from the driver's header, copy and
checksum in one pass, and SIGBUS turned into an exception."""

import mmap
import os
import zlib

import pytest

from hw.spec import regmap
from host import native


def test_constants_come_from_the_driver_header():
    assert native.lib.P2P_DAX_MAGIC == regmap.MAGIC
    assert native.lib.P2P_DAX_REG_DMA_CONTROL == regmap.offset("DMA_CONTROL")
    assert native.lib.P2P_DAX_MSIX_VECTORS == regmap.MSIX_VECTORS


def test_copy_and_crc_match_zlib():
    data = os.urandom((3 << 20) + 5)          # more than one internal chunk, odd length
    out = bytearray(len(data))
    assert native.copy(memoryview(out), memoryview(data)) == zlib.crc32(data)
    assert out == data
    assert native.crc32(memoryview(data)) == zlib.crc32(data)
    with pytest.raises(ValueError):
        native.copy(memoryview(out)[1:], memoryview(data))


def test_sigbus_becomes_an_exception(tmp_path):
    """A shared mapping of a file that shrinks underneath it: the next access
    raises SIGBUS, as a BAR mapping does when its device goes away."""
    path = tmp_path / "shrinks"
    path.write_bytes(bytes(1 << 20))
    with open(path, "r+b") as f:
        m = mmap.mmap(f.fileno(), 1 << 20)
        view = memoryview(m)
        os.truncate(path, 0)
        out = bytearray(4096)
        with pytest.raises(native.DeviceGoneError, match="went away"):
            native.copy(memoryview(out), view[8192:12288], "test mapping")
        with pytest.raises(native.DeviceGoneError):
            native.copy(view[8192:12288], memoryview(out))
        with pytest.raises(native.DeviceGoneError):
            native.crc32(view[:4096])
        # The guard is gone afterwards and the process is fine.
        assert native.crc32(memoryview(b"abc")) == zlib.crc32(b"abc")
        view.release()
        m.close()
