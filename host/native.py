"""The C helpers of host/_native_build.py, for the rest of the library.

Copies and checksums that touch a BAR mapping go through here: if the device
goes away while they run (unbind, hot removal), the kernel unmaps the BAR
and the access raises DeviceGoneError instead of killing the process with
SIGBUS.
"""

import errno
import os

try:
    from host._native import ffi, lib
except ImportError as e:       # a source tree that was never built
    raise ImportError("host._native is not built: run `pip install -e .` in the repository "
                      "(it needs gcc and zlib1g-dev)") from e
if not hasattr(lib, "p2p_dax_ioctl"):
    raise ImportError("host._native is older than host/_native_build.py: run `pip install -e .` "
                      "in the repository (or `make setup`) to build it again")


class DeviceGoneError(OSError):
    """The memory behind a mapping went away (SIGBUS): the device was unbound or removed."""

    def __init__(self, what):
        super().__init__(errno.ENXIO, f"{what}: the device went away during the access "
                         "(unbound or removed); nothing was written elsewhere")


def copy(dst, src, what="BAR"):
    """Copy memoryview src into memoryview dst (same length); return the CRC-32 of
    the bytes that landed in dst."""
    if len(dst) != len(src):
        raise ValueError(f"copy: {len(dst)} and {len(src)} bytes")
    crc = ffi.new("uint32_t *")
    if lib.p2p_dax_copy(ffi.from_buffer(dst, require_writable=True), ffi.from_buffer(src),
                       len(src), crc):
        raise DeviceGoneError(what)
    return crc[0]


def crc32(view, what="BAR"):
    """CRC-32 of memoryview view (the values zlib.crc32 gives)."""
    crc = ffi.new("uint32_t *")
    if lib.p2p_dax_crc32(ffi.from_buffer(view), len(view), crc):
        raise DeviceGoneError(what)
    return crc[0]


def memcpy(dst, src, chunk=1 << 20, what="BAR"):
    """Plain memcpy of memoryview src into dst (same length), `chunk` bytes a call."""
    if len(dst) != len(src):
        raise ValueError(f"memcpy: {len(dst)} and {len(src)} bytes")
    if lib.p2p_dax_memcpy(ffi.from_buffer(dst, require_writable=True), ffi.from_buffer(src),
                         len(src), chunk):
        raise DeviceGoneError(what)


def dio_read(fd, dst, chunk):
    """Read len(dst) bytes from offset 0 of fd into memoryview dst, pread() by
    pread() of `chunk` bytes, in C. Returns the bytes read (fewer at the end of
    the file); OSError on failure."""
    n = lib.p2p_dax_dio_read(fd, ffi.from_buffer(dst, require_writable=True), len(dst), chunk)
    if n < 0:
        raise OSError(-n, os.strerror(-n))
    return n


def ioctl(fd, request, arg):
    """ioctl(fd, request, arg) with arg a cffi pointer (a struct of
    driver/p2p_dax_ioctl.h): 0, or the errno. The GIL is released meanwhile."""
    return lib.p2p_dax_ioctl(fd, request, arg)
