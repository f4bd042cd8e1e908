"""The UltraScale+ hard-IP model (hw/sim/tb/usp_model.py).

Without a simulator: the CQ and RC sources' beats, built by cocotbext's own
packing code, carry discontinue in the beat that ends a discontinued packet
and nowhere else, at every width and straddle mode; and the credit encoding.
With one: the cocotb tests in hw/sim/test_usp_model.py on the RTL.
"""

import collections
import logging
import random

import pytest

pytest.importorskip("cocotb", reason="simulation extra not installed (pip install .[sim])")

from cocotbext.pcie.xilinx.us.interface import CqSource, RcSource, UsPcieFrame  # noqa: E402

from hw.sim.tb import usp_model  # noqa: E402


class _Sig:
    def __init__(self, width):
        self.width = width

    def __len__(self):
        return self.width


class _Bus:
    def __init__(self, tuser_width):
        self.tuser = _Sig(tuser_width)


class _Done(Exception):
    pass


class _Recorder:
    """Stands in for the scheduler-bound parts of UsPcieSource: frames from
    a list, beats into a list."""

    async def _get_frame(self):
        if not self.frames:
            raise _Done
        return self.frames.popleft()

    def _get_frame_nowait(self):
        return self.frames.popleft()

    def empty(self):
        return not self.frames

    async def _drive(self, obj):
        self.beats.append(obj)


def _source(base, width, segments, tuser_width, frames, fixed):
    """A source of class `base` (CqSource/RcSource), with the model's
    last-beat discontinue if `fixed`, fed `frames`; returns its beats."""
    if fixed:
        model_cls = {CqSource: usp_model.HardIpCqSource, RcSource: usp_model.HardIpRcSource}[base]
        cls = type("T", (usp_model._LastBeatDiscontinue, _Recorder, base),
                   {"_eop_bits": model_cls._eop_bits})
    else:
        cls = type("T", (_Recorder, base), {})
    src = object.__new__(cls)
    src.bus = _Bus(tuser_width)
    src.log = logging.getLogger("test_usp_model")
    src.width = width
    src.byte_lanes = width // 32
    src.seg_count = segments
    src.seg_width = width // segments
    src.seg_byte_lanes = src.byte_lanes // segments
    src._init()
    src._open_frames = collections.deque()
    src.frames = collections.deque(UsPcieFrame(f) for f in frames)
    src.beats = []
    coro = src._run()
    with pytest.raises(_Done):
        coro.send(None)
    return src


def _frames(rng, count, discontinued):
    frames = []
    for k in range(count):
        f = UsPcieFrame()
        n = rng.choice([3, 4, 5, 7, 8, 9, 16, 17, 31, 40, 67])
        f.data = [rng.getrandbits(32) for _ in range(n)]
        f.byte_en = [0xF] * n
        f.first_be, f.last_be = 0xF, 0xF
        f.discontinue = discontinued(k)
        f.update_parity()
        frames.append(f)
    return frames


CONFIGS = [
    # (source, width, segments, tuser width, is_eop bits when straddled)
    (CqSource, 64, 1, 88, None), (CqSource, 128, 1, 88, None), (CqSource, 256, 1, 88, None),
    (CqSource, 256, 1, 85, None), (CqSource, 512, 1, 183, None), (CqSource, 512, 2, 183, (86, 87)),
    (RcSource, 64, 1, 75, None), (RcSource, 128, 1, 75, None), (RcSource, 256, 1, 75, None),
    (RcSource, 256, 2, 75, (34, 38)), (RcSource, 512, 1, 161, None),
    (RcSource, 512, 2, 161, (76, 77)), (RcSource, 512, 4, 161, (76, 77, 78, 79)),
]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: f"{c[0].__name__}-{c[1]}-{c[2]}seg")
@pytest.mark.parametrize("pattern", ["alternate", "random", "all", "none"])
def test_discontinue_only_in_last_beat(config, pattern):
    base, width, segments, tuser_width, eop_bits = config
    rng = random.Random(f"{config}{pattern}")
    rule = {"alternate": lambda k: k % 2 == 1, "random": lambda k: rng.random() < 0.4,
            "all": lambda k: True, "none": lambda k: False}[pattern]
    frames = _frames(rng, 40, rule)
    stock = _source(base, width, segments, tuser_width, frames, fixed=False)
    fixed = _source(base, width, segments, tuser_width, frames, fixed=True)
    bit = 1 << fixed.discontinue_offset
    assert len(stock.beats) == len(fixed.beats)
    # Only the discontinue bit differs from cocotbext's own beats.
    for s, f in zip(stock.beats, fixed.beats):
        assert (s.tdata, s.tkeep, s.tlast, s.tuser & ~bit) == (f.tdata, f.tkeep, f.tlast,
                                                              f.tuser & ~bit)
    # Packets end where the interface says (tlast, or is_eop); the bit is in
    # exactly the beats where a discontinued packet ends.
    open_frames = collections.deque(frames)
    stock_marked = 0
    for s, f in zip(stock.beats, fixed.beats):
        ends = (int(f.tlast) if eop_bits is None
                else sum(f.tuser >> b & 1 for b in eop_bits))
        ended = [open_frames.popleft() for _ in range(ends)]
        assert bool(f.tuser & bit) == any(fr.discontinue for fr in ended)
        stock_marked += bool(s.tuser & bit)
    assert not open_frames
    if pattern == "all":
        # what the model corrects: cocotbext marks every beat of a packet
        assert stock_marked == len(stock.beats)


def test_straddled_frame_start_does_not_mark_previous_end():
    """At 512 bits with straddling, a discontinued packet starting in the
    beat where a good one ends does not mark that beat (the good one's end)."""
    rng = random.Random(7)
    frames = _frames(rng, 2, lambda k: k == 1)
    for f, n in zip(frames, (4, 40)):       # 4 DW: the first ends in segment 0
        f.data = [rng.getrandbits(32) for _ in range(n)]
        f.byte_en = [0xF] * n
        f.update_parity()
    src = _source(CqSource, 512, 2, 183, frames, fixed=True)
    bit = 1 << src.discontinue_offset
    assert src.beats[0].tuser >> 80 & 3 == 0b11          # both start in beat 0
    assert not src.beats[0].tuser & bit
    assert [bool(b.tuser & bit) for b in src.beats] == [False] * (len(src.beats) - 1) + [True]


def test_np_credit_encoding():
    """pcie_cq_np_req[1:0]: 00 none, 01 one, 1x two (the IP's 512-bit logic)."""
    assert [usp_model.np_credits(c) for c in range(4)] == [0, 1, 2, 2]
    assert usp_model.NP_CREDIT_LIMIT == 32


@pytest.mark.parametrize("width", [256, 512])
def test_usp_model_sim(width):
    """The model on the RTL: credit under load, atomics, discontinue."""
    from hw.params import EndpointParams
    from hw.sim.tb.runner import run
    run("test_usp_model", EndpointParams(data_width=width))
