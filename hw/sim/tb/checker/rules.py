"""PCIe rules, pure Python: what the PCIe Base Specification requires of an
endpoint's completions and of its own requests, on UltraScale+ descriptors.

The cocotbext-pcie bus model accepts completions that break the spec (one
longer than Max Payload Size, a split off the Read Completion Boundary, a
wrong Byte Count ...) and does not enforce the requester rules either (a
write longer than MPS, a read crossing 4 KiB ...), so the testbench checks
them itself, with these rules fed by the monitors (monitors.py).

The completer side:
    Request, Completion     decoded from CQ/CC descriptors (PG213, dword-aligned mode)
    expected_outcome        what the spec requires for a request
    CompletionRules         the completion rules as they apply to an endpoint
                            that implements memory BARs and nothing else
The requester side (the DMA engine):
    RequesterRequest,       decoded from RQ/RC descriptors
    RequesterCompletion
    RequestRules            the rules for one memory read or write request
"""

from dataclasses import dataclass, field
from enum import Enum

from hw.spec.usp import (ATOMIC_TYPES, CC_DESCRIPTOR, CC_DESCRIPTOR_DWORDS, CQ_DESCRIPTOR,
                         CQ_DESCRIPTOR_DWORDS, POSTED_TYPES, RC_DESCRIPTOR,
                         RC_DESCRIPTOR_DWORDS, RQ_DESCRIPTOR, RQ_DESCRIPTOR_DWORDS, CplStatus,
                         RcErrorCode, ReqType, unpack_descriptor)

MEM_READ_TYPES = frozenset({ReqType.MEM_READ, ReqType.MEM_READ_LOCKED})


class ProtocolError(AssertionError):
    """A violation of the PCIe completion rules or of the AXI-Stream protocol."""


def bits(value, lsb, width):
    return (value >> lsb) & ((1 << width) - 1)


# ---------------------------------------------------------------------------
# Part 1: descriptors
# ---------------------------------------------------------------------------

@dataclass
class Request:
    """A request as the hard IP delivers it on CQ."""
    req_type: ReqType
    address: int                 # byte address of the first dword (dword aligned)
    dw_count: int                # 1..1024
    first_be: int
    last_be: int
    requester_id: int = 0
    tag: int = 0
    target_function: int = 0
    bar_id: int = 0
    tc: int = 0
    attr: int = 0
    discontinue: bool = False    # the hard IP says: discard this payload
    payload: list = field(default_factory=list)
    at: int = 0
    bar_aperture: int = 0

    @classmethod
    def from_cq_dwords(cls, dwords, first_be, last_be, discontinue=False):
        """Decode a 4-dword CQ descriptor followed by the payload dwords.

        first_be, last_be and discontinue come from tuser. Raises ValueError
        on a packet shorter than the descriptor or a reserved request type.
        """
        if len(dwords) < CQ_DESCRIPTOR_DWORDS:
            raise ValueError(f"CQ packet of {len(dwords)} dwords is shorter than "
                             f"the {CQ_DESCRIPTOR_DWORDS}-dword descriptor")
        f = unpack_descriptor(CQ_DESCRIPTOR, dwords[:CQ_DESCRIPTOR_DWORDS])
        return cls(
            req_type=ReqType(f["req_type"]),
            address=f["address"] << 2,
            dw_count=f["dw_count"],
            first_be=first_be & 0xF,
            last_be=last_be & 0xF,
            requester_id=f["requester_id"],
            tag=f["tag"],
            target_function=f["target_function"],
            bar_id=f["bar_id"],
            tc=f["tc"],
            attr=f["attr"],
            discontinue=bool(discontinue),
            payload=list(dwords[CQ_DESCRIPTOR_DWORDS:]),
            at=f["at"],
            bar_aperture=f["bar_aperture"],
        )

    def summary(self):
        return (f"{self.req_type.name} addr {self.address:#x} len {self.dw_count} "
                f"be {self.first_be:x}/{self.last_be:x} rid {self.requester_id:#06x} "
                f"tag {self.tag:#04x} bar {self.bar_id}")


