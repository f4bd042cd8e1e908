"""The 7-series PCIe hard IP's (pcie_7x) TLP stream: how a TLP lies on its
AXI4-Stream, for the bus model and the shim's tests.

pcie_7x hands whole TLPs (header and payload, no descriptors) to the user
side on m_axis_rx_* and takes them on s_axis_tx_*, 64 or 128 bits wide
(PG054). TLP DW n is in tdata[32n+31:32n] of the beat stream, and each DW
is the wire's 4 bytes read big-endian: the TLP's first byte (fmt and type)
is tdata[31:24]. Payload DWs are laid the same way, so a payload byte at
the lowest address is in bits [31:24] of its DW.

Receive side, tuser (PG054, "legacy" mapping):
  [0] ecrc_err, [1] err_fwd, [9:2] bar_hit (bit n: BAR n hit),
  128-bit only: [14:10] is_sof (bit 4: a TLP starts in this beat, [3:0]:
  its first byte, 0 or 8), [21:17] is_eof (bit 4: a TLP ends in this beat,
  [3:0]: its last byte, 3, 7, 11 or 15).
At 64 bits a TLP ends where tlast is set, tkeep 0x0f or 0xff (one bit per
byte). to_beats never starts a TLP mid-beat (straddling).

What pcie_7x's RX pipeline (axi_basic_rx_pipeline) really drives:
  128 bits: tlast is always 0 and tkeep always 0xffff: only is_sof/is_eof
  tell where TLPs start and end. A TLP may start at byte 8 (is_sof 0x18),
  in the beat where the previous one ended at byte 3 or 7 (straddling).
  64 bits: tlast and tkeep as above, and is_sof (0x10) on a TLP's first
  beat, is_eof (0x13 or 0x17) on its last, although PG054 documents them
  for the 128-bit interface only.
RxPacker lays TLPs on the receive stream that way, one beat at a time (the
bus model's RX driver, hw/sim/tb/s7_model.py); RxUnpacker and from_rx_stream
take such a stream apart again.
"""

TUSER_BAR_HIT_SHIFT = 2
TUSER_SOF_SHIFT = 10
TUSER_EOF_SHIFT = 17
PRESENT = 0x10
RX_TUSER_WIDTH = 22
TX_TUSER_WIDTH = 4

# The tuser fields, (lsb, width). is_sof and is_eof: bit 4 present, bits
# 3:0 the byte the TLP starts or ends at.
RX_TUSER = {
    "ecrc_err": (0, 1),
    "err_fwd": (1, 1),              # the TLP is poisoned
    "bar_hit": (TUSER_BAR_HIT_SHIFT, 8),
    "is_sof": (TUSER_SOF_SHIFT, 5),
    "is_eof": (TUSER_EOF_SHIFT, 5),
}
TX_TUSER = {
    "ecrc_gen": (0, 1),
    "err_fwd": (1, 1),              # poison the TLP
    "str": (2, 1),                  # streamed
    "src_dsc": (3, 1),              # discontinue: drop the TLP
}


def dwords(tlp_bytes):
    """The TLP's DWs as integers, each its 4 wire bytes read big-endian."""
    if len(tlp_bytes) % 4:
        raise ValueError(f"a TLP is whole DWs: {len(tlp_bytes)} bytes")
    return [int.from_bytes(tlp_bytes[i:i + 4], "big") for i in range(0, len(tlp_bytes), 4)]


def to_beats(tlp_bytes, width, bar=None):
    """One TLP as beats (tdata, tkeep, tlast, tuser) of a `width`-bit stream,
    DW 0 in the low bits of the first beat. bar: the BAR it hit (receive side)."""
    if width not in (64, 128):
        raise ValueError(f"pcie_7x streams are 64 or 128 bits wide, not {width}")
    dws, per = dwords(tlp_bytes), width // 32
    beats = []
    for first in range(0, len(dws), per):
        chunk = dws[first:first + per]
        data = sum(dw << (32 * i) for i, dw in enumerate(chunk))
        keep = (1 << (4 * len(chunk))) - 1
        last = first + per >= len(dws)
        user = 0 if bar is None else (1 << bar) << TUSER_BAR_HIT_SHIFT
        if width == 128:
            if first == 0:
                user |= PRESENT << TUSER_SOF_SHIFT                    # starts at byte 0
            if last:
                user |= (PRESENT | (4 * len(chunk) - 1)) << TUSER_EOF_SHIFT
        beats.append((data, keep, int(last), user))
    return beats


