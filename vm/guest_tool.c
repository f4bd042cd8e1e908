/*
 * p2p-dax-vmtool: what the VM tests run in the guest to exercise the driver
 * through the interfaces user space has: mmap of /dev/daxN.M (or of a
 * p2pmem/allocate file), O_DIRECT between a block device and that mapping,
 * sysfs unbind, and the DMA engine's ioctls on /dev/p2p-daxN. Built statically on the host (vm/guest.py) and put
 * in the guest's initramfs, so the guest needs nothing else.
 *
 * Data patterns come from splitmix64 so the host can regenerate them and
 * check what landed in ivshmem's backing file and the NVMe images.
 * Exit status: 0 ok, 1 a check failed, 2 bad usage or a system call failed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../driver/p2p_dax_ioctl.h"

#define MAP_UNIT (2UL << 20)	/* map whole 2 MiB units: works at any dax alignment */
#define CHUNK (1UL << 20)

static uint64_t splitmix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

static void die(const char *what)
{
	fprintf(stderr, "p2p-dax-vmtool: %s: %s\n", what, strerror(errno));
	exit(2);
}

static unsigned long num(const char *s)
{
	char *end;
	unsigned long v = strtoul(s, &end, 0);

	if (*s == '\0' || *end != '\0') {
		fprintf(stderr, "p2p-dax-vmtool: not a number: %s\n", s);
		exit(2);
	}
	return v;
}

