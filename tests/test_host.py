"""The host library without a device: sysfs parsing on a fake tree, lookups,
errors, the CLI's arguments. (With the driver: tests/test_vm_host.py.)"""

import pytest

from host import cli, client
from tests.fakes import fake_device


def test_describe_reads_the_driver_attributes(tmp_path):
    d = client._describe(fake_device(tmp_path), sysfs=tmp_path)
    assert (d.address, d.vendor, d.device) == ("0000:03:00.0", 0x1AF4, 0x1110)
    assert (d.kind, d.mode, d.bar, d.bar_size) == ("memory-only", "dax", 2, 64 << 20)
    assert (d.dax_node, d.dax_size, d.dax_align) == ("/dev/dax0.0", 64 << 20, 2 << 20)
    assert (d.link_speed, d.link_width, d.numa_node) == ("8.0 GT/s PCIe", 4, -1)
    assert d.p2pmem_size == 0 and d.gateware_version is None
    assert d.driver_version == "0.1.0"
    assert d.as_dict()["dax_node"] == "/dev/dax0.0"


def test_describe_p2pdma_only(tmp_path):
    pci = fake_device(tmp_path, dax="", mode="p2pdma")
    (pci / "p2p_dax" / "p2pmem_size").write_text(str(64 << 20))
    d = client._describe(pci, sysfs=tmp_path)
    assert d.dax_device is None and d.dax_node is None and d.p2pmem_size == 64 << 20
    with pytest.raises(client.NoDeviceError, match="no dax device .*mode=dax or mode=both"):
        client.Bar(d)


def test_find(tmp_path, monkeypatch):
    a = client._describe(fake_device(tmp_path, "0000:03:00.0", "dax0.0"), sysfs=tmp_path)
    b = client._describe(fake_device(tmp_path, "0000:05:00.0", "dax1.0"), sysfs=tmp_path)
    monkeypatch.setattr(client, "devices", lambda: [a, b])
    assert client.find("05:00.0") is b
    assert client.find("/dev/dax0.0") is a
    with pytest.raises(client.NoDeviceError, match="several devices"):
        client.find()
    with pytest.raises(client.NoDeviceError, match="no p2p_dax device called 'dax7.0'"):
        client.find("dax7.0")
    monkeypatch.setattr(client, "devices", lambda: [])
    with pytest.raises(client.NoDeviceError, match="load the driver"):
        client.find()