@dataclass
class Completion:
    """A completion as the endpoint sends it on CC."""
    lower_address: int = 0
    at: int = 0
    byte_count: int = 0          # 13 bits: 4096 is 4096
    locked: bool = False         # CplLk / CplDLk
    dw_count: int = 0
    status: int = CplStatus.SC
    poisoned: bool = False
    requester_id: int = 0
    tag: int = 0
    completer_function: int = 0
    completer_bus: int = 0
    completer_id_enable: bool = False
    tc: int = 0
    attr: int = 0
    force_ecrc: bool = False
    payload: list = field(default_factory=list)

    @classmethod
    def from_cc_dwords(cls, dwords):
        """Decode a 3-dword CC descriptor followed by the payload dwords.

        Every dword after the descriptor is payload, so that a packet longer
        than its dword count shows as dw_count != len(payload).
        """
        if len(dwords) < CC_DESCRIPTOR_DWORDS:
            raise ValueError(f"CC packet of {len(dwords)} dwords is shorter than "
                             f"the {CC_DESCRIPTOR_DWORDS}-dword descriptor")
        f = unpack_descriptor(CC_DESCRIPTOR, dwords[:CC_DESCRIPTOR_DWORDS])
        status = f["status"]
        return cls(
            status=CplStatus(status) if status in CplStatus._value2member_map_ else status,
            locked=bool(f["locked"]), poisoned=bool(f["poisoned"]),
            completer_id_enable=bool(f["completer_id_enable"]), force_ecrc=bool(f["force_ecrc"]),
            payload=list(dwords[CC_DESCRIPTOR_DWORDS:]),
            **{name: f[name] for name in ("lower_address", "at", "byte_count", "dw_count",
                                          "requester_id", "tag", "completer_function",
                                          "completer_bus", "tc", "attr")},
        )

    def summary(self):
        kind = "CplLk" if self.locked else "Cpl"
        return (f"{kind} {_status_name(self.status)} rid {self.requester_id:#06x} "
                f"tag {self.tag:#04x} len {self.dw_count} bc {self.byte_count} "
                f"la {self.lower_address:#04x}")


def _status_name(status):
    try:
        return CplStatus(status).name
    except ValueError:
        return f"reserved status {status:#05b}"


# ---------------------------------------------------------------------------
# Part 1: what the spec requires
# ---------------------------------------------------------------------------

class Outcome(str, Enum):
    """What an endpoint with memory BARs only must do with a request."""
    SERVED = "served"                      # memory write carried out, no completion
    DROPPED_POSTED = "dropped_posted"      # unsupported posted request, no completion
    DROPPED_POISONED = "dropped_poisoned"  # write payload discarded, no completion
    COMPLETED = "completed"                # read answered by successful completion(s)
    UNSUPPORTED = "unsupported"            # one completion without data, status UR

    @property
    def expects_completion(self):
        return self in (Outcome.COMPLETED, Outcome.UNSUPPORTED)


def beyond_memory(req, memory):
    """True when the request falls in a BAR past the memory behind it:
    `memory` maps a BAR to (its size, bytes of memory from its start)."""
    if req.bar_id not in (memory or {}):
        return False
    bar_size, mem_size = memory[req.bar_id]
    return req.address % bar_size >= mem_size


def expected_outcome(req, bar_ids=(0, 2), memory=None):
    """What the endpoint must do with `req`. Memory requests beyond the
    memory behind a BAR (`memory`, see beyond_memory) are unsupported:
    reads get UR, writes are dropped."""
    known_bar = req.bar_id in bar_ids and not beyond_memory(req, memory)
    if req.req_type in POSTED_TYPES:
        if req.req_type != ReqType.MEM_WRITE or not known_bar:
            # The spec ranks Unsupported Request above Poisoned TLP Received,
            # so a discontinued write to an unknown BAR counts as unsupported.
            return Outcome.DROPPED_POSTED
        return Outcome.DROPPED_POISONED if req.discontinue else Outcome.SERVED
    if req.req_type == ReqType.MEM_READ and known_bar:
        return Outcome.COMPLETED
    # Locked reads (endpoints must not support locks), I/O, atomics,
    # configuration requests and reads outside our BARs.
    return Outcome.UNSUPPORTED


