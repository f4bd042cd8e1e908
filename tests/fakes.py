"""Fakes the host-library tests share: a sysfs tree as the driver makes it."""


def fake_device(root, address="0000:03:00.0", dax="dax0.0", mode="dax"):
    """A board bound to p2p_dax under `root` (a stand-in for /sys): its PCI
    attributes, the driver's p2p_dax/ group, its dax device; returns its PCI
    directory."""
    pci = root / "bus" / "pci" / "devices" / address
    attrs = {"vendor": "0x1af4", "device": "0x1110", "numa_node": "-1",
             "current_link_speed": "8.0 GT/s PCIe", "current_link_width": "4",
             "p2p_dax/kind": "memory-only", "p2p_dax/mode": mode, "p2p_dax/bar": "2",
             "p2p_dax/bar_size": str(64 << 20), "p2p_dax/dax_device": dax,
             "p2p_dax/dax_size": str(64 << 20)}
    for name, value in attrs.items():
        (pci / name).parent.mkdir(parents=True, exist_ok=True)
        (pci / name).write_text(value + "\n")
    (root / "bus" / "dax" / "devices" / dax).mkdir(parents=True, exist_ok=True)
    (root / "bus" / "dax" / "devices" / dax / "align").write_text("2097152\n")
    (root / "module" / "p2p_dax").mkdir(parents=True, exist_ok=True)
    (root / "module" / "p2p_dax" / "version").write_text("0.1.0\n")
    return pci
