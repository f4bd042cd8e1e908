"""hw/spec/s7_stream.py: TLPs on the 7-series hard IP's AXI4-Stream, checked
against cocotbext-pcie's own TLP encoding."""

import pytest
from cocotbext.pcie.core.tlp import Tlp, TlpType

from hw.spec import s7_stream


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


# --- the receive stream as pcie_7x drives it (RxPacker, from_rx_stream) ---

import random

from cocotbext.pcie.core.tlp import CplStatus
from cocotbext.pcie.core.utils import PcieId


def mem_read(addr, length):
    t = Tlp()
    t.fmt_type = TlpType.MEM_READ_64 if addr >> 32 else TlpType.MEM_READ
    t.set_addr_be(addr, length)
    return t


def completion(data):
    t = Tlp()
    t.fmt_type = TlpType.CPL_DATA
    t.completer_id = PcieId(1, 0, 0)
    t.status = CplStatus.SC
    t.byte_count = len(data)
    t.set_data(data)
    t.length = len(data) // 4
    return t


def sof(beat):
    return s7_stream.sof_field(beat[3])


def eof(beat):
    return s7_stream.eof_field(beat[3])


def hit(beat):
    return beat[3] >> s7_stream.TUSER_BAR_HIT_SHIFT & 0xFF


@pytest.mark.parametrize("width", [64, 128])
@pytest.mark.parametrize("addr, length", [(0x1000, 4), (0x1_0000_2000, 12), (0x2004, 64)])
def test_packer_without_straddle_is_to_beats(width, addr, length):
    """One TLP, "data" layout: the same beats as to_beats."""
    raw = mem_write(addr, bytes(length)).pack()
    beats = s7_stream.to_rx_stream([(raw, 2)], width, straddle=True, exact=False)
    assert beats == s7_stream.to_beats(raw, width, bar=2)


def test_straddled_beat_layout():
    """A 5-DW TLP ends at byte 3 of its second beat; the next starts at byte 8."""
    a = mem_write(0x1000, bytes(range(8))).pack()          # 3 + 2 DWs
    b = mem_read(0x2000, 64).pack()                          # 3 DWs
    for exact in (True, False):
        beats = s7_stream.to_rx_stream([(a, 0), (b, 2)], 128, straddle=True, exact=exact)
        assert len(beats) == 3
        first, mid, last = beats
        assert (sof(first), eof(first), hit(first)) == (0, None, 1 << 0)
        assert (sof(mid), eof(mid), hit(mid)) == (8, 3, 1 << 2)
        assert (sof(last), eof(last), hit(last)) == (None, 3, 1 << 2)
        dws_a, dws_b = s7_stream.dwords(a), s7_stream.dwords(b)
        assert mid[0] & 0xFFFFFFFF == dws_a[4]
        assert mid[0] >> 64 == dws_b[0] | dws_b[1] << 32
        assert last[0] & 0xFFFFFFFF == dws_b[2]
        if exact:       # pcie_7x at 128 bits: no tlast, tkeep all ones
            assert [b[1:3] for b in beats] == [(0xFFFF, 0)] * 3
        else:
            assert [b[1:3] for b in beats] == [(0xFFFF, 0), (0xFF0F, 0), (0x000F, 1)]
    # Without straddling the second TLP waits for the next beat.
    beats = s7_stream.to_rx_stream([(a, 0), (b, 2)], 128, straddle=False)
    assert [(sof(b), eof(b)) for b in beats] == [(0, None), (None, 3), (0, 11)]


def test_no_straddle_after_the_high_half():
    """A TLP ending at byte 11 or 15 leaves no room: pull is not called."""
    packer = s7_stream.RxPacker(128, straddle=True)
    raw = mem_read(0x2000, 4).pack()                         # 3 DWs: ends at byte 11
    calls = []

    def pull():
        calls.append(1)
        return (raw, 0) if len(calls) == 1 else None

    beat = packer.next_beat(pull)
    assert len(calls) == 1 and (sof(beat), eof(beat)) == (0, 11)
    assert packer.next_beat(pull) is None and len(calls) == 2


def test_straddle_needs_a_ready_tlp():
    """Straddling happens only if a TLP is ready when the beat is built."""
    packer = s7_stream.RxPacker(128, straddle=True)
    a = mem_write(0x1000, bytes(8)).pack()
    ready = [(a, 0)]
    pull = lambda: ready.pop(0) if ready else None
    packer.next_beat(pull)
    beat = packer.next_beat(pull)
    assert (sof(beat), eof(beat)) == (None, 3) and not packer.in_packet
    ready.append((mem_read(0x2000, 4).pack(), 0))
    assert (sof(packer.next_beat(pull)), packer.in_packet) == (0, False)


def test_64_bit_exact_sideband():
    """pcie_7x at 64 bits also drives is_sof and is_eof; tkeep 0x0f at the end."""
    raw = mem_write(0x1000, bytes(8)).pack()                 # 5 DWs
    beats = s7_stream.to_rx_stream([(raw, 1)], 64, straddle=True)
    assert [(b[1], b[2], sof(b), eof(b)) for b in beats] == [
        (0xFF, 0, 0, None), (0xFF, 0, None, None), (0x0F, 1, None, 3)]
    assert all(hit(b) == 1 << 1 for b in beats)


