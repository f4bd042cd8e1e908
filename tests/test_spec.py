"""The interface tables of hw/spec/usp.py: each descriptor's fields fit in
it and never overlap, and the gateware's layouts (hw/core/layouts.py) put
every field where its table does. Agreement with cocotbext-pcie's packing:
tests/test_pcie_checker.py."""

import pytest

from hw.spec import usp

TABLES = {"CQ": (usp.CQ_DESCRIPTOR, usp.CQ_DESCRIPTOR_DWORDS),
          "CC": (usp.CC_DESCRIPTOR, usp.CC_DESCRIPTOR_DWORDS),
          "RQ": (usp.RQ_DESCRIPTOR, usp.RQ_DESCRIPTOR_DWORDS),
          "RC": (usp.RC_DESCRIPTOR, usp.RC_DESCRIPTOR_DWORDS)}


@pytest.mark.parametrize("name", TABLES)
def test_fields_fit_and_do_not_overlap(name):
    table, dwords = TABLES[name]
    used = {}
    for field, (lsb, width) in table.items():
        assert width > 0 and lsb + width <= 32 * dwords, (name, field)
        for bit in range(lsb, lsb + width):
            assert bit not in used, f"{name}: {field} and {used[bit]} share bit {bit}"
            used[bit] = field


@pytest.mark.parametrize("name", TABLES)
def test_pack_unpack_round_trip(name):
    table, dwords = TABLES[name]
    values = {f: (0x5A5A5A5A5A5A5A5A >> (i % 3)) & ((1 << w) - 1)
              for i, (f, (_, w)) in enumerate(table.items())}
    assert usp.unpack_descriptor(table, usp.pack_descriptor(table, dwords, **values)) == values


@pytest.mark.parametrize("name", TABLES)
def test_gateware_layouts_follow_the_tables(name):
    pytest.importorskip("amaranth", reason="HDL extra not installed")
    from hw.core import layouts
    table, dwords = TABLES[name]
    layout = getattr(layouts, f"{name}_DESCRIPTOR")
    assert layout.size == 32 * dwords
    assert {f: (layout[f].offset, layout[f].width) for f in table} == table
