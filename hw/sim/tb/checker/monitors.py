"""Monitors of an endpoint's UltraScale+ buses, fed with plain integers per
clock edge (unit-tested without a simulator; adapters.py feeds them from
cocotb):

    CompleterMonitor        per-beat AXI-Stream checks on CQ/CC and the
                            pairing of requests with their completions
    RequesterMonitor        per-beat AXI-Stream checks on RQ, RequestRules on
                            every request, tag tracking and the matching of
                            RC completions with outstanding reads
"""

from collections import Counter, deque
from dataclasses import dataclass, field

from hw.sim.tb.checker.rules import (Completion, CompletionRules, ProtocolError, Request,
                                     RequesterCompletion, RequesterRequest, RequestRules,
                                     bits, expected_outcome)
from hw.spec.usp import CplStatus, ReqType, sideband

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
                   if beat.keep >> lane & 1 and bits(beat.data_x, 32 * lane, 32)]
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
        is_sop = bits(beat.user, self.is_sop, 2)
        is_eop = bits(beat.user, self.is_eop, 2)
        if is_sop != int(first):
            self.error(f"{self.bus}_tuser is_sop {is_sop:02b} on "
                       f"{'the first' if first else 'a later'} beat of a packet, "
                       f"expected {int(first):02b}")
        if first and self.sop_ptr is not None and bits(beat.user, self.sop_ptr, 2):
            self.error(f"{self.bus}_tuser is_sop0_ptr {bits(beat.user, self.sop_ptr, 2)}: "
                       f"without straddling a packet starts in dword 0")
        if is_eop != int(bool(beat.last)):
            self.error(f"{self.bus}_tuser is_eop {is_eop:02b} with tlast {beat.last}, "
                       f"expected {int(bool(beat.last)):02b}")
        eop_ptr = bits(beat.user, self.eop_ptr, 4)
        if beat.last and beat.keep and eop_ptr != beat.keep.bit_length() - 1:
            self.error(f"{self.bus}_tuser eop pointer {eop_ptr}, but the last valid "
                       f"dword is {beat.keep.bit_length() - 1} (tkeep {beat.keep:#b})")


def _dwords(beat, lanes):
    """The kept dwords of a beat, lane 0 first."""
    return [bits(beat.data, 32 * lane, 32) for lane in range(lanes) if beat.keep >> lane & 1]


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

    def __init__(self, width, mps_fn, rcb_fn, bar_ids=(0, 2), name="endpoint", memory=None):
        self.width = width
        self.lanes = width // 32
        self.sb = sideband(width)
        self.mps_fn = mps_fn
        self.rcb_fn = rcb_fn
        self.bar_ids = tuple(bar_ids)
        self.memory = memory              # BAR -> (size, memory behind it): rules.beyond_memory
        self.rules = CompletionRules(self.bar_ids, memory)
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
        packet.discontinue |= bool(bits(beat.user, self.sb.cq_discontinue, 1))
        if beat.last:
            self._cq_packet = None
            self._on_request(packet)

    def _on_request(self, packet):
        first_be = bits(packet.first_user, self.sb.cq_first_be, 4)
        last_be = bits(packet.first_user, self.sb.cq_last_be, 4)
        try:
            req = Request.from_cq_dwords(packet.dwords, first_be, last_be,
                                         packet.discontinue)
        except ValueError as exc:
            self._error(f"undecodable CQ packet: {exc}")
            return
        self.requests += 1
        outcome = expected_outcome(req, self.bar_ids, self.memory)
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
        if bits(beat.user, self.sb.cc_discontinue, 1):
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
        packet.discontinue |= bool(bits(beat.user, self.sb.rq_discontinue, 1))
        packet.dwords += _dwords(beat, self.lanes)
        if beat.last:
            self._rq_packet = None
            self._on_request(packet)

    def _seq_num(self, user):
        sb = self.sb
        seq = bits(user, sb.rq_seq_num, sb.rq_seq_num_width)
        if sb.rq_seq_num_hi is not None:
            seq |= bits(user, sb.rq_seq_num_hi, 2) << sb.rq_seq_num_width
        return seq

    def _on_request(self, packet):
        user = packet.first_user
        try:
            req = RequesterRequest.from_rq_dwords(
                packet.dwords, bits(user, self.sb.rq_first_be, 4),
                bits(user, self.sb.rq_last_be, 4), packet.discontinue, self._seq_num(user))
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
        packet.discontinue |= bool(bits(beat.user, self.sb.rc_discontinue, 1))
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
