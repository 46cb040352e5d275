/*
 * Stand-in for the Solo5 tenders (solo5-hvt / solo5-spt v0.12.1) — a TEST DOUBLE,
 * never product code. It behaves like the real tender as far as the orchestrator
 * can observe (daemon.md §9), without running a guest:
 *
 *   solo5-hvt [--mem=MB] [--net:NAME=TAP] [--net-mac:NAME=MAC] [--block:NAME=PATH]
 *             [--block-sector-size:NAME=N] [--] KERNEL [ARGS...]
 *
 * - `--mem=MB` (default 512): hvt rounds down to 2 MiB steps (warning "adjusting
 *   memory to N bytes"), fails above 4096 MB, and the guest aborts (exit 255) below
 *   4 MB, as measured with the real hvt; spt takes it as is.
 * - `--version` (before KERNEL): "<prog> tender, version v0.12.1" and
 *   "ABI version N" (N = $STANDIN_ABI or 2), both on stderr like the real tender
 *   (hvt_main.c version()), exit 0. `--help` prints usage, exit 1.
 * - KERNEL's ABI and manifest notes are read through its PT_NOTE program headers, as
 *   the real tenders do (elf.c elf_load_note + mft.c mft_validate); the target must
 *   match the program name (solo5-spt -> spt, else hvt) and the ABI version N.
 * - Options are matched against the manifest like the real modules (names
 *   [A-Za-z0-9]{1,67}); every declared device must be attached; block files are
 *   opened O_RDWR and must be a non-zero multiple of the sector size; taps are
 *   attached with TUNSETIFF(IFF_TAP|IFF_NO_PI) after checking they exist and are up,
 *   and stay open (so a second tender on the same tap fails with EBUSY).
 * - Errors: exit 1 with "<prog>: ..." on stderr (err(3)/errx(3)).
 * - Output (stdout, unbuffered): the Solo5 banner, a line per attached device
 *   ("Standin: net NAME=TAP mac MAC", "Standin: block NAME=PATH sector N"), then
 *   test_hello's "Hello, World" and "Command line is: '<guest args>'".
 * - Guest arguments controlling the double:
 *     --standin-exit=N          exit code (default 0)
 *     --standin-lines=N         print N lines "line 1" .. "line N"
 *     --standin-line-bytes=N    print one line of N 'x' bytes
 *     --standin-sleep=MS        sleep before exiting
 *     --standin-run             run until killed
 *     --standin-crash           raise SIGSEGV
 *     --standin-old-mirage      exit 64 if a --name= argument is present (pre-4.10
 *                               MirageOS rejecting the unknown option)
 *     --standin-read-block=NAME print the first line of block device NAME
 *     --standin-write-block=NAME:N  write N bytes ('b') at the start of block device
 *                               NAME and fdatasync them (block I/O for statistics)
 *     --standin-burn=MS         burn MS milliseconds of CPU time (user mode) first
 *     --standin-ip=A.B.C.D      while sleeping or running, answer ARP requests and
 *                               ICMP echo requests for this IPv4 address on every
 *                               attached net device (so `ping` through the tap works)
 * - An image whose bytes contain `STANDIN-GUEST-EXIT=N;` is a guest that fails at boot:
 *   after the banner and "Hello, World" it exits with N whatever the guest arguments say
 *   (a broken build of a unikernel whose configuration is fine).
 * - SIGTERM/SIGINT: hvt prints "<prog>: Exiting on signal N" and exits 1; spt dies
 *   by the signal (as measured).
 */
#define _GNU_SOURCE
#include <elf.h>
#include <err.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <libgen.h>
#include <limits.h>
#include <poll.h>
#include <arpa/inet.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define VERSION "v0.12.1"
#define NOTE_NAME "Solo5"
#define ABI1_TYPE 0x31494241u
#define MFT1_TYPE 0x3154464du
#define MFT_NAME_SIZE 68
#define MFT_MAX_ENTRIES 64
#define MFT_ENTRY_SIZE 104
#define MFT_BLOCK_BASIC 1u
#define MFT_NET_BASIC 2u
#define MFT_RESERVED_FIRST (1u << 30)
#define CMDLINE_SIZE 8192

static const char *prog;
static bool is_spt;
static unsigned abi_version = 2;

