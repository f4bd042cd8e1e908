"""Amaranth layouts of the hard IP's descriptors, built from the tables in
hw/spec/usp.py: the gateware names a descriptor's fields instead of typing
their bit positions, and the tables stay the one place that has them."""

from amaranth.hdl import Signal, unsigned
from amaranth.lib import data

from hw.spec import regmap, usp


def fields(table, width):
    """A FlexibleLayout of `width` bits with each field of `table` at its bits."""
    return data.FlexibleLayout(width, {name: data.Field(unsigned(w), lsb)
                                       for name, (lsb, w) in table.items()})


def from_table(table, dwords):
    """A FlexibleLayout of `dwords` dwords with each field of `table` at its bits."""
    return fields(table, 32 * dwords)


CQ_DESCRIPTOR = from_table(usp.CQ_DESCRIPTOR, usp.CQ_DESCRIPTOR_DWORDS)
CC_DESCRIPTOR = from_table(usp.CC_DESCRIPTOR, usp.CC_DESCRIPTOR_DWORDS)
RQ_DESCRIPTOR = from_table(usp.RQ_DESCRIPTOR, usp.RQ_DESCRIPTOR_DWORDS)
RC_DESCRIPTOR = from_table(usp.RC_DESCRIPTOR, usp.RC_DESCRIPTOR_DWORDS)


def header_over_lanes(m, name, payload, header, beat, header_dwords, lanes):
    """Output lanes of a packet beat: a descriptor's dwords where the packet
    has them (dword index beat * lanes + lane below header_dwords, `beat`
    the beat's index in the packet), the payload's lanes elsewhere. Returns
    the lane signals, named name0, name1, ..."""
    out = []
    for lane in range(lanes):
        v = Signal(32, name=f"{name}{lane}")
        m.d.comb += v.eq(payload.word_select(lane, 32))
        for b in range(-(-header_dwords // lanes)):
            j = b * lanes + lane
            if j < header_dwords:
                with m.If(beat == b):
                    m.d.comb += v.eq(header.word_select(j, 32))
        out.append(v)
    return out


def register(reg):
    """A FlexibleLayout of a register of the map, its fields at their bits."""
    return data.FlexibleLayout(32, {f.name: data.Field(unsigned(f.width), f.lsb)
                                    for f in reg.fields})


def view(table, value):
    """`value` seen through a table's fields."""
    return data.View(fields(table, len(value)), value)


def register_view(name, value):
    """`value` (32 bits) seen through the fields of register `name`."""
    return data.View(register(regmap.by_name()[name]), value)
