"""Bus peers for DMA tests: memory that answers like real hardware does.

cocotbext-pcie's MemoryEndpoint completes a read at once, in the largest
pieces, and never fails. LatencyMemoryEndpoint is a MemoryEndpoint whose
reads take time, overlap, complete in pieces that a real completer may
choose, and fail where a test asks them to:

    peer = LatencyMemoryEndpoint(size=1 << 20, latency_ns=500, split="rcb")
    ...
    peer.latency_ns = 1000                   # takes effect for later requests
    peer.add_fault(0x1000, 0x2000, "ur")     # BAR offsets [0x1000, 0x2000)
    peer.mem[0x100:0x104]                    # the memory, as a bytearray
    peer.assert_clean()                      # no malformed request seen

BARs: BAR0/1 is one 64-bit prefetchable memory BAR of `size` bytes
(`peer.mem`); with `bar32_size`, BAR2 is a 32-bit memory BAR (`peer.mem32`).

Reads. Each read request gets its own coroutine: the first completion
leaves `latency_ns` after the request arrived (plus, with `reorder`, a
random 0..`reorder_ns` extra per request), whatever else is outstanding.
The completions of one request go out in address order; those of
different requests may interleave and overtake each other. The data is
taken when the request arrives: a write that arrives later does not
change it (posted writes may pass reads, so both outcomes are legal).

With `cpl_gap_ns`, the completions of one request leave that far apart
(the bus models here move a TLP in no time, so without a gap the
completions of one request go out back to back and never interleave with
another request's).

Splitting, at the peer's own MPS (Device Control) and RCB (Link Control):
    "max"     largest pieces: each ends on an RCB boundary, at most MPS
    "rcb"     every completion ends at the next RCB boundary
    "random"  random legal split points (RCB boundaries, at most MPS)
Byte Count is the number of bytes still to come; Lower Address is that
of the first enabled byte, then RCB aligned; payloads are whole dwords.

Faults by BAR offset range [start, end): a read that touches the range
gets one UR or CA completion (no data, Byte Count = the request's, Lower
Address of its first enabled byte) or, for "drop", none at all. Writes
that touch a faulty range are dropped silently.

Requests that break the rules a completer can see (crossing 4 KiB, a
write payload over the peer's MPS, byte enables) are recorded in
`peer.violations` (and dropped if they cross 4 KiB); `assert_clean()`
fails on any.
"""

import os
import random

import cocotb
from cocotb.simtime import get_sim_time
from cocotb.triggers import Event, Timer
from cocotbext.pcie.core import MemoryEndpoint
from cocotbext.pcie.core.tlp import CplStatus, Tlp, TlpType

SPLITS = ("max", "rcb", "random")
FAULT_KINDS = ("ur", "ca", "drop")
_FAULT_STATUS = {"ur": CplStatus.UR, "ca": CplStatus.CA}


# ---------------------------------------------------------------------------
# PCIe arithmetic (base spec: Byte Count and Lower Address of completions)


def first_be_offset(first_be):
    """Offset of the first enabled byte in the first dword (0 for a zero-length read)."""
    be = first_be & 0xF
    return (be & -be).bit_length() - 1 if be else 0


def request_byte_count(length, first_be, last_be):
    """Bytes a read of `length` dwords with these byte enables asks for (1 if zero-length)."""
    if length == 1:
        be = first_be & 0xF
        if not be:
            return 1
        return be.bit_length() - first_be_offset(be)     # first to last enabled byte
    last = last_be & 0xF
    last_off = 4 - last.bit_length() if last else 0
    return 4 * length - first_be_offset(first_be) - last_off


