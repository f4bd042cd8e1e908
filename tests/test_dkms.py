"""DKMS as a user runs it: Debian's dkms adds, builds, checks and installs the
driver for each kernel of the VM matrix (vm/kernels.py STOCK), and
skips kernels that dkms.conf's BUILD_EXCLUSIVE_* rule out.

Nothing of the system is touched: the DKMS, source and install trees are
temporary folders (--dkmstree, --sourcetree, --installtree), the headers are
the unpacked ones (--kernelsourcedir), depmod is off (--no-depmod), and
modules are signed with a throwaway key (dkms's sign_file, mok_signing_key
and mok_certificate settings, from the environment) instead of
/var/lib/dkms/mok.key. 6.1 and 6.12 use the host's dkms (Debian 12, 3.0.x);
7.3, whose modules need gcc 14, uses the dkms of its Debian 13 root (3.2.x)
under chroot (vm/newer.py)."""

import os
import re
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from vm import kernels, newer

ROOT = Path(__file__).resolve().parent.parent
DRIVER = ROOT / "driver"
CONF = DRIVER / "dkms.conf"
VERSION = re.search(r'^PACKAGE_VERSION="([^"]+)"$', CONF.read_text(), re.M)[1]
DKMS = shutil.which("dkms", path=os.environ.get("PATH", "") + ":/usr/sbin")
SIGNER = "p2p-dax test MOK"
EXCLUDED = "includes a BUILD_EXCLUSIVE directive which does not match this kernel/arch/config"
# What the driver needs of a kernel (dkms.conf's BUILD_EXCLUSIVE_CONFIG).
NEEDS = ("CONFIG_X86_64", "CONFIG_X86_PAT", "CONFIG_PCI", "CONFIG_ZONE_DEVICE", "CONFIG_DAX",
         "CONFIG_DEV_DAX", "CONFIG_MEMREGION", "CONFIG_AUXILIARY_BUS")


def _conf():
    """dkms.conf's settings as bash reads them (it is a bash fragment)."""
    out = subprocess.run(
        ["bash", "-c", 'kernel_source_dir=KDIR; . "$0"; for v in MAKE CLEAN '
         'BUILD_EXCLUSIVE_KERNEL BUILD_EXCLUSIVE_ARCH BUILD_EXCLUSIVE_CONFIG; do '
         'printf "%s=%s\\n" "$v" "${!v}"; done', str(CONF)],
        capture_output=True, text=True, check=True).stdout
    return dict(line.split("=", 1) for line in out.splitlines())


def _bash_match(text, regex):
    """text =~ regex as dkms tests it (bash's extended regular expressions)."""
    return subprocess.run(["bash", "-c", '[[ $0 =~ $1 ]]', text, regex]).returncode == 0


def test_dkms_conf_runs_check_abi_and_excludes_unsupported_kernels():
    """MAKE builds the default target (module, then check-abi.sh); only 6.1 and
    later kernels on x86-64 with the dax core and what else the driver uses."""
    conf = _conf()
    assert conf["MAKE"] == "make KDIR=KDIR all"
    makefile = (DRIVER / "Makefile").read_text()
    assert re.search(r"^all: modules\n\t@\$\(check_abi\)$", makefile, re.M)
    assert "check-abi.sh" in re.search(r"define check_abi\n(.*?)endef", makefile, re.S)[1]
    assert conf["BUILD_EXCLUSIVE_CONFIG"].split() == list(NEEDS)
    for release in ("6.1.0-57-amd64", "6.12.118+deb12-amd64", "7.3.4+deb13-amd64", "6.10.0",
                    "10.0.0-1-amd64", "6.15.0-rc1"):
        assert _bash_match(release, conf["BUILD_EXCLUSIVE_KERNEL"]), release
    for release in ("6.0.0-1-amd64", "5.10.0-30-amd64", "4.19.0-27-amd64", "3.16.0"):
        assert not _bash_match(release, conf["BUILD_EXCLUSIVE_KERNEL"]), release
    assert _bash_match("x86_64", conf["BUILD_EXCLUSIVE_ARCH"])
    for arch in ("aarch64", "i686", "riscv64", "x86_64_v2"):
        assert not _bash_match(arch, conf["BUILD_EXCLUSIVE_ARCH"]), arch