struct dev {
    char name[MFT_NAME_SIZE];
    uint32_t type;
    bool attached;
    int fd;
    char host[PATH_MAX + 1];
    uint8_t mac[6];
    bool has_mac;
    unsigned sector;
    off_t capacity;
};
static struct dev devs[MFT_MAX_ENTRIES];
static unsigned ndevs;

static void out(const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof buf)
        n = sizeof buf - 1;
    size_t off = 0;
    while (off < (size_t)n) {
        ssize_t w = write(1, buf + off, n - off);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return;
        }
        off += (size_t)w;
    }
}

/* The real tenders' usage texts (v0.12.1, modules as built on Linux). */
static void usage(void)
{
    if (is_spt)
        fprintf(stderr,
                "usage: %s [ CORE OPTIONS ] [ -- ] KERNEL [ ARGS ]\n"
                "KERNEL is the filename of the unikernel to run.\n"
                "ARGS are optional arguments passed to the unikernel.\n"
                "Core options:\n"
                "  [ --mem=512 ] (guest memory in MB)\n"
                "    --help (display this help)\n"
                "Compiled-in modules: core net block \n"
                "Compiled-in module options:\n"
                "    --x-exec-heap (make the heap executable). WARNING: This option is "
                "dangerous and not recommended as it makes the heap and stack executable.\n"
                "    --net:NAME=IFACE | @NN (attach tap at IFACE or at fd @NN as network NAME)\n"
                "  [ --net-mac:NAME=HWADDR ] (set HWADDR for network NAME)\n"
                "    --block:NAME=PATH (attach block device/file at PATH as block storage NAME)\n"
                "  [ --block-sector-size:NAME=SECTORSIZE ] (set sector size for block device "
                "NAME; must be a power of two greater than or equal 512)\n",
                prog);
    else
        fprintf(stderr,
                "usage: %s [ CORE OPTIONS ] [ MODULE OPTIONS ] [ -- ] KERNEL [ ARGS ]\n"
                "KERNEL is the filename of the unikernel to run.\n"
                "ARGS are optional arguments passed to the unikernel.\n"
                "Core options:\n"
                "  [ --mem=512 ] (guest memory in MB)\n"
                "    --help (display this help)\n"
                "    --version (display version information)\n"
                "Compiled-in modules: core block net \n"
                "Compiled-in module options:\n"
                "    --block:NAME=PATH (attach block device/file at PATH as block storage NAME)\n"
                "  [ --block-sector-size:NAME=SECTORSIZE ] (set sector size for block device "
                "NAME; must be a power of two greater than or equal 512)\n"
                "    --net:NAME=IFACE | @NN (attach tap at IFACE or at fd @NN as network NAME)\n"
                "  [ --net-mac:NAME=HWADDR ] (set HWADDR for network NAME)\n",
                prog);
    exit(1);
}

static void sig_handler(int signo)
{
    char msg[128];
    int n = snprintf(msg, sizeof msg, "%s: Exiting on signal %d\n", prog, signo);
    if (n > 0)
        (void)!write(2, msg, (size_t)n);
    _exit(1);
}

static int pread_full(int fd, void *buf, size_t len, off_t off)
{
    size_t done = 0;
    while (done < len) {
        ssize_t r = pread(fd, (char *)buf + done, len - done, off + (off_t)done);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (r == 0)
            break;
        done += (size_t)r;
    }
    return (int)done == (int)len ? 0 : -1;
}

