"""hw/s7_stream.py: TLPs on the 7-series hard IP's AXI4-Stream, checked
against cocotbext-pcie's own TLP encoding."""

import pytest
from cocotbext.pcie.core.tlp import Tlp, TlpType

from hw import s7_stream


def mem_write(addr, data):
    t = Tlp()
    t.fmt_type = TlpType.MEM_WRITE_64 if addr >> 32 else TlpType.MEM_WRITE
    t.set_addr_be_data(addr, data)
    return t


@pytest.mark.parametrize("width", [64, 128])
@pytest.mark.parametrize("addr, length", [(0x1000, 4), (0x1_0000_2000, 12), (0x2004, 64)])
def test_round_trip_and_layout(width, addr, length):
    data = bytes(range(1, length + 1))
    tlp = mem_write(addr, data)
    raw = tlp.pack()
    beats = s7_stream.to_beats(raw, width, bar=2)
    assert Tlp.unpack(s7_stream.from_beats(beats, width)).get_data() == data
    first = beats[0][0]
    # fmt and type are the TLP's first byte: tdata[31:24] of the first beat.
    assert first >> 24 & 0xFF == raw[0] and raw[0] in (0x40, 0x60)
    header_dws = 4 if addr >> 32 else 3
    # The first payload byte (lowest address) is in bits [31:24] of its DW.
    assert s7_stream.dwords(raw)[header_dws] >> 24 == data[0]
    assert [b[2] for b in beats] == [0] * (len(beats) - 1) + [1]
    assert all(b[3] >> s7_stream.TUSER_BAR_HIT_SHIFT & 0xFF == 1 << 2 for b in beats)
    dws = len(raw) // 4
    assert len(beats) == -(-dws // (width // 32))
    last_dws = dws - (len(beats) - 1) * (width // 32)
    assert beats[-1][1] == (1 << 4 * last_dws) - 1
    if width == 128:
        assert beats[0][3] >> s7_stream.TUSER_SOF_SHIFT & 0x1F == 0x10
        assert beats[-1][3] >> s7_stream.TUSER_EOF_SHIFT & 0x1F == 0x10 | (4 * last_dws - 1)


def test_bad_streams():
    with pytest.raises(ValueError, match="64 or 128 bits wide, not 256"):
        s7_stream.to_beats(bytes(12), 256)
    with pytest.raises(ValueError, match="tkeep 0xf0 is not whole DWs"):
        s7_stream.from_beats([(0, 0xF0, 1)], 64)
    with pytest.raises(ValueError, match="no beat with tlast"):
        s7_stream.from_beats([(0, 0xFF, 0)], 64)
