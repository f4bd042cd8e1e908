"""Peer transfers between files or block devices and BAR memory.

A transfer moves `length` bytes from a source to a destination, each one of:
- a file or block device at an offset, read or written with O_DIRECT, so the
  device (an NVMe) DMAs straight into or out of the BAR's pages;
- a buffer in memory at an offset: a device's BAR (client.Bar) or, as the
  reference a benchmark compares with, an ordinary RAM buffer (RamBuffer).

Buffer to buffer is a CPU copy. The I/O goes in chunks, `queue_depth` of
them in flight at once (threads: os.preadv/pwritev release the GIL), and
is verified afterwards unless verify=False: a CRC-32 of what the source
holds against one of what the destination holds.

relay() moves data from one file or block device to another through BAR
memory, as p2pmem-test does: each chunk is read into a slot of the BAR and
written out of it, so with O_DIRECT one NVMe DMAs into the BAR and the other
DMAs out of it, and the data never passes through the CPU or host RAM.

Copies and checksums of memory go through host.native: a device that goes
away mid-transfer raises DeviceGoneError (O_DIRECT into its unmapped pages
fails with EFAULT, an OSError).

dma_copy() moves the data with a board's own DMA engine (host/dma.py)
instead: between its BAR2 and RAM (a buffer, or a file staged through one)
or a peer's BAR (peer to peer), verified the same way.
"""

import contextlib
import errno
import mmap
import os
import stat
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from host import native

DIRECT_ALIGN = 4096     # O_DIRECT: buffer address, file offset and length (last chunk: 512)


class TransferError(RuntimeError):
    pass


class RamBuffer:
    """Page-aligned anonymous memory with the interface of client.Bar.

    huge: True or False asks the kernel for transparent huge pages or for
    none (madvise), None leaves its default. A benchmark's reference takes the
    page size of the BAR mapping it stands beside: under QEMU's TCG, memcpy
    on huge pages can be ten times slower, and pinning for O_DIRECT differs."""

    def __init__(self, size, huge=None):
        self.size = size
        self._map = mmap.mmap(-1, size, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS,
                              mmap.PROT_READ | mmap.PROT_WRITE)
        if huge is not None:
            try:
                self._map.madvise(mmap.MADV_HUGEPAGE if huge else mmap.MADV_NOHUGEPAGE)
            except OSError:         # a kernel without transparent huge pages
                pass
        self.buffer = memoryview(self._map)
        self.name = f"RAM buffer of {size} bytes"

    def check(self, offset, length):
        if offset < 0 or length < 0 or offset + length > self.size:
            raise ValueError(f"{offset:#x} + {length:#x} is outside the {self.name}")

    def close(self):
        self.buffer.release()
        self._map.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


@dataclass
class FileEnd:
    """A file or block device, at an offset."""
    path: str
    offset: int = 0

    def size(self):
        st = os.stat(self.path)
        if stat.S_ISBLK(st.st_mode):
            fd = os.open(self.path, os.O_RDONLY)
            try:
                return os.lseek(fd, 0, os.SEEK_END)
            finally:
                os.close(fd)
        return st.st_size


@dataclass
class BufferEnd:
    """A memory buffer (client.Bar or RamBuffer), at an offset."""
    buffer: object
    offset: int = 0


@dataclass
class Result:
    length: int
    seconds: float
    crc32: int | None        # of the data moved; None when not verified

    @property
    def mb_per_s(self):
        return self.length / self.seconds / 1e6 if self.seconds else float("inf")


def open_file(end, write, direct):
    """An fd for a FileEnd; TransferError when its file system refuses O_DIRECT."""
    flags = (os.O_WRONLY | os.O_CREAT if write else os.O_RDONLY) | (os.O_DIRECT if direct else 0)
    try:
        return os.open(end.path, flags, 0o644)
    except OSError as e:
        if direct and e.errno == errno.EINVAL:
            raise TransferError(f"{end.path}: its file system refuses O_DIRECT; "
                                "use the buffered path (direct=False, --buffered)") from None
        raise


