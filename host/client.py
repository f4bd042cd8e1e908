"""p2p-dax host library: find the devices bound to p2p_dax and map their BAR.

    from host import client
    for dev in client.devices():
        print(dev.address, dev.dax_node, dev.dax_size)
    with client.open_bar(client.devices()[0]) as bar:
        bar.write(0, b"hello")
        assert bar.read(0, 5) == b"hello"

Discovery reads what the driver publishes in sysfs (through pyudev, so it
works wherever libudev does, with or without a running udevd): the PCI
device, its p2p_dax/ attributes, its dax device. Mapping goes through the
dax node (/dev/daxN.M), shared, in whole units of the alignment the dax
device requires.

bar.array() gives a numpy view of the BAR where numpy is installed.
open_p2pmem() maps a peer's P2PDMA memory (p2pmem/allocate), the buffer
through which a board's DMA engine reaches a peer.
Transfers: host/transfer.py; the board's DMA engine: host/dma.py;
benchmarks: host/bench.py; the C helpers they use: host/native.py.
"""

import mmap
import os
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from host import native
from host.native import DeviceGoneError  # noqa: F401  (part of the API)

DRIVER = "p2p_dax"
UDEV_GROUP = "p2pdax"
SYSFS = Path("/sys")
NO_DEVICE = ("no device is bound to p2p_dax: load the driver (sudo modprobe p2p_dax, or "
             "insmod driver/p2p_dax.ko) and check `lspci -k` for the board; a device "
             "without the board's ID needs memory_bar=N and driver_override (docs/driver.md)")


class NoDeviceError(LookupError):
    """No device is bound to p2p_dax (or not the one asked for)."""


@dataclass(frozen=True)
class Device:
    """One PCI device bound to p2p_dax, as the driver describes it in sysfs."""
    address: str            # PCI address, e.g. 0000:03:00.0
    vendor: int
    device: int
    kind: str               # "board" or "memory-only"
    mode: str               # "dax", "p2pdma" or "both"
    bar: int                # the memory BAR's number
    bar_size: int
    dax_device: str | None  # e.g. "dax0.0"; None without a dax part
    dax_size: int
    dax_align: int          # mappings are whole multiples of this
    p2pmem_size: int
    numa_node: int          # -1: none
    link_speed: str | None  # e.g. "8.0 GT/s PCIe"; None where the device has no link
    link_width: int | None
    gateware_version: str | None    # boards only
    mem_size: int           # memory behind the BAR (MEM_SIZE); only that much is registered
    driver_version: str | None
    dma_device: str | None = None   # e.g. "p2p-dax0": the DMA node; None from a driver without it
    dma_engine: str | None = None   # "ready", "none" (memory-only), "absent" or "unusable"

    @property
    def dax_node(self):
        return f"/dev/{self.dax_device}" if self.dax_device else None

    @property
    def dma_node(self):
        return f"/dev/{self.dma_device}" if self.dma_device else None

    def as_dict(self):
        d = asdict(self)
        d["dax_node"] = self.dax_node
        d["dma_node"] = self.dma_node
        return d


def _read(path, default=None):
    try:
        return Path(path).read_text().strip()
    except (FileNotFoundError, PermissionError):
        return default


def _int(text, default=0):
    if text is None:
        return default
    try:
        return int(text, 0)
    except ValueError:
        return default


def _describe(sys_path, sysfs=SYSFS):
    pci = Path(sys_path)
    attr = pci / "p2p_dax"
    dax = _read(attr / "dax_device") or None
    width = _read(pci / "current_link_width")
    return Device(
        address=pci.name,
        vendor=_int(_read(pci / "vendor")),
        device=_int(_read(pci / "device")),
        kind=_read(attr / "kind", "unknown"),
        mode=_read(attr / "mode", "unknown"),
        bar=_int(_read(attr / "bar"), -1),
        bar_size=_int(_read(attr / "bar_size")),
        dax_device=dax,
        dax_size=_int(_read(attr / "dax_size")),
        dax_align=_int(_read(sysfs / "bus" / "dax" / "devices" / dax / "align"), 4096)
        if dax else 0,
        p2pmem_size=_int(_read(attr / "p2pmem_size")),
        numa_node=_int(_read(pci / "numa_node"), -1),
        link_speed=_read(pci / "current_link_speed"),
        link_width=_int(width) if width and width.isdigit() else None,
        gateware_version=_read(attr / "gateware_version"),
        mem_size=_int(_read(attr / "mem_size")) or _int(_read(attr / "bar_size")),
        driver_version=_read(sysfs / "module" / DRIVER / "version"),
        dma_device=_read(attr / "dma_device") or None,
        dma_engine=_read(attr / "dma_engine") or None,
    )


class RescanError(RuntimeError):
    """A device removed for a rescan did not come back."""


