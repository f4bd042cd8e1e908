"""The PCIe hard IP's configuration: one description, two consumers.

A HardIpConfig says how a board's hard IP is set up: link, user interface,
tags, straddling, alignment, payload, BARs, MSI-X, legacy interrupts and
PCI identity. From it come both the Vivado Tcl that configures the real IP
(`tcl()`, `properties()`) and the options of the simulation models that
stand in for it (`usp_model_options()`, `s7_model_options()`), so a model
never runs with settings the hardware does not have. `mismatches()` lists
what the endpoint's RTL relies on that a configuration does not give it.

Property names and their sources: docs/notes/xilinx-pcie-ip.md and the
board definitions (hw/flow/boards.py), which name the reference design of each
value. `python -m hw.flow.boards --tcl NAME` prints a board's Tcl.
"""

import dataclasses
from dataclasses import dataclass, field, fields

from hw.spec import regmap

MODULE = "pcie_hip"         # the IP instance's module name
REFCLK_MHZ = 100            # the PCIe reference clock (CEM: 100 MHz on the edge connector)
USP, S7 = "pcie4_uscale_plus", "pcie_7x"
FAMILY = {USP: "usp", S7: "s7"}     # EndpointParams.hard_ip of each IP
# Streams of pcie4_uscale_plus that can carry two (RC: four) TLPs in a beat.
STRADDLE_OPTIONS = ("cq", "cc", "rq", "rc", "rc_4tlp")
ALIGNMENT = {"dword": "DWORD_Aligned", "address": "Address_Aligned"}   # pcie4_uscale_plus's names


@dataclass(frozen=True)
class PciIdentity:
    """What the host sees in configuration space. The driver matches on all
    four IDs; a lab that needs its own sets them in hw/spec/regmap.py, the one
    place the driver's header, the Tcl, the virtual board and the tests read."""
    vendor: int = regmap.PCI_VENDOR_ID
    device: int = regmap.PCI_DEVICE_ID
    subsystem_vendor: int = regmap.PCI_SUBSYSTEM_VENDOR_ID
    subsystem: int = regmap.PCI_SUBSYSTEM_ID
    class_code: int = regmap.PCI_CLASS_CODE
    revision: int = regmap.PCI_REVISION_ID


@dataclass(frozen=True)
class HardIpConfig:
    """A hard IP's configuration. Defaults are the register map's (BARs,
    MSI-X, IDs) or what the endpoint needs; the boards set the rest."""
    ip: str                         # USP or S7
    lanes: int
    gen: int                        # 2: 5.0 GT/s, 3: 8.0 GT/s
    data_width: int                 # user interface, bits
    user_clk_mhz: float
    pcie_block: str                 # the hard block's site
    bar2_size: int
    gt_quad: str | None = None      # USP: the GT quad of lane 0
    max_payload_supported: int = 1024
    extended_tag: bool = True
    client_tag: bool = True         # USP: requests keep the tags the user logic gives them
    straddle: frozenset = frozenset()   # of STRADDLE_OPTIONS that are on
    alignment: str = "dword"        # USP: "dword" or "address" alignment of payloads
    legacy_interrupt: bool = False  # INTx
    buf_opt_bma: bool = False       # S7: completion buffering for bus-master designs
    ids: PciIdentity = field(default_factory=PciIdentity)
    bar0_size: int = regmap.BAR0_SIZE
    msix_vectors: int = regmap.MSIX_VECTORS
    msix_bar: int = 0               # the BAR of the MSI-X table and PBA
    msix_table_offset: int = regmap.MSIX_TABLE_OFFSET
    msix_pba_offset: int = regmap.MSIX_PBA_OFFSET

    @property
    def family(self):
        return FAMILY[self.ip]

    def check(self):
        """Raise ValueError when the configuration is not one the IP offers."""
        problems = []
        if self.ip not in FAMILY:
            problems.append(f"ip {self.ip!r}: use {USP} or {S7}")
        elif self.ip == S7 and (self.straddle or not self.client_tag or self.gt_quad):
            problems.append("straddle, client_tag and gt_quad are pcie4_uscale_plus options")
        unknown = set(self.straddle) - set(STRADDLE_OPTIONS)
        if unknown:
            problems.append(f"straddle {sorted(unknown)}: use {', '.join(STRADDLE_OPTIONS)}")
        if self.alignment not in ALIGNMENT:
            problems.append(f"alignment {self.alignment!r}: use dword or address")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def replace(self, **changes):
        return dataclasses.replace(self, **changes).check()


