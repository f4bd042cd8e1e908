"""Vivado Tcl that creates and configures a board's PCIe hard IP.

The bitstream build (Amaranth's Xilinx platform) runs this in
`script_after_read`. Every value comes from the register map (IDs, class
code, BAR0's size, the MSI-X table and PBA) or from the board (lanes, link
speed, interface width and clock, BAR2's size, the IP's site and GT quad):
nothing is typed twice. Property names and their sources:
docs/notes/xilinx-pcie-ip.md.

    python -m hw.hard_ip --board NAME     print the Tcl
"""

import argparse
import sys

from hw import boards, regmap

MODULE = "pcie_hip"         # the IP instance's module name
REFCLK_MHZ = 100            # the PCIe reference clock (CEM: 100 MHz on the edge connector)


def _scale(size):
    """(scale, size) as the IP's BAR fields take them: 64 KiB -> (Kilobytes, 64)."""
    for scale, unit in (("Gigabytes", 1 << 30), ("Megabytes", 1 << 20), ("Kilobytes", 1 << 10)):
        if size >= unit and size % unit == 0:
            return scale, size // unit
    raise ValueError(f"BAR size {size}: not a whole number of KiB")


def _bars(board, key):
    """BAR0: registers, 32-bit, not prefetchable; BAR2: memory, 64-bit,
    prefetchable; 1, 4 and 5 off (3 is BAR2's upper half). key(n, field)
    spells the IP's property name for BAR n."""
    out = {}
    for n, size, wide in ((0, regmap.BAR0_SIZE, False), (2, board.bar2_size, True)):
        scale, value = _scale(size)
        out |= {key(n, "Enabled"): "true", key(n, "Type"): "Memory",
                key(n, "64bit"): str(wide).lower(), key(n, "Prefetchable"): str(wide).lower(),
                key(n, "Scale"): scale, key(n, "Size"): str(value)}
    for n in (1, 4, 5):
        out[key(n, "Enabled")] = "false"
    return out


def _ids(vendor, device, subsystem_vendor, subsystem):
    """The register map's IDs under the IP's four property names."""
    v, d = f"{regmap.PCI_VENDOR_ID:04X}", f"{regmap.PCI_DEVICE_ID:04X}"
    return {vendor: v, device: d, subsystem_vendor: v, subsystem: d}