def first_byte_offset(first_be):
    """Offset in the first dword of its first enabled byte (0 when none is)."""
    return (first_be & -first_be).bit_length() - 1 if first_be else 0


def _disabled_tail_bytes(last_be):
    """Disabled bytes at the end of the last dword (leading zeros from bit 3)."""
    return 4 - (last_be & 0xF).bit_length()


def request_byte_count(req):
    """Bytes a memory read asks for, from length and byte enables (PCIe Table 2-39)."""
    if req.dw_count == 1:
        if req.first_be == 0:
            return 1                     # zero-length read
        # From the first enabled byte to the last: holes inside count.
        return (req.first_be & 0xF).bit_length() - first_byte_offset(req.first_be)
    return (4 * req.dw_count - first_byte_offset(req.first_be)
            - _disabled_tail_bytes(req.last_be))


def _first_lower_address(req):
    """Lower Address of a memory read's first completion (PCIe Table 2-40)."""
    return (req.address & 0x7C) | first_byte_offset(req.first_be)


def _ur_byte_count(req):
    if req.req_type in MEM_READ_TYPES:
        return request_byte_count(req)
    if req.req_type == ReqType.MEM_CAS:
        return 4 * req.dw_count // 2     # the payload is compare and swap operands
    if req.req_type in ATOMIC_TYPES:
        return 4 * req.dw_count
    return 4                             # I/O and configuration requests


def _ur_lower_address(req):
    return _first_lower_address(req) if req.req_type in MEM_READ_TYPES else 0


# ---------------------------------------------------------------------------
# Part 1: the rules
# ---------------------------------------------------------------------------

class CompletionRules:
    """The PCIe completion rules for one request and all of its completions.

    Each violation message starts with its rule:
        R1 payload coverage   R2 max payload size    R3 read completion boundary
        R4 byte count         R5 lower address       R6 zero-length read
        R7 completion header  R8 UR completion       R9 posted request
    """

    def __init__(self, bar_ids=(0, 2), memory=None):
        self.bar_ids = tuple(bar_ids)
        self.memory = memory

    def check(self, req, cpls, mps, rcb):
        """Raise ProtocolError naming every rule the completions break."""
        problems = self.violations(req, cpls, mps, rcb)
        if problems:
            raise ProtocolError(f"{req.summary()}:\n  " + "\n  ".join(problems))

    def violations(self, req, cpls, mps, rcb):
        """The rule violations as a list of messages (empty when all is well)."""
        outcome = expected_outcome(req, self.bar_ids, self.memory)
        if not outcome.expects_completion:
            return _posted_violations(outcome, cpls)
        problems = []
        for index, cpl in enumerate(cpls):
            problems += _header_violations(req, outcome, index, cpl)
        if outcome == Outcome.UNSUPPORTED:
            problems += _unsupported_violations(req, cpls)
        else:
            problems += _read_violations(req, cpls, mps, rcb)
        return problems


def _posted_violations(outcome, cpls):
    if not cpls:
        return []
    return [f"R9 posted request: a request that is {outcome.value} must get no "
            f"completion, got {len(cpls)}: {cpls[0].summary()}"]


def _header_violations(req, outcome, index, cpl):
    """R7: the fields every completion must get right."""
    where = f"R7 completion header: completion {index}"
    problems = []
    for cpl_field, req_field in (("requester_id", "requester_id"), ("tag", "tag"),
                                 ("tc", "tc"), ("attr", "attr"),
                                 ("completer_function", "target_function")):
        got, want = getattr(cpl, cpl_field), getattr(req, req_field)
        if got != want:
            problems.append(f"{where} {cpl_field} {got:#x}, request {req_field} {want:#x}")
    want_status = CplStatus.SC if outcome == Outcome.COMPLETED else CplStatus.UR
    if cpl.status != want_status:
        problems.append(f"{where} status {_status_name(cpl.status)}, expected "
                        f"{want_status.name} for a request that is {outcome.value}")
    if cpl.poisoned:
        problems.append(f"{where} is poisoned")
    if cpl.dw_count != len(cpl.payload):
        problems.append(f"{where} dw_count {cpl.dw_count} but carries "
                        f"{len(cpl.payload)} payload dwords")
    if outcome == Outcome.UNSUPPORTED and cpl.dw_count != 0:
        problems.append(f"{where} dw_count {cpl.dw_count}: a UR completion carries no data")
    want_locked = outcome == Outcome.UNSUPPORTED and req.req_type == ReqType.MEM_READ_LOCKED
    if cpl.locked != want_locked:
        problems.append(f"{where} locked bit {int(cpl.locked)}: CplLk is "
                        f"{'required' if want_locked else 'only'} for the UR answer "
                        f"to a locked read")
    return problems


