"""Unit tests of hw/sim/tb/checker/, without a simulator.

The legal completions are computed here independently of the checker: from
the list of enabled byte addresses of a request rather than from the
checker's byte-enable arithmetic. Likewise the legal DMA requests of the
requester-side tests come from a reference splitter that works on byte
ranges, and their descriptors are packed by hand after PG213 and compared
with cocotbext-pcie's.
"""

import dataclasses
import random
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:            # so that a bare `pytest` finds hw/
    sys.path.insert(0, str(ROOT))

from hw.sim.tb.checker.monitors import (  # noqa: E402
    IDLE, Beat, CompleterMonitor, RequesterMonitor)
from hw.sim.tb.checker.rules import (  # noqa: E402
    Completion, CompletionRules, Outcome, ProtocolError, Request, RequesterCompletion,
    RequesterRequest, RequestRules, expected_outcome, first_byte_offset, request_byte_count)
from hw.spec.usp import (  # noqa: E402
    ATOMIC_TYPES, CQ_DESCRIPTOR, POSTED_TYPES, RC_DESCRIPTOR, RQ_DESCRIPTOR, CplStatus,
    RcErrorCode, ReqType, pack_descriptor, replace_field, sideband, unpack_descriptor)

RULES = CompletionRules(bar_ids=(0, 2))
MPS_VALUES = (128, 256, 512, 1024)
RCB_VALUES = (64, 128)
CONTIGUOUS_FIRST_BE = (0xF, 0xE, 0xC, 0x8)     # enabled up to the end of the dword
CONTIGUOUS_LAST_BE = (0x1, 0x3, 0x7, 0xF)      # enabled from the start of the dword


# ---------------------------------------------------------------------------
# An independent model of legal completions
# ---------------------------------------------------------------------------

def enabled_bytes(req):
    """Byte addresses the request enables, in order."""
    bes = [req.first_be] if req.dw_count == 1 else \
        [req.first_be] + [0xF] * (req.dw_count - 2) + [req.last_be]
    return [req.address + 4 * dw + byte
            for dw, be in enumerate(bes) for byte in range(4) if be >> byte & 1]