_PCI_ADDRESS = re.compile(r"(?:[0-9a-f]{4}:)?[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]")


def _write(path, text):
    Path(path).write_text(text)


def rescan(name, timeout=10.0, sysfs=SYSFS):
    """Remove the PCI device `name` (an address, or a device bound to p2p_dax)
    and rescan the bridge above it, so that a board loaded with a new
    bitstream enumerates again without a reboot. Needs root. Returns
    (address, driver or None) of the device that came back; RescanError when
    it does not come back within `timeout` seconds."""
    name = name.lower()
    if _PCI_ADDRESS.fullmatch(name):
        address = name if name.count(":") == 2 else f"0000:{name}"
    else:
        address = find(name).address
    dev = sysfs / "bus" / "pci" / "devices" / address
    if not dev.exists():
        raise NoDeviceError(f"no PCI device {address} (lspci lists them); if it vanished, "
                            "rescan every bus: echo 1 > /sys/bus/pci/rescan")
    bridge = dev.resolve().parent
    again = bridge / "rescan"
    if not again.exists():                  # on a root bus: no bridge above it
        again = sysfs / "bus" / "pci" / "rescan"
    _write(dev / "remove", "1")
    deadline = time.monotonic() + timeout
    while True:
        _write(again, "1")
        if dev.exists():
            driver = dev / "driver"
            return address, driver.resolve().name if driver.exists() else None
        if time.monotonic() > deadline:
            raise RescanError(
                f"{address} did not come back within {timeout:g} s of rescanning "
                f"{bridge.name}: the link did not train. Check the link with "
                f"`lspci -vv -s {bridge.name}` (LnkSta), dmesg, and that the bitstream "
                "loaded (docs/bring-up.md)")
        time.sleep(0.5)


def devices(context=None):
    """Every PCI device bound to p2p_dax, sorted by address."""
    import pyudev
    context = context or pyudev.Context()
    found = context.list_devices(subsystem="pci", DRIVER=DRIVER)
    return sorted((_describe(d.sys_path) for d in found), key=lambda d: d.address)


def monitor(context=None, timeout=None):
    """Listen now; yield (action, device) as devices are bound to p2p_dax ("bind", a Device)
    or unbound from it ("unbind", the PCI address: its attributes are gone).
    Reads udev's events where udevd runs, else the kernel's. Stops after
    `timeout` seconds without an event (None: never)."""
    import pyudev
    context = context or pyudev.Context()
    source = "udev" if Path("/run/udev/control").exists() else "kernel"
    mon = pyudev.Monitor.from_netlink(context, source=source)
    if source == "udev":
        mon.filter_by("pci")        # libudev's filters apply to udev's messages only
    mon.start()                     # listening from now on, not from the first next()
    # An unbind event does not say which driver let go: remember ours.
    ours = {d.address for d in devices(context)}
    return _events(mon, timeout, ours)


def _events(mon, timeout, ours):
    while True:
        event = mon.poll(timeout)
        if event is None:
            return
        if event.subsystem != "pci":
            continue
        if event.action == "bind" and event.driver == DRIVER:
            ours.add(event.sys_name)
            yield "bind", _describe(event.sys_path)
        elif event.action == "unbind" and event.sys_name in ours:
            ours.discard(event.sys_name)
            yield "unbind", event.sys_name


def find(name=None):
    """The device called `name`: a PCI address (full or without the domain), a
    dax device name or node; None: the only device. Raises NoDeviceError."""
    found = devices()
    if not found:
        raise NoDeviceError(NO_DEVICE)
    if name is None:
        if len(found) > 1:
            raise NoDeviceError("several devices are bound to p2p_dax, name one of: "
                                + ", ".join(d.address for d in found))
        return found[0]
    key = name.removeprefix("/dev/")
    for d in found:
        if key in (d.address, d.address.split(":", 1)[1], d.dax_device):
            return d
    raise NoDeviceError(f"no p2p_dax device called {name!r}; there are: "
                        + ", ".join(f"{d.address} ({d.dax_device})" for d in found))


def open_node(path, flags):
    """os.open() of one of a device's nodes (/dev/daxN.M, /dev/p2p-daxN); a
    refusal names the group the udev rule gives them to."""
    try:
        return os.open(path, flags)
    except PermissionError:
        raise PermissionError(
            f"{path}: permission denied; add yourself to the group "
            f"'{UDEV_GROUP}' that driver/60-p2p-dax.rules gives the device to, or "
            "run as root") from None