def plan_completions(address, length, first_be, last_be, mps, rcb, split="max", rng=None):
    """How a completer may answer a read: [(dword offset, dwords, byte count, lower address)].

    `address` is the request's (dword-aligned) address, `length` its dword
    count. Every completion but the last ends on an RCB boundary; none
    carries more than `mps` bytes.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, not {split!r}")
    if split == "random" and rng is None:
        rng = random.Random(0)
    address &= ~3
    end = address + 4 * length
    first_off = first_be_offset(first_be)
    remaining = request_byte_count(length, first_be, last_be)
    plan = []
    start = address
    while start < end:
        limit = start + mps
        ends = list(range((start // rcb + 1) * rcb, min(end, limit + 1), rcb))
        if end <= limit:
            ends.append(end)
        if split == "max":
            stop = ends[-1]
        elif split == "rcb":
            stop = ends[0]
        else:
            stop = rng.choice(ends)
        skip = first_off if not plan else 0
        plan.append(((start - address) // 4, (stop - start) // 4, remaining,
                     (start + skip) & 0x7F))
        remaining -= stop - start - skip
        start = stop
    return plan


def crosses_4k(tlp):
    return (tlp.address & 0xFFF) + 4 * tlp.length > 0x1000


def request_violations(tlp, mps):
    """Rule breaks a completer can see in a memory request (list of strings)."""
    bad = []
    addr, n = tlp.address, tlp.length
    if crosses_4k(tlp):
        bad.append(f"crosses a 4 KiB boundary ({n} dwords at {addr:#x})")
    if tlp.fmt_type in (TlpType.MEM_WRITE, TlpType.MEM_WRITE_64) and 4 * n > mps:
        bad.append(f"write payload {4 * n} bytes > MPS {mps}")
    if n == 1:
        if tlp.last_be:
            bad.append(f"1-dword request with last BE {tlp.last_be:#x}")
    else:
        if not tlp.first_be or not tlp.last_be:
            bad.append(f"{n}-dword request with first/last BE {tlp.first_be:#x}/{tlp.last_be:#x}")
        elif n > 2 or addr & 4:          # only QW-aligned 2-dword requests may have holes
            if tlp.first_be not in (0xF, 0xE, 0xC, 0x8) or tlp.last_be not in (0x1, 0x3, 0x7, 0xF):
                bad.append(f"non-contiguous byte enables {tlp.first_be:#x}/{tlp.last_be:#x} "
                           f"in a {n}-dword request at {addr:#x}")
    return bad


# ---------------------------------------------------------------------------


class LatencyMemoryEndpoint(MemoryEndpoint):
    """A memory peer with read latency, realistic completion splitting and faults.

    Counters: reads, writes, completions (TLPs sent), peak_outstanding
    (most reads accepted and not yet fully completed at once), plus
    outstanding, dropped_reads, dropped_writes, faulted_reads.
    Set `trace = []` to record (time_ns, "read" | "write" | "cpl", Tlp).
    """

    def __init__(self, size=1 << 20, *, bar32_size=0, latency_ns=0, split="max",
                 reorder=False, reorder_ns=500, cpl_gap_ns=0, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.latency_ns = latency_ns
        self.split = split
        self.reorder = reorder
        self.reorder_ns = reorder_ns
        self.cpl_gap_ns = cpl_gap_ns
        if seed is None:
            seed = int(os.environ.get("SEED", "1"))
        self.rng = random.Random(seed)
        self.faults = []                 # (bar, start, end, kind)
        self.violations = []
        self.trace = None
        self.outstanding = 0
        self._idle = Event()
        self._idle.set()
        self.reset_stats()

        self.mem = self.add_prefetchable_mem_region(size)
        self.mem32 = self.add_mem_region(bar32_size) if bar32_size else None

        self.register_rx_tlp_handler(TlpType.MEM_READ, self.handle_mem_read_tlp)
        self.register_rx_tlp_handler(TlpType.MEM_READ_64, self.handle_mem_read_tlp)
        self.register_rx_tlp_handler(TlpType.MEM_WRITE, self.handle_mem_write_tlp)
        self.register_rx_tlp_handler(TlpType.MEM_WRITE_64, self.handle_mem_write_tlp)

    # -- configuration ------------------------------------------------------

    @property
    def split(self):
        return self._split

    @split.setter
    def split(self, value):
        if value not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, not {value!r}")
        self._split = value

    def add_region(self, size, read=None, write=None, ext=False, prefetch=False, io=False):
        """As MemoryEndpoint's, but plain memory is a bytearray (returned)."""
        idx = self.bar_ptr
        super().add_region(size, read, write, ext, prefetch, io)
        if read is None and write is None:
            self.regions[idx].close()    # the base class' mmap
            self.regions[idx] = bytearray(size)
            return self.regions[idx]
        return None

    def add_fault(self, start, end, kind, bar=0):
        """Make BAR `bar` offsets [start, end) fail: kind "ur", "ca" or "drop"."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"fault kind must be one of {FAULT_KINDS}, not {kind!r}")
        if not 0 <= start < end:
            raise ValueError(f"empty fault range [{start:#x}, {end:#x})")
        self.faults.append((bar, start, end, kind))

    def clear_faults(self):
        self.faults.clear()

    def reset_stats(self):
        """Zero the counters (peak_outstanding restarts from the reads now outstanding)."""
        self.reads = 0
        self.writes = 0
        self.completions = 0
        self.peak_outstanding = self.outstanding
        self.dropped_reads = 0
        self.dropped_writes = 0
        self.faulted_reads = 0

    @property
    def mps(self):
        return 128 << self.pcie_cap.max_payload_size

    @property
    def rcb(self):
        return 128 if self.pcie_cap.read_completion_boundary else 64

    def bar_address(self, bar=0):
        """Bus address of BAR `bar` (as enumeration programmed it)."""
        addr = self.bar[bar] & ~0xF
        if self.bar[bar] & 0x4:
            addr |= self.bar[bar + 1] << 32
        return addr

    async def idle(self):
        """Wait until every accepted read has been completed (or dropped)."""
        await self._idle.wait()

    def assert_clean(self):
        assert not self.violations, "memory peer saw malformed requests:\n  " + \
            "\n  ".join(self.violations)

    # -- requests -----------------------------------------------------------

    def _fault(self, bar, lo, hi):
        for fbar, start, end, kind in self.faults:
            if fbar == bar and lo < end and start < hi:
                return kind
        return None

    def _record(self, kind, tlp):
        if self.trace is not None:
            self.trace.append((get_sim_time("ns"), kind, tlp))

    def _check(self, tlp):
        """Record the request's rule breaks; False if it is to be dropped (crosses 4 KiB)."""
        for msg in request_violations(tlp, self.mps):
            self.violations.append(f"{tlp.fmt_type.name} tag {tlp.tag} from "
                                   f"{tlp.requester_id}: {msg}")
            self.log.warning("Malformed request: %s", self.violations[-1])
        return not crosses_4k(tlp)

    async def handle_mem_read_tlp(self, tlp):
        self.reads += 1
        self._record("read", tlp)
        if not self._check(tlp):
            self.dropped_reads += 1      # malformed: no completion
            return
        first_off = first_be_offset(tlp.first_be)
        nbytes = request_byte_count(tlp.length, tlp.first_be, tlp.last_be)
        bar = self.match_bar(tlp.address)
        if bar is None or not self.memory_space_enable:
            kind, data = "ur", None
        else:
            region, offset = bar
            kind = self._fault(region, offset + first_off, offset + first_off + nbytes)
            if kind == "drop":
                self.dropped_reads += 1
                return
            data = None if kind else bytes(await self.read_region(region, offset, 4 * tlp.length))
        if kind:
            self.faulted_reads += 1
        delay = self.latency_ns
        if self.reorder:
            delay += self.rng.randint(0, int(self.reorder_ns))
        self.outstanding += 1
        self.peak_outstanding = max(self.peak_outstanding, self.outstanding)
        self._idle.clear()
        cocotb.start_soon(self._complete(tlp, data, kind, delay))

    async def _complete(self, tlp, data, kind, delay):
        try:
            if delay > 0:
                await Timer(delay, "ns", round_mode="round")
            if kind:
                cpl = Tlp.create_completion_for_tlp(tlp, self.pcie_id, status=_FAULT_STATUS[kind])
                cpl.byte_count = request_byte_count(tlp.length, tlp.first_be, tlp.last_be)
                cpl.lower_address = (tlp.address + first_be_offset(tlp.first_be)) & 0x7F
                await self._send(cpl)
                return
            plan = plan_completions(tlp.address, tlp.length, tlp.first_be, tlp.last_be,
                                    self.mps, self.rcb, self.split, self.rng)
            for k, (dw, ndw, byte_count, lower) in enumerate(plan):
                if k and self.cpl_gap_ns > 0:
                    await Timer(self.cpl_gap_ns, "ns", round_mode="round")
                cpl = Tlp.create_completion_data_for_tlp(tlp, self.pcie_id)
                cpl.byte_count = byte_count
                cpl.lower_address = lower
                cpl.set_data(data[4 * dw:4 * (dw + ndw)])
                await self._send(cpl)
        finally:
            self.outstanding -= 1
            if not self.outstanding:
                self._idle.set()

    async def _send(self, cpl):
        self.completions += 1
        self._record("cpl", cpl)
        await self.send(cpl)

    async def handle_mem_write_tlp(self, tlp):
        self.writes += 1
        self._record("write", tlp)
        ok = self._check(tlp)
        bar = self.match_bar(tlp.address)
        if not ok or bar is None or not self.memory_space_enable:
            self.dropped_writes += 1
            return
        region, offset = bar
        lo = offset + first_be_offset(tlp.first_be)
        if self._fault(region, lo, lo + request_byte_count(tlp.length, tlp.first_be, tlp.last_be)):
            self.dropped_writes += 1
            return
        await super().handle_mem_write_tlp(tlp)