def _check_direct(end, buf, length):
    bad = [f"{name} {value:#x}" for name, value in
           (("file offset", end.offset), ("buffer offset", buf.offset))
           if value % DIRECT_ALIGN]
    if length % 512:
        bad.append(f"length {length:#x}")
    if bad:
        raise TransferError(f"O_DIRECT needs offsets that are multiples of {DIRECT_ALIGN} and "
                            f"a length that is a multiple of 512: {', '.join(bad)}; "
                            "or use the buffered path (direct=False, --buffered)")


def _check_sizes(length, chunk, queue_depth):
    if length <= 0:
        raise ValueError(f"length {length}: give a positive length")
    if chunk <= 0 or chunk % DIRECT_ALIGN or queue_depth < 1:
        raise ValueError(f"chunk {chunk} must be a positive multiple of {DIRECT_ALIGN}, "
                         f"queue depth {queue_depth} at least 1")


def _check_source(end, length):
    """ValueError unless the FileEnd `end` holds `length` bytes from its offset."""
    size = end.size()
    if end.offset + length > size:
        raise ValueError(f"{end.path} holds {size} bytes: {end.offset:#x} + {length:#x} "
                         "is past its end")


def _io_at(fd, part, pos, write, path):
    """One O_DIRECT (or buffered) read into, or write from, the view `part` at
    file offset pos; TransferError if it moves fewer bytes."""
    done = os.pwritev(fd, [part], pos) if write else os.preadv(fd, [part], pos)
    if done != part.nbytes:
        raise TransferError(f"{path}: short {'write' if write else 'read'} at {pos:#x}: "
                            f"{done} of {part.nbytes} bytes")


def _verify(crc, where, other_crc, other_where):
    """TransferError unless both ends hold data of one CRC-32 (None: a short file)."""
    if other_crc != crc:
        raise TransferError(f"verification failed: {where} and {other_where} differ "
                            f"(CRC-32 {_shown(crc)} vs {_shown(other_crc)})")


def _crc(view):
    return native.crc32(view)


def copy(src, dst, length, *, chunk=1 << 20, queue_depth=4, direct=True, verify=True):
    """Move `length` bytes from src to dst (FileEnd or BufferEnd each, not both
    files). Returns a Result; raises TransferError, ValueError (ranges) or
    OSError (I/O)."""
    _check_sizes(length, chunk, queue_depth)
    if isinstance(src, FileEnd) and isinstance(dst, FileEnd):
        raise TransferError("file to file is not a peer transfer: one end must be a BAR "
                            "(DEV:OFFSET) or a buffer, or relay the data through one "
                            "(relay(), --through DEV:OFFSET)")
    for end in (src, dst):
        if isinstance(end, BufferEnd):
            end.buffer.check(end.offset, length)
        elif end is src:
            _check_source(end, length)

    t0 = time.monotonic()
    if isinstance(src, BufferEnd) and isinstance(dst, BufferEnd):
        with src.buffer.buffer[src.offset:src.offset + length] as sv, \
                dst.buffer.buffer[dst.offset:dst.offset + length] as dv:
            crc = native.copy(dv, sv)
            seconds = time.monotonic() - t0
            if verify and _crc(sv) != crc:
                raise TransferError("verification failed: the destination differs")
        return Result(length, seconds, crc if verify else None)

    file_end, buf_end = (src, dst) if isinstance(src, FileEnd) else (dst, src)
    to_buffer = file_end is src
    if direct:
        _check_direct(file_end, buf_end, length)
    fd = open_file(file_end, write=not to_buffer, direct=direct)
    view = buf_end.buffer.buffer

    def one(start):
        n = min(chunk, length - start)
        pos = file_end.offset + start
        # Released here, so that an error's traceback keeps no view of the
        # buffer alive (the buffer could not be closed while it lived).
        with view[buf_end.offset + start:buf_end.offset + start + n] as part:
            _io_at(fd, part, pos, not to_buffer, file_end.path)

    try:
        if queue_depth == 1:        # no thread hand-off per chunk (about 8% at 1 MiB)
            for s in range(0, length, chunk):
                one(s)
        else:
            with ThreadPoolExecutor(max_workers=queue_depth) as pool:
                for f in [pool.submit(one, s) for s in range(0, length, chunk)]:
                    f.result()
        if not to_buffer:
            os.fsync(fd)
        seconds = time.monotonic() - t0
    finally:
        os.close(fd)

    crc = None
    if verify:
        crc = _crc(view[buf_end.offset:buf_end.offset + length])
        _verify(_file_crc(file_end, length), f"{file_end.path} at {file_end.offset:#x}",
                crc, "the buffer")
    return Result(length, seconds, crc)


