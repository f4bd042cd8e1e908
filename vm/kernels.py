"""Kernels the VM tests boot: Debian's stock 6.1 and 6.12, fetched with
`apt-get download` into a project-local cache; and Debian 13's stock 7.3
(from trixie-backports, with CONFIG_PCI_P2PDMA), fetched through a private apt
and built for in a Debian 13 root (vm/newer.py).

fetch(name) resolves the concrete packages behind Debian's metapackages
(`apt-cache depends`), downloads the image, the arch headers, the -common
headers and linux-kbuild into .cache/kernels/<name>/ (repository root), unpacks
them with `dpkg -x` into one tree there and points the headers' absolute
/usr/src and /usr/lib/linux-kbuild-* references into that tree, so nothing of
the host's kernel packages is needed. A stamp file with the resolved versions
makes later calls free (no apt, no network); fetch(name, refresh=True) asks apt
again. build_driver(kernel) builds driver/ against the unpacked headers.
"""

import fcntl
import gzip
import hashlib
import json
import lzma
import os
import re
import shutil
import struct
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

try:
    from vm import newer
except ImportError:
    import newer


@dataclass(frozen=True)
class Kernel:
    name: str               # "6.1", "6.12", "7.3": what KERNEL= takes
    release: str            # `uname -r` of the kernel
    vmlinuz: Path           # the bootable image
    modules_dir: Path       # lib/modules/<release>: modules.dep, modules.builtin, kernel/...
    kdir: Path              # tree for out-of-tree builds: make -C kdir M=... modules
    make_args: tuple = field(default=())    # extra make arguments for module builds
    build_root: Path | None = None  # modules are built in this root, under chroot


ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".cache" / "kernels"
DRIVER_SOURCE = ROOT / "driver"
# name -> (image metapackage, headers metapackage)
METAPACKAGES = {
    "6.1": ("linux-image-amd64", "linux-headers-amd64"),
    "6.12": ("linux-image-6.12-amd64", "linux-headers-6.12-amd64"),
    "7.3": ("linux-image-amd64", "linux-headers-amd64"),
}
# Kernels of a newer Debian release: name -> (release, suite), vm/newer.py.
NEWER = {"7.3": ("trixie", "trixie-backports")}
# Debian's kernels: every VM test runs on each (under_test). 7.3 has CONFIG_PCI_P2PDMA.
STOCK = ("6.1", "6.12", "7.3")
WITH_P2PDMA = "7.3"
NAMES = tuple(METAPACKAGES)
# Which kernels the VM tests boot: unset, each test's own choice; "all", every
# stock kernel; or a list such as "6.1,7.3" (make vm-test KERNELS=...).
KERNELS_ENV = "P2P_DAX_VM_KERNELS"


class KernelError(RuntimeError):
    pass


def under_test(*default, p2pdma=False):
    """The kernels a VM test runs on: its `default` ones, or those that
    P2P_DAX_VM_KERNELS names ("all": STOCK), narrowed to kernels with P2PDMA
    when the test needs it. `make test` runs the slow tests (the virtual
    board's) on one kernel each; the release matrix runs all of them on all."""
    chosen = os.environ.get(KERNELS_ENV, "").strip()
    if chosen == "all":
        names = STOCK
    elif chosen:
        names = tuple(n.strip() for n in chosen.split(","))
        unknown = [n for n in names if n not in NAMES]
        if unknown:
            raise KernelError(f"{KERNELS_ENV}={chosen}: unknown kernel {unknown[0]!r}; "
                              f"give 'all' or some of {', '.join(NAMES)}")
    else:
        names = default
    return tuple(n for n in names if not p2pdma or n == WITH_P2PDMA)


def get(name) -> Kernel:
    """Debian's kernel called name (fetch)."""
    return fetch(name)


