"""A board's DMA engine from user space: /dev/p2p-dax<N> and its ioctls
(INFO, SUBMIT, WAIT and CANCEL of driver/p2p_dax_ioctl.h, whose structs and constants
host._native compiles from the header itself).

    from host import client, dma
    with dma.open_engine("dax0.0") as engine:
        print(engine.info().engine_name)
        engine.to_bar(0, data)                      # a buffer -> BAR2 offset 0
        engine.from_bar(0, out)                     # BAR2 offset 0 -> a buffer
        with client.open_p2pmem("0000:04:00.0", len(out)) as peer:  # a peer's p2pmem
            engine.from_bar(0, peer.buffer)         # peer to peer, by the kernel's rules

A buffer is any contiguous object with the buffer protocol: bytes (to the
BAR only), bytearray, mmap, a memoryview of one (a client.Bar's buffer or a
slice of it), a numpy array. The driver pins it and maps it for the board;
the engine is never given an address but the buffer's own.

A transfer is submitted, then waited for (its end is the engine's
interrupt). transfer() does both, in pieces of `chunk` bytes with
`queue_depth` of them submitted at once; submit() and Transfer.wait() are
the two halves. Errors are DmaError, an OSError whose message names the
problem and the way out:
- NoEngineError: the device has no engine that can be used (a memory-only
  device, gateware without one, or one the driver gave up on);
- TransferFailed: the device ended the transfer with an error status
  (completer abort, completion timeout, ...): `status_name`, `bytes` moved,
  `error_offset`;
- DmaTimeout: still running after the timeout; the buffer stays pinned until
  the transfer ends: keep it alive and wait again (`transfers`);
- DmaError itself: the driver refused a request; `errno` and the message
  say why.
"""

import errno
import os
import time
import traceback
from dataclasses import make_dataclass

from host import client, native
from host.native import ffi, lib

TO_BAR = lib.P2P_DAX_DMA_TO_BAR         # buffer -> BAR2: the engine reads the buffer
FROM_BAR = lib.P2P_DAX_DMA_FROM_BAR     # BAR2 -> buffer: the engine writes the buffer
DEFAULT_TIMEOUT = 60.0                  # seconds a transfer's piece may take


def _constants(prefix):
    """{value: NAME} of the header's constants P2P_DAX_<prefix>NAME."""
    return {getattr(lib, name): name[len(prefix):] for name in dir(lib)
            if name.startswith(prefix)}


# As the driver's sysfs attribute dma_engine names them: none, absent, unusable, ready.
ENGINES = {value: name.lower() for value, name in _constants("P2P_DAX_ENGINE_").items()}
STATUSES = _constants("P2P_DAX_DMA_STATUS_")     # {2: "COMPLETER_ABORT", ...}

# What each status of the header means; tests/test_host_dma.py checks that
# every status the header defines has its text.
STATUS_TEXT = {
    "OK": "ok",
    "UNSUPPORTED_REQUEST": "unsupported request: the target answered the engine with UR "
                           "(no device claims that bus address, or it refuses the access)",
    "COMPLETER_ABORT": "completer abort: the target answered the engine with CA",
    "TIMEOUT": "completion timeout: the target did not answer the engine's read in time",
    "POISONED": ("poisoned completion: the target answered with poisoned data, "
                 "or the card received it corrupt"),
    "BAD_COMPLETION": "bad completion: a completion did not match the engine's request",
    "BAD_DESCRIPTOR": "bad descriptor: the engine refused a descriptor the driver gave it",
    "ABORTED": "aborted: the engine made no progress for the driver's dma_deadline_ms "
               "(a target that never answers, or bus mastering off; see dmesg)",
    "BAD_RESULT": "bad result: the engine's result was not what the driver expected "
                  "(see dmesg)",
    "GONE": "board gone: it was unbound or removed before the transfer ended",
    "CANCELLED": "cancelled before it ended",
    "RUNNING": "still running",
}