def _unsupported_violations(req, cpls):
    """R8: exactly one completion, with the byte count and lower address of its kind."""
    if len(cpls) != 1:
        return [f"R8 UR completion: exactly one completion required, got {len(cpls)}"]
    cpl = cpls[0]
    problems = []
    want = _ur_byte_count(req)
    if cpl.byte_count != want:
        problems.append(f"R8 UR completion: byte_count {cpl.byte_count}, expected {want} "
                        f"for {req.req_type.name}")
    want = _ur_lower_address(req)
    if cpl.lower_address != want:
        problems.append(f"R8 UR completion: lower_address {cpl.lower_address:#04x}, "
                        f"expected {want:#04x} for {req.req_type.name}")
    return problems


def _read_violations(req, cpls, mps, rcb):
    """R1..R6 for a memory read answered with data."""
    if not cpls:
        return ["R1 payload coverage: no completion for a read that must be answered"]
    # Where each completion starts if they come in order, back to back.
    starts, address = [], req.address
    for cpl in cpls:
        starts.append(address)
        address += 4 * cpl.dw_count
    return (_coverage_violations(req, cpls)
            + _max_payload_violations(cpls, mps)
            + _boundary_violations(cpls, starts, rcb)
            + _byte_count_violations(req, cpls)
            + _lower_address_violations(req, cpls, starts)
            + _zero_length_violations(req, cpls))


def _coverage_violations(req, cpls):
    """R1: exactly the requested dwords, in increasing address order, contiguous."""
    problems = []
    total = sum(cpl.dw_count for cpl in cpls)
    if total != req.dw_count:
        what = "missing" if total < req.dw_count else "extra"
        problems.append(f"R1 payload coverage: completions carry {total} dwords, the "
                        f"request asked for {req.dw_count} ({what} data)")
    for index, cpl in enumerate(cpls):
        if cpl.dw_count == 0:
            problems.append(f"R1 payload coverage: completion {index} carries no data")
    # A completion's byte count tells the requester where its data belongs.
    total_bytes = request_byte_count(req)
    delivered = 0                        # request bytes in the completions so far
    for index, cpl in enumerate(cpls):
        claimed = total_bytes - cpl.byte_count
        if index > 0 and claimed != delivered:
            problems.append(f"R1 order: completion {index} (byte_count {cpl.byte_count}) "
                            f"starts at request byte {claimed}, but the completions "
                            f"before it end at byte {delivered}: out of order, "
                            f"overlapping or leaving a gap")
        delivered += 4 * cpl.dw_count - (first_byte_offset(req.first_be) if index == 0 else 0)
    return problems


def _max_payload_violations(cpls, mps):
    """R2: no payload beyond Max Payload Size."""
    return [f"R2 max payload size: completion {index} carries {4 * cpl.dw_count} "
            f"bytes, MPS is {mps}"
            for index, cpl in enumerate(cpls) if 4 * cpl.dw_count > mps]


def _boundary_violations(cpls, starts, rcb):
    """R3: every completion but the last ends on a naturally aligned RCB boundary."""
    problems = []
    for index, (cpl, start) in enumerate(zip(cpls[:-1], starts)):
        end = start + 4 * cpl.dw_count
        if end % rcb:
            problems.append(f"R3 read completion boundary: completion {index} of "
                            f"{len(cpls)} ends at address {end:#x}, not a multiple "
                            f"of RCB {rcb}")
    return problems


