"""PCIe rules, and checkers of an endpoint's UltraScale+ CQ/CC and RQ/RC buses.

The cocotbext-pcie bus model accepts completions that break the PCIe Base
Specification (one longer than Max Payload Size, a split off the Read
Completion Boundary, a wrong Byte Count ...) and does not enforce the
requester rules either (a write longer than MPS, a read crossing 4 KiB ...),
so the testbench checks them itself.

Part 1, pure Python, the completer side:
    Request, Completion     decoded from UltraScale+ CQ/CC descriptors
                            (PG213, dword-aligned mode)
    expected_outcome        what the spec requires for a request
    CompletionRules         the completion rules as they apply to an endpoint
                            that implements memory BARs and nothing else
Part 1b, pure Python, the requester side (the DMA engine):
    RequesterRequest,       decoded from RQ/RC descriptors
    RequesterCompletion
    RequestRules            the rules for one memory read or write request
Part 2, monitors fed with plain integers (unit-tested without a simulator):
    CompleterMonitor        per-beat AXI-Stream checks on CQ/CC and the
                            pairing of requests with their completions
    RequesterMonitor        per-beat AXI-Stream checks on RQ, RequestRules on
                            every request, tag tracking and the matching of
                            RC completions with outstanding reads
Part 3, cocotb:
    InterfaceChecker        samples a DUT's CQ and CC buses on every rising
                            clock edge and feeds a CompleterMonitor
    RequesterChecker        the same for RQ and RC, feeding a RequesterMonitor

cocotb is imported only inside the Part 3 classes: the rest runs without it.
"""

from collections import Counter, deque
from dataclasses import dataclass, field
from enum import Enum

from hw.usp import (ATOMIC_TYPES, POSTED_TYPES, RC_DESCRIPTOR, RC_DESCRIPTOR_DWORDS,
                    RQ_DESCRIPTOR, RQ_DESCRIPTOR_DWORDS, CplStatus, RcErrorCode, ReqType,
                    mps_bytes, sideband, unpack_descriptor)

MEM_READ_TYPES = frozenset({ReqType.MEM_READ, ReqType.MEM_READ_LOCKED})
CQ_DESCRIPTOR_DWORDS = 4
CC_DESCRIPTOR_DWORDS = 3


class ProtocolError(AssertionError):
    """A violation of the PCIe completion rules or of the AXI-Stream protocol."""