/* Map [0, off + len) of path, rounded up to MAP_UNIT, shared. */
static unsigned char *map_dev(const char *path, unsigned long off, unsigned long len,
			      size_t *maplen)
{
	int fd = open(path, O_RDWR);
	void *p;

	if (fd < 0)
		die(path);
	*maplen = (off + len + MAP_UNIT - 1) / MAP_UNIT * MAP_UNIT;
	p = mmap(NULL, *maplen, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		die("mmap");
	close(fd);
	return p;
}

static int cmd_fill_check(int check, char **a)
{
	unsigned long off = num(a[1]), len = num(a[2]), seed = num(a[3]);
	size_t maplen;
	unsigned char *m = map_dev(a[0], off, len, &maplen);
	uint64_t *w = (uint64_t *)(m + off);
	unsigned long i;

	if (off % 8 || len % 8) {
		fprintf(stderr, "p2p-dax-vmtool: offset and length must be multiples of 8\n");
		return 2;
	}
	for (i = 0; i < len / 8; i++) {
		uint64_t want = splitmix64(seed + i);

		if (!check) {
			w[i] = want;
		} else if (w[i] != want) {
			printf("mismatch at offset %#lx: %#llx, expected %#llx\n", off + 8 * i,
			       (unsigned long long)w[i], (unsigned long long)want);
			return 1;
		}
	}
	printf("%s %lu bytes at %#lx: ok\n", check ? "checked" : "filled", len, off);
	return 0;
}

/* O_DIRECT between a block device and the mapping, in 1 MiB chunks. */
static int cmd_dio(int to_map, char **a)
{
	const char *blk = to_map ? a[0] : a[2], *dev = to_map ? a[2] : a[0];
	unsigned long boff = num(to_map ? a[1] : a[3]), moff = num(to_map ? a[3] : a[1]);
	unsigned long len = num(a[4]), done;
	size_t maplen;
	unsigned char *m = map_dev(dev, moff, len, &maplen);
	int fd = open(blk, (to_map ? O_RDONLY : O_WRONLY) | O_DIRECT);

	if (fd < 0)
		die(blk);
	for (done = 0; done < len; done += CHUNK) {
		size_t n = len - done < CHUNK ? len - done : CHUNK;
		ssize_t r = to_map ? pread(fd, m + moff + done, n, boff + done)
				   : pwrite(fd, m + moff + done, n, boff + done);

		if (r != (ssize_t)n) {
			fprintf(stderr, "p2p-dax-vmtool: O_DIRECT %s at %#lx: %s\n",
				to_map ? "read" : "write", boff + done,
				r < 0 ? strerror(errno) : "short transfer");
			return 2;
		}
	}
	if (!to_map && fsync(fd))
		die("fsync");
	close(fd);
	printf("O_DIRECT %s -> %s: %lu bytes ok\n", to_map ? blk : dev, to_map ? dev : blk, len);
	return 0;
}

static const char *errname(int e)
{
	switch (e) {
	case 0: return "ok";
	case EINVAL: return "EINVAL";
	case ENXIO: return "ENXIO";
	case ENODEV: return "ENODEV";
	case EACCES: return "EACCES";
	case ENOMEM: return "ENOMEM";
	case EPERM: return "EPERM";
	case ENOTTY: return "ENOTTY";
	case EOPNOTSUPP: return "EOPNOTSUPP";
	case ERANGE: return "ERANGE";
	case EXDEV: return "EXDEV";
	case EREMOTEIO: return "EREMOTEIO";
	case EFAULT: return "EFAULT";
	case EAGAIN: return "EAGAIN";
	case EBUSY: return "EBUSY";
	case ENOENT: return "ENOENT";
	case E2BIG: return "E2BIG";
	case EIO: return "EIO";
	case ETIMEDOUT: return "ETIMEDOUT";
	case EINTR: return "EINTR";
	case ECANCELED: return "ECANCELED";
	case EALREADY: return "EALREADY";
	default: return strerror(e);
	}
}

static sigjmp_buf fault_jmp;
static volatile int fault_sig;

static void on_fault(int sig)
{
	fault_sig = sig;
	siglongjmp(fault_jmp, 1);
}

/* Touch p: "ok", "SIGBUS" or "SIGSEGV". */
static const char *touch(volatile unsigned char *p, int write)
{
	struct sigaction sa = { .sa_handler = on_fault };

	sigaction(SIGBUS, &sa, NULL);
	sigaction(SIGSEGV, &sa, NULL);
	fault_sig = 0;
	if (sigsetjmp(fault_jmp, 1) == 0) {
		if (write)
			*p = 0x5a;
		else
			(void)*p;
	}
	signal(SIGBUS, SIG_DFL);
	signal(SIGSEGV, SIG_DFL);
	return fault_sig == SIGBUS ? "SIGBUS" : fault_sig == SIGSEGV ? "SIGSEGV" : "ok";
}

/* Bad mmap requests on a dax device of SIZE bytes: one "name: result" line each. */
static int cmd_mmap_errors(char **a)
{
	unsigned long size = num(a[1]);
	int fd = open(a[0], O_RDWR);
	static const struct { const char *name; int flags; long off; unsigned long len; } c[] = {
		{ "private", MAP_PRIVATE, 0, MAP_UNIT },
		{ "zero-length", MAP_SHARED, 0, 0 },
		{ "unaligned-offset", MAP_SHARED, 4096 + 1, MAP_UNIT },
		{ "half-unit-length", MAP_SHARED, 0, MAP_UNIT / 2 },
		{ "beyond-end", MAP_SHARED, -1, MAP_UNIT },	/* offset = size */
	};
	unsigned i;

	if (fd < 0)
		die(a[0]);
	for (i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		long off = c[i].off < 0 ? (long)size : c[i].off;
		void *p = mmap(NULL, c[i].len, PROT_READ | PROT_WRITE, c[i].flags, fd, off);

		if (p == MAP_FAILED) {
			printf("%s: mmap %s\n", c[i].name, errname(errno));
			continue;
		}
		printf("%s: mmap ok, access %s\n", c[i].name, touch(p, 0));
		munmap(p, c[i].len);
	}
	close(fd);
	return 0;
}

/* Take a device from p2p_dax: "ADDRESS" unbinds it, "remove:ADDRESS" hot-removes it. */
static void detach(const char *how)
{
	int remove = !strncmp(how, "remove:", 7);
	char path[128];
	int fd;

	if (remove)
		snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/remove", how + 7);
	else
		snprintf(path, sizeof(path), "/sys/bus/pci/drivers/p2p_dax/unbind");
	fd = open(path, O_WRONLY);
	if (fd < 0 || write(fd, remove ? "1" : how, remove ? 1 : strlen(how)) < 0)
		die(path);
	close(fd);
}

/*
 * Map the last 2 MiB of the dax device, write, then take the device away
 * (unbind the PCI device at ADDRESS, hot-remove it with "remove:ADDRESS", or
 * "rmmod" the driver) and touch the mapping again.
 */
static int cmd_hold_unbind(char **a)
{
	unsigned long size = num(a[1]);
	size_t maplen;
	unsigned char *m = map_dev(a[0], size - MAP_UNIT, MAP_UNIT, &maplen) + size - MAP_UNIT;

	printf("before: %s\n", touch(m, 1));
	if (!strcmp(a[2], "rmmod")) {
		if (syscall(SYS_delete_module, "p2p_dax", O_NONBLOCK))
			die("delete_module p2p_dax");
	} else {
		detach(a[2]);
	}
	printf("%s returned\n", a[2]);
	printf("after: read %s, write %s\n", touch(m, 0), touch(m, 1));
	munmap(m - (size - MAP_UNIT), maplen);
	return 0;
}

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

static double dio_rate(int fd, unsigned char *buf, unsigned long len, unsigned long chunk)
{
	double t0 = now();
	unsigned long done;

	for (done = 0; done < len; done += chunk)
		if (pread(fd, buf + done, chunk, done) != (ssize_t)chunk)
			die("O_DIRECT read");
	return len / (now() - t0) / 1e6;
}

/* O_DIRECT BLK -> the mapping and BLK -> RAM, alternating, best of ROUNDS.
 * PAGES (4k or 2m) is the RAM buffer's page size, which should be the dax
 * mapping's: pinning one 2 MiB page is cheaper than 512 small ones. */
static int cmd_bench(char **a)
{
	unsigned long len = num(a[2]), chunk = num(a[3]), rounds = num(a[4]), r;
	int huge = !strcmp(a[5], "2m");
	size_t maplen;
	unsigned char *m = map_dev(a[1], 0, len, &maplen);
	unsigned char *ram = mmap(NULL, len, PROT_READ | PROT_WRITE,
				  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int fd = open(a[0], O_RDONLY | O_DIRECT);
	double best_dax = 0, best_ram = 0;

	if (fd < 0)
		die(a[0]);
	if (ram == MAP_FAILED)
		die("mmap RAM");
	if (!huge && strcmp(a[5], "4k")) {
		fprintf(stderr, "p2p-dax-vmtool: PAGES must be 4k or 2m\n");
		return 2;
	}
	if (madvise(ram, len, huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE))
		die("madvise");
	memset(ram, 0, len);		/* fault it in before the clock starts */
	if (!chunk || len % chunk) {
		fprintf(stderr, "p2p-dax-vmtool: length must be a multiple of chunk\n");
		return 2;
	}
	for (r = 0; r < rounds; r++) {
		double d = dio_rate(fd, m, len, chunk), ram_rate = dio_rate(fd, ram, len, chunk);

		best_dax = d > best_dax ? d : best_dax;
		best_ram = ram_rate > best_ram ? ram_rate : best_ram;
	}
	printf("bench chunk=%lu pages=%s nvme->dax=%.1f MB/s nvme->ram=%.1f MB/s ratio=%.3f\n",
	       chunk, a[5], best_dax, best_ram, best_dax / best_ram);
	return 0;
}

/* The DMA engine's ioctls (driver/p2p_dax_ioctl.h). */
static int open_dma(const char *path)
{
	int fd = open(path, O_RDWR);

	if (fd < 0)
		die(path);
	return fd;
}

/* ioctl's result as an errno name: "ok" or "EINVAL" ... */
static const char *try_ioctl(int fd, unsigned long cmd, void *arg)
{
	return errname(ioctl(fd, cmd, arg) ? errno : 0);
}

static const char *engine_name(unsigned e)
{
	static const char *const names[] = { "none", "absent", "unusable", "ready" };

	return e < 4 ? names[e] : "?";
}

static int cmd_dma_info(char **a)
{
	struct p2p_dax_info i = { 0 };
	int fd = open_dma(a[0]);

	if (ioctl(fd, P2P_DAX_IOC_INFO, &i))
		die("P2P_DAX_IOC_INFO");
	printf("api_version=%u\nengine=%s\nmem_size=%llu\nbar_size=%llu\ndma_window=%llu\n"
	       "max_transfer=%llu\nmax_segment=%llu\nqueue_depth=%u\nmax_transfers=%u\n"
	       "transfers=%u\ngateware_version=%#x\ndescriptors_submitted=%llu\n"
	       "descriptors_done=%llu\ndescriptors_failed=%llu\nbytes_done=%llu\n"
	       "hw_state=%#x\nhw_overflow=%u\ndevice_max_transfers=%u\ndevice_transfers=%u\n"
	       "max_pinned=%llu\npinned=%llu\n", i.api_version, engine_name(i.engine),
	       (unsigned long long)i.mem_size, (unsigned long long)i.bar_size,
	       (unsigned long long)i.dma_window, (unsigned long long)i.max_transfer,
	       (unsigned long long)i.max_segment, i.queue_depth, i.max_transfers, i.transfers,
	       i.gateware_version, (unsigned long long)i.descriptors_submitted,
	       (unsigned long long)i.descriptors_done, (unsigned long long)i.descriptors_failed,
	       (unsigned long long)i.bytes_done, i.hw_state, i.hw_overflow,
	       i.device_max_transfers, i.device_transfers, (unsigned long long)i.max_pinned,
	       (unsigned long long)i.pinned);
	close(fd);
	return 0;
}

static const char *status_name(unsigned s)
{
	static const char *const names[] = {
		"OK", "UNSUPPORTED_REQUEST", "COMPLETER_ABORT", "TIMEOUT", "POISONED",
		"BAD_COMPLETION", "BAD_DESCRIPTOR", "ABORTED",
	};

	if (s < sizeof(names) / sizeof(names[0]))
		return names[s];
	return s == P2P_DAX_DMA_STATUS_BAD_RESULT ? "BAD_RESULT" :
	       s == P2P_DAX_DMA_STATUS_GONE ? "GONE" :
	       s == P2P_DAX_DMA_STATUS_CANCELLED ? "CANCELLED" :
	       s == P2P_DAX_DMA_STATUS_RUNNING ? "RUNNING" : "?";
}

/*
 * The buffer: "ram" (anonymous memory) or PATH:OFFSET (a mapping of a dax
 * device, a peer's BAR for instance).
 */
static unsigned char *dma_buffer(const char *spec, unsigned long len)
{
	const char *colon = strrchr(spec, ':');
	unsigned char *p;
	size_t maplen;

	if (!strcmp(spec, "ram")) {
		p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED)
			die("mmap RAM");
		return p;
	}
	if (!colon) {
		fprintf(stderr, "p2p-dax-vmtool: buffer: ram or PATH:OFFSET, not %s\n", spec);
		exit(2);
	}
	{
		char path[256];
		unsigned long off = num(colon + 1);

		snprintf(path, sizeof(path), "%.*s", (int)(colon - spec), spec);
		return map_dev(path, off, len, &maplen) + off;
	}
}

/* The pattern of SEED over LEN bytes at any address and length. */
static void pattern_fill(unsigned char *p, unsigned long len, unsigned long seed)
{
	unsigned long i;

	for (i = 0; i < len; i += 8) {
		uint64_t w = splitmix64(seed + i / 8);

		memcpy(p + i, &w, len - i < 8 ? len - i : 8);
	}
}

/* The offset of the first byte that differs from the pattern, or -1. */
static long pattern_check(const unsigned char *p, unsigned long len, unsigned long seed)
{
	unsigned long i, j;

	for (i = 0; i < len; i += 8) {
		uint64_t w = splitmix64(seed + i / 8);

		for (j = 0; j < 8 && i + j < len; j++)
			if (p[i + j] != ((w >> (8 * j)) & 0xff))
				return i + j;
	}
	return -1;
}

/*
 * One transfer between BUFFER and BAR2 at BAROFF: to-bar fills the buffer
 * with the pattern of SEED first, from-bar checks it after. Polls once
 * (WAIT with timeout 0) before waiting.
 */
static int cmd_dma(int to_bar, char **a)
{
	unsigned long baroff = num(a[1]), len = num(a[2]), seed = num(a[3]);
	unsigned char *buf = dma_buffer(a[4], len);
	struct p2p_dax_dma_submit s = {
		.addr = (uintptr_t)buf, .length = len, .offset = baroff,
		.direction = to_bar ? P2P_DAX_DMA_TO_BAR : P2P_DAX_DMA_FROM_BAR,
	};
	struct p2p_dax_dma_wait w = { 0 };
	int fd = open_dma(a[0]), rc;
	long bad;
	double t0;

	if (to_bar)
		pattern_fill(buf, len, seed);
	else
		memset(buf, 0, len);
	t0 = now();
	if (ioctl(fd, P2P_DAX_IOC_SUBMIT, &s)) {
		printf("submit: %s\n", errname(errno));
		return 1;
	}
	w.id = s.id;
	rc = ioctl(fd, P2P_DAX_IOC_WAIT, &w) ? errno : 0;
	printf("poll: %s, done %u, status %s\n", errname(rc), w.done, status_name(w.status));
	if (!w.done) {
		memset(&w, 0, sizeof(w));
		w.id = s.id;
		w.timeout_ms = 20000;
		rc = ioctl(fd, P2P_DAX_IOC_WAIT, &w) ? errno : 0;
	}
	printf("dma %s %lu bytes: wait %s, status %s, done %u, bytes %llu, error_offset %llu, "
	       "%.1f kB/s\n", to_bar ? "to-bar" : "from-bar", len, errname(rc),
	       status_name(w.status), w.done, (unsigned long long)w.bytes,
	       (unsigned long long)w.error_offset, len / (now() - t0) / 1e3);
	if (rc)
		return 1;
	if (!to_bar && (bad = pattern_check(buf, len, seed)) >= 0) {
		printf("mismatch at offset %#lx\n", bad);
		return 1;
	}
	if (!to_bar)
		printf("checked %lu bytes: ok\n", len);
	close(fd);
	return 0;
}

/*
 * Bad requests, one "name: errno" line each. SIZE is the memory BAR's size:
 * offsets beyond it must be refused.
 */
static int cmd_dma_errors(char **a)
{
	unsigned long size = num(a[1]);
	int fd = open_dma(a[0]);
	unsigned char *buf = dma_buffer("ram", 1 << 16);
	unsigned char *hole = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	const struct p2p_dax_dma_submit good = {
		.addr = (uintptr_t)buf, .length = 4096, .offset = 0,
		.direction = P2P_DAX_DMA_TO_BAR,
	};
	struct p2p_dax_dma_submit s;
	struct p2p_dax_dma_wait w;
	struct { struct p2p_dax_dma_submit s; uint64_t extra; } big = { good, 1 };
	struct p2p_dax_info info;

	if (hole == MAP_FAILED)
		die("mmap");
	munmap(hole, 4096);			/* a hole in the address space */
#define SUBMIT(name, field, value) do { s = good; s.field = value; \
	printf("submit-%s: %s\n", name, try_ioctl(fd, P2P_DAX_IOC_SUBMIT, &s)); } while (0)
	SUBMIT("good", flags, 0);
	SUBMIT("direction-0", direction, 0);
	SUBMIT("direction-3", direction, 3);
	SUBMIT("flags", flags, 1);
	SUBMIT("reserved", reserved[2], 1);
	SUBMIT("zero-length", length, 0);
	SUBMIT("too-long", length, 1ULL << 40);
	SUBMIT("wrapping", addr, ~0ULL - 100);
	SUBMIT("beyond-bar", offset, size);
	SUBMIT("end-beyond-bar", offset, size - 2048);
	SUBMIT("huge-offset", offset, ~0ULL);
	SUBMIT("unmapped", addr, (uintptr_t)hole);
	SUBMIT("kernel-address", addr, 0xffff888000000000ULL);
#undef SUBMIT
	printf("submit-e2big: %s\n", try_ioctl(fd, _IOWR(P2P_DAX_IOC_MAGIC, 0x01, big), &big));
	big.extra = 0;
	printf("submit-larger-zeroed: %s\n",
	       try_ioctl(fd, _IOWR(P2P_DAX_IOC_MAGIC, 0x01, big), &big));
	printf("submit-too-small: %s\n",
	       try_ioctl(fd, _IOWR(P2P_DAX_IOC_MAGIC, 0x01, uint64_t), &s));
	printf("submit-bad-pointer: %s\n", try_ioctl(fd, P2P_DAX_IOC_SUBMIT, (void *)8));
	memset(&w, 0, sizeof(w));
	w.id = 12345;
	printf("wait-unknown: %s\n", try_ioctl(fd, P2P_DAX_IOC_WAIT, &w));
	w.flags = 1;
	printf("wait-flags: %s\n", try_ioctl(fd, P2P_DAX_IOC_WAIT, &w));
	printf("info: %s\n", try_ioctl(fd, P2P_DAX_IOC_INFO, &info));
	printf("info-write-direction: %s\n",
	       try_ioctl(fd, _IOW(P2P_DAX_IOC_MAGIC, 0x00, struct p2p_dax_info), &info));
	printf("unknown-nr: %s\n", try_ioctl(fd, _IOWR(P2P_DAX_IOC_MAGIC, 0x7f, w), &w));
	printf("unknown-type: %s\n", try_ioctl(fd, _IOWR('x', 0x01, s), &s));
	printf("tcgets: %s\n", try_ioctl(fd, 0x5401, buf));
	close(fd);
	return 0;
}