def _byte_count_violations(req, cpls):
    """R4: the first says the request's byte count, each later one the bytes left."""
    problems = []
    want = request_byte_count(req)
    for index, cpl in enumerate(cpls):
        if index > 0:
            before = cpls[index - 1]
            carried = 4 * before.dw_count - (first_byte_offset(req.first_be) if index == 1 else 0)
            want = before.byte_count - carried
        if cpl.byte_count != want:
            basis = "request's byte count" if index == 0 else "bytes remaining"
            problems.append(f"R4 byte count: completion {index} byte_count "
                            f"{cpl.byte_count}, expected {want} ({basis})")
    return problems


def _lower_address_violations(req, cpls, starts):
    """R5: the low address bits of each completion's first byte."""
    problems = []
    for index, (cpl, start) in enumerate(zip(cpls, starts)):
        want = _first_lower_address(req) if index == 0 else start & 0x7C
        if cpl.lower_address != want:
            problems.append(f"R5 lower address: completion {index} lower_address "
                            f"{cpl.lower_address:#04x}, expected {want:#04x}")
    return problems


def _zero_length_violations(req, cpls):
    """R6: a zero-length read gets one dword of data, byte count 1."""
    if req.dw_count != 1 or req.first_be != 0:
        return []
    shape = [(cpl.dw_count, cpl.byte_count) for cpl in cpls]
    if shape == [(1, 1)]:
        return []
    return [f"R6 zero-length read: expected one completion of 1 dword with byte_count "
            f"1, got (dw_count, byte_count) {shape}"]


# ---------------------------------------------------------------------------
# Part 1b: the requester side, descriptors
# ---------------------------------------------------------------------------

def _enum_or_int(enum, value):
    return enum(value) if value in enum._value2member_map_ else value


def _type_name(req_type):
    try:
        return ReqType(req_type).name
    except ValueError:
        return f"reserved type {req_type:#06b}"


def enabled_byte_count(dw_count, first_be, last_be):
    """How many bytes the byte enables enable (0 for a zero-length request)."""
    if dw_count == 1:
        return bin(first_be & 0xF).count("1")
    return (bin(first_be & 0xF).count("1") + bin(last_be & 0xF).count("1")
            + 4 * max(dw_count - 2, 0))


@dataclass
class RequesterRequest:
    """A request as the endpoint sends it on RQ (PG213 dword-aligned mode)."""
    req_type: int                # ReqType, or the raw 4-bit value when reserved
    address: int                 # byte address of the first enabled byte (the
                                 # dword address when first_be is 0)
    dw_count: int                # Length, 1..1024 when legal
    first_be: int
    last_be: int
    tag: int = 0
    requester_id: int = 0
    poisoned: bool = False
    tc: int = 0
    attr: int = 0
    payload: list = field(default_factory=list)
    at: int = 0
    completer_id: int = 0
    requester_id_enable: bool = False
    force_ecrc: bool = False
    discontinue: bool = False
    seq_num: int = 0

    @classmethod
    def from_rq_dwords(cls, dwords, first_be, last_be, discontinue=False, seq_num=0):
        """Decode a 4-dword RQ descriptor followed by the payload dwords.

        first_be, last_be, discontinue and seq_num come from tuser. Every
        dword after the descriptor is payload, so that a packet longer or
        shorter than its dword count shows as dw_count != len(payload).
        Raises ValueError on a packet shorter than the descriptor.
        """
        if len(dwords) < RQ_DESCRIPTOR_DWORDS:
            raise ValueError(f"RQ packet of {len(dwords)} dwords is shorter than "
                             f"the {RQ_DESCRIPTOR_DWORDS}-dword descriptor")
        f = unpack_descriptor(RQ_DESCRIPTOR, dwords[:RQ_DESCRIPTOR_DWORDS])
        first_be &= 0xF
        return cls(
            req_type=_enum_or_int(ReqType, f["req_type"]),
            address=(f["address"] << 2) | first_byte_offset(first_be),
            dw_count=f["dw_count"],
            first_be=first_be,
            last_be=last_be & 0xF,
            tag=f["tag"],
            requester_id=f["requester_id"],
            poisoned=bool(f["poisoned"]),
            tc=f["tc"],
            attr=f["attr"],
            payload=list(dwords[RQ_DESCRIPTOR_DWORDS:]),
            at=f["at"],
            completer_id=f["completer_id"],
            requester_id_enable=bool(f["requester_id_enable"]),
            force_ecrc=bool(f["force_ecrc"]),
            discontinue=bool(discontinue),
            seq_num=seq_num,
        )

    @property
    def dword_address(self):
        return self.address & ~0x3

    @property
    def byte_count(self):
        """Bytes a read asks for: first to last enabled byte (PCIe Table 2-39)."""
        return request_byte_count(self)

    @property
    def enabled_bytes(self):
        """Bytes a write writes."""
        return enabled_byte_count(self.dw_count, self.first_be, self.last_be)

    def summary(self):
        return (f"{_type_name(self.req_type)} addr {self.address:#x} len {self.dw_count} "
                f"be {self.first_be:x}/{self.last_be:x} tag {self.tag:#04x}")