def from_beats(beats, width):
    """The TLP bytes of beats (tdata, tkeep, ...) ending at the one with tlast;
    ValueError when tkeep is not whole DWs from the low end."""
    out = bytearray()
    for n, (data, keep, last, *_) in enumerate(beats):
        dws = 0
        while dws < width // 32 and (keep >> (4 * dws)) & 0xF == 0xF:
            dws += 1
        if keep >> (4 * dws):
            raise ValueError(f"beat {n}: tkeep {keep:#x} is not whole DWs from the low end")
        for i in range(dws):
            out += ((data >> (32 * i)) & 0xFFFFFFFF).to_bytes(4, "big")
        if last:
            return bytes(out)
    raise ValueError("no beat with tlast: the TLP does not end")


# ---------------------------------------------------------------------------
# The receive stream as pcie_7x drives it: straddling, is_sof/is_eof.
# ---------------------------------------------------------------------------

STRADDLE_SOF = 8                # the byte a straddled TLP starts at (128 bits)
TUSER_ERR_FWD = 1 << 1          # rx tuser[1]: the TLP is poisoned (EP set)


def bar_hit(bar):
    """rx tuser[9:2] for a TLP that hit BAR `bar` (None: no BAR, a completion)."""
    return 0 if bar is None else (1 << bar) << TUSER_BAR_HIT_SHIFT


def sof_field(user):
    """is_sof of an rx tuser value: None, or the byte the TLP starts at."""
    f = user >> TUSER_SOF_SHIFT & 0x1F
    return f & 0xF if f & PRESENT else None


def eof_field(user):
    """is_eof of an rx tuser value: None, or the byte the TLP ends at."""
    f = user >> TUSER_EOF_SHIFT & 0x1F
    return f & 0xF if f & PRESENT else None


class RxPacker:
    """Lays TLPs on pcie_7x's receive stream (m_axis_rx_*), one beat at a time.

    next_beat(pull) returns the next beat (tdata, tkeep, tlast, tuser), or
    None when there is nothing to send. It calls pull() when a TLP can start
    in the beat being built; pull returns (tlp_bytes, bar) or None (nothing
    ready at that moment). bar: the BAR index hit, None for a completion.

    straddle (128 bits only): when a TLP ends at byte 3 or 7, the next one
    (if pull gives one) starts at byte 8 of the same beat.
    exact: tlast/tkeep/is_sof/is_eof as pcie_7x drives them (see the module
    doc); exact=False gives the "data" layout instead: at 128 bits tlast on
    a beat where a TLP ends and no other starts, tkeep the bytes carrying
    TLP data; at 64 bits tuser[21:10] zero. Unused DWs of tdata are 0.
    """

    def __init__(self, width, straddle=False, exact=True):
        if width not in (64, 128):
            raise ValueError(f"pcie_7x streams are 64 or 128 bits wide, not {width}")
        self.width = width
        self.straddle = bool(straddle) and width == 128
        self.exact = exact
        self._dws = None            # DWs of the TLP in progress still to send
        self._user = 0              # its bar_hit and err_fwd bits

    @property
    def in_packet(self):
        """A TLP has started and not ended: the next beat continues it."""
        return self._dws is not None

    def reset(self):
        self._dws = None

    def _start(self, tlp):
        raw, bar = tlp
        dws = dwords(raw)
        if len(dws) < 3:
            raise ValueError(f"a TLP is at least 3 DWs (a header): {len(dws)}")
        self._dws = dws
        self._user = bar_hit(bar) | (TUSER_ERR_FWD if raw[2] & 0x40 else 0)
        return self._user

    def next_beat(self, pull, unaligned=False):
        """The next beat, or None. unaligned (128 bits): a TLP that starts
        while none is in progress starts at byte 8, not 0."""
        per = self.width // 32
        lanes = [None] * per
        sof = eof = None
        lane = 0
        if self._dws is None:
            tlp = pull()
            if tlp is None:
                return None
            user = self._start(tlp)
            lane = 2 if unaligned and self.width == 128 else 0
            sof = 4 * lane
        else:
            user = self._user
        n = min(per - lane, len(self._dws))
        lanes[lane:lane + n] = self._dws[:n]
        self._dws = self._dws[n:]
        lane += n
        straddled = False
        if not self._dws:
            self._dws = None
            eof = 4 * lane - 1
            if self.straddle and lane <= 2:
                tlp = pull()
                if tlp is not None:
                    user = self._start(tlp)
                    sof, straddled = STRADDLE_SOF, True
                    lanes[2:4] = self._dws[:2]          # a TLP is at least 3 DWs
                    self._dws = self._dws[2:]
        data = sum((dw or 0) << (32 * i) for i, dw in enumerate(lanes))
        if self.width == 128:
            if sof is not None:
                user |= (PRESENT | sof) << TUSER_SOF_SHIFT
            if eof is not None:
                user |= (PRESENT | eof) << TUSER_EOF_SHIFT
            if self.exact:
                keep, last = 0xFFFF, 0
            else:
                keep = sum(0xF << (4 * i) for i, dw in enumerate(lanes) if dw is not None)
                last = int(eof is not None and not straddled)
        else:
            keep = 0xFF if lanes[1] is not None else 0x0F
            last = int(eof is not None)
            if self.exact:
                if sof is not None:
                    user |= PRESENT << TUSER_SOF_SHIFT
                if eof is not None:
                    user |= (PRESENT | eof) << TUSER_EOF_SHIFT
        return data, keep, last, user