/* elf.c elf_load_note(): the descriptor of the Solo5 note of (type), found via PT_NOTE. */
static void *load_note(int fd, const char *file, uint32_t type, size_t align, size_t max,
                       size_t *size)
{
    Elf64_Ehdr eh;
    if (pread_full(fd, &eh, sizeof eh, 0) != 0)
        errx(1, "%s: Invalid or unsupported executable", file);
    if (memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 || eh.e_ident[EI_CLASS] != ELFCLASS64 ||
        eh.e_ident[EI_DATA] != ELFDATA2LSB || eh.e_version != EV_CURRENT ||
        eh.e_ehsize != sizeof(Elf64_Ehdr) || eh.e_phnum < 1 ||
        eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_type != ET_EXEC ||
        eh.e_machine != EM_X86_64)
        errx(1, "%s: Invalid or unsupported executable (elf header invalid while loading note)",
             file);
    for (unsigned i = 0; i < eh.e_phnum; i++) {
        Elf64_Phdr ph;
        if (pread_full(fd, &ph, sizeof ph, (off_t)(eh.e_phoff + i * sizeof ph)) != 0)
            errx(1, "%s: Invalid or unsupported executable (program header)", file);
        if (ph.p_type != PT_NOTE)
            continue;
        struct {
            uint32_t namesz, descsz, type;
            char name[8];
        } nh;
        if (ph.p_filesz < 12)
            errx(1, "%s: Invalid or unsupported executable (note size)", file);
        if (ph.p_filesz < sizeof nh)
            continue;
        if (pread_full(fd, &nh, sizeof nh, (off_t)ph.p_offset) != 0)
            errx(1, "%s: phdr[%u] bytes read mismatches note size", file, i);
        if (nh.namesz != sizeof NOTE_NAME || strncmp(nh.name, NOTE_NAME, sizeof NOTE_NAME) != 0 ||
            nh.type != type)
            continue;
        if (nh.descsz < 1 || nh.descsz > max || ph.p_filesz < sizeof nh + nh.descsz)
            errx(1, "%s: Invalid or unsupported executable (phdr[%u] note size)", file, i);
        size_t off = (sizeof nh + (align - 1)) & ~(align - 1);
        size_t pad = off - sizeof nh;
        if (nh.descsz <= pad)
            errx(1, "%s: INV_EXE: phdr[%u] note does not fall within valid size", file, i);
        size_t len = nh.descsz - pad;
        void *data = malloc(len);
        if (data == NULL)
            err(1, "malloc");
        if (pread_full(fd, data, len, (off_t)(ph.p_offset + off)) != 0)
            errx(1, "%s: phdr[%u] bytes read mismatches note size", file, i);
        *size = len;
        return data;
    }
    return NULL;
}

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* `STANDIN-GUEST-EXIT=N;` somewhere in the image: the exit code of a failing guest, else -1 */
static int image_exit = -1;

static void scan_image_marker(int fd)
{
    static const char marker[] = "STANDIN-GUEST-EXIT=";
    char buf[65536 + sizeof marker + 8];
    size_t keep = 0;
    off_t off = 0;
    for (;;) {
        ssize_t r = pread(fd, buf + keep, sizeof buf - keep - 1, off);
        if (r <= 0)
            return;
        off += r;
        size_t n = keep + (size_t)r;
        buf[n] = 0;
        for (size_t i = 0; i + sizeof marker - 1 < n; i++) {
            if (memcmp(buf + i, marker, sizeof marker - 1) != 0)
                continue;
            char *end;
            long v = strtol(buf + i + sizeof marker - 1, &end, 10);
            if (*end == ';' && v >= 0 && v <= 255) {
                image_exit = (int)v;
                return;
            }
        }
        keep = n < sizeof marker + 4 ? n : sizeof marker + 4;
        memmove(buf, buf + n - keep, keep);
    }
}

static void load_kernel(const char *file)
{
    int fd = open(file, O_RDONLY);
    if (fd == -1)
        err(1, "%s: Could not open", file);
    scan_image_marker(fd);
    size_t sz;
    uint8_t *abi = load_note(fd, file, ABI1_TYPE, 4, 16, &sz);
    if (abi == NULL)
        errx(1, "%s: No Solo5 ABI information found in executable", file);
    if (sz < 8 || le32(abi) != (is_spt ? 2u : 1u))
        errx(1, "%s: Executable is not for the solo5-%s target", file, is_spt ? "spt" : "hvt");
    if (le32(abi + 4) != abi_version)
        errx(1, "%s: Executable requests unsupported ABI version %u", file, le32(abi + 4));
    free(abi);
    /* struct mft1_note: 20-byte note header, m 8-aligned -> 4 bytes of padding */
    uint8_t *m = load_note(fd, file, MFT1_TYPE, 8, 4 + 8 + MFT_MAX_ENTRIES * MFT_ENTRY_SIZE, &sz);
    if (m == NULL)
        errx(1, "%s: No Solo5 manifest found in executable", file);
    /* mft.c mft_validate() */
    uint32_t entries = sz >= 8 ? le32(m + 4) : 0;
    if (sz < 8 || le32(m) != 1 || entries > MFT_MAX_ENTRIES || sz != 8 + entries * MFT_ENTRY_SIZE ||
        entries < 1 || le32(m + 8 + 68) != MFT_RESERVED_FIRST || m[8] != 0)
        errx(1, "%s: Solo5 manifest is invalid", file);
    for (uint32_t i = 0; i < entries; i++) {
        const uint8_t *e = m + 8 + i * MFT_ENTRY_SIZE;
        if (e[MFT_NAME_SIZE - 1] != 0 || e[96] != 0)
            errx(1, "%s: Solo5 manifest is invalid", file);
        if (i == 0)
            continue;
        struct dev *d = &devs[ndevs++];
        memset(d, 0, sizeof *d);
        memcpy(d->name, e, MFT_NAME_SIZE);
        d->type = le32(e + 68);
        d->fd = -1;
    }
    free(m);
    close(fd);
}