@dataclass
class RequesterCompletion:
    """A completion as the hard IP delivers it on RC (PG213 dword-aligned mode)."""
    lower_address: int = 0       # 12 bits
    error_code: int = RcErrorCode.NORMAL_TERMINATION
    byte_count: int = 0          # 13 bits: 4096 is 4096
    locked: bool = False
    request_completed: bool = False
    dw_count: int = 0
    status: int = CplStatus.SC
    poisoned: bool = False
    requester_id: int = 0
    tag: int = 0
    completer_id: int = 0
    tc: int = 0
    attr: int = 0
    discontinue: bool = False
    payload: list = field(default_factory=list)

    @classmethod
    def from_rc_dwords(cls, dwords, discontinue=False):
        """Decode a 3-dword RC descriptor followed by the payload dwords.

        Every dword after the descriptor is payload. Raises ValueError on a
        packet shorter than the descriptor.
        """
        if len(dwords) < RC_DESCRIPTOR_DWORDS:
            raise ValueError(f"RC packet of {len(dwords)} dwords is shorter than "
                             f"the {RC_DESCRIPTOR_DWORDS}-dword descriptor")
        f = unpack_descriptor(RC_DESCRIPTOR, dwords[:RC_DESCRIPTOR_DWORDS])
        return cls(
            lower_address=f["lower_address"],
            error_code=_enum_or_int(RcErrorCode, f["error_code"]),
            byte_count=f["byte_count"],
            locked=bool(f["locked"]),
            request_completed=bool(f["request_completed"]),
            dw_count=f["dw_count"],
            status=_enum_or_int(CplStatus, f["status"]),
            poisoned=bool(f["poisoned"]),
            requester_id=f["requester_id"],
            tag=f["tag"],
            completer_id=f["completer_id"],
            tc=f["tc"],
            attr=f["attr"],
            discontinue=bool(discontinue),
            payload=list(dwords[RC_DESCRIPTOR_DWORDS:]),
        )

    def summary(self):
        return (f"Cpl {_status_name(self.status)} tag {self.tag:#04x} len {self.dw_count} "
                f"bc {self.byte_count} la {self.lower_address:#05x}")


# ---------------------------------------------------------------------------
# Part 1b: the requester side, the rules for one request
# ---------------------------------------------------------------------------

DMA_REQUEST_TYPES = frozenset({ReqType.MEM_READ, ReqType.MEM_WRITE})
CONTIGUOUS_FIRST_BE = frozenset({0b1111, 0b1110, 0b1100, 0b1000})  # up to byte 3
CONTIGUOUS_LAST_BE = frozenset({0b0001, 0b0011, 0b0111, 0b1111})   # from byte 0
MAX_DW_COUNT = 1024


