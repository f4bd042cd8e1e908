"""Kernels of a newer Debian release than the host's (7.3 from Debian 13's
backports on a Debian 12 host).

Their packages come through a private apt configuration (.cache/apt-<release>/:
its own sources list, package lists and archive cache; the host's apt is not
touched). Their headers want that release's compiler (gcc 14 for 7.3, whose
flags gcc 12 rejects), so modules for them are built in a root of that release
made with debootstrap (.cache/buildroots/<release>/), with the headers
unpacked into it as the packages lay them out, under chroot. Both need root.
"""

import fcntl
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".cache"
MIRROR = "http://deb.debian.org/debian"
# What building and checking a module takes in the build root; dkms for
# tests/test_dkms.py (that release's dkms, run under chroot).
ROOT_PACKAGES = ("gcc-14", "make", "libc6-dev", "libelf-dev", "bc", "bison", "flex", "kmod",
                 "dwarves", "xz-utils", "dkms")


class NewerError(RuntimeError):
    pass


def _run(cmd, what, cwd=None):
    r = subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True,
                       stdin=subprocess.DEVNULL)
    if r.returncode != 0:
        raise NewerError(f"{what}: `{' '.join(map(str, cmd))}` failed (exit {r.returncode}):\n"
                         f"{r.stdout}{r.stderr}".rstrip())
    return r.stdout


def _need_root(what):
    import os
    if os.geteuid() != 0:
        raise NewerError(f"{what} needs root (a private apt and chroot); run as root")


def apt_options(release, suite):
    """apt-get/apt-cache options for packages of `release` preferring `suite`
    (e.g. trixie, trixie-backports); the package lists are fetched once."""
    _need_root(f"kernels from Debian {release}")
    d = CACHE / f"apt-{release}"
    for sub in ("parts", "lists/partial", "cache/archives/partial"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    (d / "sources.list").write_text(f"deb {MIRROR} {release} main\n"
                                    f"deb {MIRROR} {suite} main\n")
    opts = ["-o", f"Dir::Etc::SourceList={d / 'sources.list'}",
            "-o", f"Dir::Etc::SourceParts={d / 'parts'}",
            "-o", f"Dir::State::Lists={d / 'lists'}",
            "-o", f"Dir::Cache={d / 'cache'}",
            # apt's sandbox user cannot write here; signatures are still checked.
            "-o", "APT::Sandbox::User=root",
            "-o", f"APT::Default-Release={suite}"]
    with open(d / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not any((d / "lists").glob("*Packages*")):
            _run(["apt-get", "-q", *opts, "update"], f"fetching Debian {release}'s package lists")
    return opts


def root_ready(root):
    """Whether the build root at `root` has every package of ROOT_PACKAGES."""
    stamp = Path(root) / "ready"
    return stamp.is_file() and set(stamp.read_text().split()) >= set(ROOT_PACKAGES)


def build_root(release):
    """A minimal root of Debian `release` with a compiler and kbuild's tools
    (about 500 MB, a minute or two the first time). A root made with fewer
    packages (its `ready` stamp lists them) gets the missing ones installed
    with apt-get under chroot, keeping the kernel headers unpacked in it."""
    _need_root(f"a Debian {release} build root")
    d = CACHE / "buildroots" / release
    d.mkdir(parents=True, exist_ok=True)
    stamp = d / "ready"
    with open(d.parent / f"{release}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if root_ready(d):
            return d
        if stamp.is_file():
            missing = [p for p in ROOT_PACKAGES if p not in stamp.read_text().split()]
            _upgrade_root(d, missing)
            stamp.write_text(" ".join(ROOT_PACKAGES))
            return d
        if not shutil.which("debootstrap"):
            raise NewerError("debootstrap not found: apt-get install debootstrap "
                             "(scripts/setup.sh does)")
        shutil.rmtree(d)
        _run(["debootstrap", "--variant=minbase", f"--include={','.join(ROOT_PACKAGES)}",
              release, d, MIRROR], f"making a Debian {release} build root")
        stamp.write_text(" ".join(ROOT_PACKAGES))
    return d


def _upgrade_root(root, packages):
    """Install `packages` into an existing build root, from its own sources
    (debootstrap wrote them into its /etc/apt)."""
    apt = ["env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "-q",
           "-o", "APT::Sandbox::User=root"]
    for what, cmd in ((f"updating the package lists of {root}", [*apt, "update"]),
                      (f"installing {' '.join(packages)} into {root}",
                       [*apt, "install", "-y", "--no-install-recommends", *packages])):
        r = _chroot(root, *cmd)
        if r.returncode:
            raise NewerError(f"{what}: chroot {' '.join(cmd)} failed (exit {r.returncode}):\n"
                             f"{r.stdout}{r.stderr}".rstrip())


def install_headers(root, debs, release):
    """Unpack the header packages `debs` into the build root as they lie
    (their Makefiles name /usr/src paths); once per kernel release."""
    stamp = root / "usr" / "src" / f".p2p-dax-{release}"
    if stamp.is_file():
        return
    for deb in debs:
        _run(["dpkg", "-x", deb, root], f"unpacking {Path(deb).name} into {root}")
    stamp.write_text("\n".join(Path(d).name for d in debs) + "\n")


def _chroot(root, *cmd):
    """`cmd` in `root` with its own /proc (objtool reads it), in a private
    mount namespace so that nothing stays mounted."""
    script = 'mount -t proc proc "$0/proc" && exec chroot "$0" "$@"'
    return subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script,
                           str(root), *map(str, cmd)],
                          capture_output=True, text=True, stdin=subprocess.DEVNULL)


def build_module(root, release, out, ko, make_args=()):
    """Build the module in folder `out` (sources copied there) in the build
    root for headers `release`, run its check-abi.sh there, and copy the
    .ko back to `ko`. Returns check-abi's output."""
    inside = Path("/p2p_dax") / out.name
    work = root / inside.relative_to("/")
    if work.exists():
        shutil.rmtree(work)
    shutil.copytree(out, work, ignore=shutil.ignore_patterns("*.ko", "*.o", ".*"))
    kdir = f"/usr/src/linux-headers-{release}"
    cmd = ["make", "-C", kdir, f"M={inside}", *make_args, "modules"]
    r = _chroot(root, *cmd)
    built = work / ko.name
    if r.returncode != 0 or not built.is_file():
        raise NewerError(f"building {ko.name} for {release} in {root} failed: chroot "
                         f"{' '.join(map(str, cmd))}\n{r.stdout}{r.stderr}".rstrip())
    shutil.copyfile(built, ko)
    abi = ""
    if (work / "check-abi.sh").is_file():
        btf = f"{kdir}/vmlinux" if (root / kdir.lstrip("/") / "vmlinux").is_file() else ""
        r = _chroot(root, "sh", inside / "check-abi.sh", kdir, btf)
        if r.returncode:
            ko.unlink()
            raise NewerError(f"check-abi for {release} failed:\n{r.stdout}{r.stderr}".rstrip())
        abi = r.stdout.strip()
    return abi