def completions_for(req, ends):
    """Correct completions of a successful read split to end at each address in ends."""
    enabled = enabled_bytes(req)
    zero_length = not enabled
    last_byte = enabled[-1] if enabled else req.address
    cpls, start = [], req.address
    for end in ends:
        first_byte = req.address if zero_length else max(enabled[0], start)
        dwords = (end - start) // 4
        cpls.append(Completion(
            lower_address=first_byte & 0x7F,
            byte_count=1 if zero_length else last_byte + 1 - first_byte,
            dw_count=dwords, status=CplStatus.SC,
            requester_id=req.requester_id, tag=req.tag, tc=req.tc, attr=req.attr,
            completer_function=req.target_function,
            payload=[(start // 4 + k) & 0xFFFF_FFFF for k in range(dwords)]))
        start = end
    return cpls


def split_ends(req, mps, unit):
    """Each completion as large as MPS allows, ending on a multiple of unit."""
    end_of_request = req.address + 4 * req.dw_count
    ends, start = [], req.address
    while start < end_of_request:
        start = min(end_of_request, (start + mps) // unit * unit)
        ends.append(start)
    return ends


def largest_rcb_split(req, mps, rcb):
    return completions_for(req, split_ends(req, mps, rcb))


def mps_aligned_split(req, mps, rcb):
    return completions_for(req, split_ends(req, mps, mps))


def smallest_rcb_split(req, mps, rcb):
    return completions_for(req, split_ends(req, rcb, rcb))


SPLITTERS = (largest_rcb_split, mps_aligned_split, smallest_rcb_split)


def read(address=0x1000, dw_count=1, first_be=0xF, last_be=None, **kwargs):
    if last_be is None:
        last_be = 0 if dw_count == 1 else 0xF
    fields = dict(requester_id=0x0100, tag=0x2A, target_function=0, bar_id=2)
    fields.update(kwargs)
    return Request(ReqType.MEM_READ, address, dw_count, first_be, last_be, **fields)


def legal_byte_enables(rng, address, dw_count):
    if dw_count == 1:
        return rng.randrange(16), 0
    if dw_count == 2 and address % 8 == 0:
        # Non-contiguous enables are legal for a quadword-aligned 2-dword request.
        return rng.randrange(1, 16), rng.randrange(1, 16)
    return rng.choice(CONTIGUOUS_FIRST_BE), rng.choice(CONTIGUOUS_LAST_BE)


def random_read(rng, dw_count=None):
    dw_count = dw_count or rng.randrange(1, 1025)
    address = 0x1_0000_0000 * rng.randrange(2) + 4 * rng.randrange(1 << 18)
    first_be, last_be = legal_byte_enables(rng, address, dw_count)
    return read(address, dw_count, first_be, last_be, requester_id=rng.randrange(1 << 16),
                tag=rng.randrange(256), tc=rng.randrange(8), attr=rng.randrange(8),
                target_function=rng.randrange(256), bar_id=rng.choice((0, 2)))


def ur_completion(req, byte_count, lower_address=0, locked=False, **kwargs):
    return Completion(lower_address=lower_address, byte_count=byte_count,
                      status=CplStatus.UR, locked=locked, requester_id=req.requester_id,
                      tag=req.tag, tc=req.tc, attr=req.attr,
                      completer_function=req.target_function, **kwargs)


def assert_violation(req, cpls, rule, mps=256, rcb=64):
    with pytest.raises(ProtocolError, match=rule):
        RULES.check(req, cpls, mps, rcb)


def replace(cpls, index, **changes):
    cpls = list(cpls)
    cpls[index] = dataclasses.replace(cpls[index], **changes)
    return cpls


# ---------------------------------------------------------------------------
# The model above must itself be right
# ---------------------------------------------------------------------------

def test_reference_splits_end_on_boundaries_within_mps():
    req = read(address=0x1F4, dw_count=300)          # 1200 bytes from 0x1F4
    assert split_ends(req, 256, 64) == [0x2C0, 0x3C0, 0x4C0, 0x5C0, 0x6A4]
    assert split_ends(req, 256, 256) == [0x200, 0x300, 0x400, 0x500, 0x600, 0x6A4]
    assert split_ends(req, 64, 64)[:2] == [0x200, 0x240]


def test_enabled_bytes_follow_first_and_last_be():
    assert enabled_bytes(read(0x100, 1, 0b1010)) == [0x101, 0x103]
    assert enabled_bytes(read(0x100, 2, 0b1100, 0b0011)) == [0x102, 0x103, 0x104, 0x105]


# ---------------------------------------------------------------------------
# Legal completions are accepted
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("splitter", SPLITTERS, ids=lambda s: s.__name__)
def test_every_length_accepted(splitter):
    rng = random.Random(splitter.__name__)
    for dw_count in range(1, 1025):
        req = random_read(rng, dw_count)
        mps, rcb = rng.choice(MPS_VALUES), rng.choice(RCB_VALUES)
        RULES.check(req, splitter(req, mps, rcb), mps, rcb)


def test_every_dword_offset_and_byte_enable_accepted():
    rng = random.Random(7)
    for dword in range(32):                       # every address mod 128
        for dw_count in (1, 2, 3, 15, 16, 17, 31, 32, 33, 63, 64, 65, 257, 1024):
            address = 0x4000 + 4 * dword
            for first_be in range(16):
                for last_be in range(16):
                    if not legal(address, dw_count, first_be, last_be):
                        continue
                    req = read(address, dw_count, first_be, last_be)
                    mps, rcb = rng.choice(MPS_VALUES), rng.choice(RCB_VALUES)
                    for splitter in SPLITTERS:
                        RULES.check(req, splitter(req, mps, rcb), mps, rcb)


def legal(address, dw_count, first_be, last_be):
    if dw_count == 1:
        return last_be == 0
    if first_be == 0 or last_be == 0:
        return False
    if dw_count == 2 and address % 8 == 0:
        return True
    return first_be in CONTIGUOUS_FIRST_BE and last_be in CONTIGUOUS_LAST_BE


def test_random_reads_accepted_at_every_mps_and_rcb():
    rng = random.Random(2024)
    for _ in range(500):
        req = random_read(rng)
        for mps in MPS_VALUES:
            for rcb in RCB_VALUES:
                RULES.check(req, rng.choice(SPLITTERS)(req, mps, rcb), mps, rcb)


def test_read_of_4096_bytes_in_one_completion():
    req = read(address=0, dw_count=1024)
    cpls = completions_for(req, [4096])
    assert cpls[0].byte_count == 4096
    RULES.check(req, cpls, mps=4096, rcb=128)


def test_zero_length_read_accepted():
    req = read(address=0x204, dw_count=1, first_be=0)
    cpls = completions_for(req, [0x208])
    assert (cpls[0].byte_count, cpls[0].lower_address) == (1, 0x04)
    RULES.check(req, cpls, 128, 64)


# ---------------------------------------------------------------------------
# Each rule catches its violation
# ---------------------------------------------------------------------------

def test_r1_missing_dword():
    req = read(dw_count=40)
    good = largest_rcb_split(req, 256, 64)
    RULES.check(req, good, 256, 64)
    last = good[-1]
    assert_violation(req, replace(good, -1, dw_count=last.dw_count - 1,
                                  payload=last.payload[:-1]), "R1 payload coverage")


def test_r1_missing_completion():
    req = read(dw_count=200)
    good = largest_rcb_split(req, 256, 64)
    RULES.check(req, good, 256, 64)
    assert_violation(req, good[:-1], "R1 payload coverage")


def test_r1_extra_completion():
    req = read(dw_count=100)
    good = largest_rcb_split(req, 256, 64)
    RULES.check(req, good, 256, 64)
    assert_violation(req, good + [good[-1]], "R1 payload coverage")


def test_r1_completions_out_of_order():
    req = read(address=0x1000, dw_count=128)
    good = completions_for(req, [0x1100, 0x1200])
    RULES.check(req, good, 256, 64)
    assert_violation(req, good[::-1], "R1 order")


def test_r1_no_completion_for_a_read():
    assert_violation(read(), [], "R1 payload coverage")


def test_r2_completion_longer_than_mps():
    req = read(address=0, dw_count=64)                # 256 bytes
    one = completions_for(req, [256])
    RULES.check(req, one, mps=256, rcb=64)
    assert_violation(req, one, "R2 max payload size", mps=128)


def test_r2_applies_to_every_completion():
    req = read(address=0, dw_count=96)
    cpls = completions_for(req, [128, 384])           # 128 then 256 bytes
    RULES.check(req, cpls, mps=256, rcb=64)
    assert_violation(req, cpls, "R2 max payload size: completion 1", mps=128)


def test_r3_intermediate_completion_off_rcb():
    req = read(address=0x10, dw_count=64)
    good = completions_for(req, [0x40, 0x110])
    RULES.check(req, good, 256, 64)
    assert_violation(req, completions_for(req, [0x50, 0x110]),
                     "R3 read completion boundary")


def test_r3_depends_on_rcb():
    req = read(address=0x10, dw_count=64)
    cpls = completions_for(req, [0xC0, 0x110])        # 0xC0: 64-aligned, not 128
    RULES.check(req, cpls, 256, rcb=64)
    assert_violation(req, cpls, "R3 read completion boundary", rcb=128)


def test_r3_last_completion_may_end_anywhere():
    req = read(address=0x10, dw_count=5)
    RULES.check(req, completions_for(req, [0x24]), 256, 128)


def test_r4_wrong_first_byte_count():
    req = read(address=0x100, dw_count=8, first_be=0xE, last_be=0x7)
    good = largest_rcb_split(req, 256, 64)
    RULES.check(req, good, 256, 64)
    assert good[0].byte_count == 30
    assert_violation(req, replace(good, 0, byte_count=32), "R4 byte count: completion 0")


def test_r4_wrong_later_byte_count():
    req = read(address=0x100, dw_count=100, first_be=0xC)
    good = largest_rcb_split(req, 256, 64)
    RULES.check(req, good, 256, 64)
    assert_violation(req, replace(good, 1, byte_count=good[1].byte_count + 2),
                     "R4 byte count: completion 1")


def test_r4_later_byte_count_counts_first_be_only_once():
    # The first completion carries 64 dwords minus 2 disabled bytes.
    req = read(address=0x0, dw_count=96, first_be=0xC)
    good = completions_for(req, [0x100, 0x180])
    assert good[1].byte_count == 128
    RULES.check(req, good, 256, 64)
    assert_violation(req, replace(good, 1, byte_count=126), "R4 byte count")


def test_r5_wrong_first_lower_address():
    req = read(address=0x1234, dw_count=4, first_be=0x8)
    good = largest_rcb_split(req, 256, 64)
    RULES.check(req, good, 256, 64)
    assert good[0].lower_address == 0x37
    assert_violation(req, replace(good, 0, lower_address=0x34), "R5 lower address")


def test_r5_wrong_later_lower_address():
    req = read(address=0x1234, dw_count=100, first_be=0xE)
    good = largest_rcb_split(req, 256, 64)
    RULES.check(req, good, 256, 64)
    assert_violation(req, replace(good, 1, lower_address=good[1].lower_address | 1),
                     "R5 lower address: completion 1")


def test_r6_zero_length_read_without_data():
    req = read(dw_count=1, first_be=0)
    good = completions_for(req, [req.address + 4])
    RULES.check(req, good, 256, 64)
    assert_violation(req, replace(good, 0, dw_count=0, payload=[]), "R6 zero-length read")


def test_r6_zero_length_read_with_byte_count_4():
    req = read(dw_count=1, first_be=0)
    good = completions_for(req, [req.address + 4])
    assert_violation(req, replace(good, 0, byte_count=4), "R6 zero-length read")


@pytest.mark.parametrize("cpl_field, value", [
    ("tag", 0x2B), ("requester_id", 0x0200), ("tc", 3), ("attr", 2),
    ("completer_function", 1)])
def test_r7_header_field_must_echo_the_request(cpl_field, value):
    req = read(dw_count=70)
    good = largest_rcb_split(req, 256, 64)
    RULES.check(req, good, 256, 64)
    assert getattr(good[1], cpl_field) != value
    assert_violation(req, replace(good, 1, **{cpl_field: value}),
                     f"R7 completion header: completion 1 {cpl_field}")


def test_r7_read_must_complete_successfully():
    req = read(dw_count=4)
    good = largest_rcb_split(req, 256, 64)
    assert_violation(req, replace(good, 0, status=CplStatus.CA), "R7 .* status CA")


def test_r7_unsupported_request_must_not_complete_successfully():
    req = dataclasses.replace(read(), req_type=ReqType.IO_READ, bar_id=0)
    good = ur_completion(req, byte_count=4)
    RULES.check(req, [good], 256, 64)
    assert_violation(req, [dataclasses.replace(good, status=CplStatus.SC)],
                     "R7 .* status SC, expected UR")


def test_r7_read_to_unknown_bar_gets_ur():
    req = read(dw_count=4, bar_id=4)
    data = largest_rcb_split(req, 256, 64)
    assert_violation(req, data, "R7 .* status SC, expected UR")
    RULES.check(req, [ur_completion(req, byte_count=16, lower_address=0)], 256, 64)


def test_r7_ur_completion_with_data():
    req = read(bar_id=5)
    good = ur_completion(req, byte_count=4)
    RULES.check(req, [good], 256, 64)
    assert_violation(req, [dataclasses.replace(good, dw_count=1, payload=[0])],
                     "R7 .* a UR completion carries no data")


def test_r7_dw_count_must_match_payload():
    req = read(dw_count=4)
    good = largest_rcb_split(req, 256, 64)
    assert_violation(req, replace(good, 0, payload=good[0].payload + [0]),
                     "R7 .* dw_count 4 but carries 5")


def test_r7_poisoned_completion():
    req = read(dw_count=4)
    good = largest_rcb_split(req, 256, 64)
    assert_violation(req, replace(good, 0, poisoned=True), "R7 .* poisoned")


def test_r7_locked_read_needs_cpllk():
    req = dataclasses.replace(read(address=0x1004, dw_count=2), req_type=ReqType.MEM_READ_LOCKED)
    good = ur_completion(req, byte_count=8, lower_address=0x04, locked=True)
    RULES.check(req, [good], 256, 64)
    assert_violation(req, [dataclasses.replace(good, locked=False)], "R7 .* locked bit 0")


def test_r7_cpllk_only_for_locked_read():
    req = read(bar_id=3)
    good = ur_completion(req, byte_count=4)
    RULES.check(req, [good], 256, 64)
    assert_violation(req, [dataclasses.replace(good, locked=True)], "R7 .* locked bit 1")


def test_r7_cpllk_not_on_successful_read():
    req = read(dw_count=4)
    good = largest_rcb_split(req, 256, 64)
    assert_violation(req, replace(good, 0, locked=True), "R7 .* locked bit 1")


@pytest.mark.parametrize("req_type, dw_count, right, wrong", [
    (ReqType.MEM_FETCH_ADD, 1, 4, 1),
    (ReqType.MEM_FETCH_ADD, 2, 8, 4),
    (ReqType.MEM_SWAP, 2, 8, 4),
    (ReqType.MEM_CAS, 2, 4, 8),
    (ReqType.MEM_CAS, 8, 16, 32),
    (ReqType.IO_READ, 1, 4, 2),
    (ReqType.IO_WRITE, 1, 4, 1),
    (ReqType.CFG_READ_0, 1, 4, 1),
    (ReqType.CFG_WRITE_1, 1, 4, 0),
])
def test_r8_ur_byte_count(req_type, dw_count, right, wrong):
    req = Request(req_type, 0x2000, dw_count, first_be=0x3, last_be=0 if dw_count == 1 else 0xF,
                  requester_id=0x0008, tag=9, bar_id=0)
    RULES.check(req, [ur_completion(req, byte_count=right)], 256, 64)
    assert_violation(req, [ur_completion(req, byte_count=wrong)], "R8 UR completion: byte_count")


@pytest.mark.parametrize("req_type", [ReqType.IO_READ, ReqType.MEM_SWAP, ReqType.CFG_READ_0])
def test_r8_lower_address_zero_unless_memory_read(req_type):
    req = Request(req_type, 0x2004, 1, 0x2, 0, bar_id=0)
    byte_count = 4
    RULES.check(req, [ur_completion(req, byte_count)], 256, 64)
    assert_violation(req, [ur_completion(req, byte_count, lower_address=0x05)],
                     "R8 UR completion: lower_address")


def test_r8_memory_read_ur_uses_read_byte_count_and_lower_address():
    req = read(address=0x2044, dw_count=3, first_be=0xC, last_be=0x1, bar_id=1)
    right = ur_completion(req, byte_count=7, lower_address=0x46)
    RULES.check(req, [right], 256, 64)
    assert_violation(req, [dataclasses.replace(right, byte_count=12)], "R8 .* byte_count 12")
    assert_violation(req, [dataclasses.replace(right, lower_address=0x44)],
                     "R8 .* lower_address 0x44")


def test_r8_exactly_one_ur_completion():
    req = read(bar_id=1)
    good = ur_completion(req, byte_count=4)
    RULES.check(req, [good], 256, 64)
    assert_violation(req, [good, good], "R8 UR completion: exactly one")
    assert_violation(req, [], "R8 UR completion: exactly one")


@pytest.mark.parametrize("req_type, bar_id, discontinue", [
    (ReqType.MEM_WRITE, 2, False), (ReqType.MEM_WRITE, 2, True),
    (ReqType.MEM_WRITE, 1, False), (ReqType.MSG, 0, False)])
def test_r9_no_completion_for_posted_request(req_type, bar_id, discontinue):
    req = Request(req_type, 0x3000, 1, 0xF, 0, bar_id=bar_id, discontinue=discontinue,
                  payload=[0])
    RULES.check(req, [], 256, 64)
    assert_violation(req, [ur_completion(req, byte_count=4)], "R9 posted request")


def test_message_names_request_and_values():
    req = read(address=0x40, dw_count=64, tag=0x11)
    with pytest.raises(ProtocolError) as info:
        RULES.check(req, completions_for(req, [0x140]), mps=128, rcb=64)
    message = str(info.value)
    assert "MEM_READ addr 0x40 len 64" in message and "tag 0x11" in message
    assert "carries 256 bytes, MPS is 128" in message


# ---------------------------------------------------------------------------
# expected_outcome and the helpers
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("req_type", list(ReqType), ids=lambda t: t.name)
@pytest.mark.parametrize("bar_id", [0, 1, 2, 6])
@pytest.mark.parametrize("discontinue", [False, True])
def test_expected_outcome(req_type, bar_id, discontinue):
    req = Request(req_type, 0, 1, 0xF, 0, bar_id=bar_id, discontinue=discontinue)
    known = bar_id in (0, 2)
    if req_type == ReqType.MEM_WRITE and known:
        want = Outcome.DROPPED_POISONED if discontinue else Outcome.SERVED
    elif req_type in POSTED_TYPES:
        want = Outcome.DROPPED_POSTED
    elif req_type == ReqType.MEM_READ and known:
        want = Outcome.COMPLETED
    else:
        want = Outcome.UNSUPPORTED
    assert expected_outcome(req) == want


def test_expected_outcome_names():
    write = Request(ReqType.MEM_WRITE, 0, 1, 0xF, 0, bar_id=2, discontinue=True)
    assert expected_outcome(write) == "dropped_poisoned"
    assert expected_outcome(dataclasses.replace(write, bar_id=1)) == "dropped_posted"
    assert expected_outcome(dataclasses.replace(write, bar_id=1), bar_ids=(1,)) \
        == "dropped_poisoned"


def test_requests_beyond_the_memory_behind_a_bar_are_unsupported():
    """BAR2 of 2 MiB at 0x8000000000000000 with 256 KiB of memory: a read
    past the memory expects UR, a write there is dropped; inside, as usual."""
    memory = {2: (2 << 20, 256 << 10)}
    base = 0x8000_0000_0000_0000
    for offset, read, write in ((0, Outcome.COMPLETED, Outcome.SERVED),
                                ((256 << 10) - 4, Outcome.COMPLETED, Outcome.SERVED),
                                (256 << 10, Outcome.UNSUPPORTED, Outcome.DROPPED_POSTED),
                                ((2 << 20) - 4, Outcome.UNSUPPORTED, Outcome.DROPPED_POSTED)):
        for req_type, want in ((ReqType.MEM_READ, read), (ReqType.MEM_WRITE, write)):
            req = Request(req_type, base + offset, 1, 0xF, 0, bar_id=2)
            assert expected_outcome(req, memory=memory) == want, (hex(offset), req_type)
            assert expected_outcome(dataclasses.replace(req, bar_id=0), memory=memory) \
                in (Outcome.COMPLETED, Outcome.SERVED)


def test_every_non_posted_type_but_read_is_unsupported():
    non_posted = set(ReqType) - POSTED_TYPES - {ReqType.MEM_READ}
    assert ATOMIC_TYPES <= non_posted
    for req_type in non_posted:
        req = Request(req_type, 0, 2, 0xF, 0xF, bar_id=2)
        assert expected_outcome(req) == Outcome.UNSUPPORTED, req_type


# PCIe Table 2-39, for a 1-dword request: pattern of first_be (bit 3 first) -> bytes.
SINGLE_DWORD_BYTE_COUNT = {
    "1xx1": 4, "01x1": 3, "1x10": 3, "0011": 2, "0110": 2, "1100": 2,
    "0001": 1, "0010": 1, "0100": 1, "1000": 1, "0000": 1}


@pytest.mark.parametrize("first_be", range(16))
def test_request_byte_count_single_dword(first_be):
    bits = f"{first_be:04b}"
    matches = [count for pattern, count in SINGLE_DWORD_BYTE_COUNT.items()
               if all(p in ("x", b) for p, b in zip(pattern, bits))]
    assert len(matches) == 1
    assert request_byte_count(read(dw_count=1, first_be=first_be)) == matches[0]


@pytest.mark.parametrize("dw_count, first_be, last_be, want", [
    (2, 0xF, 0xF, 8), (2, 0xE, 0x7, 6), (2, 0x8, 0x1, 2), (2, 0x5, 0xA, 8),
    (3, 0xC, 0x3, 8), (1024, 0xF, 0xF, 4096), (1024, 0x8, 0x1, 4090)])
def test_request_byte_count_several_dwords(dw_count, first_be, last_be, want):
    assert request_byte_count(read(dw_count=dw_count, first_be=first_be, last_be=last_be)) == want


def test_request_byte_count_matches_enabled_span():
    rng = random.Random(3)
    for _ in range(2000):
        req = random_read(rng)
        enabled = enabled_bytes(req)
        want = enabled[-1] - enabled[0] + 1 if enabled else 1
        assert request_byte_count(req) == want, req


@pytest.mark.parametrize("first_be, offset", [
    (0b0000, 0), (0b0001, 0), (0b1111, 0), (0b0110, 1), (0b1010, 1),
    (0b0100, 2), (0b1100, 2), (0b1000, 3)])
def test_first_byte_offset(first_be, offset):
    assert first_byte_offset(first_be) == offset


# ---------------------------------------------------------------------------
# Descriptor decoders
# ---------------------------------------------------------------------------

def pack_cq(address, at, dw_count, req_type, requester_id, tag, function, bar_id,
            aperture, tc, attr):
    """A CQ descriptor packed by hand, after PG213's figure."""
    return [
        (address & 0xFFFF_FFFC) | at,
        address >> 32,
        dw_count | req_type << 11 | requester_id << 16,
        tag | function << 8 | bar_id << 16 | aperture << 19 | tc << 25 | attr << 28,
    ]


def pack_cc(lower_address, at, byte_count, locked, dw_count, status, poisoned,
            requester_id, tag, function, bus, id_enable, tc, attr, force_ecrc):
    return [
        lower_address | at << 8 | byte_count << 16 | locked << 29,
        dw_count | status << 11 | poisoned << 14 | requester_id << 16,
        tag | function << 8 | bus << 16 | id_enable << 24 | tc << 25 | attr << 28
        | force_ecrc << 31,
    ]


def test_cq_decoder_hand_packed():
    dwords = pack_cq(0x1234_5678_9ABC_DEF4, 2, 0x2A5 & 0x7FF, ReqType.MEM_WRITE,
                     0xBEEF, 0xA5, 0x3C, 5, 0x2B, 6, 5) + [0x11, 0x22]
    req = Request.from_cq_dwords(dwords, first_be=0x1E, last_be=0x3, discontinue=1)
    assert req == Request(
        req_type=ReqType.MEM_WRITE, address=0x1234_5678_9ABC_DEF4, dw_count=0x2A5,
        first_be=0xE, last_be=0x3, requester_id=0xBEEF, tag=0xA5, target_function=0x3C,
        bar_id=5, tc=6, attr=5, discontinue=True, payload=[0x11, 0x22], at=2,
        bar_aperture=0x2B)


def test_cq_decoder_ignores_reserved_bits():
    dwords = pack_cq(0x1000, 0, 1024, ReqType.MEM_READ, 1, 2, 3, 2, 0, 0, 0)
    dwords[2] |= 1 << 15                   # reserved
    dwords[3] |= 1 << 31                   # reserved
    req = Request.from_cq_dwords(dwords, 0xF, 0xF)
    assert (req.dw_count, req.requester_id, req.tag, req.attr) == (1024, 1, 2, 0)
    assert req.payload == []


def test_cq_decoder_rejects_short_packet_and_reserved_type():
    with pytest.raises(ValueError):
        Request.from_cq_dwords([0, 0, 0], 0xF, 0)
    with pytest.raises(ValueError):
        Request.from_cq_dwords([0, 0, 0b1111 << 11, 0], 0xF, 0)


def test_cc_decoder_hand_packed():
    dwords = pack_cc(0x5D, 1, 4096, 1, 1024, CplStatus.UR, 1, 0xCAFE, 0x81, 0x47,
                     0x9C, 1, 7, 3, 1) + [0xDEAD_BEEF]
    assert Completion.from_cc_dwords(dwords) == Completion(
        lower_address=0x5D, at=1, byte_count=4096, locked=True, dw_count=1024,
        status=CplStatus.UR, poisoned=True, requester_id=0xCAFE, tag=0x81,
        completer_function=0x47, completer_bus=0x9C, completer_id_enable=True, tc=7,
        attr=3, force_ecrc=True, payload=[0xDEAD_BEEF])


def test_cc_decoder_byte_count_is_13_bits():
    cpl = Completion.from_cc_dwords(pack_cc(0, 0, 0x1FFF, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0))
    assert (cpl.byte_count, cpl.locked) == (0x1FFF, False)


def test_cc_decoder_keeps_reserved_status():
    cpl = Completion.from_cc_dwords(pack_cc(0, 0, 4, 0, 0, 0b011, 0, 0, 0, 0, 0, 0, 0, 0, 0))
    assert cpl.status == 0b011
    assert "reserved status" in cpl.summary()


def test_cq_decoder_agrees_with_cocotbext():
    from cocotbext.pcie.core.tlp import TlpType
    from cocotbext.pcie.core.utils import PcieId
    from cocotbext.pcie.xilinx.us.tlp import Tlp_us

    tlp = Tlp_us()
    tlp.fmt_type = TlpType.MEM_WRITE_64
    tlp.set_addr_be_data(0x1_2345_6789, bytes(range(1, 12)))
    tlp.requester_id = PcieId(0x12, 3, 4)
    tlp.tag = 0x77
    tlp.completer_id = PcieId(0, 0, 0x05)
    tlp.bar_id, tlp.bar_aperture, tlp.tc, tlp.attr = 2, 21, 5, 6
    frame = tlp.pack_us_cq()
    req = Request.from_cq_dwords(frame.data, frame.first_be, frame.last_be, frame.discontinue)
    assert req.req_type == ReqType.MEM_WRITE
    assert req.address == 0x1_2345_6788
    assert (req.dw_count, req.first_be, req.last_be) == (tlp.length, 0xE, 0xF)
    assert req.requester_id == int(tlp.requester_id)
    assert (req.tag, req.target_function, req.bar_id, req.bar_aperture) == (0x77, 5, 2, 21)
    assert (req.tc, req.attr) == (5, 6)
    assert req.payload == frame.data[4:] and len(req.payload) == tlp.length


def test_replace_field_keeps_every_other_bit():
    dwords = [0xFFFF_FFFF] * 4
    out = replace_field(CQ_DESCRIPTOR, dwords, "req_type", ReqType.MSG)
    assert unpack_descriptor(CQ_DESCRIPTOR, out)["req_type"] == ReqType.MSG
    assert out[:2] == dwords[:2] and out[3] == dwords[3]
    assert out[2] == 0xFFFF_FFFF & ~(0xF << 11) | ReqType.MSG << 11
    with pytest.raises(ValueError, match="does not fit in 4 bits"):
        replace_field(CQ_DESCRIPTOR, dwords, "req_type", 16)


def test_cc_decoder_agrees_with_cocotbext():
    from cocotbext.pcie.core.tlp import TlpType
    from cocotbext.pcie.core.utils import PcieId
    from cocotbext.pcie.xilinx.us.tlp import Tlp_us

    tlp = Tlp_us()
    tlp.fmt_type = TlpType.CPL_LOCKED
    tlp.lower_address, tlp.byte_count, tlp.length = 0x46, 7, 0
    tlp.status = CplStatus.UR
    tlp.requester_id = PcieId(1, 2, 3)
    tlp.completer_id = PcieId(0x44, 0x1F, 0x7)
    tlp.tag, tlp.tc, tlp.attr = 0xC3, 2, 1
    cpl = Completion.from_cc_dwords(tlp.pack_us_cc().data)
    assert (cpl.lower_address, cpl.byte_count, cpl.dw_count) == (0x46, 7, 0)
    assert cpl.locked and cpl.status == CplStatus.UR and not cpl.poisoned
    assert cpl.requester_id == int(tlp.requester_id)
    assert (cpl.completer_bus, cpl.completer_function) == (0x44, 0x1F << 3 | 0x7)
    assert (cpl.tag, cpl.tc, cpl.attr) == (0xC3, 2, 1)

    data = Tlp_us()
    data.fmt_type = TlpType.CPL_DATA
    data.set_data(bytes(range(8)))
    data.byte_count = 8
    cpl = Completion.from_cc_dwords(data.pack_us_cc().data)
    assert (cpl.dw_count, cpl.locked, cpl.payload) == (2, False, [0x03020100, 0x07060504])


# ---------------------------------------------------------------------------
# CompleterMonitor, fed beat by beat
# ---------------------------------------------------------------------------

def cq_packet(req):
    """The dwords of a request as the hard IP sends it on CQ."""
    return pack_cq(req.address, req.at, req.dw_count, req.req_type, req.requester_id,
                   req.tag, req.target_function, req.bar_id, 0, req.tc, req.attr) \
        + list(req.payload)


def cc_packet(cpl):
    return pack_cc(cpl.lower_address, cpl.at, cpl.byte_count, int(cpl.locked), cpl.dw_count,
                   cpl.status, int(cpl.poisoned), cpl.requester_id, cpl.tag,
                   cpl.completer_function, cpl.completer_bus, int(cpl.completer_id_enable),
                   cpl.tc, cpl.attr, 0) + list(cpl.payload)


def beats(dwords, width):
    """(data, keep, last, dword index of the beat) of a packet, lanes filled from 0."""
    lanes = width // 32
    for first in range(0, len(dwords), lanes):
        chunk = dwords[first:first + lanes]
        data = sum(dw << 32 * i for i, dw in enumerate(chunk))
        yield data, (1 << len(chunk)) - 1, first + lanes >= len(dwords), first


class Harness:
    """Drives a CompleterMonitor as a simulator would, one edge per beat."""

    def __init__(self, width, mps=256, rcb=64):
        self.width = width
        self.sb = sideband(width)
        self.mps, self.rcb = mps, rcb
        self.monitor = CompleterMonitor(width, lambda: self.mps, lambda: self.rcb,
                                        name="test")

    def edge(self, cq=IDLE, cc=IDLE, in_reset=False):
        self.monitor.sample(in_reset, cq, cc)

    def request(self, req, in_reset=False):
        """CQ beats: byte enables on the first beat, discontinue on the last."""
        for data, keep, last, first in beats(cq_packet(req), self.width):
            user = 0
            if first == 0:
                user |= req.first_be << self.sb.cq_first_be | req.last_be << self.sb.cq_last_be
            if last and req.discontinue:
                user |= 1 << self.sb.cq_discontinue
            self.edge(cq=Beat(1, 1, data, keep, int(last), user), in_reset=in_reset)

    def cc_beats(self, cpl):
        """The CC Beats of a completion, with 512-bit sop/eop sideband."""
        result = []
        for data, keep, last, first in beats(cc_packet(cpl), self.width):
            user = 0
            if self.width == 512:
                user |= (first == 0) << self.sb.cc_is_sop
                if last:
                    user |= 1 << self.sb.cc_is_eop | (keep.bit_length() - 1) << self.sb.cc_eop_ptr
            result.append(Beat(1, 1, data, keep, int(last), user))
        return result

    def complete(self, *cpls, stall_every=0):
        for cpl in cpls:
            for n, beat in enumerate(self.cc_beats(cpl)):
                if stall_every and n % stall_every == 0:
                    self.edge(cc=dataclasses.replace(beat, ready=0))
                self.edge(cc=beat)

    @property
    def errors(self):
        return self.monitor.errors


WIDTHS = (64, 128, 256, 512)


@pytest.mark.parametrize("width", WIDTHS)
def test_monitor_accepts_good_read(width):
    h = Harness(width, mps=256, rcb=64)
    req = read(address=0x10, dw_count=150, first_be=0xE, last_be=0x3)
    h.request(req)
    for _ in range(5):
        h.edge()
    cpls = largest_rcb_split(req, 256, 64)
    h.complete(*cpls, stall_every=3)
    assert h.errors == []
    m = h.monitor
    assert (m.requests, m.completions) == (1, len(cpls))
    lanes = width // 32
    assert m.cq_beats == -(-(4 + 0) // lanes)
    assert m.cc_beats == sum(-(-(3 + c.dw_count) // lanes) for c in cpls)
    assert m.latencies == [7]              # 5 idle edges, 1 stalled, then the beat
    m.assert_clean()
    m.assert_idle()


@pytest.mark.parametrize("width", WIDTHS)
def test_monitor_catches_completion_longer_than_mps(width):
    h = Harness(width, mps=128)
    req = read(address=0, dw_count=64)
    h.request(req)
    h.complete(*completions_for(req, [256]))
    assert any("R2 max payload size" in e for e in h.errors), h.errors
    with pytest.raises(ProtocolError, match="1 PCIe protocol violation"):
        h.monitor.assert_clean()


def test_monitor_reads_mps_when_the_request_arrives():
    h = Harness(256, mps=128)
    req = read(address=0, dw_count=64)
    h.request(req)
    h.mps = 256                            # changed after the request: not used
    h.complete(*completions_for(req, [256]))
    assert any("MPS is 128" in e for e in h.errors), h.errors


def test_monitor_pairs_by_requester_and_tag_in_order():
    h = Harness(128)
    first = read(address=0x100, dw_count=2, tag=5)
    other = read(address=0x200, dw_count=1, tag=6)
    again = read(address=0x300, dw_count=1, tag=5)      # same tag, later
    for req in (first, other, again):
        h.request(req)
    h.complete(*largest_rcb_split(other, 256, 64))
    h.complete(*largest_rcb_split(first, 256, 64))
    h.complete(*largest_rcb_split(again, 256, 64))
    assert h.errors == []
    h.monitor.assert_idle()


def test_monitor_unsupported_request_answered_correctly():
    h = Harness(64)
    req = Request(ReqType.IO_READ, 0x40, 1, 0x1, 0, requester_id=3, tag=1, bar_id=0)
    h.request(req)
    h.complete(ur_completion(req, byte_count=4))
    assert h.errors == []
    assert h.monitor.latencies == []       # only memory reads are timed
    h.monitor.assert_idle()


def test_monitor_completion_for_posted_write():
    h = Harness(256)
    write = Request(ReqType.MEM_WRITE, 0x40, 2, 0xF, 0xF, tag=4, bar_id=2, payload=[1, 2])
    h.request(write)
    h.monitor.assert_idle()                # a write waits for nothing
    h.complete(ur_completion(write, byte_count=4))
    assert any("no request with this requester ID and tag" in e for e in h.errors)


def test_monitor_assert_idle_lists_waiting_request():
    h = Harness(256)
    h.request(read(tag=0x33))
    h.monitor.assert_clean()
    with pytest.raises(ProtocolError, match="(?s)1 request.*tag 0x33"):
        h.monitor.assert_idle()


def test_monitor_ignores_beats_in_reset_and_forgets_requests():
    h = Harness(256)
    h.request(read(tag=1))
    h.edge(in_reset=True)
    h.monitor.assert_idle()
    h.request(read(tag=2), in_reset=True)
    assert h.monitor.requests == 1
    h.monitor.assert_idle()


def test_monitor_catches_tkeep_gap_and_partial_middle_beat():
    h = Harness(128)
    req = read(dw_count=8)
    h.request(req)
    good = h.cc_beats(largest_rcb_split(req, 256, 64)[0])
    h.edge(cc=dataclasses.replace(good[0], keep=0b1011))
    h.edge(cc=dataclasses.replace(good[1], keep=0b0111))
    h.edge(cc=dataclasses.replace(good[2], keep=0))
    joined = "\n".join(h.errors)
    assert "not contiguous" in joined
    assert "not the last" in joined
    assert "tkeep is 0" in joined


def test_monitor_catches_changes_while_waiting_for_tready():
    h = Harness(256)
    req = read(dw_count=8)
    h.request(req)
    beat = h.cc_beats(largest_rcb_split(req, 256, 64)[0])[0]
    h.edge(cc=dataclasses.replace(beat, ready=0))
    h.edge(cc=dataclasses.replace(beat, ready=0, data=beat.data ^ 1, user=beat.user ^ 1))
    assert any("tdata/tuser changed while waiting" in e for e in h.errors), h.errors
    h.edge(cc=dataclasses.replace(beat, valid=0, ready=1))
    assert any("tvalid dropped" in e for e in h.errors), h.errors


def test_monitor_accepts_held_beats():
    h = Harness(64)
    req = read(dw_count=3)
    h.request(req)
    for beat in h.cc_beats(largest_rcb_split(req, 256, 64)[0]):
        for _ in range(3):
            h.edge(cc=dataclasses.replace(beat, ready=0))
        h.edge(cc=beat)
    assert h.errors == []
    h.monitor.assert_idle()


def test_monitor_512_sop_eop_sideband():
    h = Harness(512)
    req = read(dw_count=20)
    h.request(req)
    good = h.cc_beats(largest_rcb_split(req, 256, 64)[0])
    assert len(good) == 2
    sb = sideband(512)
    h.edge(cc=dataclasses.replace(good[0], user=0))                     # no is_sop
    h.edge(cc=dataclasses.replace(good[1], user=good[1].user ^ 1 << sb.cc_eop_ptr))
    joined = "\n".join(h.errors)
    assert "is_sop 00 on the first beat" in joined
    assert "eop pointer 7, but the last valid dword is 6" in joined


def test_monitor_512_eop_on_a_middle_beat():
    h = Harness(512)
    req = read(dw_count=20)
    h.request(req)
    good = h.cc_beats(largest_rcb_split(req, 256, 64)[0])
    h.edge(cc=dataclasses.replace(good[0], user=good[0].user | 1 << sideband(512).cc_is_eop))
    assert any("is_eop 01 with tlast 0" in e for e in h.errors), h.errors


def test_monitor_flags_unknown_cc_signals():
    h = Harness(128)
    h.edge(cc=Beat(0, 1, unknown=frozenset({"tvalid"})))
    h.edge(cc=Beat(1, 0, data=0, keep=0b11, last=1, data_x=0xF << 32,
                   unknown=frozenset({"tdata"})))
    joined = "\n".join(h.errors)
    assert "tvalid is X/Z" in joined and "X/Z bits in kept dwords [1]" in joined


def test_monitor_flags_cc_discontinue():
    h = Harness(256)
    req = read()
    h.request(req)
    beat = h.cc_beats(largest_rcb_split(req, 256, 64)[0])[0]
    h.edge(cc=dataclasses.replace(beat, user=1 << sideband(256).cc_discontinue))
    assert any("discontinue" in e for e in h.errors)


@pytest.mark.parametrize("width", WIDTHS)
def test_monitor_decodes_cq_sideband(width):
    h = Harness(width)
    write = Request(ReqType.MEM_WRITE, 0x80, 20, 0xC, 0x3, tag=1, bar_id=2,
                    discontinue=True, payload=list(range(20)))
    h.request(write)
    h.request(dataclasses.replace(write, discontinue=False))
    assert h.monitor.outcomes == {Outcome.DROPPED_POISONED: 1, Outcome.SERVED: 1}
    h.request(read(address=0x80, dw_count=20, first_be=0xC, last_be=0x3))
    (pending,) = h.monitor.pending()
    assert (pending.request.first_be, pending.request.last_be) == (0xC, 0x3)


def test_assert_clean_shows_ten_errors_and_the_count():
    h = Harness(128)
    for _ in range(12):
        h.edge(cc=Beat(0, 1, unknown=frozenset({"tvalid"})))
    with pytest.raises(ProtocolError) as info:
        h.monitor.assert_clean()
    message = str(info.value)
    assert "12 PCIe protocol violation(s)" in message and "and 2 more" in message
    assert message.count("tvalid is X/Z") == 10


def test_stream_port_reads_cocotb_values_with_x():
    from cocotb.types import Logic, LogicArray

    from hw.sim.tb.checker.adapters import _StreamPort

    class Handle:
        def __init__(self, value):
            self.value = value

    class Dut:
        pass

    dut = Dut()
    signals = {"tvalid": Logic("1"), "tready": Logic("0"), "tlast": Logic("1"),
               "tkeep": LogicArray("0011"), "tuser": LogicArray.from_unsigned(5, 33),
               "tdata": LogicArray("X" * 4 + "0" * 28 + "0" * 31 + "1")}
    for name, value in signals.items():
        setattr(dut, f"m_axis_cc_{name}", Handle(value))
    beat = _StreamPort(dut, "m_axis_cc").sample()
    assert (beat.valid, beat.ready, beat.last, beat.keep, beat.user, beat.data) == \
        (1, 0, 1, 0b11, 5, 1)
    assert beat.data_x == 0xF << 60 and beat.unknown == {"tdata"}
    dut.m_axis_cc_tvalid = Handle(Logic("X"))
    assert _StreamPort(dut, "m_axis_cc").sample() == Beat(0, 0, unknown=frozenset({"tvalid"}))


# ===========================================================================
# The requester side: the DMA engine's requests on RQ, completions on RC
# ===========================================================================

MRRS_VALUES = (128, 256, 512, 1024, 2048, 4096)


def pack_rq(address, at, dw_count, req_type, poisoned, requester_id, tag, completer_id,
            rid_enable, tc, attr, force_ecrc):
    """An RQ descriptor packed by hand, after PG213's figure."""
    return [
        (address & 0xFFFF_FFFC) | at,
        address >> 32,
        dw_count | req_type << 11 | poisoned << 15 | requester_id << 16,
        tag | completer_id << 8 | rid_enable << 24 | tc << 25 | attr << 28 | force_ecrc << 31,
    ]


def pack_rc(lower_address, error_code, byte_count, locked, request_completed, dw_count,
            status, poisoned, requester_id, tag, completer_id, tc, attr):
    """An RC descriptor packed by hand, after PG213's figure."""
    return [
        lower_address | error_code << 12 | byte_count << 16 | locked << 29
        | request_completed << 30,
        dw_count | status << 11 | poisoned << 14 | requester_id << 16,
        tag | completer_id << 8 | tc << 25 | attr << 28,
    ]


def be_of_dword(dword_address, start, end):
    """Byte enables of one dword for the bytes [start, end)."""
    return sum(1 << b for b in range(4) if start <= dword_address + b < end)


def dma_request(req_type, address, length, tag=0, **fields):
    """The request for the bytes [address, address + length), from the byte range.

    length 0 is a zero-length request: one dword, no byte enabled.
    """
    end = address + length
    first_dw = address & ~3
    last_dw = (end - 1) & ~3 if length else first_dw
    dw_count = (last_dw - first_dw) // 4 + 1
    first_be = be_of_dword(first_dw, address, end)
    last_be = be_of_dword(last_dw, address, end) if dw_count > 1 else 0
    payload = [(first_dw // 4 + k) & 0xFFFF_FFFF for k in range(dw_count)] \
        if req_type == ReqType.MEM_WRITE else []
    # Without an enabled byte the address says only which dword.
    return RequesterRequest(req_type, address if length else first_dw, dw_count, first_be,
                            last_be, tag=tag, payload=payload, **fields)


def split_transfer(address, length, max_bytes):
    """(address, length) pieces of a transfer: none crosses a 4 KiB boundary and
    none spans more than max_bytes of dwords (the dwords, not the bytes, count)."""
    pieces, end = [], address + length
    while address < end:
        stop = min(end, (address & ~3) + max_bytes, (address | 0xFFF) + 1)
        pieces.append((address, stop - address))
        address = stop
    return pieces


def dma_requests(req_type, address, length, max_bytes):
    return [dma_request(req_type, a, n) for a, n in split_transfer(address, length, max_bytes)]


def random_transfer(rng):
    """A byte address anywhere in 64 bits and a length 1..1 MiB, log-uniform."""
    length = min(1 << 20, int(2 ** rng.uniform(0, 20)) + rng.randrange(4))
    address = rng.randrange(1 << 64 - 12) << 12 | rng.randrange(4096)
    if address + length > 1 << 64:
        address -= length
    return address, length


# ---------------------------------------------------------------------------
# The reference splitter must itself be right
# ---------------------------------------------------------------------------

def test_split_transfer_examples():
    assert split_transfer(0xFFE, 5, 256) == [(0xFFE, 2), (0x1000, 3)]
    assert split_transfer(0x1003, 600, 256) == [(0x1003, 253), (0x1100, 256), (0x1200, 91)]
    assert split_transfer(0x10, 8192, 4096) == [(0x10, 4080), (0x1000, 4096), (0x2000, 16)]
    req = dma_request(ReqType.MEM_WRITE, 0x1003, 253)
    assert (req.dw_count, req.first_be, req.last_be) == (64, 0b1000, 0b1111)
    req = dma_request(ReqType.MEM_READ, 0x1001, 2)
    assert (req.dw_count, req.first_be, req.last_be) == (1, 0b0110, 0)
    req = dma_request(ReqType.MEM_READ, 0x1003, 2)
    assert (req.dw_count, req.first_be, req.last_be) == (2, 0b1000, 0b0001)


def test_split_transfer_tiles_the_transfer():
    rng = random.Random(11)
    for _ in range(300):
        address, length = random_transfer(rng)
        max_bytes = rng.choice(MRRS_VALUES)
        pieces = split_transfer(address, length, max_bytes)
        assert pieces[0][0] == address and sum(n for _, n in pieces) == length
        for (a, n), (b, _) in zip(pieces, pieces[1:]):
            assert a + n == b
        for a, n in pieces:
            assert a >> 12 == (a + n - 1) >> 12
            assert ((a + n + 3) & ~3) - (a & ~3) <= max_bytes


# ---------------------------------------------------------------------------
# RequestRules: legal requests are accepted
# ---------------------------------------------------------------------------

def test_rules_accept_reference_split_of_random_transfers():
    rng = random.Random(5)
    checked = 0
    for case in range(400):
        address, length = random_transfer(rng)
        if case < 4:                                   # the longest, at odd addresses
            address, length = 0x7_0000_0000 + 4093 + case, 1 << 20
        mps, mrrs = rng.choice(MPS_VALUES + (2048, 4096)), rng.choice(MRRS_VALUES)
        ext_tags = rng.random() < 0.5
        written = 0
        for kind, limit in ((ReqType.MEM_WRITE, mps), (ReqType.MEM_READ, mrrs)):
            for req in dma_requests(kind, address, length, limit):
                req.tag = rng.randrange(256 if ext_tags else 32)
                RequestRules.check_request(req, mps, mrrs, ext_tags)
                if kind == ReqType.MEM_WRITE:
                    written += req.enabled_bytes
                checked += 1
        assert written == length
    assert checked > 20_000


@pytest.mark.parametrize("dw_count", [1, 2, 3, 4, 17])
@pytest.mark.parametrize("dword", [0, 1])               # quadword aligned or not
def test_rules_byte_enables_exhaustive(dw_count, dword):
    """Accepted exactly when the independent legal() says so, for every pair."""
    address = 0x2000 + 4 * dword
    rejected = 0
    for first_be in range(16):
        for last_be in range(16):
            req = RequesterRequest(ReqType.MEM_READ, address + first_byte_offset(first_be),
                                   dw_count, first_be, last_be)
            problems = RequestRules.violations(req, 4096, 4096, False)
            if legal(address, dw_count, first_be, last_be):
                assert problems == [], (first_be, last_be)
            else:
                assert problems and all(p.startswith("Q6 byte enables") for p in problems), \
                    (first_be, last_be, problems)
                rejected += 1
    assert rejected > 0


def test_rules_accept_zero_length_read_and_write():
    for kind in (ReqType.MEM_READ, ReqType.MEM_WRITE):
        req = dma_request(kind, 0x3000, 0)
        assert (req.dw_count, req.first_be, req.last_be) == (1, 0, 0)
        RequestRules.check_request(req, 128, 128, False)
    assert dma_request(ReqType.MEM_WRITE, 0x3000, 0).enabled_bytes == 0


def test_rules_accept_request_ending_on_4k_boundary():
    RequestRules.check_request(dma_request(ReqType.MEM_READ, 0x1C00, 1024), 128, 1024, False)
    RequestRules.check_request(dma_request(ReqType.MEM_WRITE, 0xFFC, 4), 128, 128, False)


# ---------------------------------------------------------------------------
# RequestRules: each rule catches its violation
# ---------------------------------------------------------------------------

def assert_request_violation(req, rule, mps=256, mrrs=512, ext_tags=False):
    with pytest.raises(ProtocolError, match=rule):
        RequestRules.check_request(req, mps, mrrs, ext_tags)


def test_q3_write_longer_than_mps():
    good = dma_request(ReqType.MEM_WRITE, 0x100, 256)
    RequestRules.check_request(good, 256, 128, False)
    assert_request_violation(dma_request(ReqType.MEM_WRITE, 0x100, 260),
                             "Q3 max payload size: write of 260 bytes, MPS is 256")
    # 253 bytes from 0x103 span 65 dwords: the Length field counts.
    assert_request_violation(dma_request(ReqType.MEM_WRITE, 0x103, 254), "Q3 max payload")


def test_q4_read_longer_than_mrrs():
    good = dma_request(ReqType.MEM_READ, 0x100, 512)
    RequestRules.check_request(good, 128, 512, False)
    assert_request_violation(dma_request(ReqType.MEM_READ, 0x100, 516),
                             "Q4 max read request size: read of 516 bytes, MRRS is 512")
    assert_request_violation(dma_request(ReqType.MEM_READ, 0x101, 512), "Q4 max read")


def test_mps_does_not_limit_reads_nor_mrrs_writes():
    RequestRules.check_request(dma_request(ReqType.MEM_READ, 0, 1024), 128, 1024, False)
    RequestRules.check_request(dma_request(ReqType.MEM_WRITE, 0, 1024), 1024, 128, False)


@pytest.mark.parametrize("kind, address, length", [
    (ReqType.MEM_READ, 0xFFC, 8),          # 2 dwords over 0x1000
    (ReqType.MEM_READ, 0xFFF, 2),          # 1 byte each side
    (ReqType.MEM_WRITE, 0x1F80, 132),      # ends at 0x2004
    (ReqType.MEM_READ, 0x1_0000_0F00, 512),
])
def test_q5_request_crossing_4k(kind, address, length):
    assert_request_violation(dma_request(kind, address, length), "Q5 4 KiB boundary",
                             mps=4096, mrrs=4096)


@pytest.mark.parametrize("dw_count, dword, first_be, last_be, what", [
    (1, 0, 0b1111, 0b0001, "last_be 0001 on a 1-dword request"),
    (2, 0, 0b0000, 0b1111, "first_be 0000 on a 2-dword"),
    (2, 0, 0b1111, 0b0000, "last_be 0000 on a 2-dword"),
    (3, 0, 0b0000, 0b0000, "first_be 0000 on a 3-dword"),
    (3, 0, 0b0111, 0b1111, "first_be 0111 not contiguous up to byte 3"),
    (3, 0, 0b1010, 0b1111, "first_be 1010 not contiguous"),
    (3, 0, 0b1111, 0b1110, "last_be 1110 not contiguous from byte 0"),
    (3, 0, 0b1111, 0b0101, "last_be 0101 not contiguous"),
    (2, 1, 0b0101, 0b1111, "first_be 0101 not contiguous"),   # not quadword aligned
    (2, 1, 0b1111, 0b1010, "last_be 1010 not contiguous"),
])
def test_q6_bad_byte_enables(dw_count, dword, first_be, last_be, what):
    req = RequesterRequest(ReqType.MEM_READ, 0x4000 + 4 * dword, dw_count, first_be, last_be)
    assert_request_violation(req, f"Q6 byte enables: {what}")
    write = dataclasses.replace(req, req_type=ReqType.MEM_WRITE, payload=[0] * dw_count)
    assert_request_violation(write, f"Q6 byte enables: {what}")


def test_q6_holes_allowed_in_quadword_aligned_2_dwords_only():
    req = RequesterRequest(ReqType.MEM_READ, 0x4000, 2, 0b0101, 0b1010)
    RequestRules.check_request(req, 256, 512, False)
    RequestRules.check_request(dataclasses.replace(req, dw_count=1, last_be=0), 256, 512, False)
    assert_request_violation(dataclasses.replace(req, address=0x4004), "Q6 byte enables")
    assert_request_violation(dataclasses.replace(req, dw_count=3), "Q6 byte enables")


def test_q7_tag_needs_extended_tags():
    req = dma_request(ReqType.MEM_READ, 0x100, 64, tag=31)
    RequestRules.check_request(req, 256, 512, False)
    assert_request_violation(dataclasses.replace(req, tag=32),
                             "Q7 tag: tag 0x20 .* only 32 tags with extended tags disabled")
    RequestRules.check_request(dataclasses.replace(req, tag=255), 256, 512, True)


def test_q7_posted_write_tag_is_not_checked():
    write = dma_request(ReqType.MEM_WRITE, 0x100, 64, tag=200)
    RequestRules.check_request(write, 256, 512, False)


@pytest.mark.parametrize("req_type", [t for t in ReqType
                                      if t not in (ReqType.MEM_READ, ReqType.MEM_WRITE)],
                         ids=lambda t: t.name)
def test_q1_only_memory_reads_and_writes(req_type):
    req = dataclasses.replace(dma_request(ReqType.MEM_READ, 0x100, 4), req_type=req_type)
    assert_request_violation(req, f"Q1 request type: {req_type.name}", ext_tags=True)


def test_q1_address_type_must_be_untranslated():
    req = dma_request(ReqType.MEM_READ, 0x100, 4)
    assert_request_violation(dataclasses.replace(req, at=2), "Q1 request type: address type 2")


def test_q2_length():
    write = dma_request(ReqType.MEM_WRITE, 0x100, 16)
    assert_request_violation(dataclasses.replace(write, payload=write.payload[:-1]),
                             "Q2 length: write of 4 dwords carries 3 payload dwords")
    read = dma_request(ReqType.MEM_READ, 0x100, 16)
    assert_request_violation(dataclasses.replace(read, payload=[0]),
                             "Q2 length: read carries 1 payload dwords")
    assert_request_violation(dataclasses.replace(read, dw_count=0),
                             "Q2 length: dword count 0")


def test_q8_poisoned_request():
    req = dma_request(ReqType.MEM_WRITE, 0x100, 16)
    RequestRules.check_request(req, 256, 512, False)
    assert_request_violation(dataclasses.replace(req, poisoned=True), "Q8 poisoned")


def test_request_rules_list_every_violation():
    req = dma_request(ReqType.MEM_WRITE, 0xF00, 512, poisoned=True)
    with pytest.raises(ProtocolError) as info:
        RequestRules.check_request(req, 256, 512, False)
    message = str(info.value)
    assert message.startswith("MEM_WRITE addr 0xf00 len 128")
    for rule in ("Q3 max payload size", "Q5 4 KiB boundary", "Q8 poisoned"):
        assert rule in message
    assert "Q4" not in message and "Q6" not in message


# ---------------------------------------------------------------------------
# RQ/RC descriptors
# ---------------------------------------------------------------------------

def test_rq_decoder_hand_packed():
    dwords = pack_rq(0xFEDC_BA98_7654_3210, 1, 3, ReqType.MEM_WRITE, 1, 0xBEEF, 0xA5,
                     0x1234, 1, 6, 5, 1) + [7, 8, 9]
    req = RequesterRequest.from_rq_dwords(dwords, first_be=0x1C, last_be=0x37,
                                          discontinue=1, seq_num=45)
    assert req == RequesterRequest(
        req_type=ReqType.MEM_WRITE, address=0xFEDC_BA98_7654_3212, dw_count=3,
        first_be=0xC, last_be=0x7, tag=0xA5, requester_id=0xBEEF, poisoned=True, tc=6,
        attr=5, payload=[7, 8, 9], at=1, completer_id=0x1234, requester_id_enable=True,
        force_ecrc=True, discontinue=True, seq_num=45)
    assert req.dword_address == 0xFEDC_BA98_7654_3210
    assert (req.byte_count, req.enabled_bytes) == (9, 9)


def test_rq_decoder_keeps_reserved_type_and_rejects_short_packet():
    req = RequesterRequest.from_rq_dwords(pack_rq(0, 0, 1, 0b1111, 0, 0, 0, 0, 0, 0, 0, 0),
                                          0xF, 0)
    assert req.req_type == 0b1111 and "reserved type 0b1111" in req.summary()
    assert_request_violation(req, "Q1 request type: reserved type")
    with pytest.raises(ValueError):
        RequesterRequest.from_rq_dwords([0, 0, 0], 0xF, 0)


def test_rc_decoder_hand_packed():
    dwords = pack_rc(0xABC, RcErrorCode.INVALID_ADDRESS, 4096, 1, 1, 1024, CplStatus.CA, 1,
                     0xCAFE, 0x81, 0x4711, 7, 3) + [0xDEAD_BEEF]
    assert RequesterCompletion.from_rc_dwords(dwords, discontinue=True) == RequesterCompletion(
        lower_address=0xABC, error_code=RcErrorCode.INVALID_ADDRESS, byte_count=4096,
        locked=True, request_completed=True, dw_count=1024, status=CplStatus.CA,
        poisoned=True, requester_id=0xCAFE, tag=0x81, completer_id=0x4711, tc=7, attr=3,
        discontinue=True, payload=[0xDEAD_BEEF])
    with pytest.raises(ValueError):
        RequesterCompletion.from_rc_dwords([0, 0])


def test_rc_decoder_ignores_reserved_bits():
    dwords = pack_rc(4, 0, 4, 0, 0, 1, 0, 0, 0x0100, 3, 0, 0, 0) + [0]
    dwords[1] |= 1 << 15
    dwords[2] |= 1 << 24 | 1 << 31
    cpl = RequesterCompletion.from_rc_dwords(dwords)
    assert (cpl.requester_id, cpl.tag, cpl.completer_id, cpl.tc, cpl.attr) == (0x0100, 3, 0, 0, 0)


def cocotbext_rq(fmt_type, address, data=None, length=None, **fields):
    from cocotbext.pcie.xilinx.us.tlp import Tlp_us

    tlp = Tlp_us()
    tlp.fmt_type = fmt_type
    if data is not None:
        tlp.set_addr_be_data(address, data)
    else:
        tlp.set_addr_be(address, length)
    for name, value in fields.items():
        setattr(tlp, name, value)
    return tlp


def test_rq_decoder_agrees_with_cocotbext_write():
    from cocotbext.pcie.core.tlp import TlpType
    from cocotbext.pcie.core.utils import PcieId

    tlp = cocotbext_rq(TlpType.MEM_WRITE_64, 0x1_2345_6789, data=bytes(range(1, 12)),
                       requester_id=PcieId(0x12, 3, 4), tag=0x77, tc=5, attr=6, ep=True,
                       requester_id_enable=True)
    frame = tlp.pack_us_rq()
    req = RequesterRequest.from_rq_dwords(frame.data, frame.first_be, frame.last_be,
                                          frame.discontinue, frame.seq_num)
    assert req.req_type == ReqType.MEM_WRITE
    assert req.address == 0x1_2345_6789 and req.dword_address == 0x1_2345_6788
    assert (req.dw_count, req.first_be, req.last_be) == (tlp.length, 0xE, 0xF)
    assert req.enabled_bytes == 11 == req.byte_count
    assert (req.requester_id, req.tag, req.tc, req.attr) == (int(tlp.requester_id), 0x77, 5, 6)
    assert req.poisoned and req.requester_id_enable
    assert req.payload == frame.data[4:] and len(req.payload) == tlp.length
    assert dma_request(ReqType.MEM_WRITE, 0x1_2345_6789, 11).first_be == frame.first_be


@pytest.mark.parametrize("address, length", [(0x1000, 4), (0x1003, 1), (0x1002, 4),
                                             (0xFFF0, 4096), (0x2001, 0)])
def test_rq_decoder_agrees_with_cocotbext_read(address, length):
    from cocotbext.pcie.core.tlp import TlpType
    from cocotbext.pcie.core.utils import PcieId

    tlp = cocotbext_rq(TlpType.MEM_READ, address, length=length, tag=0x1F,
                       requester_id=PcieId(0, 0, 0))
    frame = tlp.pack_us_rq()
    req = RequesterRequest.from_rq_dwords(frame.data, frame.first_be, frame.last_be)
    ref = dma_request(ReqType.MEM_READ, address, length, tag=0x1F)
    assert (req.req_type, req.address, req.dw_count, req.first_be, req.last_be, req.tag) == \
        (ref.req_type, ref.address, ref.dw_count, ref.first_be, ref.last_be, ref.tag)
    assert req.payload == []
    if length:
        assert req.byte_count == tlp.get_be_byte_count() == length


def test_rc_decoder_agrees_with_cocotbext():
    from cocotbext.pcie.core.tlp import TlpType
    from cocotbext.pcie.core.utils import PcieId
    from cocotbext.pcie.xilinx.us.tlp import Tlp_us

    tlp = Tlp_us()
    tlp.fmt_type = TlpType.CPL_DATA
    tlp.set_data(bytes(range(12)))
    tlp.lower_address, tlp.byte_count = 0x9A3, 70
    tlp.status = CplStatus.SC
    tlp.requester_id = PcieId(1, 2, 3)
    tlp.completer_id = PcieId(0x44, 0x1F, 0x7)
    tlp.tag, tlp.tc, tlp.attr = 0xC3, 2, 1
    tlp.error_code = RcErrorCode.POISONED
    tlp.ep = True
    tlp.request_completed = True
    cpl = RequesterCompletion.from_rc_dwords(tlp.pack_us_rc().data)
    assert (cpl.lower_address, cpl.byte_count, cpl.dw_count) == (0x9A3, 70, 3)
    assert cpl.error_code == RcErrorCode.POISONED and cpl.poisoned and cpl.request_completed
    assert cpl.status == CplStatus.SC and not cpl.locked
    assert (cpl.requester_id, cpl.completer_id) == (int(tlp.requester_id), int(tlp.completer_id))
    assert (cpl.tag, cpl.tc, cpl.attr) == (0xC3, 2, 1)
    assert cpl.payload == [0x03020100, 0x07060504, 0x0B0A0908]

    ur = Tlp_us()
    ur.fmt_type = TlpType.CPL_LOCKED
    ur.status, ur.byte_count, ur.tag = CplStatus.UR, 4, 5
    cpl = RequesterCompletion.from_rc_dwords(ur.pack_us_rc().data)
    assert (cpl.status, cpl.locked, cpl.dw_count, cpl.request_completed) == \
        (CplStatus.UR, True, 0, False)


def test_descriptor_layouts_agree_with_cocotbext():
    from cocotbext.pcie.core.tlp import TlpType
    from cocotbext.pcie.core.utils import PcieId
    from cocotbext.pcie.xilinx.us.tlp import Tlp_us

    rng = random.Random(9)
    for _ in range(200):
        fields = dict(at=0, address=rng.randrange(1 << 62), dw_count=rng.randrange(1, 1025),
                      req_type=rng.choice((ReqType.MEM_READ, ReqType.MEM_WRITE)),
                      poisoned=rng.randrange(2), requester_id=rng.randrange(1 << 16),
                      tag=rng.randrange(256), completer_id=rng.randrange(1 << 16),
                      requester_id_enable=rng.randrange(2), tc=rng.randrange(8),
                      attr=rng.randrange(8))
        tlp = Tlp_us.unpack_us_rq(_frame(pack_descriptor(RQ_DESCRIPTOR, 4, **fields)))
        assert tlp.address == fields["address"] << 2
        assert (tlp.length, int(tlp.requester_id), tlp.tag, int(tlp.completer_id)) == \
            (fields["dw_count"], fields["requester_id"], fields["tag"], fields["completer_id"])
        assert (tlp.ep, tlp.requester_id_enable, tlp.tc, tlp.attr) == \
            (bool(fields["poisoned"]), bool(fields["requester_id_enable"]), fields["tc"],
             fields["attr"])
        assert tlp.pack_us_rq().data[:4] == pack_descriptor(RQ_DESCRIPTOR, 4, **fields)

        cpl = Tlp_us()
        cpl.fmt_type = rng.choice((TlpType.CPL, TlpType.CPL_LOCKED))
        cpl.lower_address, cpl.byte_count = rng.randrange(4096), rng.randrange(1 << 13)
        cpl.error_code, cpl.status = rng.randrange(16), rng.choice(list(CplStatus))
        cpl.request_completed, cpl.ep = bool(rng.randrange(2)), bool(rng.randrange(2))
        cpl.requester_id = PcieId.from_int(rng.randrange(1 << 16))
        cpl.completer_id = PcieId.from_int(rng.randrange(1 << 16))
        cpl.tag, cpl.tc, cpl.attr = rng.randrange(256), rng.randrange(8), rng.randrange(8)
        got = unpack_descriptor(RC_DESCRIPTOR, cpl.pack_us_rc().data[:3])
        assert got == dict(
            lower_address=cpl.lower_address, error_code=cpl.error_code,
            byte_count=cpl.byte_count, locked=int(cpl.fmt_type == TlpType.CPL_LOCKED),
            request_completed=int(cpl.request_completed), dw_count=0, status=cpl.status,
            poisoned=int(cpl.ep), requester_id=int(cpl.requester_id), tag=cpl.tag,
            completer_id=int(cpl.completer_id), tc=cpl.tc, attr=cpl.attr)


def _frame(dwords):
    from cocotbext.pcie.xilinx.us.interface import UsPcieFrame

    frame = UsPcieFrame()
    frame.data = list(dwords)
    frame.first_be, frame.last_be = 0xF, 0xF
    return frame


def test_pack_descriptor_rejects_overflow():
    with pytest.raises(ValueError, match="tag 0x100 does not fit in 8 bits"):
        pack_descriptor(RQ_DESCRIPTOR, 4, tag=256)


# ---------------------------------------------------------------------------
# RequesterMonitor, fed beat by beat
# ---------------------------------------------------------------------------

def rq_packet(req):
    return pack_rq(req.dword_address, req.at, req.dw_count, req.req_type, int(req.poisoned),
                   req.requester_id, req.tag, req.completer_id, int(req.requester_id_enable),
                   req.tc, req.attr, int(req.force_ecrc)) + list(req.payload)


def rc_packet(cpl):
    return pack_rc(cpl.lower_address, cpl.error_code, cpl.byte_count, int(cpl.locked),
                   int(cpl.request_completed), cpl.dw_count, cpl.status, int(cpl.poisoned),
                   cpl.requester_id, cpl.tag, cpl.completer_id, cpl.tc, cpl.attr) \
        + list(cpl.payload)


def read_reply(req, length, rcb=64, mps=256, **changes):
    """Completions a correct completer may send for a read of length bytes at
    req.address, each as long as MPS allows and ending on an RCB boundary."""
    first_byte, end = req.address, req.address + length
    start, stop = req.dword_address, req.dword_address + 4 * req.dw_count
    cpls = []
    while start < stop:
        piece_end = min(stop, (start + mps) // rcb * rcb)
        here = max(start, first_byte)
        dwords = (piece_end - start) // 4
        cpls.append(RequesterCompletion(
            lower_address=here & 0xFFF, byte_count=end - here if length else 1,
            request_completed=piece_end == stop, dw_count=dwords, status=CplStatus.SC,
            requester_id=req.requester_id, tag=req.tag, tc=req.tc, attr=req.attr,
            payload=[(start // 4 + k) & 0xFFFF_FFFF for k in range(dwords)]))
        start = piece_end
    return [dataclasses.replace(c, **changes) for c in cpls]


class RqHarness:
    """Drives a RequesterMonitor as a simulator would, one edge per beat."""

    def __init__(self, width, mps=256, mrrs=512, ext_tags=False, bus_master=True,
                 max_outstanding=None):
        self.width = width
        self.sb = sideband(width)
        self.mps, self.mrrs, self.ext_tags, self.bus_master = mps, mrrs, ext_tags, bus_master
        self.monitor = RequesterMonitor(width, lambda: self.mps, lambda: self.mrrs,
                                        lambda: self.ext_tags, lambda: self.bus_master,
                                        max_outstanding=max_outstanding, name="test")

    def edge(self, rq=IDLE, rc=IDLE, in_reset=False):
        self.monitor.sample(in_reset, rq, rc)

    def rq_beats(self, req):
        """RQ beats as PG213 wants them: byte enables and seq_num on the first
        beat, discontinue on every beat, is_sop/is_eop/pointers at 512 bits."""
        sb, result = self.sb, []
        for data, keep, last, first in beats(rq_packet(req), self.width):
            user = (1 << sb.rq_discontinue) if req.discontinue else 0
            if first == 0:
                user |= req.first_be << sb.rq_first_be | req.last_be << sb.rq_last_be
                user |= (req.seq_num & (1 << sb.rq_seq_num_width) - 1) << sb.rq_seq_num
                if sb.rq_seq_num_hi is not None:
                    user |= (req.seq_num >> 4 & 3) << sb.rq_seq_num_hi
            if self.width == 512:
                user |= (first == 0) << sb.rq_is_sop
                if last:
                    user |= 1 << sb.rq_is_eop | (keep.bit_length() - 1) << sb.rq_eop_ptr
            result.append(Beat(1, 1, data, keep, int(last), user))
        return result

    def send(self, *reqs, stall_every=0):
        for req in reqs:
            for n, beat in enumerate(self.rq_beats(req)):
                if stall_every and n % stall_every == 0:
                    self.edge(rq=dataclasses.replace(beat, ready=0))
                self.edge(rq=beat)

    def rc_beats(self, cpl):
        sb, result = self.sb, []
        for data, keep, last, first in beats(rc_packet(cpl), self.width):
            user = (1 << sb.rc_discontinue) if cpl.discontinue else 0
            user |= (first == 0) << sb.rc_is_sop
            if last:
                user |= 1 << sb.rc_is_eop | (keep.bit_length() - 1) << sb.rc_eop_ptr
            result.append(Beat(1, 1, data, keep, int(last), user))
        return result

    def complete(self, *cpls):
        for cpl in cpls:
            for beat in self.rc_beats(cpl):
                self.edge(rc=beat)

    @property
    def errors(self):
        return self.monitor.errors

    def joined(self):
        return "\n".join(self.monitor.errors)


def run_dma(h, rng, address, length, window, rcb=64, tags=32):
    """A DMA as an engine would do it: the writes, then the reads with up to
    window tags outstanding, the completions of different reads interleaved
    at random. Returns (writes, reads, completions)."""
    writes = dma_requests(ReqType.MEM_WRITE, address, length, h.mps)
    h.send(*writes, stall_every=rng.choice((0, 2, 3)))
    free, waiting = list(range(tags)), {}        # tag -> (completions left)
    reads, completions = [], 0
    todo = list(split_transfer(address, length, h.mrrs))

    def deliver_one():
        nonlocal completions
        tag = rng.choice(sorted(waiting))
        h.complete(waiting[tag].pop(0))
        completions += 1
        if not waiting[tag]:
            del waiting[tag]
            free.append(tag)

    while todo or waiting:
        if todo and free and len(waiting) < window and rng.random() < 0.6:
            a, n = todo.pop(0)
            req = dma_request(ReqType.MEM_READ, a, n, tag=free.pop(0))
            reads.append(req)
            h.send(req)
            waiting[req.tag] = read_reply(req, n, rcb=rcb, mps=h.mps)
        elif waiting:
            deliver_one()
        h.edge()
    return writes, reads, completions


@pytest.mark.parametrize("width", WIDTHS)
def test_requester_monitor_accepts_dma(width):
    rng = random.Random(width)
    h = RqHarness(width, mps=256, mrrs=512, max_outstanding=8)
    writes, reads, completions = run_dma(h, rng, 0x8_0000_0FF3, 20_000, window=8)
    assert h.errors == []
    m = h.monitor
    assert (m.rq_writes, m.rq_reads, m.rq_requests) == (len(writes), len(reads),
                                                       len(writes) + len(reads))
    assert m.rq_bytes_written == 20_000 == m.rq_bytes_requested
    assert m.rc_completions == completions > len(reads)
    assert m.outstanding_peak == 8
    assert len(m.latencies) == len(reads)
    m.assert_clean()
    m.assert_idle()


def test_requester_monitor_accepts_random_dmas_and_splits():
    rng = random.Random(77)
    for _ in range(30):
        h = RqHarness(rng.choice(WIDTHS), mps=rng.choice(MPS_VALUES),
                      mrrs=rng.choice(MRRS_VALUES), ext_tags=True)
        address, length = random_transfer(rng)
        run_dma(h, rng, address, min(length, 40_000), window=rng.randrange(1, 40),
                rcb=rng.choice(RCB_VALUES), tags=256)
        assert h.errors == []
        h.monitor.assert_idle()


def test_requester_monitor_zero_length_read():
    h = RqHarness(128)
    req = dma_request(ReqType.MEM_READ, 0x2204, 0, tag=3)
    h.send(req)
    (cpl,) = read_reply(req, 0)
    assert (cpl.lower_address, cpl.byte_count, cpl.dw_count) == (0x204, 1, 1)
    h.complete(cpl)
    assert h.errors == []
    h.monitor.assert_idle()


def test_requester_monitor_reads_config_when_the_request_goes_out():
    h = RqHarness(256, mps=128, mrrs=128)
    write = dma_request(ReqType.MEM_WRITE, 0x1000, 256)
    beats_ = h.rq_beats(write)
    h.edge(rq=beats_[0])
    h.mps = 256                          # raised after the first beat: too late
    for beat in beats_[1:]:
        h.edge(rq=beat)
    assert "Q3 max payload size: write of 256 bytes, MPS is 128" in h.joined()
    h.errors.clear()
    h.send(dma_request(ReqType.MEM_READ, 0x1000, 256))
    assert "Q4 max read request size: read of 256 bytes, MRRS is 128" in h.joined()
    h.errors.clear()
    h.mrrs = 256
    h.send(dma_request(ReqType.MEM_READ, 0x2000, 256, tag=1))
    assert h.errors == []


def test_requester_monitor_applies_request_rules():
    h = RqHarness(64, mps=4096, mrrs=4096)
    h.send(dma_request(ReqType.MEM_WRITE, 0xF00, 512))
    assert "Q5 4 KiB boundary" in h.joined()
    h.send(RequesterRequest(ReqType.MEM_WRITE, 0x4000, 3, 0b0111, 0b1111, payload=[0] * 3))
    assert "Q6 byte enables: first_be 0111" in h.joined()


def test_requester_monitor_tag_too_large_without_extended_tags():
    h = RqHarness(128)
    h.send(dma_request(ReqType.MEM_READ, 0x100, 16, tag=32))
    assert "Q7 tag: tag 0x20" in h.joined()
    h.ext_tags = True
    h.send(dma_request(ReqType.MEM_READ, 0x100, 16, tag=33))
    assert h.monitor.error_count == 1


@pytest.mark.parametrize("width", WIDTHS)
def test_requester_monitor_tag_reused_before_completion(width):
    h = RqHarness(width)
    first = dma_request(ReqType.MEM_READ, 0x1000, 256, tag=7)
    h.send(first)
    cpls = read_reply(first, 256, rcb=64, mps=128)
    h.complete(cpls[0])                              # half of it
    h.send(dma_request(ReqType.MEM_READ, 0x2000, 16, tag=7))
    assert "Q11 tag reuse before completion: tag 0x07 still waits for 128 bytes" in h.joined()
    assert h.monitor.error_count == 1
    h.complete(cpls[1])
    h.send(dma_request(ReqType.MEM_READ, 0x3000, 16, tag=7))      # free again
    assert h.monitor.error_count == 1


def test_requester_monitor_more_reads_than_max_outstanding():
    h = RqHarness(256, max_outstanding=2)
    for tag in range(3):
        h.send(dma_request(ReqType.MEM_READ, 0x1000 * tag, 64, tag=tag))
    assert "3 reads outstanding, the limit is 2" in h.joined()
    assert h.monitor.outstanding_peak == 3


def test_requester_monitor_completion_for_unknown_tag():
    h = RqHarness(256)
    req = dma_request(ReqType.MEM_READ, 0x1000, 64, tag=4)
    h.send(req)
    h.complete(*read_reply(req, 64, tag=5))
    assert "C1 unknown tag: no read with tag 0x05" in h.joined()
    h.complete(*read_reply(req, 64))
    assert h.monitor.error_count == 1
    h.complete(*read_reply(req, 64))                 # answered already
    assert h.monitor.error_count == 2


def test_requester_monitor_completion_for_a_write():
    h = RqHarness(64)
    write = dma_request(ReqType.MEM_WRITE, 0x1000, 64, tag=4)
    h.send(write)
    h.monitor.assert_idle()                          # a write waits for nothing
    h.complete(*read_reply(dataclasses.replace(write, req_type=ReqType.MEM_READ), 64))
    assert "C1 unknown tag" in h.joined()


@pytest.mark.parametrize("width", WIDTHS)
def test_requester_monitor_rq_beat_while_bus_master_is_off(width):
    h = RqHarness(width, bus_master=False)
    read = dma_request(ReqType.MEM_READ, 0x1000, 64, tag=1)
    h.send(read)
    assert "Q9 bus master: RQ packet started while Bus Master Enable is clear" in h.joined()
    assert h.monitor.outstanding() == {}             # the hard IP drops it
    h.monitor.assert_idle()
    h.send(dma_request(ReqType.MEM_WRITE, 0x1000, 64))
    assert h.monitor.error_count == 2 and h.monitor.rq_bytes_written == 0
    h.bus_master = True
    h.send(read)
    assert h.monitor.error_count == 2 and list(h.monitor.outstanding()) == [1]


def test_requester_monitor_bus_master_cleared_mid_packet():
    """A request is issued with its first beat: the rest of a packet begun
    with Bus Master Enable set cannot be withdrawn (AXI-Stream) nor
    discontinued (Q10), so it is no error, and the write lands."""
    h = RqHarness(64)
    beats_ = h.rq_beats(dma_request(ReqType.MEM_WRITE, 0x1000, 64))
    h.edge(rq=beats_[0])
    h.bus_master = False
    for beat in beats_[1:]:
        h.edge(rq=beat)
    assert h.monitor.error_count == 0 and h.monitor.rq_bytes_written == 64, h.joined()
    h.send(dma_request(ReqType.MEM_WRITE, 0x2000, 64))
    assert h.monitor.error_count == 1 and "Q9 bus master" in h.joined()


def test_requester_monitor_catches_tkeep_gap_and_partial_middle_beat():
    h = RqHarness(128)
    good = h.rq_beats(dma_request(ReqType.MEM_WRITE, 0x1000, 32))
    assert len(good) == 3
    h.edge(rq=dataclasses.replace(good[0], keep=0b1101))
    h.edge(rq=dataclasses.replace(good[1], keep=0b0011))
    h.edge(rq=dataclasses.replace(good[2], keep=0))
    joined = h.joined()
    assert "m_axis_rq_tkeep 0b1101 is not contiguous from bit 0" in joined
    assert "m_axis_rq_tkeep 0b11 on a beat that is not the last" in joined
    assert "m_axis_rq_tkeep is 0 on a transferred beat" in joined


def test_requester_monitor_accepts_full_keep_and_short_last_beat():
    h = RqHarness(256)
    h.send(dma_request(ReqType.MEM_WRITE, 0x1000, 20), stall_every=1)
    assert h.errors == [] and h.monitor.rq_beats == 2


def test_requester_monitor_catches_changes_while_waiting_for_tready():
    h = RqHarness(256)
    beat = h.rq_beats(dma_request(ReqType.MEM_WRITE, 0x1000, 64))[0]
    h.edge(rq=dataclasses.replace(beat, ready=0))
    h.edge(rq=dataclasses.replace(beat, ready=0, data=beat.data ^ 1 << 200))
    assert "m_axis_rq tdata changed while waiting for tready" in h.joined()
    h.edge(rq=dataclasses.replace(beat, ready=0, data=beat.data ^ 1 << 200, keep=0x7F))
    assert "m_axis_rq tkeep changed while waiting" in h.joined()
    h.edge(rq=IDLE)
    assert "m_axis_rq_tvalid dropped before tready took the beat" in h.joined()


def test_requester_monitor_flags_unknown_signals():
    h = RqHarness(128)
    h.edge(rq=Beat(0, 1, unknown=frozenset({"tvalid"})))
    h.edge(rq=Beat(1, 0, data=0, keep=0b11, last=1, data_x=0xF << 32,
                   unknown=frozenset({"tdata", "tuser"})),
           rc=Beat(0, 0, unknown=frozenset({"tready"})))
    joined = h.joined()
    assert "m_axis_rq_tvalid is X/Z" in joined
    assert "m_axis_rq_tuser is X/Z while tvalid is high" in joined
    assert "m_axis_rq_tdata has X/Z bits in kept dwords [1]" in joined
    assert "s_axis_rc_tready is X/Z" in joined


def test_requester_monitor_512_sop_eop_sideband():
    h = RqHarness(512)
    good = h.rq_beats(dma_request(ReqType.MEM_WRITE, 0x1000, 64))    # 4 + 16 dwords
    assert len(good) == 2
    sb = sideband(512)
    h.send(dma_request(ReqType.MEM_WRITE, 0x1000, 64))
    assert h.errors == []
    h.edge(rq=dataclasses.replace(good[0], user=good[0].user & ~(1 << sb.rq_is_sop)))
    h.edge(rq=dataclasses.replace(good[1], user=good[1].user ^ 1 << sb.rq_eop_ptr))
    joined = h.joined()
    assert "m_axis_rq_tuser is_sop 00 on the first beat" in joined
    assert "eop pointer 2, but the last valid dword is 3" in joined
    h.edge(rq=dataclasses.replace(good[0], user=good[0].user | 1 << sb.rq_is_eop
                                  | 1 << sb.rq_sop_ptr))
    joined = h.joined()
    assert "is_eop 01 with tlast 0" in joined and "is_sop0_ptr 1" in joined


def test_requester_monitor_512_second_slot_is_unused():
    h = RqHarness(512)
    good = h.rq_beats(dma_request(ReqType.MEM_READ, 0x1000, 64))[0]
    h.edge(rq=dataclasses.replace(good, user=good.user | 2 << sideband(512).rq_is_sop))
    assert "is_sop 11 on the first beat" in h.joined()


@pytest.mark.parametrize("width", WIDTHS)
def test_requester_monitor_decodes_rq_sideband(width):
    h = RqHarness(width, mps=4096, mrrs=4096)
    h.send(dma_request(ReqType.MEM_WRITE, 0x1002, 77))
    h.send(dataclasses.replace(dma_request(ReqType.MEM_READ, 0x2001, 2, tag=9), seq_num=0x2B))
    assert h.errors == []
    assert h.monitor.rq_bytes_written == 77
    (read,) = h.monitor.outstanding().values()
    req = read.request
    assert (req.address, req.first_be, req.last_be, req.tag) == (0x2001, 0b0110, 0, 9)
    assert req.seq_num == 0x2B


def test_requester_monitor_discontinued_request():
    h = RqHarness(128)
    read = dataclasses.replace(dma_request(ReqType.MEM_READ, 0x1000, 64, tag=2),
                               discontinue=True)
    h.send(read)
    assert "Q10 discontinue" in h.joined()
    h.monitor.assert_idle()                          # dropped: nothing to wait for


@pytest.mark.parametrize("name, value, message", [
    ("lower_address", 0x44, "C3 lower address: 0x44, the first missing byte is at 0x1040"),
    ("byte_count", 60, "C4 byte count: 60, 64 bytes of the read are still missing"),
    ("tc", 1, "C2 header: tc 0x1, the read has 0x0"),
    ("attr", 2, "C2 header: attr 0x2"),
    ("requester_id", 0x0001, "C2 header: requester_id 0x1, the read has 0x0"),
    ("locked", True, "C2 header: locked completion"),
])
def test_requester_monitor_catches_wrong_second_completion(name, value, message):
    h = RqHarness(256)
    req = dma_request(ReqType.MEM_READ, 0x1000, 128, tag=6)
    h.send(req)
    cpls = read_reply(req, 128, mps=64)
    assert cpls[1].lower_address == 0x40 and cpls[1].byte_count == 64
    h.complete(cpls[0], dataclasses.replace(cpls[1], **{name: value}))
    assert message in h.joined(), h.errors


def test_requester_monitor_requester_bus_is_the_hard_ips():
    """Without requester ID enable the hard IP fills in the bus number."""
    h = RqHarness(256)
    req = dma_request(ReqType.MEM_READ, 0x1000, 64, tag=6, requester_id=0x0003)
    h.send(req)
    h.complete(*read_reply(req, 64, requester_id=0x0203))
    assert h.errors == []
    req = dataclasses.replace(req, requester_id_enable=True)
    h.send(req)
    h.complete(*read_reply(req, 64, requester_id=0x0203))
    assert "C2 header: requester_id 0x203, the read has 0x3" in h.joined()


def test_requester_monitor_catches_completions_out_of_order_within_a_read():
    h = RqHarness(256)
    req = dma_request(ReqType.MEM_READ, 0x1000, 256, tag=1)
    h.send(req)
    cpls = read_reply(req, 256, mps=64)
    h.complete(cpls[1], cpls[0])
    joined = h.joined()
    assert "C3 lower address: 0x40, the first missing byte is at 0x1000" in joined
    assert "C4 byte count: 192, 256 bytes of the read are still missing" in joined


def test_requester_monitor_lower_address_has_7_bits():
    """Bits 11:7 of a completion's lower address are not compared (the hard IP
    fills them in from the byte count); the byte count catches the swap."""
    h = RqHarness(256)
    req = dma_request(ReqType.MEM_READ, 0x1000, 256, tag=1)
    h.send(req)
    cpls = read_reply(req, 256, mps=128)
    h.complete(cpls[1], cpls[0])
    joined = h.joined()
    assert "C3" not in joined
    assert "C4 byte count: 128, 256 bytes of the read are still missing" in joined
    # The second half says it is the last: the tag is free, the first half is unknown.
    assert "C1 unknown tag" in joined


def test_requester_monitor_catches_split_off_64_bytes():
    h = RqHarness(256)
    req = dma_request(ReqType.MEM_READ, 0x1000, 128, tag=1)
    h.send(req)
    first = RequesterCompletion(lower_address=0, byte_count=128, dw_count=8, tag=1,
                                payload=[0] * 8)
    h.complete(first)
    assert "C5 split: completion ends at 0x1020 with 96 bytes to come, not on a 64-byte" \
        in h.joined()


def test_requester_monitor_catches_completion_longer_than_mps_and_extra_dword():
    h = RqHarness(256, mps=128, mrrs=512)
    req = dma_request(ReqType.MEM_READ, 0x1002, 254, tag=1)
    h.send(req)
    one = read_reply(req, 254, mps=256)
    assert len(one) == 1
    h.complete(dataclasses.replace(one[0], dw_count=65, payload=one[0].payload + [0]))
    joined = h.joined()
    assert "C5 split: payload of 260 bytes, MPS is 128" in joined
    assert "C5 split: the last completion carries 4 bytes after the last byte" in joined


def test_requester_monitor_catches_dw_count_and_payload_mismatch():
    h = RqHarness(64)
    req = dma_request(ReqType.MEM_READ, 0x1000, 8, tag=1)
    h.send(req)
    (cpl,) = read_reply(req, 8)
    h.complete(dataclasses.replace(cpl, payload=cpl.payload[:1]))
    assert "C2 header: dw_count 2 but carries 1 payload dwords" in h.joined()


def test_requester_monitor_successful_completion_without_data():
    h = RqHarness(64)
    req = dma_request(ReqType.MEM_READ, 0x1000, 8, tag=1)
    h.send(req)
    h.complete(RequesterCompletion(lower_address=0, byte_count=8, tag=1))
    assert "successful completion of a read without data" in h.joined()
    h.monitor.assert_idle()                           # the tag is released


@pytest.mark.parametrize("status", [CplStatus.UR, CplStatus.CA])
def test_requester_monitor_unsuccessful_completion_releases_the_tag(status):
    h = RqHarness(128)
    req = dma_request(ReqType.MEM_READ, 0x1000, 256, tag=3)
    h.send(req)
    h.complete(RequesterCompletion(lower_address=0, byte_count=256, status=status, tag=3,
                                   request_completed=True))
    assert h.errors == [] and h.monitor.rc_unsuccessful == 1
    h.monitor.assert_idle()
    h.send(dataclasses.replace(req, address=0x2000))
    assert h.errors == []


def test_requester_monitor_request_completed_bit_releases_the_tag():
    h = RqHarness(128)
    req = dma_request(ReqType.MEM_READ, 0x1000, 256, tag=3)
    h.send(req)
    first = read_reply(req, 256, mps=128)[0]
    h.complete(first)
    assert list(h.monitor.outstanding()) == [3]
    h.send(dataclasses.replace(req, address=0x2000))
    assert h.monitor.error_count == 1                 # reused: still outstanding
    h.complete(dataclasses.replace(first, request_completed=True, lower_address=0x80,
                                   byte_count=128))
    h.monitor.assert_idle()


def test_requester_monitor_poisoned_completion_is_counted_not_flagged():
    h = RqHarness(128)
    req = dma_request(ReqType.MEM_READ, 0x1000, 64, tag=3)
    h.send(req)
    h.complete(*read_reply(req, 64, poisoned=True, error_code=RcErrorCode.POISONED))
    assert h.errors == [] and h.monitor.rc_poisoned == 1
    h.monitor.assert_idle()


def test_requester_monitor_discontinued_completion_still_counts_for_its_read():
    # Discontinue marks corrupt payload in the hard IP's buffer; nothing on
    # the link is sent again, so the completion ends its read as usual.
    h = RqHarness(512)
    req = dma_request(ReqType.MEM_READ, 0x1000, 256, tag=3)
    h.send(req)
    first, *rest = read_reply(req, 256, mps=128)
    h.complete(dataclasses.replace(first, discontinue=True))
    assert h.errors == [] and h.monitor.rc_discontinued == 1
    assert list(h.monitor.outstanding()) == [3]
    h.complete(*rest)
    h.monitor.assert_idle()
    h.complete(*read_reply(req, 64))
    assert h.monitor.error_count == 1                 # C1: the read had ended


def test_requester_monitor_assert_idle_lists_waiting_read():
    h = RqHarness(256, ext_tags=True)
    req = dma_request(ReqType.MEM_READ, 0x1000, 256, tag=0x33)
    h.send(req)
    h.complete(read_reply(req, 256, mps=64)[0])
    h.monitor.assert_clean()
    with pytest.raises(ProtocolError, match=r"(?s)1 read\(s\).*tag 0x33.*192 bytes missing"):
        h.monitor.assert_idle()


def test_requester_monitor_assert_idle_sees_a_partial_packet():
    h = RqHarness(64)
    h.edge(rq=h.rq_beats(dma_request(ReqType.MEM_WRITE, 0x1000, 64))[0])
    with pytest.raises(ProtocolError, match="RQ packet is only partly transferred"):
        h.monitor.assert_idle()


def test_requester_monitor_reset_forgets_reads_and_ignores_beats():
    h = RqHarness(256)
    h.send(dma_request(ReqType.MEM_READ, 0x1000, 64, tag=1))
    h.edge(in_reset=True)
    h.monitor.assert_idle()
    for beat in h.rq_beats(dma_request(ReqType.MEM_READ, 0x1000, 64, tag=2)):
        h.edge(rq=beat, in_reset=True)
    assert h.monitor.rq_requests == 1
    h.monitor.assert_idle()


def test_requester_monitor_undecodable_packets():
    h = RqHarness(128)
    h.edge(rq=Beat(1, 1, data=0, keep=0b111, last=1))
    h.edge(rc=Beat(1, 1, data=0, keep=0b11, last=1))
    joined = h.joined()
    assert "undecodable RQ packet" in joined and "undecodable RC packet" in joined


def test_requester_checker_for_function_reads_the_model():
    """The functions for_function makes read a cocotbext-pcie Function, and
    Bus Master Enable from the endpoint's cfg_function_status port."""
    from cocotb.types import LogicArray
    from cocotbext.pcie.core.function import Function

    from hw.sim.tb.checker.adapters import RequesterChecker

    made = {}

    def fake_init(self, dut, clk, rst, width, mps_fn, mrrs_fn, ext_tags_fn, bus_master_fn,
                  max_outstanding=None):
        made.update(mps=mps_fn, mrrs=mrrs_fn, ext=ext_tags_fn, bm=bus_master_fn,
                    width=width, max_outstanding=max_outstanding)

    class Port:
        value = LogicArray("X" * 16)

    class Dut:
        cfg_function_status = Port()

    func = Function()
    original = RequesterChecker.__init__
    RequesterChecker.__init__ = fake_init
    try:
        RequesterChecker.for_function(Dut(), None, None, 256, func, max_outstanding=16)
    finally:
        RequesterChecker.__init__ = original
    func.pcie_cap.max_payload_size, func.pcie_cap.max_read_request_size = 1, 5
    func.pcie_cap.extended_tag_field_enable, func.bus_master_enable = True, True
    assert (made["mps"](), made["mrrs"](), made["ext"](), made["bm"]()) == (256, 4096, True, False)
    Port.value = LogicArray(0x0007, 16)
    func.pcie_cap.max_read_request_size, func.bus_master_enable = 0, False
    assert (made["mrrs"](), made["bm"]()) == (128, True)     # the port, not the model
    Port.value = LogicArray(0x0003, 16)
    assert made["bm"]() is False
    assert (made["width"], made["max_outstanding"]) == (256, 16)


def test_requester_monitor_byte_count_releases_the_tag_without_request_completed():
    h = RqHarness(128)
    req = dma_request(ReqType.MEM_READ, 0x1006, 250, tag=3)
    h.send(req)
    cpls = read_reply(req, 250, mps=128, request_completed=False)
    assert len(cpls) == 2
    h.complete(cpls[0])
    assert list(h.monitor.outstanding()) == [3]
    h.complete(cpls[1])
    assert h.errors == []
    h.monitor.assert_idle()