def test_find_btf_says_when_there_is_none(tmp_path):
    """A kernel with no vmlinux, no debug vmlinux, not running and no image:
    find-btf.sh prints no path and says why (check-abi then skips the struct)."""
    kdir = tmp_path / "headers"
    (kdir / "include" / "generated").mkdir(parents=True)
    (kdir / "include" / "generated" / "utsrelease.h").write_text(
        '#define UTS_RELEASE "0.0.0-p2p-dax-test"\n')
    r = subprocess.run(["sh", str(DRIVER / "find-btf.sh"), str(kdir), str(tmp_path / "btf")],
                       capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout == ""
    assert "no BTF for 0.0.0-p2p-dax-test" in r.stderr
    assert "no /boot/vmlinuz-0.0.0-p2p-dax-test" in r.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="groupadd needs root")
def test_install_udev_into_a_root(tmp_path):
    """`make install-udev DESTDIR=...` installs the rule and a system group
    p2pdax into that root; a second run finds both and changes nothing."""
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "group").write_text("root:x:0:\n")
    (etc / "gshadow").write_text("root:*::\n")
    for _ in range(2):
        r = subprocess.run(["make", "-s", "-C", str(DRIVER), "install-udev",
                            f"DESTDIR={tmp_path}"], capture_output=True, text=True)
        assert r.returncode == 0, r.stdout + r.stderr
    assert "install-udev: created the system group p2pdax" not in r.stdout
    assert "group p2pdax exists" in r.stdout
    rule = etc / "udev" / "rules.d" / "60-p2p-dax.rules"
    assert rule.read_bytes() == (DRIVER / "60-p2p-dax.rules").read_bytes()
    groups = [line.split(":") for line in (etc / "group").read_text().splitlines()]
    p2pdax, = [g for g in groups if g[0] == "p2pdax"]
    assert 0 < int(p2pdax[2]) < 1000, p2pdax          # a system group


# ---------------------------------------------------------------- dkms itself

@pytest.fixture(scope="module")
def mok(tmp_path_factory):
    """A throwaway module signing key and certificate (DER), as dkms makes them."""
    d = tmp_path_factory.mktemp("mok")
    subprocess.run(["openssl", "req", "-new", "-x509", "-nodes", "-days", "2",
                    "-subj", f"/CN={SIGNER}", "-newkey", "rsa:2048",
                    "-keyout", str(d / "mok.key"), "-outform", "DER", "-out", str(d / "mok.pub")],
                   check=True, capture_output=True)
    return d


class Dkms:
    """dkms for one kernel in temporary trees: on the host, or for a kernel
    with a build root in a folder of that root, run under chroot."""

    def __init__(self, kernel, tmp_path, mok):
        self.kernel = kernel
        self.root = kernel.build_root
        if self.root:
            self.inside = Path("/p2p_dax") / f"dkms-{uuid.uuid4().hex[:12]}"
            self.work = self.root / self.inside.relative_to("/")
            self.kdir = Path("/usr/src") / f"linux-headers-{kernel.release}"
        else:
            self.inside = self.work = tmp_path
            self.kdir = kernel.kdir
        for sub in ("src", "tree", f"modules/{kernel.release}"):    # as /lib/modules/REL
            (self.work / sub).mkdir(parents=True, exist_ok=True)
        shutil.copy(mok / "mok.key", self.work)
        shutil.copy(mok / "mok.pub", self.work)
        self.source = self.work / "src" / f"p2p_dax-{VERSION}"
        self.copy_source(DRIVER)

    def copy_source(self, source):
        """The driver's files (not what a build left in driver/) as
        /usr/src/p2p_dax-VERSION would hold them."""
        if self.source.exists():
            shutil.rmtree(self.source)
        self.source.mkdir()
        for f in Path(source).iterdir():
            if f.is_file() and not kernels._BUILD_OUTPUT.search(f.name):
                shutil.copy2(f, self.source / f.name)

    def host(self, path):
        """The host's path of a path dkms sees."""
        return self.root / Path(path).relative_to("/") if self.root else Path(path)

    def run(self, action, *args, kernel=True, kernelver=None, kdir=None, module=True):
        trees = ["--dkmstree", self.inside / "tree", "--sourcetree", self.inside / "src",
                 "--installtree", self.inside / "modules"]
        which = ["-m", "p2p_dax", "-v", VERSION] if module and action != "autoinstall" else []
        cmd = [DKMS if not self.root else "dkms", action, *which, *trees, *args]
        if kernel:
            cmd += ["-k", kernelver or self.kernel.release,
                    "--kernelsourcedir", kdir or self.kdir]
        env = {"sign_file": self.kdir / "scripts" / "sign-file",
               "mok_signing_key": self.inside / "mok.key",
               "mok_certificate": self.inside / "mok.pub"}
        if not self.root:
            env["VMLINUZ"] = self.kernel.vmlinuz       # find-btf.sh: the image is not in /boot
        if self.root:
            r = newer._chroot(self.root, "env", *(f"{k}={v}" for k, v in env.items()),
                              *map(str, cmd))
        else:
            r = subprocess.run(list(map(str, cmd)), capture_output=True, text=True,
                               stdin=subprocess.DEVNULL,
                               env={**os.environ, **{k: str(v) for k, v in env.items()}})
        r.output = f"$ {' '.join(map(str, cmd))}\n{r.stdout}{r.stderr}"
        return r

    def version(self):
        """dkms's version, e.g. (3, 0, 10)."""
        out = self.run("--version", kernel=False, module=False).stdout
        return tuple(map(int, re.search(r"(\d+(?:\.\d+)+)", out)[1].split(".")))

    def log(self, built=True):
        """make.log: kept with the built module, or left in the build folder on failure."""
        tree = self.work / "tree" / "p2p_dax" / VERSION
        log = (tree / self.kernel.release / "x86_64" / "log" / "make.log" if built
               else tree / "build" / "make.log")
        return log.read_text() if log.is_file() else f"(no {log})"

    def installed(self, kernelver=None):
        return sorted((self.work / "modules" / (kernelver or self.kernel.release))
                      .rglob("p2p_dax.ko*"))

    def cleanup(self):
        if self.root:
            shutil.rmtree(self.work, ignore_errors=True)


