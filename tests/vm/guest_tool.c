/*
 * p2pdax-vmtool: what the VM tests run in the guest to exercise the driver
 * through the interfaces user space has: mmap of /dev/daxN.M (or of a
 * p2pmem/allocate file), O_DIRECT between a block device and that mapping,
 * and sysfs unbind. Built statically on the host (tests/vm/guest.py) and put
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
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

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
	fprintf(stderr, "p2pdax-vmtool: %s: %s\n", what, strerror(errno));
	exit(2);
}

static unsigned long num(const char *s)
{
	char *end;
	unsigned long v = strtoul(s, &end, 0);

	if (*s == '\0' || *end != '\0') {
		fprintf(stderr, "p2pdax-vmtool: not a number: %s\n", s);
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
		fprintf(stderr, "p2pdax-vmtool: offset and length must be multiples of 8\n");
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
			fprintf(stderr, "p2pdax-vmtool: O_DIRECT %s at %#lx: %s\n",
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
	int fd;

	printf("before: %s\n", touch(m, 1));
	if (!strcmp(a[2], "rmmod")) {
		if (syscall(SYS_delete_module, "p2p_dax", O_NONBLOCK))
			die("delete_module p2p_dax");
	} else {
		/* "remove:ADDRESS": hot-remove the PCI device; "ADDRESS": unbind it */
		int remove = !strncmp(a[2], "remove:", 7);
		char path[128];

		if (remove)
			snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/remove", a[2] + 7);
		else
			snprintf(path, sizeof(path), "/sys/bus/pci/drivers/p2p_dax/unbind");
		fd = open(path, O_WRONLY);
		if (fd < 0 || write(fd, remove ? "1" : a[2], remove ? 1 : strlen(a[2])) < 0)
			die(path);
		close(fd);
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
		fprintf(stderr, "p2pdax-vmtool: PAGES must be 4k or 2m\n");
		return 2;
	}
	if (madvise(ram, len, huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE))
		die("madvise");
	memset(ram, 0, len);		/* fault it in before the clock starts */
	if (!chunk || len % chunk) {
		fprintf(stderr, "p2pdax-vmtool: length must be a multiple of chunk\n");
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
		}
	}
	fprintf(stderr, "usage: p2pdax-vmtool");
	for (i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		fprintf(stderr, "%s %s\n", i ? "       p2pdax-vmtool" : "", cmds[i].usage);
	return 2;
}
