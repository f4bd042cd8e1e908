"""Randomized mixed traffic into one endpoint, with a byte-exact scoreboard.

Legal and illegal requests of every kind, interleaved and several in flight:
BAR2 reads and writes of random length, alignment and byte enables (straight
onto the hard IP's CQ, and through the root complex and the switch), BAR0
reads of the register block and writes of SCRATCH, zero-length reads and
writes, reads and writes of BARs the endpoint lacks, I/O, atomics, locked
reads, messages, poisoned (discontinued) writes and over-length writes.
Phases of changing pause patterns on the hard IP's streams (CQ idle cycles,
CC backpressure; on 7-series the receive and transmit streams) and idle
phases (no requests for a while) come and go.

Checked: every byte of BAR2's memory against a model of it (BAR2 traffic
stays within MEM_SIZE; test_endpoint covers what lies beyond; the memory
starts zeroed), the
data and the number of completions of every read, the UR status (and CplLk
for a locked read) of every unsupported non-posted request, the counters
(regmap.COUNTERS) at the end against what was sent, and the PCIe-rule
checkers (tb.assert_clean()).

Operation i is a pure function of (seed, i): make_op(random.Random(f"{seed}:{i}"),
...), and phase k's pauses, depth and idle time of (seed, k), so a failure
names the seed and the index, and replays from there alone. Operations run
in index order; one that touches bytes (or SCRATCH) an operation in flight
touches waits for it, so the scoreboard knows every byte at every moment.

Environment:

    RANDOM_SEED    seed (default: SEED, else 1; SEED also seeds the topology's
                   own randomness, the 7-series start positions)
    RANDOM_OPS     number of operations (default: P2P_DAX_RANDOM_OPS, else
                   10000 with P2P_DAX_FULL=1, else QUICK_OPS)
    RANDOM_FIRST   index of the first operation (default 0): with RANDOM_OPS=1,
                   one operation alone (the memory then holds only what the
                   replayed operations wrote; timing, and so what overlaps
                   what, may differ from the full run)

For example, to replay operation 1234 of seed 7 at 128 bits:

    RANDOM_SEED=7 RANDOM_FIRST=1234 RANDOM_OPS=1 .venv/bin/python -c \\
      'from hw.params import EndpointParams as P; from hw.sim.tb.runner import run; \\
       run("test_random", P(data_width=128))'

The counts per kind of operation are logged at the end (at WARNING, so they
are in sim.log under build/sim/).
"""

import collections
import dataclasses
import os
import random

import cocotb
from cocotb.triggers import ClockCycles, Event, RisingEdge, Timer
from cocotbext.pcie.core.tlp import CplStatus, TlpType

from hw.spec import regmap
from hw.sim.tb.requests import MESSAGES, completions, counters_at_once, inject
from hw.sim.tb.topology import Topology
from hw.spec.usp import ReqType

QUICK_OPS = 300
FULL_OPS = 10_000
PHASE_OPS = 40                    # operations per phase of pauses and depth
CPL_TIMEOUT_NS = 400_000          # longest wait for one completion
LINK_TIMEOUT = dict(timeout=CPL_TIMEOUT_NS, timeout_unit="ns")
UNKNOWN_BARS = (1, 4, 5, 6)       # BARs the endpoint lacks (6: the expansion ROM)
REG_WINDOW = 0x40                 # BAR0 0x00-0x3F: constant registers, SCRATCH, zeros
REG_WRITE_DWORDS = 9              # writes to BAR0 dwords 0-8 only change SCRATCH
SCRATCH = regmap.offset("SCRATCH")


# kind -> weight. "link_*" go through the root complex and the switch, the
# others straight onto the hard IP's stream (past its checks).
KINDS = {
    "write": 18, "read": 18, "link_write": 4, "link_read": 5,
    "reg_write": 5, "reg_read": 5, "link_reg": 2,
    "zero_read": 3, "zero_write": 2,
    "other_bar_read": 3, "other_bar_write": 3,
    "io": 3, "atomic": 3, "locked_read": 3, "message": 3,
    "poisoned_write": 3, "overlength_write": 3,
}
UR_KINDS = {"other_bar_read", "io", "atomic", "locked_read"}


