"""The 7-series PCIe hard IP (pcie_7x, PG054) in front of the endpoint.

pcie_7x hands whole TLPs to the user side (m_axis_rx_*) and takes whole
TLPs (s_axis_tx_*), 64 or 128 bits wide; how a TLP lies on those streams
is in hw/s7_stream.py. The endpoint core speaks the UltraScale+ interface
(CQ/CC/RQ/RC descriptors, hw/usp.py). S7Shim converts between the two, so
that the completer, registers, memory, MSI-X and DMA engine are the same
code on both families; S7Endpoint is the endpoint with the shim in front,
whose ports are pcie_7x's user-side ports.
"""

from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

S7_WIDTHS = (64, 128)
RX_TUSER_WIDTH = 22
TX_TUSER_WIDTH = 4


def s7_signature(width):
    """pcie_7x's user-side ports, as the FPGA logic sees them (PG054 names)."""
    if width not in S7_WIDTHS:
        raise ValueError(f"pcie_7x's interface is 64 or 128 bits wide, not {width}")
    return wiring.Signature({
        # Receive: TLPs from the link (requests to the BARs, completions).
        "m_axis_rx_tdata": In(width), "m_axis_rx_tkeep": In(width // 8),
        "m_axis_rx_tlast": In(1), "m_axis_rx_tuser": In(RX_TUSER_WIDTH),
        "m_axis_rx_tvalid": In(1), "m_axis_rx_tready": Out(1),
        "rx_np_ok": Out(1),         # the user can take non-posted requests
        "rx_np_req": Out(1),        # ask for one non-posted request (held high: all)
        # Transmit: completions, memory requests, MSI-X messages.
        "s_axis_tx_tdata": Out(width), "s_axis_tx_tkeep": Out(width // 8),
        "s_axis_tx_tlast": Out(1), "s_axis_tx_tuser": Out(TX_TUSER_WIDTH),
        "s_axis_tx_tvalid": Out(1), "s_axis_tx_tready": In(1),
        "tx_cfg_gnt": Out(1),       # the core may send its own TLPs first (held high)
        # Configuration space, as the core exports it.
        "cfg_command": In(16),      # Command register: [2] bus master enable
        "cfg_dcommand": In(16),     # Device Control: [7:5] MPS, [8] ext tag, [14:12] MRRS
        "cfg_lcommand": In(16),     # Link Control: [3] RCB (128 bytes when set)
        "cfg_bus_number": In(8), "cfg_device_number": In(5), "cfg_function_number": In(3),
        "cfg_interrupt_msixenable": In(1), "cfg_interrupt_msixfm": In(1),
    })