# What SUBMIT's errnos mean (driver/p2p_dax_ioctl.h); the library checks
# ranges and lengths itself first, so that most never reach the driver.
SUBMIT_ERRORS = {
    errno.EINVAL: "the request is malformed (direction, a length of 0 or over max_transfer, "
                  "or an address range that wraps)",
    errno.ERANGE: "the range is beyond what the engine reaches for users (dma_window): the "
                  "dax part of BAR2, within its memory; the p2pmem part is the kernel's",
    errno.EOPNOTSUPP: "the device has no usable DMA engine",
    errno.EFAULT: "the buffer is not mapped in this process (or it is read-only, and a "
                  "transfer from BAR2 writes it)",
    errno.EAGAIN: "this open file has max_transfers transfers not yet waited for, or the "
                  "board's node is at its limits for all users (device_max_transfers, "
                  "max_pinned): wait for a transfer first",
    errno.ENOMEM: "the buffer would take this process past its locked-memory limit "
                  "(pinned pages count as mlock: raise `ulimit -l`), or the kernel is "
                  "out of memory",
    errno.EXDEV: "the buffer is a PCI device's BAR mapped without P2PDMA (a peer's or this "
                 "board's dax device): the kernel would map it as RAM, past its P2P checks; "
                 "use the peer's p2pmem (p2pmem/allocate) on a kernel with P2PDMA",
    errno.EREMOTEIO: "the kernel's P2P rules do not let this board reach the peer's p2pmem "
                     "(no common switch, ACS redirecting peer traffic, or a host bridge not "
                     "on the kernel's list): see dmesg",
    errno.EIO: "the kernel refused to map the buffer for the board (an IOMMU refusal: "
               "see dmesg)",
    errno.ENODEV: "the board was unbound or removed: close the engine, and open it again "
                  "once the board is back",
}
CANCEL_ERRORS = {
    errno.EALREADY: "nothing left to cancel: it has ended, or all of it is in the engine",
    errno.ENOENT: "no such transfer in this open file (never submitted, or already waited for)",
    errno.EINVAL: "the request is malformed (flags or reserved members not zero)",
}
WAIT_ERRORS = {
    errno.ENOENT: "no such transfer in this open file (never submitted, or already waited for)",
    errno.EBUSY: "another thread is waiting for this transfer",
    errno.EINVAL: "the request is malformed (flags or reserved members not zero)",
    errno.ENODEV: SUBMIT_ERRORS[errno.ENODEV],
}

_INFO_FIELDS = [name for name, _ in ffi.typeof("struct p2p_dax_info").fields
                if name != "reserved"]

Info = make_dataclass("Info", _INFO_FIELDS, frozen=True, namespace={
    "__doc__": "What INFO says of a DMA node: the members of struct p2p_dax_info "
               "(driver/p2p_dax_ioctl.h), reserved ones left out.",
    "__module__": __name__,
    "engine_name": property(lambda self: ENGINES.get(self.engine, f"unknown ({self.engine})"),
                            doc="none, absent, unusable or ready, as sysfs dma_engine says"),
    "ready": property(lambda self: self.engine == lib.P2P_DAX_ENGINE_READY,
                      doc="the engine can move data"),
})


class DmaError(OSError):
    """The driver refused a request (errno says which), or a transfer failed."""

    def __str__(self):
        return self.strerror


class NoEngineError(DmaError):
    """The device has no DMA engine that can be used."""


class TransferFailed(DmaError):
    """The device ended a transfer with an error status."""

    def __init__(self, err, message, status, moved, error_offset):
        super().__init__(err, message)
        self.status, self.status_name = status, STATUSES.get(status, str(status))
        self.bytes, self.error_offset = moved, error_offset


class DmaTimeout(DmaError):
    """Transfers still running after the timeout: their buffers stay pinned
    and written to until they end; wait for them again (`transfers`)."""

    def __init__(self, message, transfers):
        super().__init__(errno.ETIMEDOUT, message)
        self.transfers = transfers


def _describe(direction, offset, length):
    if direction == TO_BAR:
        return f"DMA of {length} bytes from the buffer to BAR2 offset {offset:#x}"
    return f"DMA of {length} bytes from BAR2 offset {offset:#x} to the buffer"