def requirements(params):
    """What the endpoint's RTL (built with EndpointParams `params`) relies on,
    as {HardIpConfig field: (value, why)}."""
    family = {v: k for k, v in FAMILY.items()}[params.hard_ip]
    need = {
        "ip": (family, "the endpoint's hard-IP front end"),
        "data_width": (params.data_width, "the endpoint's interface width"),
        "bar0_size": (params.bar0_size, "BAR0's decoder"),
        "bar2_size": (params.bar2_size, "BAR2's decoder"),
        "max_payload_supported": (params.max_payload_supported,
                                  "the ingress drops writes longer than this"),
        "msix_vectors": (regmap.MSIX_VECTORS, "the endpoint's MSI-X table"),
        "msix_bar": (0, "the MSI-X table and PBA are BAR0 registers"),
        "msix_table_offset": (regmap.MSIX_TABLE_OFFSET, "the register map"),
        "msix_pba_offset": (regmap.MSIX_PBA_OFFSET, "the register map"),
        "ids": (PciIdentity(), "the driver matches these IDs"),
    }
    if family == USP:
        need |= {
            "client_tag": (True, "the DMA engine issues its own tags and matches completions on them"),
            "straddle": (frozenset(), "the endpoint takes one TLP per beat on every stream"),
            "alignment": ("dword", "the endpoint's payloads are dword-aligned"),
        }
    return need


def mismatches(config, params):
    """What `config` does not give the RTL of `params`, one line each: empty when it fits."""
    out = []
    for name, (value, why) in requirements(params).items():
        have = getattr(config, name)
        if have != value:
            out.append(f"{name}: the endpoint needs {_shown(value)} ({why}); "
                       f"the configuration has {_shown(have)}")
    return out


def _shown(value):
    if isinstance(value, frozenset):
        return "{" + ", ".join(sorted(value)) + "}" if value else "none"
    return value


# ---------------------------------------------------------------------------
# Vivado
# ---------------------------------------------------------------------------

def _scale(size):
    """(scale, size) as the IP's BAR fields take them: 64 KiB -> (Kilobytes, 64)."""
    for scale, unit in (("Gigabytes", 1 << 30), ("Megabytes", 1 << 20), ("Kilobytes", 1 << 10)):
        if size >= unit and size % unit == 0:
            return scale, size // unit
    raise ValueError(f"BAR size {size}: not a whole number of KiB")


def _bars(config, key):
    """BAR0: registers, 32-bit, not prefetchable; BAR2: memory, 64-bit,
    prefetchable; 1, 4 and 5 off (3 is BAR2's upper half). key(n, field)
    spells the IP's property name for BAR n."""
    out = {}
    for n, size, wide in ((0, config.bar0_size, False), (2, config.bar2_size, True)):
        scale, value = _scale(size)
        out |= {key(n, "Enabled"): "true", key(n, "Type"): "Memory",
                key(n, "64bit"): _bool(wide), key(n, "Prefetchable"): _bool(wide),
                key(n, "Scale"): scale, key(n, "Size"): str(value)}
    for n in (1, 4, 5):
        out[key(n, "Enabled")] = "false"
    return out


def _bool(value):
    return "true" if value else "false"


def _class_code(ids):
    """The class code as the IPs' three fields take it: base, sub-class, interface."""
    return [f"{ids.class_code >> shift & 0xFF:02X}" for shift in (16, 8, 0)]