@pytest.fixture
def dkms(request, tmp_path, mok):
    kernel = kernels.fetch(request.param)
    if not DKMS:
        pytest.fail("dkms not found: apt-get install dkms (scripts/setup.sh does)")
    d = Dkms(kernel, tmp_path, mok)
    yield d
    d.cleanup()


def _modinfo(ko, field):
    return subprocess.run(["/sbin/modinfo", "-F", field, str(ko)], capture_output=True,
                          text=True, check=True).stdout.strip()


def _words(text):
    return " ".join(text.split())


@pytest.mark.dkms
@pytest.mark.parametrize("dkms", kernels.STOCK, indirect=True)
def test_dkms_builds_checks_signs_and_installs(dkms):
    """dkms add, build, install: the module lands in the install tree under
    updates/dkms for that kernel (its vermagic), signed with the configured
    key, and make.log shows check-abi comparing struct dev_dax_data with the
    kernel's BTF (the headers' vmlinux for 6.12 and 7.3, the image's for 6.1)."""
    rel = dkms.kernel.release
    r = dkms.run("add", kernel=False)
    assert r.returncode == 0, r.output
    r = dkms.run("build")
    assert r.returncode == 0, f"{r.output}\n{dkms.log()}"
    log = dkms.log()
    # dkms ran dkms.conf's MAKE (3.0 prints it, 3.2 logs it too)
    assert re.search(rf"make -j\d+ KERNELRELEASE={re.escape(rel)} KDIR=\S+ all\b",
                     r.output + log), r.output + log
    assert f"find-btf: BTF of {rel}: " in log, log
    assert ("decompressed from" if dkms.kernel.name == "6.1" else "the build tree's vmlinux") \
        in log, log
    assert "check-abi: p2p_dax_compat.h matches the kernel" in log, log
    r = dkms.run("install", "--no-depmod")
    assert r.returncode == 0, r.output
    ko, = dkms.installed()
    assert ko.parent == dkms.work / "modules" / rel / "updates" / "dkms"
    assert _modinfo(ko, "vermagic").split()[0] == rel
    assert _modinfo(ko, "signer") == SIGNER
    r = dkms.run("status", kernel=False)
    assert re.search(rf"p2p_dax/{re.escape(VERSION)}, {re.escape(rel)}, x86_64: installed",
                     r.stdout), r.output