static struct dev *find_dev(const char *name, uint32_t type)
{
    for (unsigned i = 0; i < ndevs; i++)
        if (devs[i].type == type && strncmp(devs[i].name, name, MFT_NAME_SIZE) == 0)
            return &devs[i];
    return NULL;
}

/* tap_attach.c (Linux): exists and up, then TUNSETIFF. -1 with errno on failure. */
static int tap_attach(const char *ifname)
{
    if (strlen(ifname) >= IFNAMSIZ) {
        errno = ENAMETOOLONG;
        return -1;
    }
    struct ifaddrs *ifa;
    bool found = false, up = false;
    if (getifaddrs(&ifa) == -1)
        return -1;
    for (struct ifaddrs *p = ifa; p; p = p->ifa_next) {
        if (strncmp(p->ifa_name, ifname, IFNAMSIZ) == 0) {
            found = true;
            up = (p->ifa_flags & (IFF_UP | IFF_RUNNING)) != 0;
            break;
        }
    }
    freeifaddrs(ifa);
    if (!found) {
        errno = ENOENT;
        return -1;
    }
    if (!up) {
        errno = ENETDOWN;
        return -1;
    }
    int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK);
    if (fd == -1)
        return -1;
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
    memcpy(ifr.ifr_name, ifname, strlen(ifname)); /* < IFNAMSIZ, checked above */
    if (ioctl(fd, TUNSETIFF, (void *)&ifr) == -1) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    if (strncmp(ifr.ifr_name, ifname, IFNAMSIZ) != 0) {
        close(fd);
        errno = EINVAL;
        return -1;
    }
    return fd;
}

/* Module option handlers; 0 = handled, -1 = not an option of ours / invalid. */
static int handle_cmdarg(const char *arg)
{
    char name[MFT_NAME_SIZE];
    if (strncmp(arg, "--net:", 6) == 0) {
        char iface[20];
        if (sscanf(arg, "--net:%67[A-Za-z0-9]=%19s", name, iface) != 2)
            return -1;
        struct dev *d = find_dev(name, MFT_NET_BASIC);
        if (d == NULL) {
            warnx("Resource not declared in manifest: '%s'", name);
            return -1;
        }
        int fd = tap_attach(iface);
        if (fd < 0) {
            warnx("Could not attach interface: %s: %s", iface, strerror(errno));
            return -1;
        }
        d->fd = fd;
        d->attached = true;
        snprintf(d->host, sizeof d->host, "%s", iface);
        return 0;
    }
    if (strncmp(arg, "--net-mac:", 10) == 0) {
        unsigned m[6];
        if (sscanf(arg, "--net-mac:%67[A-Za-z0-9]=%02x:%02x:%02x:%02x:%02x:%02x", name, &m[0],
                   &m[1], &m[2], &m[3], &m[4], &m[5]) != 7)
            return -1;
        struct dev *d = find_dev(name, MFT_NET_BASIC);
        if (d == NULL) {
            warnx("Resource not declared in manifest: '%s'", name);
            return -1;
        }
        for (int i = 0; i < 6; i++)
            d->mac[i] = (uint8_t)m[i];
        d->has_mac = true;
        return 0;
    }
    if (strncmp(arg, "--block:", 8) == 0) {
        char path[PATH_MAX + 1];
        if (sscanf(arg, "--block:%67[A-Za-z0-9]=%4096s", name, path) != 2)
            return -1;
        struct dev *d = find_dev(name, MFT_BLOCK_BASIC);
        if (d == NULL) {
            warnx("Resource not declared in manifest: '%s'", name);
            return -1;
        }
        int fd = open(path, O_RDWR);
        if (fd == -1)
            err(1, "Could not open block device: %s", path);
        off_t cap = lseek(fd, 0, SEEK_END);
        if (cap == -1)
            err(1, "%s: Could not determine capacity", path);
        d->fd = fd;
        d->capacity = cap;
        d->attached = true;
        snprintf(d->host, sizeof d->host, "%s", path);
        return 0;
    }
    if (strncmp(arg, "--block-sector-size:", 20) == 0) {
        unsigned short bs;
        if (sscanf(arg, "--block-sector-size:%67[A-Za-z0-9]=%hu", name, &bs) != 2)
            return -1;
        if (bs < 512 || (bs & (bs - 1))) {
            warnx("Block size must be a multiple of 2 greater than or equal 512");
            return -1;
        }
        struct dev *d = find_dev(name, MFT_BLOCK_BASIC);
        if (d == NULL) {
            warnx("Resource not declared in manifest: '%s'", name);
            return -1;
        }
        d->sector = bs;
        return 0;
    }
    return -1;
}