def _run(cmd, what, cwd=None):
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if r.returncode != 0:
        msg = (f"{what}: `{' '.join(map(str, cmd))}` failed (exit {r.returncode}):\n"
               f"{r.stdout}{r.stderr}")
        if not any(Path("/var/lib/apt/lists").glob("*Packages*")):
            msg += "\napt has no package lists: run `apt-get update` as root, then try again"
        raise KernelError(msg.rstrip())
    return r.stdout


def _depends(package, apt=()):
    """The packages `package` depends on (first alternative of each), per apt-cache."""
    out = _run(["apt-cache", *apt, "depends", "--no-recommends", "--no-suggests",
                "--no-conflicts", "--no-breaks", "--no-replaces", "--no-enhances", package],
               f"looking up {package}")
    return re.findall(r"^\s*\|?(?:Pre)?Depends: ([^<\s]\S*)", out, re.M)


def _one(deps, pattern, package):
    found = [d for d in deps if re.fullmatch(pattern, d)]
    if not found:
        raise KernelError(f"{package} depends on no package matching {pattern}: {deps}")
    return found[0]


def _resolve(name, apt=()):
    """The packages of kernel `name`: the image first. Since 7.x Debian's image
    package is a metapackage of its own: the kernel, its modules and its base
    files are in linux-{binary,modules,base}-RELEASE."""
    image_meta, headers_meta = METAPACKAGES[name]
    image = _one(_depends(image_meta, apt), r"linux-image-.*", image_meta)
    parts = [d for d in _depends(image, apt)
             if re.fullmatch(r"linux-(binary|modules|base)-\d.*", d)]
    headers = _one(_depends(headers_meta, apt), r"linux-headers-.*", headers_meta)
    hdeps = _depends(headers, apt)
    return [image, *parts, headers, _one(hdeps, r"linux-headers-.*-common", headers),
            _one(hdeps, r"linux-kbuild-.*", headers)]


def _make_args():
    # 6.12's module builds run pahole (package dwarves) for BTF; without it, switch BTF off.
    return () if shutil.which("pahole") else ("CONFIG_DEBUG_INFO_BTF_MODULES=",)


def _modules_dir(tree, rel):
    """lib/modules/REL, or usr/lib/modules/REL where the packages merge /usr."""
    usr = tree / "usr" / "lib" / "modules" / rel
    return usr if usr.is_dir() else tree / "lib" / "modules" / rel


def _kernel(name, stamp, tree):
    rel = stamp["release"]
    moddir = _modules_dir(tree, rel)
    vmlinuz = tree / "boot" / f"vmlinuz-{rel}"
    root = stamp.get("build_root")
    return Kernel(name=name, release=rel,
                  vmlinuz=vmlinuz if vmlinuz.is_file() else moddir / "vmlinuz",
                  modules_dir=moddir, kdir=tree / "usr" / "src" / f"linux-headers-{rel}",
                  make_args=_make_args(), build_root=Path(root) if root else None)


def _cached(name):
    d = CACHE / name
    try:
        stamp = json.loads((d / "stamp.json").read_text())
    except (OSError, ValueError):
        return None
    k = _kernel(name, stamp, d / "tree")
    if k.build_root and not (k.build_root / "usr" / "src" / f"linux-headers-{k.release}").is_dir():
        return None                 # the build root was made anew: its headers are gone
    return k if k.vmlinuz.is_file() and k.kdir.is_dir() and k.modules_dir.is_dir() else None


def _current(k):
    """k, when its build root (if any) has every package newer.ROOT_PACKAGES names."""
    return k if k and (k.build_root is None or newer.root_ready(k.build_root)) else None