def _bits(value, lsb, width):
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
        dw0, dw1, dw2, dw3 = dwords[:CQ_DESCRIPTOR_DWORDS]
        return cls(
            req_type=ReqType(_bits(dw2, 11, 4)),
            address=((dw1 << 32) | dw0) & ~0x3,
            dw_count=_bits(dw2, 0, 11),
            first_be=first_be & 0xF,
            last_be=last_be & 0xF,
            requester_id=_bits(dw2, 16, 16),
            tag=_bits(dw3, 0, 8),
            target_function=_bits(dw3, 8, 8),
            bar_id=_bits(dw3, 16, 3),
            tc=_bits(dw3, 25, 3),
            attr=_bits(dw3, 28, 3),
            discontinue=bool(discontinue),
            payload=list(dwords[CQ_DESCRIPTOR_DWORDS:]),
            at=_bits(dw0, 0, 2),
            bar_aperture=_bits(dw3, 19, 6),
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
        dw0, dw1, dw2 = dwords[:CC_DESCRIPTOR_DWORDS]
        status = _bits(dw1, 11, 3)
        return cls(
            lower_address=_bits(dw0, 0, 7),
            at=_bits(dw0, 8, 2),
            byte_count=_bits(dw0, 16, 13),
            locked=bool(_bits(dw0, 29, 1)),
            dw_count=_bits(dw1, 0, 11),
            status=CplStatus(status) if status in CplStatus._value2member_map_ else status,
            poisoned=bool(_bits(dw1, 14, 1)),
            requester_id=_bits(dw1, 16, 16),
            tag=_bits(dw2, 0, 8),
            completer_function=_bits(dw2, 8, 8),
            completer_bus=_bits(dw2, 16, 8),
            completer_id_enable=bool(_bits(dw2, 24, 1)),
            tc=_bits(dw2, 25, 3),
            attr=_bits(dw2, 28, 3),
            force_ecrc=bool(_bits(dw2, 31, 1)),
            payload=list(dwords[CC_DESCRIPTOR_DWORDS:]),
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


def expected_outcome(req, bar_ids=(0, 2)):
    known_bar = req.bar_id in bar_ids
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

    def __init__(self, bar_ids=(0, 2)):
        self.bar_ids = tuple(bar_ids)

    def check(self, req, cpls, mps, rcb):
        """Raise ProtocolError naming every rule the completions break."""
        problems = self.violations(req, cpls, mps, rcb)
        if problems:
            raise ProtocolError(f"{req.summary()}:\n  " + "\n  ".join(problems))

    def violations(self, req, cpls, mps, rcb):
        """The rule violations as a list of messages (empty when all is well)."""
        outcome = expected_outcome(req, self.bar_ids)
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


# ---------------------------------------------------------------------------
# Part 2: the monitor, fed with integers
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Beat:
    """One clock edge's sample of an AXI4-Stream bus. X/Z bits read as 0."""
    valid: int
    ready: int
    data: int = 0
    keep: int = 0
    last: int = 0
    user: int = 0
    unknown: frozenset = frozenset()   # names of the signals holding X/Z bits
    data_x: int = 0                    # which tdata bits are X/Z

    @property
    def fire(self):
        return bool(self.valid and self.ready)

    def payload_fields(self):
        """The signals a source must hold while it waits for tready."""
        return {"tdata": (self.data, self.data_x), "tkeep": self.keep,
                "tlast": self.last, "tuser": self.user}


IDLE = Beat(valid=0, ready=0)


@dataclass
class _Packet:
    start: int                   # cycle of the first beat
    first_user: int              # tuser of the first beat
    dwords: list = field(default_factory=list)
    discontinue: bool = False


@dataclass
class _Pending:
    """A non-posted request waiting for its completions."""
    request: Request
    arrived: int                 # cycle of the request's last CQ beat
    mps: int
    rcb: int
    completions: list = field(default_factory=list)
    dwords: int = 0

    def is_answered_by(self, cpl):
        """Whether cpl is the last completion the requester will wait for."""
        if cpl.status != CplStatus.SC or cpl.dw_count == 0:
            return True
        if (cpl.lower_address & 0x3) + cpl.byte_count <= 4 * cpl.dw_count:
            return True                  # its byte count says: nothing left after me
        return self.dwords >= self.request.dw_count


class _SourceChecks:
    """AXI4-Stream rules for one bus the DUT drives, e.g. m_axis_cc.

    Dword lanes, packets without straddling: X/Z on the signals, the beat held
    while tready is low, tkeep contiguous from lane 0 and full but on the last
    beat, and at 512 bits the is_sop/is_eop/pointer sideband of slot 0.
    """

    def __init__(self, bus, lanes, error, is_sop=None, is_eop=None, eop_ptr=None,
                 sop_ptr=None):
        self.bus = bus
        self.lanes = lanes
        self.error = error
        self.is_sop, self.is_eop, self.eop_ptr, self.sop_ptr = is_sop, is_eop, eop_ptr, sop_ptr
        self.waiting = None      # the beat offered without tready, to be held

    def reset(self):
        self.waiting = None

    def known(self, beat):
        if "tvalid" in beat.unknown:
            self.error(f"{self.bus}_tvalid is X/Z out of reset")
        if not beat.valid:
            return
        for name in ("tkeep", "tlast", "tuser"):
            if name in beat.unknown:
                self.error(f"{self.bus}_{name} is X/Z while tvalid is high")
        lanes_x = [lane for lane in range(self.lanes)
                   if beat.keep >> lane & 1 and _bits(beat.data_x, 32 * lane, 32)]
        if lanes_x:
            self.error(f"{self.bus}_tdata has X/Z bits in kept dwords {lanes_x}")

    def held(self, beat):
        """AXI-Stream: once offered, a beat stays unchanged until tready takes it."""
        waiting = self.waiting
        if waiting is not None:
            if not beat.valid:
                self.error(f"{self.bus}_tvalid dropped before tready took the beat")
            else:
                before, now = waiting.payload_fields(), beat.payload_fields()
                changed = [name for name in before if before[name] != now[name]]
                if changed:
                    self.error(f"{self.bus} {'/'.join(changed)} changed while "
                               f"waiting for tready")
        self.waiting = beat if beat.valid and not beat.ready else None

    def keep(self, beat):
        keep, full = beat.keep, (1 << self.lanes) - 1
        if keep == 0:
            self.error(f"{self.bus}_tkeep is 0 on a transferred beat")
        elif keep & (keep + 1):
            self.error(f"{self.bus}_tkeep {keep:#b} is not contiguous from bit 0")
        elif keep != full and not beat.last:
            self.error(f"{self.bus}_tkeep {keep:#b} on a beat that is not the last")

    def sop_eop(self, beat, first):
        """512 bits: is_sop/is_eop/eop pointer in tuser (no straddling: slot 0 only)."""
        is_sop = _bits(beat.user, self.is_sop, 2)
        is_eop = _bits(beat.user, self.is_eop, 2)
        if is_sop != int(first):
            self.error(f"{self.bus}_tuser is_sop {is_sop:02b} on "
                       f"{'the first' if first else 'a later'} beat of a packet, "
                       f"expected {int(first):02b}")
        if first and self.sop_ptr is not None and _bits(beat.user, self.sop_ptr, 2):
            self.error(f"{self.bus}_tuser is_sop0_ptr {_bits(beat.user, self.sop_ptr, 2)}: "
                       f"without straddling a packet starts in dword 0")
        if is_eop != int(bool(beat.last)):
            self.error(f"{self.bus}_tuser is_eop {is_eop:02b} with tlast {beat.last}, "
                       f"expected {int(bool(beat.last)):02b}")
        eop_ptr = _bits(beat.user, self.eop_ptr, 4)
        if beat.last and beat.keep and eop_ptr != beat.keep.bit_length() - 1:
            self.error(f"{self.bus}_tuser eop pointer {eop_ptr}, but the last valid "
                       f"dword is {beat.keep.bit_length() - 1} (tkeep {beat.keep:#b})")


def _dwords(beat, lanes):
    """The kept dwords of a beat, lane 0 first."""
    return [_bits(beat.data, 32 * lane, 32) for lane in range(lanes) if beat.keep >> lane & 1]


class _MonitorBase:
    """Error reporting shared by the monitors."""

    MAX_ERRORS = 1000            # kept; more are only counted

    def _where(self):
        return f"{self.name} cycle {self.cycle}"

    def _error(self, message):
        self.error_count += 1
        if len(self.errors) < self.MAX_ERRORS:
            self.errors.append(f"[{self._where()}] {message}")

    def assert_clean(self):
        if not self.error_count:
            return
        shown = "\n  ".join(self.errors[:10])
        more = f"\n  ... and {self.error_count - 10} more" if self.error_count > 10 else ""
        raise ProtocolError(f"{self.name}: {self.error_count} PCIe protocol "
                            f"violation(s):\n  {shown}{more}")


class CompleterMonitor(_MonitorBase):
    """Checks one endpoint's CQ/CC traffic, one clock edge at a time.

    Call sample() on every rising edge with what the CQ and CC buses show.
    Violations go to self.errors; assert_clean() and assert_idle() raise.
    """

    def __init__(self, width, mps_fn, rcb_fn, bar_ids=(0, 2), name="endpoint"):
        self.width = width
        self.lanes = width // 32
        self.sb = sideband(width)
        self.mps_fn = mps_fn
        self.rcb_fn = rcb_fn
        self.bar_ids = tuple(bar_ids)
        self.rules = CompletionRules(self.bar_ids)
        self.name = name
        self.errors = []
        self.error_count = 0
        self.requests = 0
        self.completions = 0
        self.cq_beats = 0
        self.cc_beats = 0
        self.latencies = []      # cycles from a read's last CQ beat to its first CC beat
        self.outcomes = Counter()  # Outcome -> how many requests the spec says it for
        self.cycle = 0
        self._outstanding = {}   # (requester_id, tag) -> deque of _Pending, oldest first
        self._cq_packet = None
        self._cc_packet = None
        self._cc_checks = _SourceChecks("m_axis_cc", self.lanes, self._error,
                                        self.sb.cc_is_sop, self.sb.cc_is_eop,
                                        self.sb.cc_eop_ptr)

    # -- reporting ----------------------------------------------------------

    def pending(self):
        """The requests still waiting for completions, oldest first per tag."""
        return [p for queue in self._outstanding.values() for p in queue]

    def assert_idle(self):
        waiting = self.pending()
        partial = [bus for bus, packet in (("CQ", self._cq_packet), ("CC", self._cc_packet))
                   if packet is not None]
        if not waiting and not partial:
            return
        lines = [f"{p.request.summary()} (arrived cycle {p.arrived}, "
                 f"{len(p.completions)} completion(s) so far)" for p in waiting[:10]]
        lines += [f"a {bus} packet is only partly transferred" for bus in partial]
        raise ProtocolError(f"{self.name}: {len(waiting)} request(s) still waiting "
                            f"for completions:\n  " + "\n  ".join(lines))

    # -- per clock edge -----------------------------------------------------

    def sample(self, in_reset, cq, cc):
        """One rising clock edge: cq and cc are the Beats both buses show."""
        self.cycle += 1
        if in_reset:
            self._reset()
            return
        self._check_known(cq, cc)
        self._cc_checks.held(cc)
        if cq.fire:
            self._cq_beat(cq)
        if cc.fire:
            self._cc_beat(cc)

    def _reset(self):
        # The endpoint forgets everything in reset; so does the hard IP.
        self._outstanding.clear()
        self._cq_packet = self._cc_packet = None
        self._cc_checks.reset()

    def _check_known(self, cq, cc):
        if "tready" in cq.unknown:
            self._error("s_axis_cq_tready is X/Z out of reset")
        self._cc_checks.known(cc)

    def _dwords(self, beat):
        return _dwords(beat, self.lanes)

    # -- CQ: requests ---------------------------------------------------------

    def _cq_beat(self, beat):
        self.cq_beats += 1
        if self._cq_packet is None:
            self._cq_packet = _Packet(start=self.cycle, first_user=beat.user)
        packet = self._cq_packet
        packet.dwords += self._dwords(beat)
        packet.discontinue |= bool(_bits(beat.user, self.sb.cq_discontinue, 1))
        if beat.last:
            self._cq_packet = None
            self._on_request(packet)

    def _on_request(self, packet):
        first_be = _bits(packet.first_user, self.sb.cq_first_be, 4)
        last_be = _bits(packet.first_user, self.sb.cq_last_be, 4)
        try:
            req = Request.from_cq_dwords(packet.dwords, first_be, last_be,
                                         packet.discontinue)
        except ValueError as exc:
            self._error(f"undecodable CQ packet: {exc}")
            return
        self.requests += 1
        outcome = expected_outcome(req, self.bar_ids)
        self.outcomes[outcome] += 1
        if outcome.expects_completion:
            pending = _Pending(req, arrived=self.cycle, mps=self.mps_fn(), rcb=self.rcb_fn())
            self._outstanding.setdefault((req.requester_id, req.tag), deque()).append(pending)

    # -- CC: completions ------------------------------------------------------

    def _cc_beat(self, beat):
        self.cc_beats += 1
        first = self._cc_packet is None
        if first:
            self._cc_packet = _Packet(start=self.cycle, first_user=beat.user)
        self._cc_checks.keep(beat)
        if self.width == 512:
            self._cc_checks.sop_eop(beat, first)
        if _bits(beat.user, self.sb.cc_discontinue, 1):
            self._error("m_axis_cc discontinue set: the completion is aborted")
        packet = self._cc_packet
        packet.dwords += self._dwords(beat)
        if beat.last:
            self._cc_packet = None
            self._on_completion(packet)

    def _on_completion(self, packet):
        self.completions += 1
        try:
            cpl = Completion.from_cc_dwords(packet.dwords)
        except ValueError as exc:
            self._error(f"undecodable CC packet: {exc}")
            return
        key = (cpl.requester_id, cpl.tag)
        queue = self._outstanding.get(key)
        if not queue:
            self._error(f"{cpl.summary()}: no request with this requester ID and tag "
                        f"is waiting for a completion (R9 if it answers a posted request)")
            return
        pending = queue[0]
        if not pending.completions and pending.request.req_type == ReqType.MEM_READ:
            self.latencies.append(packet.start - pending.arrived)
        pending.completions.append(cpl)
        pending.dwords += cpl.dw_count
        if pending.is_answered_by(cpl):
            queue.popleft()
            if not queue:
                del self._outstanding[key]
            self._apply_rules(pending)

    def _apply_rules(self, pending):
        problems = self.rules.violations(pending.request, pending.completions,
                                         pending.mps, pending.rcb)
        for problem in problems:
            self._error(f"{pending.request.summary()}: {problem}")


# ---------------------------------------------------------------------------
# Part 2b: the requester monitor, fed with integers
# ---------------------------------------------------------------------------

@dataclass
class _RqPacket:
    start: int                   # cycle of the first beat
    first_user: int              # tuser of the first beat
    mps: int                     # the configuration when the first beat went out
    mrrs: int
    extended_tags: bool
    dwords: list = field(default_factory=list)
    discontinue: bool = False
    bus_master_off: bool = False # started while Bus Master Enable was clear: dropped


@dataclass
class _OutstandingRead:
    """A memory read waiting for its completions."""
    request: RequesterRequest
    sent: int                    # cycle of the request's last RQ beat
    next_byte: int               # address of the first byte not delivered yet
    remaining: int               # bytes not delivered yet
    completions: int = 0


class RequesterMonitor(_MonitorBase):
    """Checks one endpoint's RQ/RC traffic (its DMA engine), one clock edge at a time.

    Call sample() on every rising edge with what the RQ and RC buses show.
    mps_fn() and mrrs_fn() give Max Payload Size and Max Read Request Size in
    bytes, ext_tags_fn() the Extended Tag Field Enable: all three are read on
    the first beat of each request. bus_master_fn() gives Bus Master Enable
    and is read on the first beat too. max_outstanding, if given, is the most
    reads allowed to wait for completions at once.

    Every RQ packet must pass RequestRules (Q1..Q8). Besides, each message
    starting with its rule:
        Q9 bus master     no RQ packet started while Bus Master Enable is clear
        Q10 discontinue   no RQ packet aborted with discontinue
        Q11 tag reuse     no read with the tag of a read still outstanding, and
                          no more than max_outstanding reads outstanding
        C1 unknown tag    every completion answers an outstanding read
        C2 header         requester ID (device/function; all 16 bits with
                          requester ID enable), TC and attributes echo the read;
                          not locked; dw_count matches the payload; a
                          successful completion carries data
        C3 lower address  the low 7 bits of the first byte still missing
        C4 byte count     the bytes still missing
        C5 split          payload <= MPS; a completion that is not the last ends
                          on a 64-byte boundary; the last carries no extra dword
    and the AXI4-Stream rules on RQ (X/Z, held under backpressure, tkeep, and
    is_sop/is_eop/pointers at 512 bits). Completions may come in any order
    across tags and split anywhere legal; a tag is released by a completion
    whose byte count fits in what it carries, by one with a status other than
    SC, or by one with the request-completed bit.

    Counters: rq_requests, rq_writes, rq_reads, rq_bytes_written (enabled
    bytes of writes the hard IP forwards), rq_bytes_requested, rc_completions,
    rc_unsuccessful (status not SC), rc_poisoned, rc_discontinued,
    outstanding_peak, rq_beats, rc_beats; latencies (cycles from a read's last
    RQ beat to its first RC beat).
    """

    def __init__(self, width, mps_fn, mrrs_fn, ext_tags_fn, bus_master_fn,
                 max_outstanding=None, name="requester"):
        self.width = width
        self.lanes = width // 32
        self.sb = sideband(width)
        self.mps_fn = mps_fn
        self.mrrs_fn = mrrs_fn
        self.ext_tags_fn = ext_tags_fn
        self.bus_master_fn = bus_master_fn
        self.max_outstanding = max_outstanding
        self.name = name
        self.errors = []
        self.error_count = 0
        self.rq_requests = self.rq_writes = self.rq_reads = 0
        self.rq_bytes_written = self.rq_bytes_requested = 0
        self.rc_completions = self.rc_unsuccessful = self.rc_poisoned = 0
        self.rc_discontinued = 0
        self.outstanding_peak = 0
        self.rq_beats = self.rc_beats = 0
        self.latencies = []
        self.cycle = 0
        self._outstanding = {}   # tag -> _OutstandingRead
        self._rq_packet = None
        self._rc_packet = None
        sb = self.sb
        self._rq_checks = _SourceChecks("m_axis_rq", self.lanes, self._error,
                                        sb.rq_is_sop, sb.rq_is_eop, sb.rq_eop_ptr,
                                        sb.rq_sop_ptr)

    # -- reporting ----------------------------------------------------------

    def expire(self):
        """The requester ended its outstanding reads by completion timeout:
        forget them (their tags may be used again; a completion that still
        comes for one is reported as unexpected)."""
        self._outstanding.clear()

    def outstanding(self):
        """The reads still waiting for completions, by tag."""
        return dict(self._outstanding)

    def assert_idle(self):
        waiting = list(self._outstanding.values())
        partial = [bus for bus, packet in (("RQ", self._rq_packet), ("RC", self._rc_packet))
                   if packet is not None]
        if not waiting and not partial:
            return
        lines = [f"{r.request.summary()} (sent cycle {r.sent}, {r.remaining} bytes "
                 f"missing after {r.completions} completion(s))" for r in waiting[:10]]
        lines += [f"a {bus} packet is only partly transferred" for bus in partial]
        raise ProtocolError(f"{self.name}: {len(waiting)} read(s) still waiting "
                            f"for completions:\n  " + "\n  ".join(lines))

    # -- per clock edge -----------------------------------------------------

    def sample(self, in_reset, rq, rc):
        """One rising clock edge: rq and rc are the Beats both buses show."""
        self.cycle += 1
        if in_reset:
            self._reset()
            return
        if "tready" in rc.unknown:
            self._error("s_axis_rc_tready is X/Z out of reset")
        self._rq_checks.known(rq)
        self._rq_checks.held(rq)
        if rq.fire:
            self._rq_beat(rq)
        if rc.fire:
            self._rc_beat(rc)

    def _reset(self):
        self._outstanding.clear()
        self._rq_packet = self._rc_packet = None
        self._rq_checks.reset()

    # -- RQ: requests ---------------------------------------------------------

    def _rq_beat(self, beat):
        self.rq_beats += 1
        first = self._rq_packet is None
        if first:
            self._rq_packet = _RqPacket(start=self.cycle, first_user=beat.user,
                                        mps=self.mps_fn(), mrrs=self.mrrs_fn(),
                                        extended_tags=bool(self.ext_tags_fn()))
        packet = self._rq_packet
        self._rq_checks.keep(beat)
        if self.width == 512:
            self._rq_checks.sop_eop(beat, first)
        # A request is issued with its header, in the first beat: the rest
        # of a packet begun with BME set cannot be withdrawn (nor discontinued, Q10).
        if first and not self.bus_master_fn():
            packet.bus_master_off = True
            self._error("Q9 bus master: RQ packet started while Bus Master Enable is clear "
                        "(the hard IP drops the request)")
        packet.discontinue |= bool(_bits(beat.user, self.sb.rq_discontinue, 1))
        packet.dwords += _dwords(beat, self.lanes)
        if beat.last:
            self._rq_packet = None
            self._on_request(packet)

    def _seq_num(self, user):
        sb = self.sb
        seq = _bits(user, sb.rq_seq_num, sb.rq_seq_num_width)
        if sb.rq_seq_num_hi is not None:
            seq |= _bits(user, sb.rq_seq_num_hi, 2) << sb.rq_seq_num_width
        return seq

    def _on_request(self, packet):
        user = packet.first_user
        try:
            req = RequesterRequest.from_rq_dwords(
                packet.dwords, _bits(user, self.sb.rq_first_be, 4),
                _bits(user, self.sb.rq_last_be, 4), packet.discontinue, self._seq_num(user))
        except ValueError as exc:
            self._error(f"undecodable RQ packet: {exc}")
            return
        self.rq_requests += 1
        for problem in RequestRules.violations(req, packet.mps, packet.mrrs,
                                               packet.extended_tags):
            self._error(f"{req.summary()}: {problem}")
        if req.discontinue:
            self._error(f"{req.summary()}: Q10 discontinue: the request is aborted")
        delivered = not (req.discontinue or packet.bus_master_off)
        if req.req_type == ReqType.MEM_WRITE:
            self.rq_writes += 1
            if delivered:
                self.rq_bytes_written += req.enabled_bytes
        elif req.req_type == ReqType.MEM_READ:
            self.rq_reads += 1
            self.rq_bytes_requested += req.byte_count
            if delivered:
                self._track_read(req)

    def _track_read(self, req):
        earlier = self._outstanding.get(req.tag)
        if earlier is not None:
            self._error(f"{req.summary()}: Q11 tag reuse before completion: tag "
                        f"{req.tag:#04x} still waits for {earlier.remaining} bytes of "
                        f"{earlier.request.summary()} (sent cycle {earlier.sent})")
            return
        self._outstanding[req.tag] = _OutstandingRead(
            req, sent=self.cycle, next_byte=req.address, remaining=req.byte_count)
        count = len(self._outstanding)
        self.outstanding_peak = max(self.outstanding_peak, count)
        if self.max_outstanding is not None and count > self.max_outstanding:
            self._error(f"{req.summary()}: Q11 tag reuse: {count} reads outstanding, "
                        f"the limit is {self.max_outstanding}")

    # -- RC: completions ------------------------------------------------------

    def _rc_beat(self, beat):
        self.rc_beats += 1
        if self._rc_packet is None:
            self._rc_packet = _Packet(start=self.cycle, first_user=beat.user)
        packet = self._rc_packet
        packet.dwords += _dwords(beat, self.lanes)
        packet.discontinue |= bool(_bits(beat.user, self.sb.rc_discontinue, 1))
        if beat.last:
            self._rc_packet = None
            self._on_completion(packet)

    def _on_completion(self, packet):
        try:
            cpl = RequesterCompletion.from_rc_dwords(packet.dwords, packet.discontinue)
        except ValueError as exc:
            self._error(f"undecodable RC packet: {exc}")
            return
        self.rc_completions += 1
        # Discontinued: the hard IP found the payload corrupt. The header came
        # off the link as it is, so the completion still counts towards its read.
        self.rc_discontinued += cpl.discontinue
        self.rc_unsuccessful += cpl.status != CplStatus.SC
        self.rc_poisoned += cpl.poisoned
        read = self._outstanding.get(cpl.tag)
        if read is None:
            self._error(f"{cpl.summary()}: C1 unknown tag: no read with tag "
                        f"{cpl.tag:#04x} is waiting for completions")
            return
        if not read.completions:
            self.latencies.append(packet.start - read.sent)
        read.completions += 1
        for problem in self._completion_violations(read, cpl):
            self._error(f"{read.request.summary()}: {cpl.summary()}: {problem}")
        carries = 4 * cpl.dw_count - (cpl.lower_address & 0x3)
        if (cpl.status != CplStatus.SC or cpl.request_completed or cpl.dw_count == 0
                or cpl.byte_count <= carries):
            del self._outstanding[cpl.tag]

    def _completion_violations(self, read, cpl):
        """C2..C5 for one completion of an outstanding read; advances the read."""
        req, problems = read.request, []
        rid_mask = 0xFFFF if req.requester_id_enable else 0xFF
        for name, mask in (("requester_id", rid_mask), ("tc", 0x7), ("attr", 0x7)):
            got, want = getattr(cpl, name) & mask, getattr(req, name) & mask
            if got != want:
                problems.append(f"C2 header: {name} {got:#x}, the read has {want:#x}")
        if cpl.locked:
            problems.append("C2 header: locked completion (CplLk) for a memory read")
        if cpl.dw_count != len(cpl.payload):
            problems.append(f"C2 header: dw_count {cpl.dw_count} but carries "
                            f"{len(cpl.payload)} payload dwords")
        if cpl.status != CplStatus.SC:
            return problems
        if cpl.dw_count == 0:
            return problems + ["C2 header: successful completion of a read without data"]
        if (cpl.lower_address ^ read.next_byte) & 0x7F:
            problems.append(f"C3 lower address: {cpl.lower_address & 0x7F:#04x}, the first "
                            f"missing byte is at {read.next_byte:#x}")
        if cpl.byte_count != read.remaining:
            problems.append(f"C4 byte count: {cpl.byte_count}, {read.remaining} bytes of "
                            f"the read are still missing")
        mps = self.mps_fn()
        if 4 * cpl.dw_count > mps:
            problems.append(f"C5 split: payload of {4 * cpl.dw_count} bytes, MPS is {mps}")
        offset = read.next_byte & 0x3
        capacity = 4 * cpl.dw_count - offset
        if capacity >= read.remaining:
            spare = capacity - read.remaining
            if spare >= 4:
                problems.append(f"C5 split: the last completion carries {spare} bytes "
                                f"after the last byte of the read")
            read.next_byte += read.remaining
            read.remaining = 0
        else:
            end = read.next_byte + capacity
            if end % 64:
                problems.append(f"C5 split: completion ends at {end:#x} with "
                                f"{read.remaining - capacity} bytes to come, not on a "
                                f"64-byte boundary")
            read.next_byte, read.remaining = end, read.remaining - capacity
        return problems


# ---------------------------------------------------------------------------
# Part 3: the cocotb side
# ---------------------------------------------------------------------------

def _read(handle):
    """A signal's value as (int, mask of X/Z bits), X/Z bits reading as 0."""
    bits = str(handle.value)     # str() is much faster than LogicArray.is_resolvable
    try:
        return int(bits, 2), 0
    except ValueError:
        known = "".join(b if b in "01" else "0" for b in bits)
        unknown = "".join("0" if b in "01" else "1" for b in bits)
        return int(known, 2), int(unknown, 2)


class _StreamPort:
    """The AXI4-Stream signals of one bus of the DUT, e.g. m_axis_cc_*."""

    PAYLOAD = ("tdata", "tkeep", "tlast", "tuser")

    def __init__(self, dut, prefix):
        self.valid = getattr(dut, f"{prefix}_tvalid")
        self.ready = getattr(dut, f"{prefix}_tready")
        self.payload = {name: getattr(dut, f"{prefix}_{name}") for name in self.PAYLOAD}

    def sample(self):
        valid, valid_x = _read(self.valid)
        ready, ready_x = _read(self.ready)
        unknown = {name for name, x in (("tvalid", valid_x), ("tready", ready_x)) if x}
        if not valid:                # nothing offered: the payload does not matter
            return Beat(valid=0, ready=ready, unknown=frozenset(unknown))
        values, masks = {}, {}
        for name, handle in self.payload.items():
            values[name], masks[name] = _read(handle)
        unknown |= {name for name, x in masks.items() if x}
        return Beat(valid=valid, ready=ready, data=values["tdata"], keep=values["tkeep"],
                    last=values["tlast"], user=values["tuser"],
                    unknown=frozenset(unknown), data_x=masks["tdata"])


class _Sampler:
    """Samples some of a DUT's buses with cocotb on every rising edge of clk
    and hands the Beats to the monitor's sample(); beats while rst is high
    (or X) count as reset."""

    def _start(self, clk, rst, ports):
        import cocotb

        self._clk = clk
        self._rst = rst
        self._ports = tuple(ports)
        self._task = cocotb.start_soon(self._run())

    def _where(self):
        from cocotb.utils import get_sim_time

        return f"{super()._where()}, {get_sim_time('ns'):.1f} ns"

    def _in_reset(self):
        value, xmask = _read(self._rst)
        return bool(value or xmask)

    async def _run(self):
        from cocotb.triggers import RisingEdge

        edge = RisingEdge(self._clk)
        while True:
            await edge
            self.sample(self._in_reset(), *[port.sample() for port in self._ports])

    def stop(self):
        """Stop sampling (the checks made so far stay in errors)."""
        self._task.cancel()


class InterfaceChecker(_Sampler, CompleterMonitor):
    """A CompleterMonitor on a DUT's s_axis_cq_* and m_axis_cc_* signals.

    Starts a coroutine that samples both buses on every rising edge of clk;
    beats while rst is high (or X) are ignored. mps_fn() and rcb_fn() give
    the current Max Payload Size and Read Completion Boundary in bytes; they
    are read when a non-posted request arrives.
    """

    def __init__(self, dut, clk, rst, width, mps_fn, rcb_fn, bar_ids=(0, 2)):
        super().__init__(width, mps_fn, rcb_fn, bar_ids,
                         name=getattr(dut, "_name", "dut"))
        self._start(clk, rst, [_StreamPort(dut, "s_axis_cq"), _StreamPort(dut, "m_axis_cc")])


class RequesterChecker(_Sampler, RequesterMonitor):
    """A RequesterMonitor on a DUT's m_axis_rq_* and s_axis_rc_* signals.

    Starts a coroutine that samples both buses on every rising edge of clk;
    beats while rst is high (or X) are ignored. The functions are those of
    RequesterMonitor; for_function() makes them from a cocotbext-pcie
    function, which is the usual way:

        checker = RequesterChecker.for_function(dut, clk, rst, 256,
                                                model.functions[0])
    """

    def __init__(self, dut, clk, rst, width, mps_fn, mrrs_fn, ext_tags_fn, bus_master_fn,
                 max_outstanding=None):
        super().__init__(width, mps_fn, mrrs_fn, ext_tags_fn, bus_master_fn,
                         max_outstanding, name=f"{getattr(dut, '_name', 'dut')} requester")
        self._start(clk, rst, [_StreamPort(dut, "m_axis_rq"), _StreamPort(dut, "s_axis_rc")])

    @classmethod
    def for_function(cls, dut, clk, rst, width, function, max_outstanding=None):
        """Read MPS, MRRS and Extended Tag Field Enable from a cocotbext-pcie
        Function (its PCIe capability), and Bus Master Enable from the
        endpoint's cfg_function_status[2], as the endpoint sees it: the hard
        IP reports a config write there a cycle or more after its command
        register changes, and the endpoint cannot act on what it has not seen."""
        status = dut.cfg_function_status

        def bus_master():
            value = status.value
            return value.is_resolvable and bool(int(value) & 0x4)

        return cls(dut, clk, rst, width,
                   mps_fn=lambda: mps_bytes(function.pcie_cap.max_payload_size),
                   mrrs_fn=lambda: mps_bytes(function.pcie_cap.max_read_request_size),
                   ext_tags_fn=lambda: bool(function.pcie_cap.extended_tag_field_enable),
                   bus_master_fn=bus_master, max_outstanding=max_outstanding)