static bool arg_value(const char *arg, const char *key, const char **val)
{
    size_t n = strlen(key);
    if (strncmp(arg, key, n) != 0)
        return false;
    *val = arg + n;
    return true;
}

static long num(const char *s, const char *what)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end != 0 || v < 0)
        errx(1, "stand-in: bad %s '%s'", what, s);
    return v;
}


/* --standin-burn: spin until the process has used `ms` of CPU time. */
static void burn_cpu(long ms)
{
    struct timespec t0, t;
    if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t0) == -1)
        err(1, "clock_gettime");
    volatile uint64_t x = 1;
    for (;;) {
        for (int i = 0; i < 100000; i++)
            x = x * 6364136223846793005ull + 1442695040888963407ull;
        if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t) == -1)
            err(1, "clock_gettime");
        long used = (t.tv_sec - t0.tv_sec) * 1000L + (t.tv_nsec - t0.tv_nsec) / 1000000L;
        if (used >= ms)
            return;
    }
}

static uint16_t ip_checksum(const uint8_t *p, size_t len)
{
    uint32_t sum = 0;
    for (size_t i = 0; i + 1 < len; i += 2)
        sum += (uint32_t)p[i] << 8 | p[i + 1];
    if (len & 1)
        sum += (uint32_t)p[len - 1] << 8;
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)~sum;
}

/* One frame read from a tap: answer it if it is an ARP request or an ICMP echo request
 * for `ip`. Everything else is ignored (counted by the kernel, dropped here). */
static void answer_frame(struct dev *d, uint8_t *f, ssize_t n, const uint8_t ip[4])
{
    static const uint8_t dflt_mac[6] = {0x02, 0x00, 0x5e, 0x10, 0x00, 0x01};
    const uint8_t *mac = d->has_mac ? d->mac : dflt_mac;
    if (n < 42)
        return;
    uint16_t type = (uint16_t)(f[12] << 8 | f[13]);
    if (type == 0x0806) {
        uint8_t *a = f + 14; /* htype 1, ptype 0x0800, hlen 6, plen 4, op 1 = request */
        if (!(a[0] == 0 && a[1] == 1 && a[2] == 8 && a[3] == 0 && a[4] == 6 && a[5] == 4 &&
              a[6] == 0 && a[7] == 1 && memcmp(a + 24, ip, 4) == 0))
            return;
        uint8_t sha[6], spa[4];
        memcpy(sha, a + 8, 6);
        memcpy(spa, a + 14, 4);
        a[7] = 2; /* reply */
        memcpy(a + 8, mac, 6);
        memcpy(a + 14, ip, 4);
        memcpy(a + 18, sha, 6);
        memcpy(a + 24, spa, 4);
        memcpy(f, sha, 6);
        memcpy(f + 6, mac, 6);
        (void)!write(d->fd, f, 42);
        return;
    }
    if (type != 0x0800)
        return;
    uint8_t *h = f + 14;
    size_t ihl = (size_t)(h[0] & 0x0f) * 4;
    size_t tot = (size_t)(h[2] << 8 | h[3]);
    if ((h[0] >> 4) != 4 || ihl < 20 || tot < ihl + 8 || 14 + tot > (size_t)n || h[9] != 1 ||
        memcmp(h + 16, ip, 4) != 0)
        return;
    uint8_t *icmp = h + ihl;
    if (icmp[0] != 8) /* echo request */
        return;
    uint8_t tmp[6];
    memcpy(tmp, f + 6, 6);
    memcpy(f, tmp, 6);
    memcpy(f + 6, mac, 6);
    uint8_t src[4];
    memcpy(src, h + 12, 4);
    memcpy(h + 12, ip, 4);
    memcpy(h + 16, src, 4);
    h[8] = 64;
    h[10] = h[11] = 0;
    uint16_t c = ip_checksum(h, ihl);
    h[10] = (uint8_t)(c >> 8);
    h[11] = (uint8_t)c;
    icmp[0] = 0; /* echo reply */
    icmp[2] = icmp[3] = 0;
    c = ip_checksum(icmp, tot - ihl);
    icmp[2] = (uint8_t)(c >> 8);
    icmp[3] = (uint8_t)c;
    (void)!write(d->fd, f, 14 + tot);
}