@pytest.mark.dkms
@pytest.mark.parametrize("dkms", kernels.STOCK, indirect=True)
def test_dkms_build_fails_when_the_dax_core_differs(dkms, tmp_path):
    """A p2p_dax_compat.h whose struct dev_dax_data is not the kernel's (the
    memmap_on_memory member of 6.8 toggled): the DKMS build fails, make.log
    has check-abi's message, and nothing is installed."""
    source = tmp_path / "driver-bad-compat"
    source.mkdir()
    for f in DRIVER.iterdir():
        if f.is_file():
            shutil.copy2(f, source / f.name)
    compat = source / "p2p_dax_compat.h"
    text = compat.read_text()
    assert "KERNEL_VERSION(6, 8, 0)" in text
    has_member = tuple(map(int, dkms.kernel.release.split(".")[:2])) >= (6, 8)
    compat.write_text(text.replace("KERNEL_VERSION(6, 8, 0)", "KERNEL_VERSION(99, 0, 0)"
                                   if has_member else "KERNEL_VERSION(6, 0, 0)"))
    dkms.copy_source(source)
    assert dkms.run("add", kernel=False).returncode == 0
    r = dkms.run("install", "--no-depmod")            # builds first, as autoinstall does
    assert r.returncode != 0, r.output
    assert "Bad return status for module build" in _words(r.output), r.output
    log = dkms.log(built=False)
    assert "check-abi: struct dev_dax_data in p2p_dax_compat.h does not match the kernel" \
        in log, log
    assert dkms.installed() == []
    assert not (dkms.work / "tree" / "p2p_dax" / VERSION / dkms.kernel.release).exists()


@pytest.mark.dkms
@pytest.mark.parametrize("dkms", kernels.STOCK, indirect=True)
def test_dkms_skips_kernels_the_driver_cannot_use(dkms):
    """BUILD_EXCLUSIVE_*: a kernel without CONFIG_ZONE_DEVICE or without the
    device-dax driver, an arm64 kernel, a kernel older than 6.1: dkms refuses
    to build (exit 77, its BUILD_EXCLUSIVE message) and builds nothing;
    autoinstall of such a kernel installs nothing: Debian 13's dkms counts
    that as skipped (exit 0), Debian 12's as an autoinstall failure (exit 11),
    as it would a failed build."""
    assert dkms.run("add", kernel=False).returncode == 0
    config = dkms.host(dkms.kdir / ".config").read_text()
    for symbol in NEEDS:                          # the stock kernels have them all
        assert re.search(rf"^{symbol}=[ym]$", config, re.M), symbol
    assert re.search(r"^CONFIG_DEV_DAX=m$", config, re.M)      # a module is enough

    fakes = {"no-zone-device": re.sub(r"^CONFIG_ZONE_DEVICE=y\n", "", config, flags=re.M),
             "no-dev-dax": re.sub(r"^CONFIG_DEV_DAX=m$", "# CONFIG_DEV_DAX is not set",
                                  config, flags=re.M)}
    cases = []
    for name, text in fakes.items():
        assert text != config
        kdir = dkms.inside / "fake" / name             # what dkms looks at before building
        dkms.host(kdir / "include").mkdir(parents=True)
        dkms.host(kdir / ".config").write_text(text)
        cases.append((name, f"{dkms.kernel.release}-{name}", kdir, ()))
    cases.append(("arm64", dkms.kernel.release, None, ("-a", "aarch64")))
    cases.append(("5.10", "5.10.0-30-amd64", None, ()))
    for name, kernelver, kdir, args in cases:
        r = dkms.run("build", *args, kernelver=kernelver, kdir=kdir)
        assert r.returncode == 77, f"{name}: {r.output}"
        assert EXCLUDED in _words(r.output), f"{name}: {r.output}"
        built = dkms.work / "tree" / "p2p_dax" / VERSION / kernelver
        assert not any(built.rglob("*.ko*")), name
        assert not (dkms.work / "tree" / "p2p_dax" / VERSION / "build" / "make.log").exists()

    # What a kernel package's postinst hook runs for a new kernel.
    name, kernelver, kdir, _ = cases[0]
    (dkms.work / "modules" / kernelver).mkdir()
    r = dkms.run("autoinstall", "--no-depmod", kernelver=kernelver, kdir=kdir)
    assert EXCLUDED in _words(r.output), r.output
    assert dkms.installed(kernelver) == []
    if dkms.version() >= (3, 1):
        assert r.returncode == 0, r.output
        assert f"Autoinstall on {kernelver} was skipped for module(s) p2p_dax" in r.output
    else:                   # dkms 3.0 has no notion of skipping: "failed to install"
        assert r.returncode == 11, r.output