def to_rx_stream(tlps, width, straddle=False, exact=True, unaligned=()):
    """All of `tlps` ((tlp_bytes, bar) pairs) as receive-stream beats, each
    TLP ready as soon as the previous one has started. unaligned: indexes of
    the TLPs that start at byte 8 when they do not straddle (128 bits)."""
    packer = RxPacker(width, straddle, exact)
    queue = list(tlps)
    taken = [0]

    def pull():
        if not queue:
            return None
        taken[0] += 1
        return queue.pop(0)

    beats = []
    while queue or packer.in_packet:
        beats.append(packer.next_beat(pull, unaligned=taken[0] in unaligned))
    return beats


class RxUnpacker:
    """Takes pcie_7x's receive stream apart, beat by beat: feed(beat) returns
    the TLPs that end in it, as (tlp_bytes, bar_hit) pairs; bar_hit is
    tuser[9:2] of the beat the TLP starts in. At 128 bits only is_sof/is_eof
    are used, at 64 bits tlast and tkeep. ValueError when the stream breaks
    pcie_7x's rules."""

    def __init__(self, width):
        if width not in (64, 128):
            raise ValueError(f"pcie_7x streams are 64 or 128 bits wide, not {width}")
        self.width = width
        self.beats = 0
        self._dws = None            # DWs of the TLP in progress
        self._hit = 0

    @property
    def in_packet(self):
        return self._dws is not None

    def _end(self, dws):
        return b"".join(dw.to_bytes(4, "big") for dw in dws), self._hit

    def feed(self, beat):
        data, keep, last, user = beat
        n, self.beats = self.beats, self.beats + 1
        dws = [(data >> (32 * i)) & 0xFFFFFFFF for i in range(self.width // 32)]
        if self.width == 64:
            if keep not in (0xFF, 0x0F) or (keep != 0xFF and not last):
                raise ValueError(f"beat {n}: tkeep {keep:#x}")
            if self._dws is None:
                self._dws, self._hit = [], user >> TUSER_BAR_HIT_SHIFT & 0xFF
            self._dws += dws[:2 if keep == 0xFF else 1]
            if not last:
                return []
            done, self._dws = self._dws, None
            return [self._end(done)]
        sof, eof = sof_field(user), eof_field(user)
        if sof not in (None, 0, STRADDLE_SOF):
            raise ValueError(f"beat {n}: is_sof at byte {sof}")
        if eof not in (None, 3, 7, 11, 15):
            raise ValueError(f"beat {n}: is_eof at byte {eof}")
        out = []
        if self._dws is None:
            if sof is None:
                raise ValueError(f"beat {n}: data outside a TLP (no is_sof)")
            if eof is not None and eof < sof:
                raise ValueError(f"beat {n}: is_eof at byte {eof} before is_sof at {sof}")
        elif eof is None:
            if sof is not None:
                raise ValueError(f"beat {n}: is_sof inside a TLP")
            self._dws += dws
            return out
        else:
            end = eof // 4 + 1
            out.append(self._end(self._dws + dws[:end]))
            self._dws = None
            if sof is None:
                return out
            if sof < 4 * end:
                raise ValueError(f"beat {n}: is_sof at byte {sof} inside the TLP ending at {eof}")
            eof = None
        self._hit = user >> TUSER_BAR_HIT_SHIFT & 0xFF
        if eof is None:
            self._dws = dws[sof // 4:]
        else:
            out.append(self._end(dws[sof // 4:eof // 4 + 1]))
        return out


def from_rx_stream(beats, width):
    """The TLPs of receive-stream beats (tdata, tkeep, tlast, tuser), all
    valid transfers, as (tlp_bytes, bar_hit) pairs (see RxUnpacker)."""
    unpacker = RxUnpacker(width)
    out = []
    for beat in beats:
        out += unpacker.feed(beat)
    if unpacker.in_packet:
        raise ValueError("the stream ends inside a TLP")
    return out