def fetch(name, refresh=False) -> Kernel:
    """Debian's kernel `name` ("6.1" or "6.12"), downloaded and unpacked once."""
    if name not in METAPACKAGES:
        raise KernelError(f"unknown kernel {name!r}: use one of {', '.join(NAMES)}")
    if not refresh and (k := _current(_cached(name))):
        return k
    d = CACHE / name
    d.mkdir(parents=True, exist_ok=True)
    with open(d / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)        # one fetch at a time (pytest -n)
        if not refresh and (k := _cached(name)):
            if _current(k):
                return k
            # A root made before ROOT_PACKAGES grew: it gets what it lacks.
            newer.build_root(NEWER[name][0])
            if k := _cached(name):
                return k
        apt = newer.apt_options(*NEWER[name]) if name in NEWER else ()
        packages = _resolve(name, apt)
        old = _current(_cached(name))
        if old and json.loads((d / "stamp.json").read_text())["packages"] == packages:
            return old                          # refresh found nothing newer
        t0 = time.monotonic()
        with tempfile.TemporaryDirectory(dir=d) as tmp:
            tmp = Path(tmp)
            # APT::Sandbox::User=root: the _apt user may not write into our folder.
            _run(["apt-get", "download", "-q", "-o", "APT::Sandbox::User=root", *apt,
                  *packages], f"downloading kernel {name}", cwd=tmp)
            versions = {}
            tree = tmp / "tree"
            headers = []
            for deb in sorted(tmp.glob("*.deb")):
                pkg, ver = _run(["dpkg-deb", "-f", deb, "Package", "Version"], "dpkg-deb") \
                    .split("\n")[:2]
                versions[pkg.split(": ")[1]] = ver.split(": ")[1]
                _run(["dpkg", "-x", deb, tree], f"unpacking {deb.name}")
                if re.match(r"linux-(headers|kbuild)-", deb.name):
                    headers.append(deb)
                else:
                    deb.unlink()
            release = _fix_tree(tree, d / "tree", packages)
            stamp = {"packages": packages, "versions": versions, "release": release,
                     "fetch_seconds": round(time.monotonic() - t0, 1)}
            if name in NEWER:           # modules for it are built in a root of its release
                root = newer.build_root(NEWER[name][0])
                newer.install_headers(root, headers, release)
                stamp["build_root"] = str(root)
            (d / "stamp.json").unlink(missing_ok=True)
            if (d / "tree").exists():
                shutil.rmtree(d / "tree")
            tree.rename(d / "tree")
            (d / "stamp.json").write_text(json.dumps(stamp, indent=1) + "\n")
        return _cached(name)


def _fix_tree(tree, final, packages):
    """Point the unpacked headers at the unpacked -common tree and kbuild (the
    tree moves to `final` afterwards); return the kernel release."""
    image = packages[0]
    found = [*tree.glob("boot/vmlinuz-*"), *tree.glob("usr/lib/modules/*/vmlinuz")]
    if len(found) != 1:
        raise KernelError(f"{image}: expected one kernel image in the packages, found {found}")
    vmlinuz, = found
    release = (vmlinuz.name[len("vmlinuz-"):] if vmlinuz.name != "vmlinuz"
               else vmlinuz.parent.name)
    if not image.startswith(f"linux-image-{release}"):
        raise KernelError(f"{image} unpacked to {vmlinuz.name}: unexpected")
    # Absolute symlinks into /usr/src or /usr/lib (kbuild's scripts and tools,
    # lib/modules/*/build and source) become relative links inside the tree.
    for link in tree.rglob("*"):
        if link.is_symlink():
            target = os.readlink(link)
            if target.startswith("/"):
                link.unlink()
                link.symlink_to(os.path.relpath(tree / target.lstrip("/"), link.parent))
    # The arch headers' Makefile includes the -common tree by its /usr/src path.
    kdir = tree / "usr" / "src" / f"linux-headers-{release}"
    fixed = 0
    for mk in [kdir / "Makefile", *kdir.glob("*.mk")]:
        if mk.is_file():
            text = mk.read_text()
            new = re.sub(r"(?<![\w/.])/usr/(src|lib)/", lambda m: f"{final}/usr/{m[1]}/", text)
            if new != text:
                mk.write_text(new)
                fixed += 1
    if not fixed:
        raise KernelError(f"{kdir}/Makefile has no /usr/src include to fix: layout changed?")
    # Debian's packages leave modules.dep to depmod in their postinst.
    moddir = _modules_dir(tree, release)
    if not (moddir / "modules.dep").exists():
        depmod = shutil.which("depmod") or "/sbin/depmod"
        _run([depmod, "-b", moddir.parents[2], release], "depmod (package kmod)")
    dangling = [str(p) for p in kdir.rglob("*") if p.is_symlink() and not p.exists()]
    if dangling:
        raise KernelError(f"dangling links in the unpacked headers: {dangling[:5]}")
    return release


