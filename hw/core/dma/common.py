"""What the DMA engine's blocks share: the commands the sequencer hands
to the two paths, the read-request layout, and small helpers."""

from amaranth.hdl import Cat, Const, Mux, Signal
from amaranth.lib import data, stream

from hw.spec import regmap
from hw.spec.usp import sideband

DmaStatus = regmap.DmaStatus
SLOTS = regmap.DMA_QUEUE_DEPTH
# RQ sequence numbers: a write packet carries SEQ_WRITE | slot, plus SEQ_LAST
# if it is the last of its descriptor; a read carries 0.
SEQ_WRITE = 0x20
SEQ_LAST = 0x10
TAG_BITS = 8
CREDIT_BITS = 10                           # completion credits of one request (<= 256)


def log2(x):
    return x.bit_length() - 1


def window_command(dw_bits):
    """The reader's command: read `words` windows of N dwords from dword
    `dw`, shifted down by `shift` bytes."""
    return stream.Signature(data.StructLayout({"dw": dw_bits, "shift": 2, "words": 24}))


def write_command():
    """The splitter's command: a write descriptor's bus address and length."""
    return stream.Signature(data.StructLayout({"bus": 64, "length": 25, "slot": 4}))


def read_command(local_bits):
    return stream.Signature(data.StructLayout({"bus": 64, "length": 25, "local": local_bits,
                                               "slot": 4}))


def payload_words(width):
    return stream.Signature(width)


# One write TLP: bus address, payload dwords, byte enables, index of its
# first payload dword in the descriptor's payload, the descriptor's payload
# words, whether it is the descriptor's last TLP, and the descriptor's slot.
WRITE_TLP = data.StructLayout({"addr": 64, "dw": 11, "fbe": 4, "lbe": 4, "pidx": 24,
                               "words": 24, "last": 1, "slot": 4})

# One Memory Read request.
READ_REQUEST = data.StructLayout({"addr": 64, "dw": 11, "tag": TAG_BITS, "fbe": 4, "lbe": 4})


def first_be(offset):
    """First dword byte enables for a first byte at `offset` (0..3) in it."""
    return Mux(offset == 0, 0xF, Mux(offset == 1, 0xE, Mux(offset == 2, 0xC, 0x8)))


def last_be(offset):
    """Last dword byte enables for a last byte at `offset` (0..3) in it."""
    return Mux(offset == 0, 0x1, Mux(offset == 1, 0x3, Mux(offset == 2, 0x7, 0xF)))


def next_piece(m, addr, rem, boundary, name):
    """The next request of a transfer at bus address `addr` with `rem` bytes
    left, cut at a multiple of `boundary` bytes (a power of two): its bytes,
    its DWs, and its first and last byte enables as a request carries them
    (last 0 for a single DW)."""
    to_boundary = boundary - (addr[:13] & (boundary - 1))
    n_bytes = Signal(13, name=f"{name}_bytes")
    m.d.comb += n_bytes.eq(Mux(rem < to_boundary, rem, to_boundary))
    a_off = addr[:2]
    dw = Signal(11, name=f"{name}_dw")
    m.d.comb += dw.eq((a_off + n_bytes + 3) >> 2)
    fbe, lbe = first_be(a_off), last_be((a_off + n_bytes - 1)[:2])
    return n_bytes, dw, Mux(dw == 1, fbe & lbe, fbe), Mux(dw == 1, 0, lbe)


def rq_tuser(width, sop, eop, keep, fbe, lbe, seq):
    """RQ tuser: byte enables and sequence number; at 512 bits, is_sop/is_eop too."""
    n = width // 32
    sb = sideband(width)
    parts = {sb.rq_first_be: Mux(sop, fbe, 0), sb.rq_last_be: Mux(sop, lbe, 0)}
    if width != 512:
        parts[sb.rq_seq_num] = seq[:4]
        parts[sb.rq_seq_num_hi] = seq[4:6]
    else:
        eop_ptr = Const(0, 4)
        for k in range(n):
            eop_ptr = Mux(keep[k], k, eop_ptr)
        parts.update({sb.rq_seq_num: seq, sb.rq_is_sop: sop, sb.rq_is_eop: eop,
                      sb.rq_eop_ptr: eop_ptr})
    out, pos = [], 0
    for lsb in sorted(parts):
        out += [Const(0, lsb - pos), parts[lsb]]
        pos = lsb + len(parts[lsb])
    return Cat(*out)


def size_code_bytes(m, code, name):
    """128 << code bytes for a Max Payload / Read Request Size code (reserved: 128)."""
    out = Signal(13, name=name)
    with m.Switch(code):
        for k in range(6):
            with m.Case(k):
                m.d.comb += out.eq(128 << k)
        with m.Default():
            m.d.comb += out.eq(128)
    return out