def _env_int(name, default):
    value = os.environ.get(name, "").strip()
    return int(value, 0) if value else default


def settings():
    """(seed, first index, number of operations) from the environment."""
    seed = os.environ.get("RANDOM_SEED") or os.environ.get("SEED") or "1"
    default = FULL_OPS if os.environ.get("P2P_DAX_FULL") == "1" else QUICK_OPS
    ops = _env_int("RANDOM_OPS", _env_int("P2P_DAX_RANDOM_OPS", default))
    return seed, _env_int("RANDOM_FIRST", 0), ops


# ---------------------------------------------------------------------------
# Operations: pure functions of (seed, index)


@dataclasses.dataclass(frozen=True)
class Ctx:
    """What an operation may depend on besides its random numbers."""
    bar2_size: int
    mem_size: int
    lanes: int                # dwords per beat
    max_write_dw: int         # largest legal write payload (MPS and what the endpoint takes)
    limit_dw: int             # max_payload_supported / 4: longer writes are malformed
    windows: tuple            # backing-memory offsets most operations fall near


@dataclasses.dataclass
class Op:
    index: int
    kind: str
    req_type: ReqType = None
    offset: int = 0           # BAR offset (BAR2, or BAR0 for reg_* and BAR0 targets)
    bar_id: int = 2
    dw_count: int = 1
    first_be: int = 0xF
    last_be: int = 0
    data: bytes = b""
    length: int = 0           # bytes, for link_* operations
    discontinue: bool = False

    def describe(self):
        t = self.req_type.name if self.req_type is not None else "-"
        return (f"op {self.index} {self.kind}: {t} bar {self.bar_id} offset {self.offset:#x} "
                f"dw {self.dw_count} be {self.first_be:x}/{self.last_be:x} "
                f"data {len(self.data)} B length {self.length}"
                + (" discontinue" if self.discontinue else ""))

    def mem_span(self):
        """(BAR2 offset, bytes) an operation names in BAR2, or None."""
        if self.kind in ("link_write", "link_read"):
            return (self.offset, max(self.length, 1))
        if self.kind in ("reg_write", "reg_read", "link_reg", "io", "message"):
            return None
        if self.bar_id == 0:
            return None
        return (self.offset, 4 * max(self.dw_count, len(self.data) // 4, 1))

    def touches_scratch(self):
        return self.kind in ("reg_write", "reg_read", "link_reg") or \
            (self.bar_id == 0 and self.kind in ("poisoned_write", "zero_read", "atomic",
                                                "locked_read"))


def legal_bes(rng, dw_addr, dw_count):
    """First and last byte enables as PCIe allows them (2.2.5): any but none
    for one dword, any for a quadword-aligned pair, else contiguous over the span."""
    if dw_count == 1:
        return rng.randrange(1, 16), 0
    if dw_count == 2 and dw_addr % 2 == 0 and rng.random() < 0.5:
        return rng.randrange(1, 16), rng.randrange(1, 16)
    return rng.choice((0xF, 0xE, 0xC, 0x8)), rng.choice((0xF, 0x7, 0x3, 0x1))


def pick_dwords(rng, most):
    """A dword count up to `most`: mostly short, sometimes long."""
    r = rng.random()
    if r < 0.35:
        n = 1
    elif r < 0.75:
        n = rng.randrange(2, 17)
    elif r < 0.93:
        n = rng.randrange(17, 129)
    else:
        n = rng.randrange(129, 1025)
    return max(1, min(n, most))


def pick_offset(rng, ctx, nbytes, dword=True):
    """A BAR2 offset of `nbytes` bytes near a window (sometimes anywhere),
    within the memory."""
    if rng.random() < 0.1:
        mem = rng.randrange(0, ctx.mem_size)
    else:
        mem = (rng.choice(ctx.windows) + rng.randrange(-2048, 6144)) % ctx.mem_size
    if dword:
        mem &= ~3
    return max(min(mem, (ctx.mem_size - nbytes) & ~3), 0)


def page_room(offset):
    """Dwords from a dword offset to the end of its 4 KiB page (requests do not cross it)."""
    return (0x1000 - (offset & 0xFFF)) // 4


def link_length(rng):
    """Bytes of a BAR access through the root complex: mostly short, up to
    8 KiB (split in several requests)."""
    most = rng.choices((64, 1024, 4096, 8192), weights=(4, 3, 2, 1))[0]
    return rng.randrange(1, most + 1)


def _memory_request(rng, ctx, op, most_dw):
    n = pick_dwords(rng, most_dw)
    op.offset = pick_offset(rng, ctx, 4 * n)
    op.dw_count = min(n, page_room(op.offset))
    op.first_be, op.last_be = legal_bes(rng, op.offset // 4, op.dw_count)


def make_op(rng, index, ctx):
    kind = rng.choices(list(KINDS), weights=list(KINDS.values()))[0]
    op = Op(index=index, kind=kind)
    if kind == "write":
        op.req_type = ReqType.MEM_WRITE
        _memory_request(rng, ctx, op, ctx.max_write_dw)
        op.data = rng.randbytes(4 * op.dw_count)
    elif kind == "read":
        op.req_type = ReqType.MEM_READ
        _memory_request(rng, ctx, op, 1024)
    elif kind == "link_write":
        op.length = link_length(rng)
        op.offset = pick_offset(rng, ctx, op.length, dword=False)
        op.data = rng.randbytes(op.length)
    elif kind == "link_read":
        op.length = 0 if rng.random() < 0.1 else link_length(rng)
        op.offset = pick_offset(rng, ctx, max(op.length, 1), dword=False)
    elif kind in ("reg_write", "reg_read"):
        op.bar_id = 0
        if kind == "reg_write":
            op.req_type = ReqType.MEM_WRITE
            first = rng.randrange(REG_WRITE_DWORDS)
            op.dw_count = rng.randrange(1, REG_WRITE_DWORDS - first + 1)
        else:
            op.req_type = ReqType.MEM_READ
            first = rng.randrange(REG_WINDOW // 4)
            op.dw_count = rng.randrange(1, REG_WINDOW // 4 - first + 1)
        if rng.random() < 0.5:          # SCRATCH alone, the usual case
            first, op.dw_count = SCRATCH // 4, 1
        op.offset = 4 * first
        op.first_be, op.last_be = legal_bes(rng, first, op.dw_count)
        if kind == "reg_write":
            op.data = rng.randbytes(4 * op.dw_count)
    elif kind == "link_reg":
        op.bar_id = 0
        op.offset = SCRATCH
        op.data = rng.randbytes(4)
    elif kind == "zero_read":
        op.req_type = ReqType.MEM_READ
        op.bar_id = rng.choice((0, 2, 2))
        op.offset = (4 * rng.randrange(REG_WINDOW // 4) if op.bar_id == 0
                     else pick_offset(rng, ctx, 4))
        op.first_be = 0
    elif kind == "zero_write":
        op.req_type = ReqType.MEM_WRITE
        op.offset = pick_offset(rng, ctx, 4)
        op.first_be = 0
        op.data = rng.randbytes(4)
    elif kind == "other_bar_read":
        op.req_type = ReqType.MEM_READ
        op.bar_id = rng.choice(UNKNOWN_BARS)
        _memory_request(rng, ctx, op, 1024)
    elif kind == "other_bar_write":
        op.req_type = ReqType.MEM_WRITE
        op.bar_id = rng.choice(UNKNOWN_BARS)
        _memory_request(rng, ctx, op, ctx.max_write_dw)
        op.data = rng.randbytes(4 * op.dw_count)
    elif kind == "io":
        op.req_type = rng.choice((ReqType.IO_READ, ReqType.IO_WRITE))
        op.bar_id = rng.choice((0, 2, 4))
        op.offset = 4 * rng.randrange(0, 1024)
        op.first_be = rng.randrange(1, 16)
        if op.req_type == ReqType.IO_WRITE:
            op.data = rng.randbytes(4)
    elif kind == "atomic":
        op.req_type = rng.choice((ReqType.MEM_FETCH_ADD, ReqType.MEM_SWAP, ReqType.MEM_CAS))
        operand = rng.choice((4, 8))              # bytes; CAS carries two operands
        op.dw_count = operand // 4 * (2 if op.req_type == ReqType.MEM_CAS else 1)
        op.bar_id = rng.choice((0, 2, 2, 2))
        if op.bar_id == 0:
            op.offset = 0
        else:
            op.offset = pick_offset(rng, ctx, 4 * op.dw_count) & ~(operand - 1)
        op.last_be = 0xF if op.dw_count > 1 else 0
        op.data = rng.randbytes(4 * op.dw_count)
    elif kind == "locked_read":
        op.req_type = ReqType.MEM_READ_LOCKED
        op.bar_id = rng.choice((0, 2, 2))
        if op.bar_id == 0:
            op.offset = 4 * rng.randrange(REG_WINDOW // 4)
            op.dw_count = 1
            op.first_be, op.last_be = legal_bes(rng, op.offset // 4, 1)
        else:
            _memory_request(rng, ctx, op, 1024)
    elif kind == "message":
        op.req_type = rng.choice(MESSAGES)
        n = rng.choice((0, 1, 2, 4))
        op.dw_count = max(n, 1)
        op.data = rng.randbytes(4 * n)
    elif kind == "poisoned_write":
        op.req_type = ReqType.MEM_WRITE
        op.discontinue = True
        if rng.random() < 0.2:
            op.bar_id = 0
            op.offset = SCRATCH
            op.data = rng.randbytes(4)
        else:
            _memory_request(rng, ctx, op, ctx.max_write_dw)
            op.data = rng.randbytes(4 * op.dw_count)
    elif kind == "overlength_write":
        op.req_type = ReqType.MEM_WRITE
        over = rng.choice((1, ctx.lanes - 1 or 1, ctx.lanes, ctx.lanes + 1,
                           rng.randrange(1, 65)))
        length, payload = rng.choice(((ctx.limit_dw + over,) * 2,          # both over
                                      (ctx.limit_dw + over, ctx.limit_dw),  # the length field
                                      (rng.randrange(1, ctx.limit_dw + 1),  # the payload
                                       ctx.limit_dw + over)))
        op.dw_count = length
        op.offset = pick_offset(rng, ctx, 4 * max(length, payload))
        op.last_be = 0xF
        op.data = rng.randbytes(4 * payload)
    else:
        raise AssertionError(kind)
    return op


# ---------------------------------------------------------------------------
# What the endpoint must do


def enabled_bytes(dw_count, first_be, last_be):
    """Byte indices (from the first dword's byte 0) a request enables."""
    out = []
    for j in range(dw_count):
        be = first_be if j == 0 else last_be if j == dw_count - 1 else 0xF
        out += [4 * j + b for b in range(4) if be >> b & 1]
    return out


def completion_count(dw_addr, dw_count, mps, rcb):
    """Completions of a memory read: each ends on an RCB boundary or the
    read's end and carries at most MPS (the fewest TLPs the rules allow)."""
    mps_dw, rcb_dw = mps // 4, rcb // 4
    n = 0
    while dw_count > 0:
        c = min(dw_count, mps_dw - (dw_addr % rcb_dw))
        dw_addr += c
        dw_count -= c
        n += 1
    return n


def link_writes(offset, length, mps):
    """The write TLPs the root complex makes of a BAR write (cocotbext-pcie's
    MemoryTlpRegion.write: at most MPS, not across 4 KiB): [(offset, bytes)]."""
    out, length = [], max(length, 1)
    while length:
        n = min(length, mps - offset % 4, 0x1000 - (offset & 0xFFF))
        out.append((offset, n))
        offset, length = offset + n, length - n
    return out


def link_reads(offset, length, mrrs):
    """The read requests the root complex makes of a BAR read (MemoryTlpRegion.read)."""
    out, length = [], max(length, 1)
    while length:
        n = length
        if n > mrrs - offset % 4:
            n = min(n, mrrs - (offset & 0x7F))
        n = min(n, 0x1000 - (offset & 0xFFF))
        out.append((offset, n))
        offset, length = offset + n, length - n
    return out


class Model:
    """The endpoint as the test expects it: memory, SCRATCH, counters."""

    def __init__(self, tb, ep, regs):
        self.tb, self.ep = tb, ep
        self.mem = bytearray(tb.params.mem_size)
        self.regs = bytearray(regs)        # BAR0 0x00..REG_WINDOW as read at the start
        self.expect = collections.Counter()
        self.pages = set()                 # 4 KiB pages of memory operations named
        self.kinds = collections.Counter()
        self.mps, self.rcb = ep.mps(), ep.rcb()
        # How the root complex splits BAR accesses (its region's settings).
        cfg = tb.rc.mem_region.cfg
        self.link_mps = 128 << cfg.max_payload_size
        self.link_mrrs = 128 << cfg.max_read_request_size

    # memory
    def mem_write(self, offset, data, first_be=None, last_be=None):
        if first_be is None:
            idx = range(len(data))
        else:
            idx = enabled_bytes(len(data) // 4, first_be, last_be)
        for i in idx:
            self.mem[offset + i] = data[i]

    def mem_read(self, offset, length):
        assert offset + length <= len(self.mem), f"{offset:#x}+{length} beyond the memory"
        return bytes(self.mem[offset:offset + length])

    def reg_write(self, offset, data, first_be, last_be):
        for i in enabled_bytes(len(data) // 4, first_be, last_be):
            if SCRATCH <= offset + i < SCRATCH + 4:
                self.regs[offset + i] = data[i]

    def reads(self, dw_addr, dw_count):
        self.expect["STAT_READS"] += 1
        self.expect["STAT_CPLS"] += completion_count(dw_addr, dw_count, self.mps, self.rcb)


def _check_bytes(what, got, want, idx):
    for i in idx:
        if got[i] != want[i]:
            raise AssertionError(f"{what}: byte {i} is {got[i]:#04x}, expected {want[i]:#04x}")


async def execute(tb, ep, model, op):
    """Run one operation and check what the endpoint answers."""
    kind = op.kind
    expect = model.expect
    if kind in ("link_write", "link_read"):
        if kind == "link_write":
            await ep.bar2.write(op.offset, op.data)
            model.mem_write(op.offset, op.data)
            expect["STAT_WRITES"] += len(link_writes(op.offset, op.length, model.link_mps))
        # A read through the same path behind a write makes it visible, and checks it.
        got = await ep.bar2.read(op.offset, op.length, **LINK_TIMEOUT)
        for off, n in link_reads(op.offset, op.length, model.link_mrrs):
            model.reads(off // 4, (off % 4 + n + 3) // 4)
        want = model.mem_read(op.offset, op.length)
        if got != want:
            bad = next(i for i in range(op.length) if got[i] != want[i])
            raise AssertionError(f"BAR2 {op.offset:#x}+{op.length} through the switch: byte "
                                 f"{bad} is {got[bad]:#04x}, expected {want[bad]:#04x}")
        return
    if kind == "link_reg":
        await ep.bar0.write_dword(SCRATCH, int.from_bytes(op.data, "little"))
        model.reg_write(SCRATCH, op.data, 0xF, 0)
        got = await ep.bar0.read_dword(SCRATCH, **LINK_TIMEOUT)
        expect["STAT_WRITES"] += 1
        model.reads(SCRATCH // 4, 1)
        want = int.from_bytes(model.regs[SCRATCH:SCRATCH + 4], "little")
        assert got == want, f"SCRATCH through the switch: {got:#010x}, expected {want:#010x}"
        return

    if kind == "io":
        base = 0                          # I/O space: 32-bit addresses
    else:
        base = ep.pci.bar_addr[op.bar_id] if op.bar_id in (0, 2) else ep.bar2_addr
    kw = dict(address=base + op.offset, dw_count=op.dw_count, first_be=op.first_be,
              last_be=op.last_be, bar_id=op.bar_id, data=op.data)
    if op.req_type == ReqType.MEM_WRITE or op.req_type in MESSAGES:
        await inject(ep, op.req_type, discontinue=op.discontinue, **kw)
        if kind in ("write", "zero_write"):
            model.mem_write(op.offset, op.data, op.first_be, op.last_be)
            expect["STAT_WRITES"] += 1
        elif kind == "reg_write":
            model.reg_write(op.offset, op.data, op.first_be, op.last_be)
            expect["STAT_WRITES"] += 1
        elif kind in ("other_bar_write", "message"):
            expect["ERR_POSTED_DROPPED"] += 1
        elif kind == "poisoned_write":
            expect["ERR_POISONED_DROPPED"] += 1
        elif kind == "overlength_write":
            expect["ERR_MALFORMED_DROPPED"] += 1
        else:
            raise AssertionError(kind)
        return

    cpls = await completions(tb, ep, op.req_type, timeout_ns=CPL_TIMEOUT_NS, **kw)
    if kind in UR_KINDS:
        expect["ERR_UR"] += 1
        expect["STAT_CPLS"] += 1
        assert len(cpls) == 1, f"{len(cpls)} completions for an unsupported request"
        cpl = cpls[0]
        assert cpl.status == CplStatus.UR, f"status {cpl.status!r}, expected UR"
        assert cpl.length == 0, "a UR completion carries data"
        want = TlpType.CPL_LOCKED if op.req_type == ReqType.MEM_READ_LOCKED else TlpType.CPL
        assert cpl.fmt_type == want, f"completion type {cpl.fmt_type!r}, expected {want!r}"
        return
    # A memory read of BAR0 or BAR2.
    model.reads((base + op.offset) // 4, op.dw_count)
    want_cpls = completion_count((base + op.offset) // 4, op.dw_count, model.mps, model.rcb)
    for k, cpl in enumerate(cpls):
        assert cpl.status == CplStatus.SC, f"completion {k}: status {cpl.status!r}"
    assert len(cpls) == want_cpls, f"{len(cpls)} completions, expected {want_cpls}"
    got = b"".join(bytes(c.get_data()) for c in cpls)
    assert len(got) == 4 * op.dw_count, f"{len(got)} bytes of data for {op.dw_count} dwords"
    if kind == "zero_read":
        return
    if op.bar_id == 0:
        want = bytes(model.regs[op.offset:op.offset + 4 * op.dw_count])
        where = f"BAR0 {op.offset:#x}"
    else:
        want = model.mem_read(op.offset, 4 * op.dw_count)
        where = f"BAR2 {op.offset:#x}"
    _check_bytes(f"{where} read, {op.dw_count} dwords", got, want,
                 enabled_bytes(op.dw_count, op.first_be, op.last_be))


def state(tb, ep):
    """Where requests wait, for a failure's message."""
    m = ep.model
    if ep.s7:
        hip = f"7-series model: {len(m._rx_queue)} TLPs queued for the receive stream"
    else:
        hip = (f"hard-IP model: {m.cq_np_req_count} non-posted credits, "
               f"{m.cq_np_queue.qsize()} non-posted requests waiting for one, "
               f"{m.cq_source.count()} CQ frames queued; "
               f"pcie_cq_np_req {getattr(tb.dut, ep.inst + '_pcie_cq_np_req').value}, "
               f"CC tvalid {getattr(tb.dut, ep.inst + '_m_axis_cc_tvalid').value} "
               f"tready {getattr(tb.dut, ep.inst + '_m_axis_cc_tready').value}, "
               f"CC sink paused {m.cc_sink.pause}, {m.cc_sink.count()} frames in it")
    rtl = getattr(tb.dut, f"ep_{ep.inst}", None)
    if rtl is not None:                   # the endpoint's own state, where the simulator shows it
        seen = []
        for name in ("np_credits", "np_in_ingress", "d_active", "d_beat", "r_valid", "s1_valid"):
            try:
                seen.append(f"{name} {int(getattr(rtl, name).value)}")
            except (AttributeError, ValueError):
                pass
        hip += "; endpoint: " + ", ".join(seen)
    pending = ep.checker.pending()
    return (f"{hip}; the endpoint's checker sees {len(pending)} requests without all "
            f"their completions" + "".join(f"\n    {q.request.summary()}" for q in pending[:4]))


# ---------------------------------------------------------------------------
# Phases: pauses, depth, idle time


def bursts(rng, busy, mean_run):
    """Pause pattern with runs: paused a share `busy` of the time, in runs of
    about `mean_run` cycles."""
    while True:
        paused = rng.random() < busy
        for _ in range(1 + int(rng.expovariate(1 / mean_run))):
            yield paused


@dataclasses.dataclass
class Phase:
    cq_busy: float
    cc_busy: float
    run: int                  # mean length of a pause run, cycles
    depth: int                # operations in flight at most
    idle: int                 # cycles with no requests before the phase

    @classmethod
    def make(cls, seed, k):
        rng = random.Random(f"{seed}:phase:{k}")
        return cls(cq_busy=rng.choice((0, 0, 0.1, 0.3, 0.6)),
                   cc_busy=rng.choice((0, 0, 0.2, 0.5, 0.8)),
                   run=rng.choice((1, 1, 4, 32)),
                   depth=rng.choice((1, 2, 4, 8, 8)),
                   idle=rng.choice((0, 0, 0, rng.randrange(50, 2000))))

    def apply(self, ep, seed, k):
        rng = random.Random(f"{seed}:pauses:{k}")
        gen = lambda busy: bursts(random.Random(rng.random()), busy, self.run) if busy else None
        set_pauses(ep, cq=gen(self.cq_busy), cc=gen(self.cc_busy))


def set_pauses(ep, cq=None, cc=None):
    """Endpoint.pause(), and on UltraScale+ a port left without a pattern
    unpaused: cocotbext-axi leaves a port as the last value of a cleared
    pattern had it, which may be paused for good."""
    ep.pause(cq=cq, cc=cc)
    if not ep.s7:
        for port, gen in ((ep.model.cq_source, cq), (ep.model.cc_sink, cc)):
            if gen is None:
                port.pause = False


# ---------------------------------------------------------------------------


@cocotb.test()
async def test_random_traffic(dut):
    """Randomized mixed traffic, several requests in flight, exact scoreboard."""
    seed, first, count = settings()
    tb = await Topology.create(dut)
    await tb.start()
    ep = tb.a
    p = tb.params
    wrng = random.Random(f"{seed}:windows")
    windows = (p.mem_size - 0x1000, 0x3000) + tuple(
        wrng.randrange(0, p.mem_size // 0x1000) * 0x1000 + wrng.choice((0, 0x800, 0xF00))
        for _ in range(2))
    ctx = Ctx(bar2_size=p.bar2_size, mem_size=p.mem_size, lanes=p.data_width // 32,
              max_write_dw=min(ep.mps(), p.max_payload_supported) // 4,
              limit_dw=p.max_payload_supported // 4, windows=windows)
    await ClockCycles(ep.clk, 600)        # CFG.ext_tags: polled every 256 cycles
    regs = await ep.bar0.read(0, REG_WINDOW)
    assert int.from_bytes(regs[:4], "little") == regmap.MAGIC
    model = Model(tb, ep, regs)
    before = await counters_at_once(ep)

    inflight = {}                 # index -> Op
    failures = []
    changed = Event()

    def conflicts(op):
        span = op.mem_span()
        for other in inflight.values():
            if op.touches_scratch() and other.touches_scratch():
                return True
            o = other.mem_span()
            if span is None or o is None:
                continue
            if span[0] < o[0] + o[1] and o[0] < span[0] + span[1]:
                return True
        return False

    async def run(op):
        try:
            await execute(tb, ep, model, op)
        except Exception as exc:          # noqa: BLE001 - reported with the op below
            failures.append((op, exc))
        finally:
            del inflight[op.index]
            changed.set()

    def check_failures():
        if failures:
            op, exc = failures[0]
            raise AssertionError(
                f"seed {seed}, {op.describe()}: {type(exc).__name__}: {exc}\n"
                f"  {state(tb, ep)}\n"
                f"  replay: RANDOM_SEED={seed} RANDOM_FIRST={op.index} RANDOM_OPS=1 "
                f"(or RANDOM_FIRST=0 RANDOM_OPS={op.index + 1} for the history)") from exc

    async def wait_change():
        changed.clear()
        await changed.wait()
        check_failures()

    async def drain():
        while inflight:
            await wait_change()

    phase = None
    for index in range(first, first + count):
        k = index // PHASE_OPS
        if phase is None or index % PHASE_OPS == 0:
            await drain()
            phase = Phase.make(seed, k)
            phase.apply(ep, seed, k)
            if phase.idle:
                model.kinds["(idle phases)"] += 1
                await ClockCycles(ep.clk, phase.idle)
        op = make_op(random.Random(f"{seed}:{index}"), index, ctx)
        while len(inflight) >= phase.depth or conflicts(op):
            await wait_change()
        model.kinds[op.kind] += 1
        span = op.mem_span()
        if span is not None:
            model.pages.update(a & ~0xFFF for a in range(span[0], sum(span), 0x1000))
            model.pages.add((sum(span) - 1) & ~0xFFF)
        inflight[index] = op
        cocotb.start_soon(run(op))
        await Timer(1, "ns")          # let it start: requests enter in index order
        check_failures()
    await drain()
    set_pauses(ep)
    check_failures()

    # Every page an operation named (all memory in a long run), read back:
    # every byte is known, so a write that went astray or a dropped write
    # that was not shows.
    for off in range(0, p.mem_size, 0x1000) if count >= 2000 else sorted(model.pages):
        got = await ep.bar2.read(off, 0x1000)
        model.reads(off // 4, 0x400)
        want = model.mem_read(off, 0x1000)
        if got != want:
            bad = next(i for i in range(0x1000) if got[i] != want[i])
            raise AssertionError(f"seed {seed}: memory {off + bad:#x} holds {got[bad]:#04x}, "
                                 f"expected {want[bad]:#04x} (final sweep)")

    after = await counters_at_once(ep)
    model.expect["STAT_READS"] += 1           # the read of the counters themselves
    model.expect["STAT_CPLS"] += 1
    got = {name: (after[name] - before[name]) & 0xFFFFFFFF for name in regmap.COUNTERS}
    want = {name: model.expect[name] for name in regmap.COUNTERS}
    tb.log.warning("random traffic, seed %s, operations %d..%d, %d-bit%s: %s", seed, first,
                   first + count - 1, p.data_width, " (7-series)" if ep.s7 else "",
                   ", ".join(f"{k} {v}" for k, v in sorted(model.kinds.items())))
    tb.log.warning("counters: %s", ", ".join(f"{k} {v}" for k, v in got.items()))
    assert got == want, f"seed {seed}: counters {got}, expected {want}"
    tb.assert_clean()