def _usp_properties(c):
    ids, payload = c.ids, c.max_payload_supported
    base, sub, interface = _class_code(ids)
    bar = f"BAR_{c.msix_bar}"              # a 32-bit BAR (a 64-bit pair would be BAR_1:0)
    return {
        "mode_selection": "Advanced",
        "PL_LINK_CAP_MAX_LINK_WIDTH": f"X{c.lanes}",
        "PL_LINK_CAP_MAX_LINK_SPEED": {2: "5.0_GT/s", 3: "8.0_GT/s"}[c.gen],
        "axisten_if_width": f"{c.data_width}_bit",
        "axisten_freq": f"{c.user_clk_mhz:g}",
        "axisten_if_enable_client_tag": _bool(c.client_tag),
        "AXISTEN_IF_EXT_512_CQ_STRADDLE": _bool("cq" in c.straddle),
        "AXISTEN_IF_EXT_512_CC_STRADDLE": _bool("cc" in c.straddle),
        "AXISTEN_IF_EXT_512_RQ_STRADDLE": _bool("rq" in c.straddle),
        "AXISTEN_IF_EXT_512_RC_STRADDLE": _bool("rc" in c.straddle),
        "AXISTEN_IF_EXT_512_RC_4TLP_STRADDLE": _bool("rc_4tlp" in c.straddle),
        "AXISTEN_IF_RC_STRADDLE": _bool("rc" in c.straddle),    # the 256-bit option
        "AXISTEN_IF_CQ_ALIGNMENT_MODE": ALIGNMENT[c.alignment],
        "AXISTEN_IF_RQ_ALIGNMENT_MODE": ALIGNMENT[c.alignment],
        "extended_tag_field": _bool(c.extended_tag),
        "pf0_dev_cap_max_payload": f"{payload}_bytes",
        "vendor_id": f"{ids.vendor:04X}",
        "PF0_DEVICE_ID": f"{ids.device:04X}",
        "PF0_SUBSYSTEM_VENDOR_ID": f"{ids.subsystem_vendor:04X}",
        "PF0_SUBSYSTEM_ID": f"{ids.subsystem:04X}",
        "PF0_REVISION_ID": f"{ids.revision:02X}",
        # PF0_CLASS_CODE is derived from these three; set directly, it is ignored.
        "PF0_Use_Class_Code_Lookup_Assistant": "false",
        "pf0_class_code_base": base,
        "pf0_class_code_sub": sub,
        "pf0_class_code_interface": interface,
        "PF0_INTERRUPT_PIN": "INTA" if c.legacy_interrupt else "NONE",
        **_bars(c, lambda n, f: f"pf0_bar{n}_{f.lower()}"),
        "pf0_msi_enabled": "false",
        "pf0_msix_enabled": "true",
        "MSI_X_OPTIONS": "MSI-X_External",      # the table is the endpoint's, in BAR0
        "PF0_MSIX_CAP_TABLE_SIZE": f"{c.msix_vectors - 1:03X}",    # N - 1 (PG213)
        "PF0_MSIX_CAP_TABLE_BIR": bar,
        "PF0_MSIX_CAP_TABLE_OFFSET": f"{c.msix_table_offset:08X}",
        "PF0_MSIX_CAP_PBA_BIR": bar,
        "PF0_MSIX_CAP_PBA_OFFSET": f"{c.msix_pba_offset:08X}",
        "en_gt_selection": "true",
        "pcie_blk_locn": c.pcie_block,
        "select_quad": c.gt_quad,
    }


