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
byte). This module never starts a TLP mid-beat (straddling); the shim is
built with the IP's straddle option off.
"""

TUSER_BAR_HIT_SHIFT = 2
TUSER_SOF_SHIFT = 10
TUSER_EOF_SHIFT = 17
PRESENT = 0x10


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