class RequestRules:
    """The PCIe rules for one request of a DMA engine (memory reads and writes).

    Each violation message starts with its rule:
        Q1 request type     Q2 length           Q3 max payload size
        Q4 max read request size                Q5 4 KiB boundary
        Q6 byte enables     Q7 tag              Q8 poisoned
    mps and mrrs are in bytes; extended_tags is the Extended Tag Field Enable.
    """

    @staticmethod
    def check_request(req, mps, mrrs, extended_tags):
        """Raise ProtocolError naming every rule the request breaks."""
        problems = RequestRules.violations(req, mps, mrrs, extended_tags)
        if problems:
            raise ProtocolError(f"{req.summary()}:\n  " + "\n  ".join(problems))

    @staticmethod
    def violations(req, mps, mrrs, extended_tags):
        """The rule violations as a list of messages (empty when all is well)."""
        problems = []
        if req.req_type not in DMA_REQUEST_TYPES:
            problems.append(f"Q1 request type: {_type_name(req.req_type)}: the DMA engine "
                            f"sends memory reads and writes only")
        if req.at:
            problems.append(f"Q1 request type: address type {req.at}, expected 0 "
                            f"(untranslated)")
        problems += _length_violations(req)
        length = 4 * req.dw_count
        if req.req_type == ReqType.MEM_WRITE and length > mps:
            problems.append(f"Q3 max payload size: write of {length} bytes, MPS is {mps}")
        if req.req_type == ReqType.MEM_READ and length > mrrs:
            problems.append(f"Q4 max read request size: read of {length} bytes, "
                            f"MRRS is {mrrs}")
        if req.dw_count:
            first, last = req.dword_address, req.dword_address + length - 1
            if first >> 12 != last >> 12:
                problems.append(f"Q5 4 KiB boundary: dwords {first:#x}..{last:#x} cross "
                                f"{(last >> 12) << 12:#x}")
        problems += _byte_enable_violations(req)
        tags = 256 if extended_tags else 32
        if req.req_type not in POSTED_TYPES and req.tag >= tags:
            problems.append(f"Q7 tag: tag {req.tag:#04x} of a non-posted request, only "
                            f"{tags} tags with extended tags "
                            f"{'enabled' if extended_tags else 'disabled'}")
        if req.poisoned:
            problems.append("Q8 poisoned: the request has EP set")
        return problems


def _length_violations(req):
    problems = []
    if not 1 <= req.dw_count <= MAX_DW_COUNT:
        problems.append(f"Q2 length: dword count {req.dw_count}, legal 1..{MAX_DW_COUNT}")
    if req.req_type == ReqType.MEM_WRITE and len(req.payload) != req.dw_count:
        problems.append(f"Q2 length: write of {req.dw_count} dwords carries "
                        f"{len(req.payload)} payload dwords")
    if req.req_type == ReqType.MEM_READ and req.payload:
        problems.append(f"Q2 length: read carries {len(req.payload)} payload dwords")
    return problems


def _byte_enable_violations(req):
    """Q6, PCIe 2.2.5: byte enable rules of memory requests."""
    first_be, last_be, where = req.first_be, req.last_be, "Q6 byte enables:"
    if req.dw_count < 1:
        return []                # Q2 says it
    if req.dw_count == 1:
        if last_be:
            return [f"{where} last_be {last_be:04b} on a 1-dword request, must be 0000"]
        return []
    problems = []
    if first_be == 0:
        problems.append(f"{where} first_be 0000 on a {req.dw_count}-dword request")
    if last_be == 0:
        problems.append(f"{where} last_be 0000 on a {req.dw_count}-dword request")
    if problems or (req.dw_count == 2 and req.dword_address % 8 == 0):
        return problems          # a quadword-aligned 2-dword request may have holes
    if first_be not in CONTIGUOUS_FIRST_BE:
        problems.append(f"{where} first_be {first_be:04b} not contiguous up to byte 3 "
                        f"on a {req.dw_count}-dword request at {req.dword_address:#x}")
    if last_be not in CONTIGUOUS_LAST_BE:
        problems.append(f"{where} last_be {last_be:04b} not contiguous from byte 0 "
                        f"on a {req.dw_count}-dword request at {req.dword_address:#x}")
    return problems
