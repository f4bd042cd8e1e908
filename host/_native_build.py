"""cffi build script for host._native: C helpers the standard library lacks.

Built by the package build (setup.py: cffi_modules) with the machine's C
compiler. Declares the driver's register header (driver/p2p_dax_regs.h, the
one generated from hw/spec/regmap.py) so its constants reach Python from the same
file the driver compiles; declares the DMA engine's user-space API
(driver/p2p_dax_ioctl.h) the same way: its structs are taken from the header
as written and compiled against it, so cffi checks every member's offset and
size against the C compiler's layout when it builds, and its constants
(ioctl numbers, engine states, statuses) are computed by the compiler. Adds:

- p2p_dax_copy(dst, src, n, &crc): memcpy plus CRC-32 of the bytes moved, in
  one pass over the data. A SIGBUS during the copy (the device behind a BAR
  mapping went away: the kernel unmapped it) ends the copy and returns -1
  instead of killing the process.
- p2p_dax_crc32(p, n, crc): CRC-32 (zlib's polynomial, same values as
  zlib.crc32) of memory that may be a BAR mapping, with the same SIGBUS
  guard.
- p2p_dax_memcpy(dst, src, n, chunk): plain memcpy in calls of `chunk` bytes,
  no checksum, the same SIGBUS guard: what `p2pdax bench` times for CPU
  access to the mapping and for its reference, memcpy in RAM.
- p2p_dax_ioctl(fd, request, arg): ioctl(), 0 or the errno, for host/dma.py.
- p2p_dax_dio_read(fd, buf, n, chunk): the plainest O_DIRECT loop, pread()
  of `chunk` bytes at a time from offset 0, one in flight: the reference
  `p2pdax bench` holds the library's own loop against.
"""

import re
from pathlib import Path

from cffi import FFI

ROOT = Path(__file__).resolve().parent.parent
HEADER = ROOT / "driver" / "p2p_dax_regs.h"
IOCTL_HEADER = ROOT / "driver" / "p2p_dax_ioctl.h"


def _header_constants():
    """`#define NAME ...` for each integer constant of the register header."""
    names = re.findall(r"^#define\s+(P2P_DAX_\w+)\s+(?:0x[0-9a-fA-F]+|\d+)u?\s*$",
                       HEADER.read_text(), re.M)
    return "\n".join(f"#define {name} ..." for name in names)


def ioctl_cdef(text=None):
    """cdef text for driver/p2p_dax_ioctl.h: each `struct p2p_dax_*` as the
    header writes it (the kernel's __u32/__u64 typedefs declared for cffi),
    and `#define NAME ...` for each P2P_DAX_ constant, ioctl numbers included:
    the compiler works out the values."""
    text = IOCTL_HEADER.read_text() if text is None else text
    structs = re.findall(r"^struct p2p_dax_\w+ \{.*?^\};", text, re.M | re.S)
    names = re.findall(r"^#define\s+(P2P_DAX_\w+)\s+\S", text, re.M)
    if not structs or not names:
        raise RuntimeError(f"{IOCTL_HEADER}: no structs or constants found")
    return "\n".join(["typedef unsigned int __u32;", "typedef unsigned long long __u64;",
                      *structs, *(f"#define {name} ..." for name in names)])


CDEF = """
int p2p_dax_copy(void *dst, const void *src, size_t n, uint32_t *crc);
int p2p_dax_crc32(const void *p, size_t n, uint32_t *crc);
int p2p_dax_memcpy(void *dst, const void *src, size_t n, size_t chunk);
long long p2p_dax_dio_read(int fd, void *buf, size_t n, size_t chunk);
int p2p_dax_ioctl(int fd, unsigned long request, void *arg);
"""

SOURCE = r"""
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <zlib.h>
#include "p2p_dax_regs.h"
#include "p2p_dax_ioctl.h"

/* SIGBUS is synchronous: it goes to the thread that touched the page. */
static __thread sigjmp_buf *bus_jmp;

static void on_sigbus(int sig)
{
    if (bus_jmp)
        siglongjmp(*bus_jmp, 1);
    signal(sig, SIG_DFL);
    raise(sig);
}

#define CHUNK (1u << 20)

/* Copy (when dst) and checksum (when crc) n bytes at src, `chunk` bytes per
 * step; -1 on SIGBUS. */
static int guarded(void *dst, const void *src, size_t n, uint32_t *crc, size_t chunk)
{
    struct sigaction sa = { .sa_handler = on_sigbus }, old;
    sigjmp_buf jmp;
    volatile size_t done = 0;
    uLong c = crc ? *crc : 0;
    int rc = 0;

    sigemptyset(&sa.sa_mask);
    sigaction(SIGBUS, &sa, &old);
    if (sigsetjmp(jmp, 1) == 0) {
        bus_jmp = &jmp;
        while (done < n) {
            size_t k = n - done < chunk ? n - done : chunk;
            const unsigned char *s = (const unsigned char *)src + done;
            if (dst) {
                memcpy((unsigned char *)dst + done, s, k);
                s = (const unsigned char *)dst + done;   /* checksum what landed */
            }
            if (crc)
                c = crc32(c, s, (uInt)k);
            done += k;
        }
    } else {
        rc = -1;
    }
    bus_jmp = NULL;
    sigaction(SIGBUS, &old, NULL);
    if (crc)
        *crc = (uint32_t)c;
    return rc;
}

int p2p_dax_copy(void *dst, const void *src, size_t n, uint32_t *crc)
{
    return guarded(dst, src, n, crc, CHUNK);
}

int p2p_dax_crc32(const void *p, size_t n, uint32_t *crc)
{
    return guarded(NULL, p, n, crc, CHUNK);
}

int p2p_dax_memcpy(void *dst, const void *src, size_t n, size_t chunk)
{
    return guarded(dst, src, n, NULL, chunk ? chunk : CHUNK);
}

/* Bytes read, or -errno; a short read ends the loop. */
long long p2p_dax_dio_read(int fd, void *buf, size_t n, size_t chunk)
{
    size_t done = 0;

    while (done < n) {
        size_t k = n - done < chunk ? n - done : chunk;
        ssize_t got = pread(fd, (char *)buf + done, k, (off_t)done);
        if (got < 0)
            return -errno;
        done += (size_t)got;
        if ((size_t)got < k)
            break;
    }
    return (long long)done;
}

/* 0, or the errno (the struct at arg is written back as the ioctl says). */
int p2p_dax_ioctl(int fd, unsigned long request, void *arg)
{
    return ioctl(fd, request, arg) ? errno : 0;
}
"""

ffibuilder = FFI()
ffibuilder.cdef(CDEF + _header_constants() + "\n" + ioctl_cdef())
ffibuilder.set_source("host._native", SOURCE, include_dirs=[str(HEADER.parent)],
                      libraries=["z"], extra_compile_args=["-O2"])

if __name__ == "__main__":
    ffibuilder.compile(verbose=False)