/* --standin-ip: serve the taps until `deadline_ms` (monotonic; < 0 = forever). */
static void serve_net(const uint8_t ip[4], long long deadline_ms)
{
    struct pollfd pfd[MFT_MAX_ENTRIES];
    struct dev *pd[MFT_MAX_ENTRIES];
    nfds_t np = 0;
    for (unsigned i = 0; i < ndevs; i++)
        if (devs[i].type == MFT_NET_BASIC && devs[i].fd >= 0) {
            pfd[np].fd = devs[i].fd;
            pfd[np].events = POLLIN;
            pd[np++] = &devs[i];
        }
    static uint8_t frame[65536];
    for (;;) {
        int timeout = -1;
        if (deadline_ms >= 0) {
            struct timespec now;
            clock_gettime(CLOCK_MONOTONIC, &now);
            long long left = deadline_ms - (now.tv_sec * 1000LL + now.tv_nsec / 1000000);
            if (left <= 0)
                return;
            timeout = left > 1000000 ? 1000000 : (int)left;
        }
        int r = poll(pfd, np, timeout);
        if (r < 0 && errno != EINTR)
            err(1, "poll");
        for (nfds_t i = 0; r > 0 && i < np; i++) {
            if (!(pfd[i].revents & POLLIN))
                continue;
            for (;;) {
                ssize_t n = read(pfd[i].fd, frame, sizeof frame);
                if (n <= 0)
                    break;
                answer_frame(pd[i], frame, n, ip);
            }
        }
    }
}

static void guest_exit(int code)
{
    out("Solo5: solo5_exit(%d) called\n", code);
    exit(code);
}