def _s7_properties(c):
    ids = c.ids
    base, sub, interface = _class_code(ids)
    return {
        "mode_selection": "Advanced",
        "Maximum_Link_Width": f"X{c.lanes}",
        "Link_Speed": {1: "2.5_GT/s", 2: "5.0_GT/s"}[c.gen],
        "Trgt_Link_Speed": f"4'h{c.gen}",
        "Interface_Width": f"{c.data_width}_bit",
        "User_Clk_Freq": f"{c.user_clk_mhz:g}",
        "Ref_Clk_Freq": f"{REFCLK_MHZ}_MHz",
        "Vendor_ID": f"{ids.vendor:04X}",
        "Device_ID": f"{ids.device:04X}",
        "Subsystem_Vendor_ID": f"{ids.subsystem_vendor:04X}",
        "Subsystem_ID": f"{ids.subsystem:04X}",
        "Revision_ID": f"{ids.revision:02X}",
        "Class_Code_Base": base,
        "Class_Code_Sub": sub,
        "Class_Code_Interface": interface,
        **_bars(c, lambda n, f: f"Bar{n}_{f}"),
        "Max_Payload_Size": f"{c.max_payload_supported}_bytes",
        "Extended_Tag_Field": _bool(c.extended_tag),
        "Buf_Opt_BMA": _bool(c.buf_opt_bma),
        "Legacy_Interrupt": "INTA" if c.legacy_interrupt else "NONE",
        "MSI_Enabled": "false",
        "MSIx_Enabled": "true",
        "MSIx_Table_Size": f"{c.msix_vectors:X}",   # the number of entries (litepcie: 20 for 32)
        "MSIx_Table_BIR": f"BAR_{c.msix_bar}",
        "MSIx_Table_Offset": f"{c.msix_table_offset:X}",
        "MSIx_PBA_BIR": f"BAR_{c.msix_bar}",
        "MSIx_PBA_Offset": f"{c.msix_pba_offset:X}",
        "PCIe_Blk_Locn": c.pcie_block,
        # Which optional port groups the generated module has: hw/flow/bitstream.py
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


def properties(config):
    """The IP's CONFIG.* properties, as a dict (name without CONFIG.)."""
    return (_usp_properties if config.ip == USP else _s7_properties)(config.check())


def tcl(config, title):
    """create_ip, its properties, and generate_target, for script_after_read."""
    lines = [f"# {config.ip} for {title}: generated by hw/flow/hard_ip.py from the",
             "# register map and the board definition; do not edit.",
             f"create_ip -name {config.ip} -vendor xilinx.com -library ip "
             f"-module_name {MODULE}",
             "set_property -dict [list \\"]
    lines += [f"    CONFIG.{k} {{{v}}} \\" for k, v in properties(config).items()]
    lines += [f"] [get_ips {MODULE}]",
              f"generate_target {{synthesis instantiation_template}} [get_ips {MODULE}]",
              f"synth_ip [get_ips {MODULE}]", ""]
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# Simulation models
# ---------------------------------------------------------------------------

def _msix_options(c, prefix):
    return {f"{prefix}table_size": c.msix_vectors - 1, f"{prefix}table_bir": c.msix_bar,
            f"{prefix}table_offset": c.msix_table_offset, f"{prefix}pba_bir": c.msix_bar,
            f"{prefix}pba_offset": c.msix_pba_offset}


def usp_model_options(config):
    """Keyword arguments of cocotbext-pcie's UltraScalePlusPcieDevice (signals aside)."""
    c = config.check()
    return {
        "pcie_generation": c.gen, "pcie_link_width": c.lanes,
        "user_clk_frequency": c.user_clk_mhz * 1e6,
        "alignment": c.alignment,
        **{f"{name}_straddle": name in c.straddle for name in STRADDLE_OPTIONS},
        "enable_client_tag": c.client_tag,
        "max_payload_size": c.max_payload_supported,
        "enable_extended_tag": c.extended_tag,
        "pf0_msi_enable": False, "pf0_msix_enable": True,
        **_msix_options(c, "pf0_msix_"),
    }


def s7_model_options(config):
    """Keyword arguments of the project's pcie_7x model (hw/sim/tb/s7_model.py), signals aside."""
    c = config.check()
    return {"width": c.data_width, "user_clk_frequency": c.user_clk_mhz * 1e6,
            "max_payload_size": c.max_payload_supported, "enable_extended_tag": c.extended_tag,
            **_msix_options(c, "msix_")}


def function_setup(config):
    """What a model's function 0 takes from the configuration: IDs, interrupt
    pin and BARs, as (attributes, [(bar, size, 64-bit, prefetchable)])."""
    ids = config.ids
    attrs = {"vendor_id": ids.vendor, "device_id": ids.device,
             "subsystem_vendor_id": ids.subsystem_vendor, "subsystem_id": ids.subsystem,
             "class_code": ids.class_code, "revision_id": ids.revision,
             "interrupt_pin": 1 if config.legacy_interrupt else 0}
    return attrs, [(0, config.bar0_size, False, False), (2, config.bar2_size, True, True)]


def describe(config):
    """(field, value) pairs, for tables."""
    return [(f.name, _shown(getattr(config, f.name))) for f in fields(config)]