# ---------------------------------------------------------------- the driver

# What kbuild leaves in a module's folder: never copied from the sources.
_BUILD_OUTPUT = re.compile(r"^\.|\.(o|ko|mod|mod\.c|cmd|order|symvers|a|dwo|tmp)$")


def build_driver(kernel, source=None) -> Path:
    """Build the driver in `source` (default driver/) for `kernel` in
    build/driver/<name>/; return the path of the .ko (p2p_dax.ko for the
    driver). Quiet; on failure a KernelError with make's whole output."""
    source = Path(source or DRIVER_SOURCE)
    out = ROOT / "build" / "driver" / (kernel.name if source == DRIVER_SOURCE
                                       else f"{kernel.name}-{source.name}")
    out.mkdir(parents=True, exist_ok=True)
    with open(out / ".p2p-dax-lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)        # one build at a time in out (pytest -n)
        return _build(kernel, source, out)


def _build(kernel, source, out):
    files = {p.name: p for p in source.iterdir()
             if p.is_file() and not _BUILD_OUTPUT.search(p.name)}
    for name, src in files.items():     # copy what changed (new mtime), leave the rest for make
        dst = out / name
        if not (dst.is_file() and dst.read_bytes() == src.read_bytes()):
            shutil.copyfile(src, dst)
            shutil.copymode(src, dst)
    for p in out.iterdir():                 # sources deleted from driver/
        if p.is_file() and not _BUILD_OUTPUT.search(p.name) and p.name not in files:
            p.unlink()
    kbuild = (out / "Kbuild") if (out / "Kbuild").is_file() else out / "Makefile"
    names = re.findall(r"obj-[m$(\w)]*\s*[+:]?=\s*(\w+)\.o", kbuild.read_text())
    if not names:
        raise KernelError(f"{kbuild}: no obj-m line")
    ko = out / f"{names[0]}.ko"
    # Up to date: the module is newer than every source and built for this kernel and make line.
    stamp = out / ".p2p-dax-build"
    what = json.dumps([str(kernel.kdir), kernel.release, list(kernel.make_args)])
    if ko.is_file() and stamp.is_file() and stamp.read_text() == what and \
            all((out / f).stat().st_mtime_ns <= ko.stat().st_mtime_ns for f in files):
        return ko
    stamp.unlink(missing_ok=True)
    if kernel.build_root:
        try:
            newer.build_module(kernel.build_root, kernel.release, out, ko)
        except newer.NewerError as e:
            raise KernelError(str(e)) from None
        stamp.write_text(what)
        return ko
    cmd = ["make", "-C", str(kernel.kdir), f"M={out}", *kernel.make_args, "modules"]
    r = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if r.returncode != 0 or not ko.is_file():
        raise KernelError(f"building {source.name} for {kernel.name} ({kernel.release}) failed: "
                          f"{' '.join(cmd)}\n{r.stdout}{r.stderr}".rstrip())
    check_abi(kernel, out)
    stamp.write_text(what)
    return ko


def _has_btf(elf):
    r = subprocess.run(["readelf", "-S", "-W", str(elf)], capture_output=True, text=True)
    return r.returncode == 0 and " .BTF " in r.stdout


def check_abi(kernel, build_dir):
    """Run the driver's check-abi.sh for `kernel`: its BTF comes from the headers'
    vmlinux (6.12) or from the kernel image itself (6.1, unpacked by boot_image).
    A kernel without BTF is reported as not checked."""
    script = build_dir / "check-abi.sh"
    if not script.is_file():
        return ""
    btf = kernel.kdir / "vmlinux"
    if not (btf.is_file() and _has_btf(btf)):
        btf = boot_image(kernel)
        if btf == kernel.vmlinuz or not _has_btf(btf):
            btf = ""
    r = subprocess.run(["sh", str(script), str(kernel.kdir), str(btf)],
                       capture_output=True, text=True)
    if r.returncode:
        raise KernelError(f"check-abi for {kernel.name} failed:\n{r.stdout}{r.stderr}".rstrip())
    return r.stdout.strip()


def elf_segments(elf):
    """(type, file offset, size) of an x86-64 ELF's program headers."""
    if elf[:5] != b"\x7fELF\x02":
        return []
    phoff, = struct.unpack_from("<Q", elf, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", elf, 0x36)
    return [(ptype, off, size) for ptype, _, off, _, _, size in
            (struct.unpack_from("<IIQQQQ", elf, phoff + i * phentsize) for i in range(phnum))]


def boot_image(kernel):
    """The kernel's uncompressed ELF (cached in build/vm/) when it has a PVH
    entry point, which QEMU boots directly: under TCG that saves the
    decompression, about 3 s for Debian's XZ-compressed 6.1. Else the bzImage."""
    image = kernel.vmlinuz
    st = image.stat()
    key = hashlib.sha256(f"{image} {st.st_size} {st.st_mtime_ns}".encode()).hexdigest()[:16]
    elf = ROOT / "build" / "vm" / f"vmlinux-{kernel.name}-{key}"
    if elf.exists():
        return elf
    nopvh = elf.with_name(elf.name + ".nopvh")
    if nopvh.exists():
        return image
    data = image.read_bytes()
    vmlinux = None
    if data[0x202:0x206] == b"HdrS":
        setup = ((data[0x1f1] or 4) + 1) * 512
        offset, length = struct.unpack_from("<II", data, 0x248)
        payload = data[setup + offset:setup + offset + length]
        try:
            if payload.startswith(b"\xfd7zXZ\0"):
                vmlinux = lzma.LZMADecompressor().decompress(payload)
            elif payload.startswith(b"\x1f\x8b"):
                vmlinux = gzip.decompress(payload)
            elif payload.startswith(b"\x28\xb5\x2f\xfd"):
                if not shutil.which("zstd"):
                    return image                # no marker: try again once zstd is installed
                # the payload ends with the 4-byte uncompressed size, which zstd refuses
                vmlinux = subprocess.run(["zstd", "-dcq"], input=payload[:-4],
                                         capture_output=True, check=True).stdout
        except (lzma.LZMAError, OSError, EOFError, subprocess.CalledProcessError):
            vmlinux = None
    elf.parent.mkdir(parents=True, exist_ok=True)
    if not (vmlinux and _has_pvh_entry(vmlinux)):
        nopvh.touch()
        return image
    tmp = elf.with_name(f".{elf.name}.{os.getpid()}")
    tmp.write_bytes(vmlinux)
    tmp.rename(elf)
    for old in elf.parent.glob(f"vmlinux-{kernel.name}-" + "?" * 16):    # older images
        if old != elf:
            old.unlink(missing_ok=True)
    return elf


def _has_pvh_entry(elf):
    """A Xen note of type 18 (XEN_ELFNOTE_PHYS32_ENTRY) in the ELF's PT_NOTE segments."""
    for ptype, pos, size in elf_segments(elf):
        end = pos + size
        while ptype == 4 and pos + 12 <= end:
            namesz, descsz, ntype = struct.unpack_from("<III", elf, pos)
            if elf[pos + 12:pos + 12 + namesz].rstrip(b"\0") == b"Xen" and ntype == 18:
                return True
            pos += 12 + (namesz + 3 & ~3) + (descsz + 3 & ~3)
    return False
