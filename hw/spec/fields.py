"""Packing by table, the one implementation: a table maps a field's name to
(lsb, width) in one number (a register, a TLP header, a descriptor taken
as one integer, dword 0 in the low bits)."""


def pack(table, **values):
    """The number with the named fields set (the others 0)."""
    word = 0
    for name, value in values.items():
        lsb, width = table[name]
        if not 0 <= int(value) < 1 << width:
            raise ValueError(f"{name} {int(value):#x} does not fit in {width} bits")
        word |= int(value) << lsb
    return word


def unpack(table, word):
    """{field: value} of a number."""
    return {name: (word >> lsb) & ((1 << width) - 1) for name, (lsb, width) in table.items()}


def replace(table, word, **values):
    """`word` with the named fields set to new values, every other bit kept."""
    for name in values:
        lsb, width = table[name]
        word &= ~(((1 << width) - 1) << lsb)
    return word | pack(table, **values)


def to_dwords(value, count):
    return [(value >> 32 * i) & 0xFFFF_FFFF for i in range(count)]


def from_dwords(dwords):
    return sum(dw << 32 * i for i, dw in enumerate(dwords))