def _flat(view):
    """A memoryview as bytes, one dimension (a new view: release it)."""
    if not view.c_contiguous:
        raise ValueError("the DMA buffer is not contiguous: give a contiguous buffer "
                         "(bytearray, mmap, a plain slice of one)")
    return view.cast("B")


class _Pinned:
    """A buffer as the bytes SUBMIT takes: their address and length, and the
    Python references that keep the memory alive while the engine uses it."""

    def __init__(self, buffer, writable):
        views = [memoryview(buffer)]
        try:
            views.append(_flat(views[0]))
            if writable and views[-1].readonly:
                raise ValueError("a transfer from BAR2 writes its buffer: give a writable "
                                 "one (bytearray, mmap, a memoryview of one), not bytes")
            self.ptr = ffi.from_buffer(views[-1], require_writable=writable)
        except BaseException:
            for v in reversed(views):
                v.release()
            raise
        self.views = views
        self.addr = int(ffi.cast("uintptr_t", self.ptr))
        self.length = views[-1].nbytes

    def release(self):
        if self.views:
            ffi.release(self.ptr)
            for v in reversed(self.views):
                v.release()
            self.views = None


class Transfer:
    """One submitted transfer, not yet waited for."""

    def __init__(self, engine, ident, direction, offset, pinned):
        self.engine, self.id = engine, ident
        self.direction, self.offset, self.length = direction, offset, pinned.length
        self._pinned = pinned

    def __repr__(self):
        return f"<Transfer {self.id}: {_describe(self.direction, self.offset, self.length)}>"

    def cancel(self):
        """Queue no more of this transfer; True if some of it was dropped. What
        is in the engine still runs: wait() then raises TransferFailed (status
        CANCELLED) with the bytes moved."""
        c = ffi.new("struct p2p_dax_dma_cancel *", {"id": self.id})
        err = native.ioctl(self.engine._fd, lib.P2P_DAX_IOC_CANCEL, c)
        if err == errno.EALREADY:
            return False
        if err:
            what = _describe(self.direction, self.offset, self.length)
            raise DmaError(err, f"{self.engine.node}: CANCEL of the {what} refused with "
                           f"{errno.errorcode.get(err, err)}: "
                           f"{CANCEL_ERRORS.get(err, os.strerror(err))}")
        return True

    def wait(self, timeout=DEFAULT_TIMEOUT):
        """Wait up to `timeout` seconds (None: no limit, 0: do not sleep) for
        the end; return the bytes moved. TransferFailed if the device ended
        it with an error; DmaTimeout if it is still running (wait again)."""
        eng = self.engine
        w = ffi.new("struct p2p_dax_dma_wait *")
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            w.id = self.id
            if deadline is None:
                w.timeout_ms = lib.P2P_DAX_WAIT_FOREVER
            else:
                left = max(0.0, deadline - time.monotonic())
                w.timeout_ms = min(int(left * 1000 + 0.999), lib.P2P_DAX_WAIT_FOREVER - 1)
            err = native.ioctl(eng._fd, lib.P2P_DAX_IOC_WAIT, w)
            if err != errno.EINTR:      # a signal: its Python handler runs, then on
                break
        what = _describe(self.direction, self.offset, self.length)
        if err == errno.ETIMEDOUT and not w.done:
            raise DmaTimeout(f"{eng.node}: {what}: still running after {timeout:g} s; the "
                             "buffer stays in use until it ends: wait again, or give a "
                             "longer timeout", [self])
        if err in (errno.ENOENT, errno.EBUSY, errno.EINVAL):
            raise DmaError(err, f"{eng.node}: WAIT for the {what} refused with "
                           f"{errno.errorcode[err]}: {WAIT_ERRORS[err]}")
        if w.done or err == errno.ENODEV:   # ended (or cut off): the buffer is free
            self._pinned.release()
        if err == 0 or (w.done and w.status == lib.P2P_DAX_DMA_STATUS_OK):
            return w.bytes
        if err in (errno.EIO, errno.ETIMEDOUT, errno.ENODEV, errno.ECANCELED):
            name = STATUSES.get(w.status, str(w.status))
            text = STATUS_TEXT.get(name, f"status {w.status}")
            where = f" at byte {w.error_offset:#x} of it" if w.error_offset else ""
            raise TransferFailed(err, f"{eng.node}: {what} failed{where}: {text} "
                                 f"(status {name}); {w.bytes} of {self.length} bytes moved",
                                 w.status, w.bytes, w.error_offset)
        raise DmaError(err, f"{eng.node}: WAIT for the {what} failed: {os.strerror(err)}")