/*
 * Open the node, submit a transfer (RAM -> BAR2 at 0, 64 KiB) and leave it,
 * unbind the PCI device at ADDRESS (or "remove:ADDRESS" to hot-remove it)
 * with the file open, then use and close the file.
 */
static int cmd_dma_gone(char **a)
{
	int fd = open_dma(a[0]);
	struct p2p_dax_info info;
	unsigned char *buf = dma_buffer("ram", 1 << 16);
	struct p2p_dax_dma_submit s = {
		.addr = (uintptr_t)buf, .length = 1 << 16, .direction = P2P_DAX_DMA_TO_BAR,
	};
	struct p2p_dax_dma_wait w = { .timeout_ms = 0 };
	int rc;
	pid_t child = 0;

	printf("before: info %s\n", try_ioctl(fd, P2P_DAX_IOC_INFO, &info));
	/* A transfer in flight, where there is an engine. */
	printf("in flight: submit %s\n", try_ioctl(fd, P2P_DAX_IOC_SUBMIT, &s));
	fflush(stdout);
	if (s.id) {
		child = fork();
		if (child < 0)
			die("fork");
		if (!child) {		/* waits through the unbind */
			w.id = s.id;
			w.timeout_ms = P2P_DAX_WAIT_FOREVER;
			rc = ioctl(fd, P2P_DAX_IOC_WAIT, &w) ? errno : 0;
			printf("waiter: %s, done %u, status %s, bytes %llu\n", errname(rc), w.done,
			       status_name(w.status), (unsigned long long)w.bytes);
			exit(0);
		}
		usleep(200000);
	}
	errno = 0;
	syscall(SYS_delete_module, "p2p_dax", O_NONBLOCK);
	printf("rmmod while open: %s\n", errno ? errname(errno) : "unloaded");
	detach(a[1]);
	if (child > 0)
		waitpid(child, NULL, 0);
	printf("%s: node %s\n", a[1], access(a[0], F_OK) ? "gone" : "still there");
	w.id = s.id ? s.id : 1;
	printf("after: info %s, submit %s, wait %s, unknown %s\n",
	       try_ioctl(fd, P2P_DAX_IOC_INFO, &info), try_ioctl(fd, P2P_DAX_IOC_SUBMIT, &s),
	       try_ioctl(fd, P2P_DAX_IOC_WAIT, &w), try_ioctl(fd, _IO(P2P_DAX_IOC_MAGIC, 9), 0));
	printf("close: %s\n", errname(close(fd) ? errno : 0));
	return 0;
}