class Bar:
    """BAR memory of a device, mapped shared through its dax node. Use as a
    context manager, or call close(). `buffer` is a writable memoryview."""

    def __init__(self, device):
        if not device.dax_node:
            raise NoDeviceError(f"{device.address} has no dax device (mode={device.mode}); "
                                "load p2p_dax with mode=dax or mode=both")
        self.device = device
        self.size = device.dax_size
        fd = open_node(device.dax_node, os.O_RDWR)
        try:
            self._map = mmap.mmap(fd, self.size, mmap.MAP_SHARED,
                                  mmap.PROT_READ | mmap.PROT_WRITE)
        finally:
            os.close(fd)
        self.buffer = memoryview(self._map)

    def check(self, offset, length):
        """Raise ValueError unless [offset, offset + length) lies in the BAR."""
        if offset < 0 or length < 0 or offset + length > self.size:
            raise ValueError(f"{offset:#x} + {length:#x} is outside {self.device.dax_node}: "
                             f"offsets 0 to {self.size:#x} ({self.size} bytes) are allowed")

    def read(self, offset, length):
        """Bytes from the BAR; DeviceGoneError if the device goes away meanwhile."""
        self.check(offset, length)
        out = bytearray(length)
        native.copy(memoryview(out), self.buffer[offset:offset + length], self.device.dax_node)
        return bytes(out)

    def write(self, offset, data):
        """Write data at offset; DeviceGoneError if the device goes away meanwhile."""
        data = memoryview(data).cast("B")
        self.check(offset, len(data))
        native.copy(self.buffer[offset:offset + len(data)], data, self.device.dax_node)

    def array(self, dtype="uint8", offset=0, count=None):
        """A numpy array over the BAR, no copy: what is written to it lands in
        the BAR. count items of dtype from offset (default: to the end). Its
        accesses are plain loads and stores, not guarded like read() and
        write(): if the device goes away, the next access kills the process
        with SIGBUS."""
        try:
            import numpy
        except ImportError:
            raise ImportError("Bar.array() needs numpy: pip install numpy") from None
        dtype = numpy.dtype(dtype)
        if offset % dtype.itemsize:
            raise ValueError(f"offset {offset:#x} is not a multiple of {dtype}'s size "
                             f"({dtype.itemsize} bytes)")
        if count is None:
            count = (self.size - offset) // dtype.itemsize
        self.check(offset, count * dtype.itemsize)
        return numpy.frombuffer(self.buffer, dtype, count, offset)

    def close(self):
        if self._map is not None:
            try:
                self.buffer.release()
                self._map.close()
            except BufferError:
                raise BufferError(f"{self.device.dax_node}: arrays or memoryviews of the BAR "
                                  "are still alive; delete them before closing") from None
            self._map = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def open_bar(device=None):
    """Map the BAR of `device` (a Device or a name for find())."""
    if not isinstance(device, Device):
        device = find(device)
    return Bar(device)


class P2pMem:
    """`size` bytes of a PCI device's P2PDMA memory (p2pmem: an NVMe's CMB,
    a board's BAR2 with mode=p2pdma or both), freshly allocated by mapping
    its sysfs p2pmem/allocate, shared. The buffer for a board's DMA engine
    to reach a peer peer to peer: the driver maps it by the kernel's P2P
    rules (driver/p2p_dax_ioctl.h: EREMOTEIO where they forbid it). Its
    bytes are whatever the memory held; they last as long as the mapping.
    The interface of Bar, without `device`."""

    device = None

    def __init__(self, address, size, sysfs=SYSFS):
        p2pmem = Path(sysfs) / "bus" / "pci" / "devices" / address / "p2pmem"
        if not (p2pmem / "allocate").exists():
            raise NoDeviceError(f"{address} has no p2pmem: its driver registers none, or "
                                "the kernel is built without CONFIG_PCI_P2PDMA (Linux 6.2 "
                                "or later has p2pmem/allocate)")
        self.size = size
        self.name = f"p2pmem of {address}"
        try:
            fd = os.open(p2pmem / "allocate", os.O_RDWR)
        except PermissionError:
            raise PermissionError(f"{p2pmem / 'allocate'}: permission denied; the kernel "
                                  "gives it to root only: run as root") from None
        try:
            self._map = mmap.mmap(fd, -(-size // mmap.PAGESIZE) * mmap.PAGESIZE,
                                  mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        except OSError as e:
            available = _read(p2pmem / "available", "?")
            raise OSError(e.errno, f"{self.name}: {size} bytes asked, {available} available "
                                   f"(sysfs p2pmem/available): {os.strerror(e.errno)}") from None
        finally:
            os.close(fd)
        self.buffer = memoryview(self._map)[:size]

    def check(self, offset, length):
        if offset < 0 or length < 0 or offset + length > self.size:
            raise ValueError(f"{offset:#x} + {length:#x} is outside the {self.name} "
                             f"({self.size} bytes)")

    def close(self):
        if self._map is not None:
            self.buffer.release()
            self._map.close()
            self._map = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def open_p2pmem(address, size):
    """Allocate and map `size` bytes of the p2pmem of the PCI device at `address`."""
    return P2pMem(address, size)