int main(int argc, char **argv)
{
    (void)argc;
    prog = basename(argv[0]);
    is_spt = strstr(prog, "spt") != NULL;
    const char *abi_env = getenv("STANDIN_ABI");
    if (abi_env != NULL && *abi_env != 0)
        abi_version = (unsigned)num(abi_env, "STANDIN_ABI");
    argv++;

    /* 1st pass: find KERNEL, handle terminal options. */
    char **a = argv;
    while (*a && (*a)[0] == '-') {
        if (strcmp(*a, "--") == 0) {
            a++;
            break;
        }
        if (strcmp(*a, "--help") == 0)
            usage();
        if (strcmp(*a, "--version") == 0) {
            fprintf(stderr, "%s tender, version %s\n", prog, VERSION);
            fprintf(stderr, "ABI version %u\n", abi_version);
            exit(0);
        }
        a++;
    }
    if (*a == NULL) {
        warnx("Missing KERNEL operand");
        usage();
    }
    const char *kernel = *a;
    load_kernel(kernel);

    /* 2nd pass: options. */
    size_t mem = (size_t)512 << 20; /* bytes */
    while (*argv && (*argv)[0] == '-') {
        if (strcmp(*argv, "--") == 0) {
            argv++;
            break;
        }
        bool matched = false;
        if (strncmp(*argv, "--mem=", 6) == 0) {
            /* hvt_main.c handle_mem(): %zd, shifted to bytes, only 0 is "<= 0" */
            ssize_t m;
            if (sscanf(*argv, "--mem=%zd", &m) != 1 || ((size_t)m << 20) == 0)
                errx(1, "Malformed argument to --mem");
            mem = (size_t)m << 20;
            matched = true;
        } else if (is_spt && strncmp(*argv, "--x-exec-heap", 13) == 0) {
            warnx("WARNING: The use of --x-exec-heap is dangerous and not recommended as it "
                  "makes the heap and stack executable.");
            matched = true;
        } else if (handle_cmdarg(*argv) == 0) {
            matched = true;
        }
        if (!matched) {
            warnx("Invalid option: `%s'", *argv);
            usage();
        }
        argv++;
    }
    argv++; /* KERNEL */

    bool fail = false;
    for (unsigned i = 0; i < ndevs; i++) {
        if (!devs[i].attached) {
            warnx("Device '%s' of type %s declared but not attached.", devs[i].name,
                  devs[i].type == MFT_NET_BASIC ? "NET_BASIC" : "BLOCK_BASIC");
            fail = true;
        }
    }
    if (fail)
        errx(1, "All declared devices must be attached. See --help for syntax.");
    for (unsigned i = 0; i < ndevs; i++) {
        struct dev *d = &devs[i];
        if (d->type != MFT_BLOCK_BASIC)
            continue;
        if (d->sector == 0)
            d->sector = 512;
        if ((d->capacity & (off_t)(d->sector - 1)) != 0)
            errx(1, "%s: Backing storage size must be block aligned (%u bytes)", d->name,
                 d->sector);
        if (d->capacity < (off_t)d->sector)
            errx(1, "%s: Backing storage must be at least 1 block (%u bytes) in size", d->name,
                 d->sector);
    }

    char cmdline[CMDLINE_SIZE];
    size_t cl = 0;
    cmdline[0] = 0;
    for (char **g = argv; *g; g++) {
        size_t n = strlen(*g);
        if (cl + n + (cl ? 1 : 0) >= sizeof cmdline)
            errx(1, "Guest command line too long (max=%d characters)", CMDLINE_SIZE - 1);
        if (cl)
            cmdline[cl++] = ' ';
        memcpy(cmdline + cl, *g, n);
        cl += n;
        cmdline[cl] = 0;
    }

    if (!is_spt) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = sig_handler;
        sigfillset(&sa.sa_mask);
        if (sigaction(SIGINT, &sa, NULL) == -1 || sigaction(SIGTERM, &sa, NULL) == -1)
            err(1, "Could not install signal handler");
    }

    if (!is_spt) {
        /* hvt_cpu_x86_64.c hvt_x86_mem_size(): 2 MiB steps, at most 4 GiB */
        size_t page = (size_t)2 << 20, max = (size_t)4 << 30;
        size_t m = (mem / page) * page;
        if (m == 0)
            m = page;
        if (m != mem)
            warnx("adjusting memory to %zu bytes", m);
        if (m > max)
            errx(1, "guest memory size %zu bytes exceeds the max size %zu bytes", m, max);
        mem = m;
    }

    out("            |      ___|\n");
    out("  __|  _ \\  |  _ \\ __ \\\n");
    out("\\__ \\ (   | | (   |  ) |\n");
    out("____/\\___/ _|\\___/____/\n");
    out("Solo5: Bindings version %s\n", VERSION);
    if (!is_spt && mem < ((size_t)4 << 20)) {
        /* the guest's mem_init() needs more than the tender gives it */
        out("Solo5: ABORT: mem.c:54: Not enough memory\n");
        exit(255);
    }
    out("Solo5: Memory map: %zu MB addressable:\n", mem >> 20);
    for (unsigned i = 0; i < ndevs; i++) {
        struct dev *d = &devs[i];
        if (d->type == MFT_NET_BASIC) {
            if (d->has_mac)
                out("Standin: net %s=%s mac %02x:%02x:%02x:%02x:%02x:%02x\n", d->name, d->host,
                    d->mac[0], d->mac[1], d->mac[2], d->mac[3], d->mac[4], d->mac[5]);
            else
                out("Standin: net %s=%s mac random\n", d->name, d->host);
        } else {
            out("Standin: block %s=%s sector %u\n", d->name, d->host, d->sector);
        }
    }
    out("\n**** Solo5 standalone test_hello ****\n\n");
    out("Hello, World\nCommand line is: '%s'\n", cmdline);
    if (image_exit >= 0)
        guest_exit(image_exit);

    int code = 0;
    long sleep_ms = 0, lines = 0, line_bytes = -1;
    bool run = false, crash = false, old_mirage = false, has_name = false;
    const char *read_block = NULL, *write_block = NULL, *ip_arg = NULL;
    long burn_ms = 0;
    for (char **g = argv; *g; g++) {
        const char *v;
        if (arg_value(*g, "--standin-exit=", &v))
            code = (int)num(v, "exit code");
        else if (arg_value(*g, "--standin-lines=", &v))
            lines = num(v, "line count");
        else if (arg_value(*g, "--standin-line-bytes=", &v))
            line_bytes = num(v, "line length");
        else if (arg_value(*g, "--standin-sleep=", &v))
            sleep_ms = num(v, "sleep");
        else if (arg_value(*g, "--standin-read-block=", &v))
            read_block = v;
        else if (arg_value(*g, "--standin-write-block=", &v))
            write_block = v;
        else if (arg_value(*g, "--standin-burn=", &v))
            burn_ms = num(v, "burn");
        else if (arg_value(*g, "--standin-ip=", &v))
            ip_arg = v;
        else if (strcmp(*g, "--standin-run") == 0)
            run = true;
        else if (strcmp(*g, "--standin-crash") == 0)
            crash = true;
        else if (strcmp(*g, "--standin-old-mirage") == 0)
            old_mirage = true;
        else if (strncmp(*g, "--name=", 7) == 0)
            has_name = true;
    }

    if (old_mirage && has_name) {
        out("%s: unknown option '--name'.\n", "unikernel");
        guest_exit(64);
    }
    if (read_block != NULL) {
        struct dev *d = find_dev(read_block, MFT_BLOCK_BASIC);
        if (d == NULL)
            errx(1, "stand-in: no block device '%s'", read_block);
        char buf[513];
        ssize_t r = pread(d->fd, buf, 512, 0);
        if (r < 0)
            err(1, "stand-in: reading block device '%s'", read_block);
        buf[r] = 0;
        char *nl = memchr(buf, '\n', (size_t)r);
        if (nl)
            *nl = 0;
        out("Block %s: %s\n", read_block, buf);
    }
    if (write_block != NULL) {
        char bname[MFT_NAME_SIZE];
        long len = -1;
        const char *colon = strchr(write_block, ':');
        if (colon == NULL || (size_t)(colon - write_block) >= sizeof bname)
            errx(1, "stand-in: --standin-write-block=NAME:BYTES expected");
        memcpy(bname, write_block, (size_t)(colon - write_block));
        bname[colon - write_block] = 0;
        len = num(colon + 1, "block write length");
        struct dev *d = find_dev(bname, MFT_BLOCK_BASIC);
        if (d == NULL)
            errx(1, "stand-in: no block device '%s'", bname);
        char chunk[4096];
        memset(chunk, 'b', sizeof chunk);
        for (long off = 0; off < len;) {
            size_t n = len - off > (long)sizeof chunk ? sizeof chunk : (size_t)(len - off);
            ssize_t w = pwrite(d->fd, chunk, n, (off_t)off);
            if (w < 0) {
                if (errno == EINTR)
                    continue;
                err(1, "stand-in: writing block device '%s'", bname);
            }
            off += w;
        }
        if (fdatasync(d->fd) == -1)
            err(1, "stand-in: fdatasync '%s'", bname);
        out("Block %s: wrote %ld bytes\n", bname, len);
    }
    uint8_t ip[4];
    if (ip_arg != NULL && inet_pton(AF_INET, ip_arg, ip) != 1)
        errx(1, "stand-in: bad --standin-ip '%s'", ip_arg);
    if (burn_ms > 0)
        burn_cpu(burn_ms);
    for (long i = 1; i <= lines; i++)
        out("line %ld\n", i);
    if (line_bytes >= 0) {
        char chunk[4096];
        memset(chunk, 'x', sizeof chunk);
        for (long left = line_bytes; left > 0;) {
            size_t n = left > (long)sizeof chunk ? sizeof chunk : (size_t)left;
            ssize_t w = write(1, chunk, n);
            if (w < 0) {
                if (errno == EINTR)
                    continue;
                break;
            }
            left -= w;
        }
        out("\n");
    }
    if (ip_arg != NULL && (sleep_ms > 0 || run)) {
        long long deadline = -1;
        if (!run) {
            struct timespec now;
            clock_gettime(CLOCK_MONOTONIC, &now);
            deadline = now.tv_sec * 1000LL + now.tv_nsec / 1000000 + sleep_ms;
        }
        serve_net(ip, deadline);
        sleep_ms = 0;
    }
    if (sleep_ms > 0) {
        struct timespec ts = {sleep_ms / 1000, (sleep_ms % 1000) * 1000000L};
        while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
            ;
    }
    if (crash) {
        signal(SIGSEGV, SIG_DFL);
        raise(SIGSEGV);
    }
    if (run)
        for (;;)
            pause();
    guest_exit(code);
}