/* INFO of a node, or exit. */
static struct p2p_dax_info dma_info(int fd)
{
	struct p2p_dax_info i = { 0 };

	if (ioctl(fd, P2P_DAX_IOC_INFO, &i))
		die("P2P_DAX_IOC_INFO");
	return i;
}

/* This process's locked memory (pinned pages are charged to it), in kB. */
static long vm_locked_kb(void)
{
	char line[256];
	long kb = -1;
	FILE *f = fopen("/proc/self/status", "r");

	if (!f)
		die("/proc/self/status");
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmLck: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

/* SUBMIT RAM -> BAR2 at 0 of LEN bytes from buf; the errno name, and the id. */
static const char *submit_ram(int fd, unsigned char *buf, unsigned long len, uint64_t *id)
{
	struct p2p_dax_dma_submit s = {
		.addr = (uintptr_t)buf, .length = len, .direction = P2P_DAX_DMA_TO_BAR,
	};
	const char *rc = try_ioctl(fd, P2P_DAX_IOC_SUBMIT, &s);

	*id = s.id;
	return rc;
}

/* WAIT up to 60 s; the errno name. */
static const char *wait_for(int fd, uint64_t id, struct p2p_dax_dma_wait *w)
{
	memset(w, 0, sizeof(*w));
	w->id = id;
	w->timeout_ms = 60000;
	return try_ioctl(fd, P2P_DAX_IOC_WAIT, w);
}

/* Poll INFO until the node holds no transfer and no pinned page (30 s at most). */
static struct p2p_dax_info dma_drained(int fd)
{
	struct p2p_dax_info i = dma_info(fd);
	int n;

	for (n = 0; n < 3000 && (i.device_transfers || i.pinned); n++) {
		usleep(10000);
		i = dma_info(fd);
	}
	return i;
}

/* Set or clear Bus Master Enable of the PCI device at ADDRESS (config space). */
static void bus_master(const char *address, int on)
{
	char path[128];
	uint16_t cmd;
	int fd;

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/config", address);
	fd = open(path, O_RDWR);
	if (fd < 0 || pread(fd, &cmd, 2, 4) != 2)
		die(path);
	cmd = on ? cmd | 4 : cmd & ~4;
	if (pwrite(fd, &cmd, 2, 4) != 2)
		die(path);
	close(fd);
}

/*
 * The limits a group of users shares (the driver loaded with max_transfers
 * and max_pinned small): the device-wide transfer cap across two files,
 * CANCEL, closing a file with transfers queued, the pinned-bytes cap, and
 * RLIMIT_MEMLOCK for a caller without CAP_IPC_LOCK. One "name: result" line
 * each. Bus mastering of the board at ADDRESS is off while the engine's
 * queue is filled, so that nothing ends before it is looked at.
 */
static int cmd_dma_limits(char **a)
{
	int fd1 = open_dma(a[0]), fd2 = open_dma(a[0]), fd3, k;
	struct p2p_dax_info i = dma_info(fd1);
	unsigned long page = 4096, big = i.max_pinned / 4;
	unsigned char *buf = dma_buffer("ram", 4 * big);
	uint64_t id, ids[64];
	struct p2p_dax_dma_wait w;
	struct p2p_dax_dma_cancel c = { 0 };
	const char *rc = "ok";
	pid_t child;

	printf("limits: device_max_transfers %u, max_pinned %llu, queue_depth %u\n",
	       i.device_max_transfers, (unsigned long long)i.max_pinned, i.queue_depth);
	if (i.device_max_transfers > 64 || i.device_max_transfers <= i.queue_depth + 4) {
		fprintf(stderr, "p2p-dax-vmtool: load p2p_dax with max_transfers from %u to 64\n",
			i.queue_depth + 5);
		return 2;
	}
	bus_master(a[1], 0);
	/* Fill the engine's queue and more from fd1, the rest of the cap from fd2. */
	for (k = 0; k < (int)i.device_max_transfers && !strcmp(rc, "ok"); k++)
		rc = submit_ram(k < (int)i.queue_depth + 4 ? fd1 : fd2, buf + k * page, page,
				&ids[k]);
	printf("device cap: %d submits %s; ", k, rc);
	printf("one more: %s", submit_ram(fd1, buf, page, &id));
	printf(", from the other file: %s\n", submit_ram(fd2, buf, page, &id));
	/* The last of fd1's transfers waits behind the queue: cancel drops it whole. */
	c.id = ids[i.queue_depth + 3];
	printf("cancel queued: %s\n", try_ioctl(fd1, P2P_DAX_IOC_CANCEL, &c));
	printf("cancel again: %s\n", try_ioctl(fd1, P2P_DAX_IOC_CANCEL, &c));
	rc = wait_for(fd1, c.id, &w);
	printf("cancelled: wait %s, status %s, bytes %llu\n", rc, status_name(w.status),
	       (unsigned long long)w.bytes);
	c.id = ids[0];
	printf("cancel in the engine: %s\n", try_ioctl(fd1, P2P_DAX_IOC_CANCEL, &c));
	c.id = 999999;
	printf("cancel unknown: %s\n", try_ioctl(fd1, P2P_DAX_IOC_CANCEL, &c));
	c.id = ids[0];
	c.flags = 1;
	printf("cancel flags: %s\n", try_ioctl(fd1, P2P_DAX_IOC_CANCEL, &c));
	/* Close fd1 with its transfers queued: what is not in the engine goes now. */
	fd3 = open_dma(a[0]);
	i = dma_info(fd3);
	printf("before close: transfers %u, VmLck %ld kB\n", i.device_transfers, vm_locked_kb());
	close(fd1);
	close(fd2);
	i = dma_info(fd3);
	printf("after close: transfers %u, pinned %llu, VmLck %ld kB\n", i.device_transfers,
	       (unsigned long long)i.pinned, vm_locked_kb());
	bus_master(a[1], 1);
	i = dma_drained(fd3);
	printf("drained: transfers %u, pinned %llu, VmLck %ld kB\n", i.device_transfers,
	       (unsigned long long)i.pinned, vm_locked_kb());
	/* The pinned-bytes cap: four buffers of max_pinned / 4 fill it. */
	for (k = 0, rc = "ok"; k < 4 && !strcmp(rc, "ok"); k++)
		rc = submit_ram(fd3, buf + k * big, big, &ids[k]);
	printf("pinned cap: %d submits %s; ", k, rc);
	printf("one page more: %s\n", submit_ram(fd3, buf, page, &id));
	for (k = 0; k < 4; k++)
		if (strcmp(wait_for(fd3, ids[k], &w), "ok"))
			printf("pinned cap: wait %d: status %s\n", k, status_name(w.status));
	/* RLIMIT_MEMLOCK: a caller without CAP_IPC_LOCK, allowed 64 KiB. */
	fflush(stdout);
	child = fork();
	if (child < 0)
		die("fork");
	if (!child) {
		struct rlimit lim = { 1 << 16, 1 << 16 };

		if (setrlimit(RLIMIT_MEMLOCK, &lim) || setgid(65534) || setuid(65534))
			die("dropping privileges");
		printf("memlock 64 KiB: 128 KiB %s", submit_ram(fd3, buf, 1 << 17, &id));
		rc = submit_ram(fd3, buf, 1 << 15, &id);
		printf(", 32 KiB %s (VmLck %ld kB)", rc, vm_locked_kb());
		printf(", wait %s\n", wait_for(fd3, id, &w));
		exit(0);
	}
	waitpid(child, NULL, 0);
	i = dma_drained(fd3);
	printf("end: transfers %u, pinned %llu\n", i.device_transfers,
	       (unsigned long long)i.pinned);
	close(fd3);
	return 0;
}

/*
 * The engine reaches the dax part of BAR2 only: DAXSIZE is where the p2pmem
 * part starts (mode=both). SUBMIT checks the range before it looks for an
 * engine, so a memory-only device answers the same ERANGE.
 */
static int cmd_dma_confined(char **a)
{
	unsigned long dax = num(a[1]), page = 4096;
	int fd = open_dma(a[0]);
	struct p2p_dax_info i = dma_info(fd);
	unsigned char *buf = dma_buffer("ram", 2 * page);
	struct p2p_dax_dma_submit s = {
		.addr = (uintptr_t)buf, .length = page, .direction = P2P_DAX_DMA_TO_BAR,
	};
	struct p2p_dax_dma_wait w;

	printf("confined: dma_window %llu\n", (unsigned long long)i.dma_window);
	s.offset = dax;
	printf("confined: p2pmem start %s", try_ioctl(fd, P2P_DAX_IOC_SUBMIT, &s));
	s.offset = dax - page;
	s.length = 2 * page;
	printf(", straddling %s", try_ioctl(fd, P2P_DAX_IOC_SUBMIT, &s));
	s.direction = P2P_DAX_DMA_FROM_BAR;
	s.offset = i.bar_size - page;
	s.length = page;
	printf(", p2pmem end %s", try_ioctl(fd, P2P_DAX_IOC_SUBMIT, &s));
	s.direction = P2P_DAX_DMA_TO_BAR;
	s.offset = dax - page;
	printf(", last dax page %s\n", try_ioctl(fd, P2P_DAX_IOC_SUBMIT, &s));
	if (s.id)
		printf("confined: last dax page: wait %s\n", wait_for(fd, s.id, &w));
	close(fd);
	return 0;
}

static int cmd_bus_master(char **a)
{
	if (strcmp(a[1], "on") && strcmp(a[1], "off")) {
		fprintf(stderr, "p2p-dax-vmtool: bus-master: on or off, not %s\n", a[1]);
		return 2;
	}
	bus_master(a[0], !strcmp(a[1], "on"));
	return 0;
}

static const struct {
	const char *name;
	int args;
	const char *usage;
} cmds[] = {
	{ "fill", 4, "fill MAPFILE OFFSET LENGTH SEED" },
	{ "check", 4, "check MAPFILE OFFSET LENGTH SEED" },
	{ "dio-in", 5, "dio-in BLOCKDEV BLOCKOFF MAPFILE OFFSET LENGTH" },
	{ "dio-out", 5, "dio-out MAPFILE OFFSET BLOCKDEV BLOCKOFF LENGTH" },
	{ "mmap-errors", 2, "mmap-errors DAXDEV SIZE" },
	{ "hold-unbind", 3, "hold-unbind DAXDEV SIZE PCI_ADDRESS|remove:PCI_ADDRESS|rmmod" },
	{ "bench", 6, "bench BLOCKDEV MAPFILE LENGTH CHUNK ROUNDS 4k|2m" },
	{ "dma-info", 1, "dma-info DMADEV" },
	{ "dma-to-bar", 5, "dma-to-bar DMADEV BAROFF LENGTH SEED ram|MAPFILE:OFFSET" },
	{ "dma-from-bar", 5, "dma-from-bar DMADEV BAROFF LENGTH SEED ram|MAPFILE:OFFSET" },
	{ "dma-errors", 2, "dma-errors DMADEV BARSIZE" },
	{ "dma-gone", 2, "dma-gone DMADEV PCI_ADDRESS|remove:PCI_ADDRESS" },
	{ "dma-limits", 2, "dma-limits DMADEV PCI_ADDRESS" },
	{ "dma-confined", 2, "dma-confined DMADEV DAXSIZE" },
	{ "bus-master", 2, "bus-master PCI_ADDRESS on|off" },
};

int main(int argc, char **argv)
{
	unsigned i;

	for (i = 0; argc > 1 && i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		if (strcmp(argv[1], cmds[i].name))
			continue;
		if (argc - 2 != cmds[i].args)
			break;
		switch (i) {
		case 0: case 1: return cmd_fill_check(i == 1, argv + 2);
		case 2: case 3: return cmd_dio(i == 2, argv + 2);
		case 4: return cmd_mmap_errors(argv + 2);
		case 5: return cmd_hold_unbind(argv + 2);
		case 6: return cmd_bench(argv + 2);
		case 7: return cmd_dma_info(argv + 2);
		case 8: case 9: return cmd_dma(i == 8, argv + 2);
		case 10: return cmd_dma_errors(argv + 2);
		case 11: return cmd_dma_gone(argv + 2);
		case 12: return cmd_dma_limits(argv + 2);
		case 13: return cmd_dma_confined(argv + 2);
		case 14: return cmd_bus_master(argv + 2);
		}
	}
	fprintf(stderr, "usage: p2p-dax-vmtool");
	for (i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		fprintf(stderr, "%s %s\n", i ? "       p2p-dax-vmtool" : "", cmds[i].usage);
	return 2;
}