def properties(board):
    """The IP's CONFIG.* properties for the board, as a dict (name without CONFIG.)."""
    payload = board.params.max_payload_supported
    if board.hard_ip == "pcie4_uscale_plus":
        return {
            "mode_selection": "Advanced",
            "PL_LINK_CAP_MAX_LINK_WIDTH": f"X{board.lanes}",
            "PL_LINK_CAP_MAX_LINK_SPEED": {2: "5.0_GT/s", 3: "8.0_GT/s"}[board.gen],
            "axisten_if_width": f"{board.data_width}_bit",
            "axisten_freq": f"{board.user_clk_mhz:g}",
            **_ids("vendor_id", "PF0_DEVICE_ID", "PF0_SUBSYSTEM_VENDOR_ID", "PF0_SUBSYSTEM_ID"),
            "PF0_CLASS_CODE": f"{regmap.PCI_CLASS_CODE:06X}",
            **_bars(board, lambda n, field: f"pf0_bar{n}_{field.lower()}"),
            "pf0_dev_cap_max_payload": f"{payload}_bytes",
            "pf0_msi_enabled": "false",
            "pf0_msix_enabled": "true",
            "MSI_X_OPTIONS": "MSI-X_External",      # the table is the endpoint's, in BAR0
            "PF0_MSIX_CAP_TABLE_SIZE": f"{regmap.MSIX_VECTORS - 1:03X}",    # N - 1
            "PF0_MSIX_CAP_TABLE_BIR": "BAR_0",
            "PF0_MSIX_CAP_TABLE_OFFSET": f"{regmap.MSIX_TABLE_OFFSET:08X}",
            "PF0_MSIX_CAP_PBA_BIR": "BAR_0",
            "PF0_MSIX_CAP_PBA_OFFSET": f"{regmap.MSIX_PBA_OFFSET:08X}",
            "en_gt_selection": "true",
            "pcie_blk_locn": board.pcie_block,
            "select_quad": board.gt_quad,
        }
    if board.hard_ip == "pcie_7x":
        cc = regmap.PCI_CLASS_CODE
        return {
            "mode_selection": "Advanced",
            "Maximum_Link_Width": f"X{board.lanes}",
            "Link_Speed": {1: "2.5_GT/s", 2: "5.0_GT/s"}[board.gen],
            "Trgt_Link_Speed": f"4'h{board.gen}",
            "Interface_Width": f"{board.data_width}_bit",
            "User_Clk_Freq": f"{board.user_clk_mhz:g}",
            "Ref_Clk_Freq": f"{REFCLK_MHZ}_MHz",
            **_ids("Vendor_ID", "Device_ID", "Subsystem_Vendor_ID", "Subsystem_ID"),
            "Class_Code_Base": f"{cc >> 16:02X}",
            "Class_Code_Sub": f"{cc >> 8 & 0xFF:02X}",
            "Class_Code_Interface": f"{cc & 0xFF:02X}",
            **_bars(board, lambda n, field: f"Bar{n}_{field}"),
            "Max_Payload_Size": f"{min(payload, 1024)}_bytes",
            "MSI_Enabled": "false",
            "MSIx_Enabled": "true",
            # The 7-series field takes N or N - 1: not confirmed (docs/notes); N - 1
            # as on UltraScale+, where corundum's 01F gives 32 vectors.
            "MSIx_Table_Size": f"{regmap.MSIX_VECTORS - 1:X}",
            "MSIx_Table_BIR": "BAR_0",
            "MSIx_Table_Offset": f"{regmap.MSIX_TABLE_OFFSET:X}",
            "MSIx_PBA_BIR": "BAR_0",
            "MSIx_PBA_Offset": f"{regmap.MSIX_PBA_OFFSET:X}",
            "PCIe_Blk_Locn": board.pcie_block,
            # Which optional port groups the generated module has: hw/bitstream.py
            # connects exactly these (a named port the module lacks stops Vivado).
            # Configuration management, control, status (cfg_command, cfg_dcommand,
            # cfg_lcommand) and the physical layer: yes (tx_cfg_gnt, rx_np_ok and
            # rx_np_req come with one of these four; docs/notes); received messages,
            # flow control, error reporting: no; clocking and GT_COMMON inside the
            # IP (no PIPE clock ports).
            "cfg_mgmt_if": "true",
            "cfg_ctl_if": "true",
            "cfg_status_if": "true",
            "pl_interface": "true",
            "rcv_msg_if": "false",
            "cfg_fc_if": "false",
            "err_reporting_if": "false",
            "en_ext_clk": "false",
            "en_ext_gt_common": "false",
        }
    raise ValueError(f"{board.name}: no Tcl for hard IP {board.hard_ip}")


def tcl(board):
    """create_ip, its properties, and generate_target, for script_after_read."""
    props = properties(board)
    lines = [f"# {board.hard_ip} for {board.title}: generated by hw/hard_ip.py from the",
             "# register map and the board definition; do not edit.",
             f"create_ip -name {board.hard_ip} -vendor xilinx.com -library ip "
             f"-module_name {MODULE}",
             f"set_property -dict [list \\"]
    lines += [f"    CONFIG.{k} {{{v}}} \\" for k, v in props.items()]
    lines += [f"] [get_ips {MODULE}]",
              f"generate_target {{synthesis instantiation_template}} [get_ips {MODULE}]",
              f"synth_ip [get_ips {MODULE}]", ""]
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m hw.hard_ip", description=__doc__.split("\n\n")[0])
    ap.add_argument("--board", required=True, help=f"one of {', '.join(boards.BOARDS)}")
    args = ap.parse_args(argv)
    try:
        board = boards.get(args.board)
    except ValueError as e:
        ap.error(str(e))
    sys.stdout.write(tcl(board))
    return 0


if __name__ == "__main__":
    sys.exit(main())