def test_cli_errors(monkeypatch, capsys):
    monkeypatch.setattr(client, "devices", lambda: [])
    assert cli.main(["info", "dax0.0"]) == 1
    assert "p2pdax: no device is bound to p2p_dax: load the driver" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        cli.main(["list", "--bogus"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: p2pdax") and "unrecognized arguments: --bogus" in err
    assert cli.main(["list", "--json"]) == 0 and capsys.readouterr().out.strip() == "[]"
    assert cli.main(["list"]) == 1
    assert capsys.readouterr().err == f"p2pdax: {client.NO_DEVICE}\n"


class MirroredBar:
    """A 64 KiB BAR over 32 KiB of memory: the upper half mirrors the lower."""
    size = 64 << 10

    def __init__(self):
        self.mem = bytearray(self.size // 2)

    def write(self, offset, data):
        for i in range(0, len(data), 4096):
            at = (offset + i) % len(self.mem)
            self.mem[at:at + 4096] = data[i:i + 4096]

    def read(self, offset, length):
        return (bytes(self.mem) * 2)[offset:offset + length]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass


def test_selftest_finds_a_mirrored_bar(tmp_path, monkeypatch, capsys):
    dev = client._describe(fake_device(tmp_path), sysfs=tmp_path)
    monkeypatch.setattr(client, "find", lambda name=None: dev)
    monkeypatch.setattr(client, "open_bar", lambda d: MirroredBar())
    assert cli.main(["selftest", "dax0.0"]) == 1
    out = capsys.readouterr().out
    address = next(line for line in out.splitlines() if " address " in line)
    # Word 0 holds 0; the mirror shows word 0x8000's 0x8000 there: byte 1 differs.
    assert address.endswith("MISMATCH: first at offset 0x1 (wrote 0x00, read 0x80)"), out
    assert "FAILED" in out


def test_bar_array_is_a_numpy_view(tmp_path):
    """Bar.array(): a numpy view whose writes land in the mapped memory (here a
    file in place of the dax node), bounds and alignment checked."""
    import dataclasses
    np = pytest.importorskip("numpy")
    backing = tmp_path / "bar"
    backing.write_bytes(bytes(1 << 20))

    class FileDevice(client.Device):
        dax_node = str(backing)

    dev = client._describe(fake_device(tmp_path / "sys"), sysfs=tmp_path / "sys")
    dev = FileDevice(**dataclasses.asdict(dev) | {"dax_size": 1 << 20})
    with client.Bar(dev) as bar:
        words = bar.array("uint32", offset=4096, count=4)
        words[:] = [1, 2, 3, 0xDEADBEEF]
        assert bar.array("uint64").shape == ((1 << 20) // 8,)
        with pytest.raises(ValueError, match="offset 0x2 is not a multiple of uint32's size"):
            bar.array("uint32", offset=2)
        with pytest.raises(ValueError, match="outside .*offsets 0 to 0x100000"):
            bar.array("uint32", offset=4096, count=1 << 18)
        with pytest.raises(BufferError, match="arrays or memoryviews of the BAR are still alive"):
            bar.close()
        del words
    assert np.frombuffer(backing.read_bytes()[4096:4112], "<u4").tolist() == [1, 2, 3, 0xDEADBEEF]


def test_selftest_fails_a_dax_device_larger_than_its_memory(tmp_path, monkeypatch, capsys):
    """A board whose dax device is larger than the memory behind it (mem_size
    is half the BAR, as an old driver registered it): selftest says to
    update the driver, checks the backed bytes only, and fails."""
    pci = fake_device(tmp_path)
    (pci / "p2p_dax" / "kind").write_text("board\n")
    (pci / "p2p_dax" / "mem_size").write_text(f"{MirroredBar.size // 2}\n")
    dev = client._describe(pci, sysfs=tmp_path)
    assert dev.mem_size == 32 << 10
    monkeypatch.setattr(client, "find", lambda name=None: dev)
    monkeypatch.setattr(client, "open_bar", lambda d: MirroredBar())
    assert cli.main(["selftest", "dax0.0"]) == 1
    out = capsys.readouterr().out
    assert "/dev/dax0.0: 64 KiB registered but only 32 KiB backed by memory (MEM_SIZE): " \
        "update the p2p_dax driver, which registers only the backed part; testing those " \
        "32768 bytes" in out
    assert "address 32768 bytes" in out and "ok" in out and "FAILED" in out


def _pci_tree(root):
    """sysfs with a bridge 0000:00:01.0 and a device 0000:01:00.0 below it."""
    real = root / "devices" / "pci0000:00" / "0000:00:01.0" / "0000:01:00.0"
    real.mkdir(parents=True)
    (real.parent / "rescan").write_text("")
    link = root / "bus" / "pci" / "devices" / "0000:01:00.0"
    link.parent.mkdir(parents=True)
    link.symlink_to(real)
    (root / "module" / "p2p_dax" / "drivers").mkdir(parents=True)
    return real


@pytest.mark.parametrize("link_up", [True, False])
def test_rescan(tmp_path, monkeypatch, link_up):
    """Remove, then rescan the bridge above: the device comes back with its
    driver, or, when its link does not train, an error says where to look."""
    import shutil
    real = _pci_tree(tmp_path)
    writes = []

    def fake_write(path, text):
        writes.append(str(path.relative_to(tmp_path)))
        if path.name == "remove":
            shutil.rmtree(real)
        elif path.name == "rescan" and link_up:
            real.mkdir(exist_ok=True)
            (real / "driver").symlink_to(tmp_path / "module" / "p2p_dax" / "drivers")
    monkeypatch.setattr(client, "_write", fake_write)
    if link_up:
        assert client.rescan("01:00.0", sysfs=tmp_path) == ("0000:01:00.0", "drivers")
        assert writes == ["bus/pci/devices/0000:01:00.0/remove",
                          "devices/pci0000:00/0000:00:01.0/rescan"]
    else:
        with pytest.raises(client.RescanError, match=r"0000:01:00.0 did not come back within "
                           r"0.6 s of rescanning 0000:00:01.0: the link did not train. Check "
                           r"the link with `lspci -vv -s 0000:00:01.0` \(LnkSta\), dmesg"):
            client.rescan("0000:01:00.0", timeout=0.6, sysfs=tmp_path)
        assert writes[0].endswith("/remove") and len(writes) >= 2
    with pytest.raises(client.NoDeviceError, match="no PCI device 0000:02:00.0"):
        client.rescan("02:00.0", sysfs=tmp_path)


def test_cli_copy_through_bar_memory(tmp_path, monkeypatch, capsys):
    """copy SRC DST --through DEV:OFFSET relays file to file through the BAR
    (a RAM buffer here); the refusals name the fix."""
    import os
    from host.transfer import RamBuffer
    opened = []
    monkeypatch.setattr(client, "open_bar",
                        lambda name: opened.append(name) or RamBuffer(1 << 20))
    src, dst = tmp_path / "src", tmp_path / "dst"
    data = os.urandom(3 << 18)
    src.write_bytes(data)
    assert cli.main(["copy", str(src), str(dst), "--through", "dax0.0:64K", "--chunk", "64K",
                     "--queue-depth", "3"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"copied {len(data)} bytes {src} -> {dst} through dax0.0:64K in ")
    assert "verified (CRC-32" in out and opened == ["dax0.0"]
    assert dst.read_bytes() == data
    for argv, message in [
            ([str(src), str(dst)], "file to file is not a peer transfer: one end must be a BAR"),
            ([str(src), "dax0.0:0", "--through", "dax0.0:0"], "--through is for file to file"),
            ([str(src), str(dst), "--through", "dax0.0"], "'dax0.0': give BAR memory as "
             "DEV:OFFSET (dax0.0:0, 03:00.0:4M)"),
            ([str(src), str(dst), "--through", "dax0.0:zz"], "'dax0.0:zz': not a size: 'zz'"),
            ([str(src), str(dst), "--through", "dax0.0:0", "--via", "dma"],
             "the NVMe devices move the data, not the DMA engine; drop --via dma"),
            ([str(src), str(dst), "--through", "dax0.0:768K"],
             "the relay uses 0xc0000 bytes of it from the offset on (1 slot(s) of 0x100000 "
             "bytes")]:
        assert cli.main(["copy"] + argv) == 1, argv
        err = capsys.readouterr().err
        assert err.startswith("p2pdax: ") and message in err, (argv, err)


def test_p2pmem_maps_a_fresh_allocation(tmp_path):
    """open_p2pmem() maps sysfs p2pmem/allocate shared (a plain file stands in
    for it here), with the interface of a Bar; a device without p2pmem is
    refused with the reason."""
    p2pmem = tmp_path / "bus" / "pci" / "devices" / "0000:04:00.0" / "p2pmem"
    p2pmem.mkdir(parents=True)
    (p2pmem / "allocate").write_bytes(bytes(1 << 16))
    with client.P2pMem("0000:04:00.0", 5000, sysfs=tmp_path) as mem:
        assert mem.size == len(mem.buffer) == 5000 and mem.device is None
        mem.buffer[4990:5000] = b"0123456789"
        mem.check(0, 5000)
        with pytest.raises(ValueError, match=r"0x1 \+ 0x1388 is outside the p2pmem of "
                                             r"0000:04:00.0 \(5000 bytes\)"):
            mem.check(1, 5000)
    assert (p2pmem / "allocate").read_bytes()[4990:5000] == b"0123456789"
    with pytest.raises(client.NoDeviceError, match="0000:05:00.0 has no p2pmem: its driver "
                       "registers none, or the kernel is built without CONFIG_PCI_P2PDMA"):
        client.P2pMem("0000:05:00.0", 4096, sysfs=tmp_path)


def test_cli_p2pmem_ends(tmp_path, monkeypatch, capsys):
    """p2pmem:ADDRESS is an end for --via dma only, and needs --length as a
    source; the refusals name the fix before any device is opened."""
    monkeypatch.setattr(client, "devices", lambda: [])
    f = tmp_path / "f"
    f.write_bytes(bytes(4096))
    for argv, message in [
            (["p2pmem:0000:04:00.0", str(f), "--via", "dma"],
             "p2pmem:0000:04:00.0: a fresh p2pmem allocation has no length of its own: "
             "give --length"),
            ([str(f), "p2pmem:0000:04:00.0"], "a p2pmem end is for --via dma"),
            ([str(f), "p2pmem:", "--via", "dma"], "'p2pmem:': give the PCI address")]:
        assert cli.main(["copy"] + argv) == 1, argv
        err = capsys.readouterr().err
        assert err.startswith("p2pdax: ") and message in err, (argv, err)