class Engine:
    """The DMA engine of one board (a client.Device), through its node
    /dev/p2p-daxN. Use as a context manager, or call close().

    require_ready=False opens a device whose engine cannot move data (for
    info()); its transfers then raise NoEngineError."""

    def __init__(self, device, require_ready=True):
        self.device = device
        self.node = device.dma_node
        if self.node is None:
            raise NoEngineError(errno.ENOENT, f"{device.address}: its p2p_dax driver has no "
                                "DMA node (no p2p_dax/dma_device in sysfs): load the driver "
                                "this library comes with (driver/)")
        try:
            self._fd = client.open_node(self.node, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            why = (f"{self.node} does not exist, though the driver names it for "
                   f"{device.address}: udev (or mdev) did not create it; its numbers are in "
                   f"/sys/class/misc/{device.dma_device}/dev")
            raise NoEngineError(errno.ENOENT, why) from None
        try:
            self.limits = self.info()
            if require_ready:
                self.require()
        except BaseException:
            self.close()
            raise

    def info(self):
        """The device and its engine now (INFO): an Info."""
        s = ffi.new("struct p2p_dax_info *")
        err = native.ioctl(self._fd, lib.P2P_DAX_IOC_INFO, s)
        if err:
            raise DmaError(err, f"{self.node}: INFO refused with {errno.errorcode.get(err, err)}"
                           f": {SUBMIT_ERRORS.get(err, os.strerror(err))}")
        return Info(**{name: getattr(s, name) for name in _INFO_FIELDS})

    @property
    def ready(self):
        return self.limits.ready

    def require(self):
        """Raise NoEngineError unless the engine can move data."""
        if self.ready:
            return
        d = self.device
        name = f"{self.node} ({d.dax_device or d.address})"
        why = {
            "none": "a memory-only device has no DMA engine (engine none); move its data "
                    "with the CPU or O_DIRECT (copy without --via dma), or make it the peer "
                    "of a board's engine",
            "absent": "the board's gateware has no DMA engine (engine absent: CAPS.dma is "
                      "0); load a bitstream built with one",
            "unusable": "the board's DMA engine is there but the driver cannot use it "
                        "(engine unusable); dmesg says why: dmesg | grep p2p_dax",
        }.get(self.limits.engine_name, f"engine {self.limits.engine_name}")
        raise NoEngineError(errno.EOPNOTSUPP, f"{name}: no usable DMA engine: {why}")

    def check(self, offset, length):
        """Raise ValueError unless BAR2 [offset, offset + length) is within the
        engine's reach (dma_window: the part of the BAR backed by memory)."""
        window = self.limits.dma_window
        if length <= 0:
            raise ValueError(f"{self.node}: an empty DMA buffer: nothing to move")
        if offset < 0 or offset + length > window:
            raise ValueError(f"BAR2 offset {offset:#x} + {length:#x} is outside what the DMA "
                             f"engine of {self.node} reaches: offsets 0 to {window:#x} "
                             f"({window} bytes, the memory behind the BAR)")

    def submit(self, direction, offset, buffer):
        """Queue one transfer of the whole buffer to (TO_BAR) or from (FROM_BAR)
        BAR2 at offset; return its Transfer at once."""
        self.require()
        if direction not in (TO_BAR, FROM_BAR):
            raise ValueError(f"direction {direction}: dma.TO_BAR or dma.FROM_BAR")
        pinned = _Pinned(buffer, writable=direction == FROM_BAR)
        try:
            self.check(offset, pinned.length)
            if pinned.length > self.limits.max_transfer:
                raise ValueError(f"{pinned.length} bytes in one SUBMIT: at most "
                                 f"{self.limits.max_transfer} (max_transfer); transfer() "
                                 "splits longer ones")
            s = ffi.new("struct p2p_dax_dma_submit *", {
                "addr": pinned.addr, "length": pinned.length, "offset": offset,
                "direction": direction})
            err = native.ioctl(self._fd, lib.P2P_DAX_IOC_SUBMIT, s)
            if err:
                raise DmaError(err, f"{self.node}: {_describe(direction, offset, pinned.length)}"
                               f" refused with {errno.errorcode.get(err, err)}: "
                               f"{SUBMIT_ERRORS.get(err, os.strerror(err))}")
        except BaseException:
            pinned.release()
            raise
        return Transfer(self, s.id, direction, offset, pinned)

    def run(self, pieces, queue_depth=4, timeout=DEFAULT_TIMEOUT):
        """Submit each (direction, offset, buffer) of `pieces`, up to
        `queue_depth` at once (at most max_transfers), waiting for the oldest
        when the queue is full; return the bytes moved. On an error, waits for
        the transfers already queued before it raises, so that no buffer is
        still in use (except after DmaTimeout: see its `transfers`)."""
        depth = max(1, min(queue_depth, self.limits.max_transfers))
        pending, moved = [], 0
        try:
            for direction, offset, buffer in pieces:
                if len(pending) >= depth:
                    moved += pending.pop(0).wait(timeout)
                pending.append(self.submit(direction, offset, buffer))
            while pending:
                moved += pending.pop(0).wait(timeout)
        except DmaTimeout as e:
            e.transfers += pending
            raise
        except BaseException:
            for t in pending:           # the first error is the one to report
                try:
                    t.wait(timeout)
                except DmaError:
                    pass
            raise
        return moved

    def transfer(self, direction, offset, buffer, *, chunk=None, queue_depth=4,
                 timeout=DEFAULT_TIMEOUT):
        """Move the whole buffer to (TO_BAR) or from (FROM_BAR) BAR2 at offset,
        in SUBMITs of `chunk` bytes (default and at most max_transfer),
        `queue_depth` in flight; each may take `timeout` seconds (None: no
        limit). Returns the bytes moved."""
        view = memoryview(buffer)
        try:
            flat = _flat(view)
            try:
                length = flat.nbytes
                self.require()
                self.check(offset, length)
                step = min(chunk or self.limits.max_transfer, self.limits.max_transfer)
                if step <= 0:
                    raise ValueError(f"chunk {chunk}: give a positive number of bytes")
                pieces = ((direction, offset + s, flat[s:s + step])
                          for s in range(0, length, step))
                return self.run(pieces, queue_depth, timeout)
            except BaseException as e:
                # The frames the error passed through hold views of the
                # buffer (the last piece): drop them, or the buffer could not
                # be closed (BufferError) until the error is gone.
                traceback.clear_frames(e.__traceback__)
                raise
            finally:
                flat.release()
        finally:
            view.release()

    def to_bar(self, offset, buffer, **kw):
        """The buffer -> BAR2 at offset (transfer(TO_BAR, ...))."""
        return self.transfer(TO_BAR, offset, buffer, **kw)

    def from_bar(self, offset, buffer, **kw):
        """BAR2 at offset -> the buffer (transfer(FROM_BAR, ...))."""
        return self.transfer(FROM_BAR, offset, buffer, **kw)

    def close(self):
        """Close the node. Transfers not waited for run on to their end."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def open_engine(device=None, require_ready=True):
    """The DMA engine of `device` (a client.Device or a name for client.find():
    dax0.0, a PCI address). NoEngineError when it has none that can move data
    (unless require_ready=False)."""
    if not isinstance(device, client.Device):
        device = client.find(device)
    return Engine(device, require_ready)