def relay(src, dst, through, length, *, chunk=1 << 20, queue_depth=4, direct=True,
          verify=True):
    """Move `length` bytes from one FileEnd to another through BAR memory
    (`through`, a BufferEnd): `queue_depth` workers, each with its own slot
    of `chunk` bytes in the buffer from through.offset on, each reading a
    chunk of src into its slot and writing it to dst, chunk after chunk.
    Verified like copy(): the CRC-32 of the source's range against that of
    the destination's. Returns a Result; raises TransferError, ValueError
    (ranges) or OSError (I/O)."""
    _check_sizes(length, chunk, queue_depth)
    if not (isinstance(src, FileEnd) and isinstance(dst, FileEnd)
            and isinstance(through, BufferEnd)):
        raise TransferError("a relay moves data from a file or block device to another "
                            "through BAR memory: give two files and a DEV:OFFSET")
    chunks = -(-length // chunk)
    slots = min(queue_depth, chunks)
    window = min(slots * chunk, length)
    try:
        through.buffer.check(through.offset, window)
    except ValueError as e:
        raise ValueError(f"{e}: the relay uses {window:#x} bytes of it from the offset on "
                         f"({slots} slot(s) of {chunk:#x} bytes: queue depth x chunk); give "
                         "a smaller chunk or queue depth, or a lower offset") from None
    _check_source(src, length)
    if _same_file(src.path, dst.path) and \
            src.offset < dst.offset + length and dst.offset < src.offset + length:
        raise ValueError(f"{src.path}: the source range {src.offset:#x} + {length:#x} "
                         f"overlaps the destination range at {dst.offset:#x}")
    if direct:
        _check_direct(src, through, length)
        _check_direct(dst, through, length)
    view = through.buffer.buffer
    fds = []
    failed = threading.Event()

    def worker(slot):
        base = through.offset + slot * chunk
        for start in range(slot * chunk, length, slots * chunk):
            if failed.is_set():
                return
            n = min(chunk, length - start)
            with view[base:base + n] as part:       # released at once: see copy()
                try:
                    _io_at(fds[0], part, src.offset + start, False, src.path)
                    _io_at(fds[1], part, dst.offset + start, True, dst.path)
                except BaseException:
                    failed.set()
                    raise

    t0 = time.monotonic()
    try:
        fds.append(open_file(src, write=False, direct=direct))
        fds.append(open_file(dst, write=True, direct=direct))
        with ThreadPoolExecutor(max_workers=slots) as pool:
            for f in [pool.submit(worker, s) for s in range(slots)]:
                f.result()
        os.fsync(fds[1])
        seconds = time.monotonic() - t0
    finally:
        for fd in fds:
            os.close(fd)

    crc = None
    if verify:
        crc = _file_crc(src, length)
        _verify(crc, f"{src.path} at {src.offset:#x}", _file_crc(dst, length),
                f"{dst.path} at {dst.offset:#x}")
    return Result(length, seconds, crc)


def _same_file(a, b):
    """Whether two paths name one file or one block device."""
    try:
        sa, sb = os.stat(a), os.stat(b)
    except FileNotFoundError:
        return False
    if stat.S_ISBLK(sa.st_mode) and stat.S_ISBLK(sb.st_mode):
        return sa.st_rdev == sb.st_rdev
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def _shown(crc):
    return "a short file" if crc is None else f"{crc:#010x}"


def _buffer_name(buffer):
    """A RamBuffer's name, a client.Bar's dax node."""
    return getattr(buffer, "name", None) or buffer.device.dax_node


def _file_crc(end, length):
    """CRC-32 of `length` bytes of a FileEnd, read back through the page cache
    (O_DIRECT writes bypassed it); None if the file is shorter."""
    with open(end.path, "rb", buffering=0) as f:
        f.seek(end.offset)
        crc, left = 0, length
        while left:
            block = f.read(min(left, 8 << 20))
            if not block:
                return None
            crc, left = zlib.crc32(block, crc), left - len(block)
    return crc


def _file_io(fd, view, offset, write):
    """All of view from (or to) fd at offset, through the page cache."""
    done = 0
    while done < len(view):
        part = view[done:done + (8 << 20)]
        try:
            n = os.pwritev(fd, [part], offset + done) if write else \
                os.preadv(fd, [part], offset + done)
        finally:
            part.release()
        if n <= 0:
            raise TransferError(f"short {'write' if write else 'read'} at {offset + done:#x}")
        done += n


def dma_copy(engine, src, dst, length, *, chunk=1 << 20, queue_depth=4, verify=True,
             timeout=60.0):
    """Move `length` bytes with a board's DMA engine (a dma.Engine). One end is
    the board's BAR2: a BufferEnd of a client.Bar of the engine's device. The
    other is a BufferEnd (a RamBuffer, or a peer's client.P2pMem: the engine
    reads or writes the peer's BAR, peer to peer) or a FileEnd, staged in
    RAM (read whole before, written whole after, through the page cache).
    `chunk` bytes per SUBMIT, `queue_depth` in flight, `timeout` seconds for
    each (dma.Engine.transfer). Result.seconds is the engine's part only.
    Verified like copy(): the CRC-32 of what the source holds against that of
    what the destination holds, the board's BAR2 read by the CPU through its
    mapping. Raises TransferError, ValueError (ranges), dma.DmaError."""
    from host import dma
    if length <= 0:
        raise ValueError(f"length {length}: give a positive length")
    dev = engine.device

    def is_board(end):
        return isinstance(end, BufferEnd) and \
            getattr(getattr(end.buffer, "device", None), "address", None) == dev.address

    if is_board(src) and is_board(dst):
        raise TransferError(f"both ends are BAR memory of {dev.dax_device}: its DMA engine "
                            "moves data between its BAR2 and another buffer; give a file or "
                            "a peer's p2pmem:ADDRESS as the other end")
    if not (is_board(src) or is_board(dst)):
        raise TransferError(f"neither end is BAR memory of {dev.dax_device}, whose DMA engine "
                            f"this is: give it as {dev.dax_device}:OFFSET at one end")
    to_bar = is_board(dst)
    board, other = (dst, src) if to_bar else (src, dst)
    board.buffer.check(board.offset, length)
    engine.check(board.offset, length)
    if isinstance(other, BufferEnd):
        other.buffer.check(other.offset, length)
    elif not to_bar and other.offset < 0:
        raise ValueError(f"file offset {other.offset}: give one of 0 or more")
    elif to_bar:
        _check_source(other, length)

    what = dev.dax_node
    with contextlib.ExitStack() as stack:
        if isinstance(other, FileEnd):
            staging = stack.enter_context(RamBuffer(length))
            view = staging.buffer[:length]
        else:
            view = other.buffer.buffer[other.offset:other.offset + length]
        stack.callback(view.release)
        bar_view = board.buffer.buffer[board.offset:board.offset + length]
        stack.callback(bar_view.release)
        fd = None
        if isinstance(other, FileEnd):
            fd = open_file(other, write=not to_bar, direct=False)
            stack.callback(os.close, fd)
            if to_bar:
                _file_io(fd, view, other.offset, write=False)
        t0 = time.monotonic()
        engine.transfer(dma.TO_BAR if to_bar else dma.FROM_BAR, board.offset, view,
                        chunk=chunk, queue_depth=queue_depth, timeout=timeout)
        seconds = time.monotonic() - t0
        if fd is not None and not to_bar:
            _file_io(fd, view, other.offset, write=True)
            os.fsync(fd)
        crc = None
        if verify:
            crc = native.crc32(bar_view, what)
            if isinstance(other, FileEnd):
                other_crc, where = _file_crc(other, length), other.path
            else:
                where = _buffer_name(other.buffer)
                other_crc = native.crc32(view, where)
            _verify(crc, f"BAR2 of {what} at {board.offset:#x}", other_crc,
                    f"{where} at {other.offset:#x}")
    return Result(length, seconds, crc)
