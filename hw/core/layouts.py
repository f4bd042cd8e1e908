"""Amaranth layouts of the hard IP's descriptors, built from the tables in
hw/spec/usp.py: the gateware names a descriptor's fields instead of typing
their bit positions, and the tables stay the one place that has them."""

from amaranth.hdl import unsigned
from amaranth.lib import data

from hw.spec import usp


def from_table(table, dwords):
    """A FlexibleLayout of `dwords` dwords with each field of `table` at its bits."""
    return data.FlexibleLayout(32 * dwords, {name: data.Field(unsigned(width), lsb)
                                             for name, (lsb, width) in table.items()})


CQ_DESCRIPTOR = from_table(usp.CQ_DESCRIPTOR, usp.CQ_DESCRIPTOR_DWORDS)
CC_DESCRIPTOR = from_table(usp.CC_DESCRIPTOR, usp.CC_DESCRIPTOR_DWORDS)
RQ_DESCRIPTOR = from_table(usp.RQ_DESCRIPTOR, usp.RQ_DESCRIPTOR_DWORDS)
RC_DESCRIPTOR = from_table(usp.RC_DESCRIPTOR, usp.RC_DESCRIPTOR_DWORDS)