def test_unaligned_start():
    """A TLP may start at byte 8 of a beat (nothing in the low half)."""
    raw = mem_write(0x1000, bytes(4)).pack()                 # 4 DWs
    beats = s7_stream.to_rx_stream([(raw, 0)], 128, unaligned={0}, exact=False)
    assert [(sof(b), eof(b), b[1], b[2]) for b in beats] == [(8, None, 0xFF00, 0),
                                                            (None, 7, 0x00FF, 1)]
    assert s7_stream.from_rx_stream(beats, 128) == [(raw, 1)]


def test_poisoned_tlp_sets_err_fwd():
    t = completion(bytes(4))
    t.ep = True
    beats = s7_stream.to_rx_stream([(t.pack(), None)], 128)
    assert all(b[3] & s7_stream.TUSER_ERR_FWD for b in beats) and hit(beats[0]) == 0


@pytest.mark.parametrize("width", [64, 128])
@pytest.mark.parametrize("straddle", [False, True])
@pytest.mark.parametrize("exact", [False, True])
def test_random_streams_round_trip(width, straddle, exact):
    rng = random.Random(width * 4 + straddle * 2 + exact)
    tlps = []
    for _ in range(300):
        kind = rng.randrange(3)
        if kind == 0:
            n = 4 * rng.randint(1, 40)
            t = mem_write(rng.choice([0x1000, 0x1_0000_0000]) + 4 * rng.randrange(64),
                          rng.randbytes(n))
        elif kind == 1:
            t = mem_read(rng.choice([0x1000, 0x1_0000_0000]), 4 * rng.randint(1, 64))
        else:
            t = completion(rng.randbytes(4 * rng.randint(1, 40)))
        tlps.append((bytes(t.pack()), None if kind == 2 else rng.choice([0, 2])))
    unaligned = {i for i in range(len(tlps)) if rng.random() < 0.2} if width == 128 else ()
    beats = s7_stream.to_rx_stream(tlps, width, straddle, exact, unaligned)
    back = s7_stream.from_rx_stream(beats, width)
    assert back == [(raw, s7_stream.bar_hit(bar) >> s7_stream.TUSER_BAR_HIT_SHIFT)
                    for raw, bar in tlps]
    straddled = sum(1 for b in beats if sof(b) == 8 and eof(b) is not None)
    if width == 128 and straddle:
        assert straddled > 20
        # Every TLP ending in the low half of a beat is followed by one in the same beat.
        assert all(sof(b) == 8 for b in beats[:-1] if eof(b) in (3, 7))
    else:
        assert straddled == 0
    if width == 128 and exact:
        assert all(b[1:3] == (0xFFFF, 0) for b in beats)
    if width == 64:
        assert sum(b[2] for b in beats) == len(tlps)


def test_bad_rx_streams():
    raw = mem_write(0x1000, bytes(8)).pack()
    good = s7_stream.to_rx_stream([(raw, 0), (raw, 0)], 128, straddle=True)
    assert len(s7_stream.from_rx_stream(good, 128)) == 2
    with pytest.raises(ValueError, match="ends inside a TLP"):
        s7_stream.from_rx_stream(good[:-1], 128)
    with pytest.raises(ValueError, match="no is_sof"):
        s7_stream.from_rx_stream(good[2:], 128)
    with pytest.raises(ValueError, match="is_eof at byte 3 before is_sof at 8"):
        s7_stream.from_rx_stream(good[1:], 128)
    bad = [good[0], (good[0][0], 0xFFFF, 0, good[0][3])]
    with pytest.raises(ValueError, match="is_sof inside a TLP"):
        s7_stream.from_rx_stream(bad, 128)
    bad = [(0, 0xFFFF, 0, (0x10 | 4) << s7_stream.TUSER_SOF_SHIFT)]
    with pytest.raises(ValueError, match="is_sof at byte 4"):
        s7_stream.from_rx_stream(bad, 128)
    bad = [good[0], (0, 0xFFFF, 0, (0x18 << s7_stream.TUSER_SOF_SHIFT)
                                   | (0x1B << s7_stream.TUSER_EOF_SHIFT))]
    with pytest.raises(ValueError, match="inside the TLP ending at 11"):
        s7_stream.from_rx_stream(bad, 128)
    with pytest.raises(ValueError, match="tkeep 0xf0"):
        s7_stream.from_rx_stream([(0, 0xF0, 1, 0)], 64)
    with pytest.raises(ValueError, match="ends inside a TLP"):
        s7_stream.from_rx_stream([(0, 0xFF, 0, 0)], 64)
    with pytest.raises(ValueError, match="at least 3 DWs"):
        s7_stream.to_rx_stream([(bytes(8), 0)], 128)


def test_unpacker_returns_each_tlp_in_the_beat_it_ends():
    a = mem_write(0x1000, bytes(range(8))).pack()            # ends at byte 3 of beat 1
    b = mem_read(0x2000, 64).pack()                          # starts at byte 8 of beat 1
    beats = s7_stream.to_rx_stream([(a, 0), (b, 2)], 128, straddle=True)
    unpacker = s7_stream.RxUnpacker(128)
    got = [unpacker.feed(beat) for beat in beats]
    assert got == [[], [(a, 1 << 0)], [(b, 1 << 2)]] and not unpacker.in_packet
