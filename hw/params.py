"""The endpoint's build-time parameters, in plain Python (no Amaranth): the
gateware, the testbenches, the board definitions and the virtual board all
take an EndpointParams."""

from dataclasses import dataclass

from hw.spec import regmap


def _is_pow2(x):
    return x > 0 and x & (x - 1) == 0


@dataclass(frozen=True)
class EndpointParams:
    """Build-time parameters, with their documented defaults."""
    data_width: int = 256               # hard-IP interface width: 64, 128, 256 or 512
    bar0_size: int = regmap.BAR0_SIZE   # register BAR, 32-bit non-prefetchable
    bar2_size: int = 2 << 20            # memory BAR, 64-bit prefetchable
    mem_size: int = 256 << 10           # memory behind BAR2 from its start; beyond it: UR
    memory: str = "bram"                # "bram": block RAM inside; "axi": an AXI4 port (m_axi_*)
    max_payload_supported: int = 1024   # largest write payload the hard IP delivers
    np_queue_depth: int = 16            # non-posted requests buffered (<= 32)
    hard_ip: str = "usp"                # in front: "usp" UltraScale+ (native), "s7" pcie_7x (hw/phy/s7.py)

    def validate(self):
        w = self.data_width
        if w not in (64, 128, 256, 512):
            raise ValueError(f"data_width {w}: use 64, 128, 256 or 512")
        if not _is_pow2(self.bar2_size) or self.bar2_size < regmap.BAR2_MIN_SIZE:
            raise ValueError(f"bar2_size {self.bar2_size:#x}: use a power of two of at "
                             f"least {regmap.BAR2_MIN_SIZE:#x} (2 MiB)")
        # At least 4 KiB: no request (none crosses 4 KiB) is partly beyond it.
        if not _is_pow2(self.mem_size) or self.mem_size > self.bar2_size \
                or self.mem_size < 4096:
            raise ValueError(f"mem_size {self.mem_size:#x}: use a power of two between "
                             f"0x1000 (4 KiB) and bar2_size")
        if not _is_pow2(self.bar0_size) or self.bar0_size < 4096:
            raise ValueError(f"bar0_size {self.bar0_size:#x}: use a power of two >= 4 KiB")
        if self.memory not in ("bram", "axi"):
            raise ValueError(f"memory {self.memory!r}: use bram (block RAM inside) or axi "
                             f"(an AXI4 master port to external memory)")
        if self.hard_ip not in ("usp", "s7"):
            raise ValueError(f"hard_ip {self.hard_ip!r}: use usp (UltraScale+) or s7 (7 series)")
        if self.hard_ip == "s7" and w not in (64, 128):
            raise ValueError(f"data_width {w}: the 7-series hard IP is 64 or 128 bits wide")
        if not 1 <= self.np_queue_depth <= 32:
            raise ValueError("np_queue_depth: 1 to 32 (the hard IP counts at most 32 credits)")
        if self.max_payload_supported not in (128, 256, 512, 1024, 2048, 4096):
            raise ValueError("max_payload_supported: 128 to 4096, a power of two")
        return self

    @property
    def lanes(self):
        return self.data_width // 32

    @property
    def ingress_depth(self):
        # Two largest write packets and some slack, so that CQ never waits on writes.
        beats = -(-(4 + self.max_payload_supported // 4) // self.lanes)
        depth = 1
        while depth < 2 * beats + 4:
            depth *= 2
        return depth
