/*
 * `gilstat`: per-thread GIL wait and hold statistics of a CPython process,
 * from uprobes on the interpreter's take_gil and drop_gil (bpf/gil.bpf.c).
 * Nothing is written into the target; every probe is detached when the
 * request ends, however it ends.
 *
 * Request args: {"take_ms":5,"hold_ms":5,"interval_s":5,"max_threads":0}
 * (0 for a threshold: no warnings of that kind; 0 threads: all), or
 * {"off":true} to stop every gilstat of that pid started by other sessions.
 *
 * Events:
 *   {"event":"gilstat_start","pid":P,"version":"3.11.7","binary":"...",
 *    "symbols":"symtab"|"minidebuginfo"|"debugfile"|"heuristic",
 *    "take_sites":N,"drop_sites":N,"note":"..."|null}
 *   {"event":"gilstat","interval_s":5.0,"threads":[{"tid","name","takes",
 *    "wait_total_ms","wait_avg_ms","hold_total_ms","hold_avg_ms","drops",
 *    "unseen"}...], "threads_omitted":0,"switches_per_s":x,"releases_unseen":N,
 *    "warnings_lost":0,"cost_warning":"..."|null}
 *   (unseen: releases no drop probe saw, their holds left out; bpf/gil.bpf.c)
 *   {"event":"gil_warning","tid","name","kind":"wait"|"hold","ms",
 *    "threshold_ms","start_ns","end_ns"}   (CLOCK_MONOTONIC nanoseconds)
 *   {"event":"gilstat_stopped","reason":"cancelled"|"off"|"exited"}
 *   off: {"event":"gilstat_off","stopped":N}
 * Symbol resolution order and the stripped-binary heuristic: resolve_probes().
 */
#include "gil.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <lzma.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "commands.h"
#include "elf.h"
#include "fp/gil.h"
#include "gil.skel.h"
#include "proc.h"
#include "stack.h"

/* bench/gilstat.sh measured 1.36-1.40 us on 3.8-3.13 and Debian's 3.11 (2-CPU VM). */
#define GIL_PAIR_COST_NS 1500.0
/* Above this share of one CPU spent in the probes the report says so. */
#define GIL_COST_LIMIT 0.02
/* Warnings sent per interval; the rest are counted as suppressed. */
#define MAX_WARNINGS_PER_INTERVAL 200
#define MAX_DEBUGDATA		  (64u << 20)
#define POLL_MS			  200
/*
 * Stripped-binary accounting of pthread_cond_signal calls: take_gil's own
 * (3.11.2: +0xb1 and +0x164 from its entry, the function about 0x300 bytes)
 * and a drop site's (the signal follows its lock call or entry within 117).
 */
#define TAKE_GIL_BYTES	  1024
#define DROP_SIGNAL_BYTES 128

/* ---- symbols ---- */

static Elf *elf_open_fd(const char *path, int *fd)
{
	*fd = fp_elf_open_fd(path);
	if (*fd < 0)
		return NULL;
	Elf *e = elf_begin(*fd, ELF_C_READ_MMAP, NULL);
	if (!e) {
		close(*fd);
		*fd = -1;
	}
	return e;
}

static Elf_Scn *find_section(Elf *e, const char *name, Elf64_Word type)
{
	size_t shstrndx;
	if (elf_getshdrstrndx(e, &shstrndx) != 0)
		return NULL;
	for (Elf_Scn *s = elf_nextscn(e, NULL); s; s = elf_nextscn(e, s)) {
		GElf_Shdr sh;
		if (!gelf_getshdr(s, &sh))
			continue;
		const char *n = elf_strptr(e, shstrndx, sh.sh_name);
		if ((!name || (n && strcmp(n, name) == 0)) && (!type || sh.sh_type == type))
			return s;
	}
	return NULL;
}

/* A defined function symbol in the table of the given type; 0 when absent. */
static uint64_t func_sym(Elf *e, Elf64_Word type, const char *name)
{
	Elf_Scn *s = find_section(e, NULL, type);
	GElf_Shdr sh;
	Elf_Data *d = s ? elf_getdata(s, NULL) : NULL;
	if (!d || !gelf_getshdr(s, &sh) || !sh.sh_entsize)
		return 0;
	for (size_t i = 0; i < sh.sh_size / sh.sh_entsize; i++) {
		GElf_Sym sym;
		if (!gelf_getsym(d, (int)i, &sym) || GELF_ST_TYPE(sym.st_info) != STT_FUNC ||
		    !sym.st_value)
			continue;
		const char *n = elf_strptr(e, sh.sh_link, sym.st_name);
		if (n && strcmp(n, name) == 0)
			return sym.st_value;
	}
	return 0;
}

/* Whether a function of .dynsym starts at addr. */
static bool is_exported(Elf *e, uint64_t addr)
{
	Elf_Scn *s = find_section(e, NULL, SHT_DYNSYM);
	GElf_Shdr sh;
	Elf_Data *d = s ? elf_getdata(s, NULL) : NULL;
	if (!d || !gelf_getshdr(s, &sh) || !sh.sh_entsize)
		return false;
	for (size_t i = 0; i < sh.sh_size / sh.sh_entsize; i++) {
		GElf_Sym sym;
		if (gelf_getsym(d, (int)i, &sym) && GELF_ST_TYPE(sym.st_info) == STT_FUNC &&
		    sym.st_value == addr)
			return true;
	}
	return false;
}

/* File offset of an address in an executable segment: what a uprobe is placed by. */
static int vaddr_to_off(Elf *e, uint64_t vaddr, uint64_t *off)
{
	size_t n;
	if (elf_getphdrnum(e, &n) != 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		GElf_Phdr ph;
		if (gelf_getphdr(e, (int)i, &ph) && ph.p_type == PT_LOAD && (ph.p_flags & PF_X) &&
		    vaddr >= ph.p_vaddr && vaddr < ph.p_vaddr + ph.p_filesz) {
			*off = vaddr - ph.p_vaddr + ph.p_offset;
			return 0;
		}
	}
	return -1;
}

/* Bytes of the file at an address of an executable segment (NULL when outside). */
static const uint8_t *code_at(Elf *e, uint64_t vaddr, size_t *avail)
{
	uint64_t off;
	size_t size;
	char *img = elf_rawfile(e, &size);
	if (!img || vaddr_to_off(e, vaddr, &off) != 0 || off >= size)
		return NULL;
	size_t n;
	elf_getphdrnum(e, &n);
	for (size_t i = 0; i < n; i++) {
		GElf_Phdr ph;
		if (gelf_getphdr(e, (int)i, &ph) && ph.p_type == PT_LOAD && (ph.p_flags & PF_X) &&
		    vaddr >= ph.p_vaddr && vaddr < ph.p_vaddr + ph.p_filesz) {
			uint64_t end = ph.p_offset + ph.p_filesz;
			*avail = (size_t)((end < size ? end : size) - off);
			return (const uint8_t *)img + off;
		}
	}
	return NULL;
}

/*
 * File offsets (in main) of a static function and of its whole-function GCC
 * clones: 3.8's PyEval_RestoreThread calls take_gil.constprop.0, not
 * take_gil.  Partial clones (.part, .cold) are not entries and are left out.
 */
static size_t func_and_clones(Elf *syms, Elf *main, const char *base, uint64_t *offs, size_t cap)
{
	Elf_Scn *s = find_section(syms, NULL, SHT_SYMTAB);
	GElf_Shdr sh;
	Elf_Data *d = s ? elf_getdata(s, NULL) : NULL;
	if (!d || !gelf_getshdr(s, &sh) || !sh.sh_entsize)
		return 0;
	size_t n = 0, blen = strlen(base);
	for (size_t i = 0; i < sh.sh_size / sh.sh_entsize && n < cap; i++) {
		GElf_Sym sym;
		if (!gelf_getsym(d, (int)i, &sym) || GELF_ST_TYPE(sym.st_info) != STT_FUNC ||
		    !sym.st_value)
			continue;
		const char *nm = elf_strptr(syms, sh.sh_link, sym.st_name);
		if (!nm || strncmp(nm, base, blen) != 0 ||
		    (nm[blen] && strncmp(nm + blen, ".constprop.", 11) != 0 &&
		     strncmp(nm + blen, ".isra.", 6) != 0))
			continue;
		uint64_t off;
		if (vaddr_to_off(main, sym.st_value, &off) != 0)
			continue;
		bool dup = false;
		for (size_t k = 0; k < n; k++)
			dup |= offs[k] == off;
		if (!dup)
			offs[n++] = off;
	}
	return n;
}

/* take_gil and drop_gil from a symbol table whose addresses are those of main. */
static int from_symtab(Elf *syms, Elf *main, struct fp_gil_probes *p)
{
	p->ntake = func_and_clones(syms, main, "take_gil", p->take_off, FP_GIL_MAX_TAKE_SITES);
	p->ndrop = func_and_clones(syms, main, "drop_gil", p->drop_off, FP_GIL_MAX_DROP_SITES);
	return p->ntake && p->ndrop ? 0 : -1;
}

/* MiniDebugInfo: an xz-compressed ELF holding a .symtab of the functions. */
static int from_minidebuginfo(Elf *main, struct fp_gil_probes *p)
{
	Elf_Scn *s = find_section(main, ".gnu_debugdata", SHT_PROGBITS);
	Elf_Data *d = s ? elf_rawdata(s, NULL) : NULL;
	if (!d || !d->d_size)
		return -1;
	size_t cap = d->d_size * 8 < MAX_DEBUGDATA ? d->d_size * 8 : MAX_DEBUGDATA;
	uint8_t *out = NULL;
	size_t outpos = 0;
	int rc = -1;
	for (;; cap *= 2) {
		free(out);
		out = malloc(cap);
		if (!out)
			return -1;
		uint64_t memlimit = UINT64_MAX;
		size_t inpos = 0;
		outpos = 0;
		lzma_ret lr = lzma_stream_buffer_decode(&memlimit, 0, NULL, d->d_buf, &inpos,
							d->d_size, out, &outpos, cap);
		if (lr == LZMA_OK)
			break;
		if (lr != LZMA_BUF_ERROR || cap >= MAX_DEBUGDATA) {
			free(out);
			return -1;
		}
	}
	Elf *mini = elf_memory((char *)out, outpos);
	if (mini) {
		rc = from_symtab(mini, main, p);
		elf_end(mini);
	}
	free(out);
	return rc;
}

/* A separate debug file by build id, then by .gnu_debuglink, as gdb looks for them. */
static int from_debugfile(pid_t pid, Elf *main, const char *binary, struct fp_gil_probes *p)
{
	char cands[3][PATH_MAX];
	size_t nc = 0;
	Elf_Scn *s = find_section(main, ".note.gnu.build-id", SHT_NOTE);
	Elf_Data *d = s ? elf_getdata(s, NULL) : NULL;
	if (d) {
		GElf_Nhdr nh;
		size_t noff, doff;
		if (gelf_getnote(d, 0, &nh, &noff, &doff) && nh.n_type == NT_GNU_BUILD_ID &&
		    nh.n_descsz >= 2 && nh.n_descsz <= 64) {
			const uint8_t *id = (const uint8_t *)d->d_buf + doff;
			char hex[130] = "";
			for (size_t i = 1; i < nh.n_descsz; i++)
				snprintf(hex + 2 * (i - 1), 3, "%02x", id[i]);
			snprintf(cands[nc++], PATH_MAX, "/usr/lib/debug/.build-id/%02x/%s.debug",
				 id[0], hex);
		}
	}
	s = find_section(main, ".gnu_debuglink", SHT_PROGBITS);
	d = s ? elf_getdata(s, NULL) : NULL;
	if (d && d->d_size > 4 && memchr(d->d_buf, 0, d->d_size)) {
		char dir[PATH_MAX];
		snprintf(dir, sizeof(dir), "%s", binary);
		char *slash = strrchr(dir, '/');
		if (slash)
			*slash = 0;
		snprintf(cands[nc++], PATH_MAX, "/usr/lib/debug%.2000s/%.255s", dir,
			 (const char *)d->d_buf);
		snprintf(cands[nc++], PATH_MAX, "%.2000s/.debug/%.255s", dir,
			 (const char *)d->d_buf);
	}
	for (size_t i = 0; i < nc; i++) {
		char path[PATH_MAX];
		fp_proc_path(pid, cands[i], path, sizeof(path));
		int fd;
		Elf *dbg = elf_open_fd(path, &fd);
		if (!dbg)
			continue;
		int rc = from_symtab(dbg, main, p);
		elf_end(dbg);
		close(fd);
		if (rc == 0)
			return 0;
	}
	return -1;
}

/* Target of the first rel32 call (e8) in the n bytes at code (address va), or 0. */
static uint64_t first_call(const uint8_t *code, size_t n, uint64_t va, size_t *at)
{
	for (size_t i = 0; i + 5 <= n; i++) {
		if (code[i] != 0xe8)
			continue;
		int32_t rel;
		memcpy(&rel, code + i + 1, 4);
		if (at)
			*at = i;
		return va + i + 5 + (int64_t)rel;
	}
	return 0;
}

/*
 * An out-of-line drop_gil: locks the GIL mutex and signals the GIL condition
 * within its first instructions.
 */
static bool is_drop_function(Elf *main, uint64_t fn, uint64_t lock, uint64_t signal_fn)
{
	size_t n = 0, at = 0;
	const uint8_t *code = fn ? code_at(main, fn, &n) : NULL;
	if (!code || n < 128 || first_call(code, 64, fn, &at) != lock)
		return false;
	return first_call(code + at + 5, 48, fn + at + 5, NULL) == signal_fn;
}

/*
 * Stripped non-PIE executables (Debian's /usr/bin/python3.11):
 *  - take_gil is out of line; the first call in the exported
 *    PyEval_RestoreThread is to it (it must land in code, not on an
 *    exported function).
 *  - drop_gil is inlined wherever LTO chose to: its inlined body starts with
 *    `mov $gil_mutex,%edi; call pthread_mutex_lock` and signals gil->cond
 *    right after; PyEval_SaveThread's first such pair gives the mutex
 *    address and both call targets, and every copy of the same sequence in
 *    the executable segment is a drop site.  The probe sits on the call of
 *    pthread_mutex_lock, just before the GIL is released: a hold ends there.
 *    A call is emulated by the kernel's uprobe code; a probed `mov` would be
 *    single-stepped out of line, which measured ten times dearer.
 *  - drop_gil also exists out of line: the function called right before a
 *    call to take_gil (the eval loop's forced switch) that locks and signals
 *    the same way.  Its entry probe covers every other caller too: thread
 *    exit (_PyThreadState_DeleteCurrent), PyEval_ReleaseThread and
 *    PyEval_ReleaseLock (tail calls), and take_gil's drop for a thread that
 *    must exit.
 * A short scan for a byte pattern can only be trusted in small functions, so
 * the byte windows are bounded.
 *
 * What a copy compiled differently (the mutex address in a register, say)
 * would look like is unknown, but every release signals gil->cond: so each
 * call of pthread_cond_signal must be one of the copies above or one of
 * take_gil's own (it signals switch_cond), else the note says how many are
 * unexplained.  In 3.11.2 all 8 are explained (6 releases, 2 in take_gil):
 * the probe set is complete there, and a mixed workload's holds match each
 * thread's CPU time (tests/integration/test_gilstat.py).  A release missed
 * anyway is counted at run time (releases_unseen, bpf/gil.bpf.c).
 */
static int from_heuristic(Elf *main, struct fp_gil_probes *p, char *why, size_t whylen)
{
	GElf_Ehdr eh;
	if (!gelf_getehdr(main, &eh) || eh.e_type != ET_EXEC) {
		snprintf(why, whylen,
			 "no take_gil/drop_gil symbols, and the stripped-binary heuristic "
			 "only knows non-PIE executables");
		return -1;
	}
	uint64_t restore = func_sym(main, SHT_DYNSYM, "PyEval_RestoreThread");
	uint64_t save = func_sym(main, SHT_DYNSYM, "PyEval_SaveThread");
	size_t n = 0;
	const uint8_t *code = restore ? code_at(main, restore, &n) : NULL;
	uint64_t take = code ? first_call(code, n < 64 ? n : 64, restore, NULL) : 0;
	/* take_gil is static: a call to an exported function is something else. */
	if (!take || is_exported(main, take) || vaddr_to_off(main, take, &p->take_off[0]) != 0) {
		snprintf(why, whylen,
			 "no take_gil symbol and no call to it found in PyEval_RestoreThread");
		return -1;
	}
	p->ntake = 1;
	p->ndrop = 0;
	code = save ? code_at(main, save, &n) : NULL;
	uint32_t mutex = 0;
	uint64_t lock = 0, signal_fn = 0;
	for (size_t i = 0; code && i + 10 <= n && i < 256; i++) {
		if (code[i] != 0xbf || code[i + 5] != 0xe8)
			continue;
		memcpy(&mutex, code + i + 1, 4);
		lock = first_call(code + i + 5, 5, save + i + 5, NULL);
		signal_fn = first_call(code + i + 10, 48, save + i + 10, NULL);
		break;
	}
	if (!lock || !signal_fn) {
		snprintf(why, whylen,
			 "no drop_gil symbol and its inlined copy in PyEval_SaveThread was not "
			 "recognised");
		return -1;
	}
	/* The whole executable segment holding PyEval_SaveThread, from its start. */
	uint64_t text_va = save;
	size_t avail, nseg;
	elf_getphdrnum(main, &nseg);
	for (size_t s = 0; s < nseg; s++) {
		GElf_Phdr ph;
		if (gelf_getphdr(main, (int)s, &ph) && ph.p_type == PT_LOAD &&
		    (ph.p_flags & PF_X) && save >= ph.p_vaddr && save < ph.p_vaddr + ph.p_filesz)
			text_va = ph.p_vaddr;
	}
	code = code_at(main, text_va, &avail);
	uint64_t outline = 0, sites[FP_GIL_MAX_DROP_SITES];
	size_t ninline = 0;
	for (size_t i = 0; code && i + 10 + 48 <= avail; i++) {
		uint64_t site = 0;
		uint32_t imm;
		memcpy(&imm, code + i + 1, 4);
		if (code[i] == 0xbf && code[i + 5] == 0xe8 && imm == mutex &&
		    first_call(code + i + 5, 5, text_va + i + 5, NULL) == lock &&
		    first_call(code + i + 10, 48, text_va + i + 10, NULL) == signal_fn) {
			site = text_va + i + 5;
			ninline++;
		} else if (!outline && i >= 16 && code[i] == 0xe8 &&
			   first_call(code + i, 5, text_va + i, NULL) == take) {
			/* A call a few bytes before (arguments set up in between). */
			for (size_t k = 5; k <= 16 && !site; k++) {
				uint64_t x = code[i - k] == 0xe8 ? first_call(code + i - k, 5,
									      text_va + i - k, NULL)
								 : 0;
				if (is_drop_function(main, x, lock, signal_fn))
					site = outline = x;
			}
		}
		if (!site)
			continue;
		if (p->ndrop == FP_GIL_MAX_DROP_SITES) {
			snprintf(why, whylen,
				 "no drop_gil symbol and more than %d candidate inlined copies: "
				 "the heuristic does not fit this build",
				 FP_GIL_MAX_DROP_SITES);
			return -1;
		}
		if (vaddr_to_off(main, site, &p->drop_off[p->ndrop]) == 0)
			sites[p->ndrop++] = site;
	}
	if (!p->ndrop) {
		snprintf(why, whylen, "no drop_gil symbol and no inlined copy of it found");
		return -1;
	}
	size_t signals = 0, unexplained = 0;
	for (size_t i = 0; i + 5 <= avail; i++) {
		if (code[i] != 0xe8 || first_call(code + i, 5, text_va + i, NULL) != signal_fn)
			continue;
		uint64_t va = text_va + i;
		bool known = va >= take && va < take + TAKE_GIL_BYTES;
		for (size_t k = 0; k < p->ndrop && !known; k++)
			known = va > sites[k] && va < sites[k] + DROP_SIGNAL_BYTES;
		signals++;
		unexplained += !known;
	}
	int len = snprintf(p->note, sizeof(p->note),
			   "stripped binary: take_gil found through PyEval_RestoreThread; drop_gil "
			   "%s and inlined at %zu sites; ",
			   outline ? "out of line once" : "not found out of line", ninline);
	if (!unexplained)
		snprintf(p->note + len, sizeof(p->note) - (size_t)len,
			 "all %zu calls of pthread_cond_signal are those or take_gil's: no other "
			 "release found",
			 signals);
	else
		snprintf(p->note + len, sizeof(p->note) - (size_t)len,
			 "%zu of %zu calls of pthread_cond_signal unexplained: a release there is "
			 "missed (its hold is not counted)",
			 unexplained, signals);
	return 0;
}

int fp_gil_resolve(pid_t pid, const char *binary, struct fp_gil_probes *p, char *err, size_t errlen)
{
	memset(p, 0, sizeof(*p));
	fp_proc_path(pid, binary, p->path, sizeof(p->path));
	elf_version(EV_CURRENT);
	int fd;
	Elf *main = elf_open_fd(p->path, &fd);
	if (!main) {
		snprintf(err, errlen, "gilstat: opening %s failed: %s", binary,
			 errno ? strerror(errno) : elf_errmsg(-1));
		return -1;
	}
	char why[200] = "";
	int rc = 0;
	if (from_symtab(main, main, p) == 0)
		p->symbols = "symtab";
	else if (from_minidebuginfo(main, p) == 0)
		p->symbols = "minidebuginfo";
	else if (from_debugfile(pid, main, binary, p) == 0)
		p->symbols = "debugfile";
	else if (from_heuristic(main, p, why, sizeof(why)) == 0)
		p->symbols = "heuristic";
	else
		rc = -1;
	elf_end(main);
	close(fd);
	if (rc)
		snprintf(err, errlen, "gilstat: cannot place the GIL probes in %s: %s", binary,
			 why);
	return rc;
}

/* ---- registry: the running gilstats, for `gilstat off` ---- */

struct running {
	pid_t pid;
	atomic_bool *stop;
	struct running *next;
};

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t reg_changed = PTHREAD_COND_INITIALIZER;
static struct running *reg_head;

static void reg_add(struct running *e)
{
	pthread_mutex_lock(&reg_lock);
	e->next = reg_head;
	reg_head = e;
	pthread_mutex_unlock(&reg_lock);
}

static void reg_remove(struct running *e)
{
	pthread_mutex_lock(&reg_lock);
	for (struct running **pp = &reg_head; *pp; pp = &(*pp)->next)
		if (*pp == e) {
			*pp = e->next;
			break;
		}
	pthread_cond_broadcast(&reg_changed);
	pthread_mutex_unlock(&reg_lock);
}

/*
 * Stops every gilstat of pid and waits (a few seconds at most) until their
 * probes are gone, so that `off` answering means the target runs unprobed.
 */
static int reg_stop(pid_t pid)
{
	int n = 0;
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 5;
	pthread_mutex_lock(&reg_lock);
	for (struct running *e = reg_head; e; e = e->next)
		if (e->pid == pid) {
			atomic_store(e->stop, true);
			n++;
		}
	for (;;) {
		bool left = false;
		for (struct running *e = reg_head; e; e = e->next)
			left |= e->pid == pid;
		if (!left || pthread_cond_timedwait(&reg_changed, &reg_lock, &until) == ETIMEDOUT)
			break;
	}
	pthread_mutex_unlock(&reg_lock);
	return n;
}

/* ---- one gilstat session ---- */

struct thread_prev {
	uint32_t tid;
	struct fp_gil_stat s;
};

struct session {
	struct fp_req *r;
	const struct fp_python *py;
	struct gil_bpf *skel;
	double take_ms, hold_ms, interval_s;
	long max_threads;
	/* tid -> name, refreshed each interval */
	struct fp_stack names;
	struct fp_task *tasks;
	size_t ntasks;
	struct thread_prev *prev;
	size_t nprev;
	unsigned warnings_sent, warnings_suppressed;
	uint64_t lost_prev;
	int emit_rc;
};

static void refresh_names(struct session *s)
{
	fp_stack_free(&s->names);
	free(s->tasks);
	s->tasks = NULL;
	s->ntasks = 0;
	fp_proc_tasks(s->r->pid, &s->tasks, &s->ntasks);
	struct fp_mem_proc mp;
	struct fp_mem mem;
	char err[256];
	fp_mem_proc_init(&mem, &mp, s->r->pid);
	/* Without Python's names the kernel's comm still names every thread. */
	if (fp_stack_read(s->py, &mem, 0, &s->names, err, sizeof(err)) != 0)
		memset(&s->names, 0, sizeof(s->names));
	fp_mem_proc_close(&mp);
}

static const char *thread_name(struct session *s, uint32_t tid)
{
	for (size_t i = 0; i < s->names.nthreads; i++)
		if (s->names.threads[i].tid == (pid_t)tid && s->names.threads[i].name[0])
			return s->names.threads[i].name;
	for (size_t i = 0; i < s->ntasks; i++)
		if (s->tasks[i].tid == (pid_t)tid)
			return s->tasks[i].comm;
	return "?";
}

static bool task_alive(struct session *s, uint32_t tid)
{
	for (size_t i = 0; i < s->ntasks; i++)
		if (s->tasks[i].tid == (pid_t)tid)
			return true;
	return false;
}

static int on_warning(void *ctx, void *data, size_t len)
{
	struct session *s = ctx;
	if (len < sizeof(struct fp_gil_warning) || s->emit_rc)
		return 0;
	if (s->warnings_sent >= MAX_WARNINGS_PER_INTERVAL) {
		s->warnings_suppressed++;
		return 0;
	}
	const struct fp_gil_warning *w = data;
	bool wait = w->kind == FP_GIL_WAIT;
	json_t *ev = fp_msg_event(s->r->id, "gil_warning");
	json_object_set_new(ev, "tid", json_integer(w->tid));
	json_object_set_new(ev, "name", json_string(thread_name(s, w->tid)));
	json_object_set_new(ev, "kind", json_string(wait ? "wait" : "hold"));
	json_object_set_new(ev, "ms", json_real((double)(w->end_ns - w->start_ns) / 1e6));
	json_object_set_new(ev, "threshold_ms", json_real(wait ? s->take_ms : s->hold_ms));
	json_object_set_new(ev, "start_ns", json_integer((json_int_t)w->start_ns));
	json_object_set_new(ev, "end_ns", json_integer((json_int_t)w->end_ns));
	s->warnings_sent++;
	s->emit_rc = fp_req_emit(s->r, ev);
	return 0;
}

struct row {
	uint32_t tid;
	struct fp_gil_stat d; /* this interval */
};

static int row_cmp(const void *a, const void *b)
{
	const struct row *x = a, *y = b;
	uint64_t tx = x->d.wait_ns + x->d.hold_ns, ty = y->d.wait_ns + y->d.hold_ns;
	return tx < ty ? 1 : tx > ty ? -1 : (x->tid > y->tid) - (x->tid < y->tid);
}

static struct fp_gil_stat *prev_of(struct session *s, uint32_t tid)
{
	for (size_t i = 0; i < s->nprev; i++)
		if (s->prev[i].tid == tid)
			return &s->prev[i].s;
	struct thread_prev *nv = realloc(s->prev, (s->nprev + 1) * sizeof(*nv));
	if (!nv)
		return NULL;
	s->prev = nv;
	memset(&nv[s->nprev], 0, sizeof(*nv));
	nv[s->nprev].tid = tid;
	return &nv[s->nprev++].s;
}

static json_t *ms(uint64_t ns)
{
	return json_real((double)ns / 1e6);
}

/* One report: what each thread did since the previous one. */
static int report(struct session *s, double elapsed_s)
{
	int fd = bpf_map__fd(s->skel->maps.gil_stats);
	struct row *rows = NULL;
	size_t nrows = 0, cap = 0;
	uint64_t switches = 0, unseen = 0;
	uint32_t key, next, *cur = NULL;
	uint32_t dead[256];
	size_t ndead = 0;
	while (bpf_map_get_next_key(fd, cur, &next) == 0) {
		key = next;
		cur = &key;
		struct fp_gil_stat st, *p = NULL;
		if (bpf_map_lookup_elem(fd, &key, &st) != 0 || !(p = prev_of(s, key)))
			continue;
		struct row rw = {.tid = key,
				 .d = {.takes = st.takes - p->takes,
				       .wait_ns = st.wait_ns - p->wait_ns,
				       .drops = st.drops - p->drops,
				       .holds = st.holds - p->holds,
				       .hold_ns = st.hold_ns - p->hold_ns,
				       .unseen = st.unseen - p->unseen}};
		*p = st;
		switches += rw.d.takes;
		unseen += rw.d.unseen;
		/* A thread that is gone leaves its map slot free for new ones. */
		if (!task_alive(s, key) && ndead < sizeof(dead) / sizeof(dead[0]))
			dead[ndead++] = key;
		if (!rw.d.takes && !rw.d.drops)
			continue;
		if (nrows == cap) {
			cap = cap ? cap * 2 : 16;
			struct row *nv = realloc(rows, cap * sizeof(*nv));
			if (!nv)
				break;
			rows = nv;
		}
		rows[nrows++] = rw;
	}
	for (size_t i = 0; i < ndead; i++)
		bpf_map_delete_elem(fd, &dead[i]);
	if (nrows)
		qsort(rows, nrows, sizeof(*rows), row_cmp);
	size_t shown =
	    s->max_threads > 0 && (size_t)s->max_threads < nrows ? (size_t)s->max_threads : nrows;
	json_t *threads = json_array();
	for (size_t i = 0; i < shown; i++) {
		const struct fp_gil_stat *d = &rows[i].d;
		json_t *t = json_object();
		json_object_set_new(t, "tid", json_integer(rows[i].tid));
		json_object_set_new(t, "name", json_string(thread_name(s, rows[i].tid)));
		json_object_set_new(t, "takes", json_integer((json_int_t)d->takes));
		json_object_set_new(t, "wait_total_ms", ms(d->wait_ns));
		json_object_set_new(t, "wait_avg_ms", ms(d->takes ? d->wait_ns / d->takes : 0));
		json_object_set_new(t, "hold_total_ms", ms(d->hold_ns));
		json_object_set_new(t, "hold_avg_ms", ms(d->holds ? d->hold_ns / d->holds : 0));
		json_object_set_new(t, "drops", json_integer((json_int_t)d->drops));
		json_object_set_new(t, "unseen", json_integer((json_int_t)d->unseen));
		json_array_append_new(threads, t);
	}
	free(rows);
	double rate = elapsed_s > 0 ? (double)switches / elapsed_s : 0;
	uint64_t lost = s->skel->bss->warnings_lost;
	json_t *ev = fp_msg_event(s->r->id, "gilstat");
	json_object_set_new(ev, "interval_s", json_real(elapsed_s));
	json_object_set_new(ev, "threads", threads);
	json_object_set_new(ev, "threads_omitted", json_integer((json_int_t)(nrows - shown)));
	json_object_set_new(ev, "switches_per_s", json_real(rate));
	json_object_set_new(ev, "releases_unseen", json_integer((json_int_t)unseen));
	json_object_set_new(
	    ev, "warnings_lost",
	    json_integer((json_int_t)(lost - s->lost_prev + s->warnings_suppressed)));
	s->lost_prev = lost;
	s->warnings_sent = s->warnings_suppressed = 0;
	double share = rate * GIL_PAIR_COST_NS / 1e9;
	if (share > GIL_COST_LIMIT) {
		char msg[200];
		snprintf(
		    msg, sizeof(msg),
		    "the GIL changes hands %.0f times/s: the probes cost about %.0f%% of a CPU "
		    "(%.1f us per switch); stop gilstat when done",
		    rate, share * 100, GIL_PAIR_COST_NS / 1e3);
		json_object_set_new(ev, "cost_warning", json_string(msg));
	} else {
		json_object_set_new(ev, "cost_warning", json_null());
	}
	return fp_req_emit(s->r, ev);
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static bool target_gone(pid_t pid)
{
	struct fp_proc_info info;
	return fp_proc_info(pid, &info) != 0 || info.state == 'Z' || info.state == 'X';
}

/* A number argument in [lo, hi], or dflt when absent; -1 (answered) when bad. */
static int num_arg(struct fp_req *r, const char *name, double dflt, double lo, double hi,
		   double *out)
{
	json_t *v = json_object_get(r->args, name);
	*out = dflt;
	if (!v)
		return 0;
	if (!json_is_number(v) || json_number_value(v) < lo || json_number_value(v) > hi)
		return fp_req_fail(r, "usage", FP_EXIT_USAGE,
				   "gilstat: %s must be a number from %g to %g", name, lo, hi);
	*out = json_number_value(v);
	return 0;
}

static struct bpf_link *attach(struct fp_req *r, struct bpf_program *prog, const char *path,
			       uint64_t off, bool ret, const char *what)
{
	LIBBPF_OPTS(bpf_uprobe_opts, o, .retprobe = ret);
	/*
	 * Bound to the target, the breakpoint is written into its address space only
	 * (and fires for all its threads, which share it): other processes running the
	 * same libpython do not trap.  A forked child inherits breakpoints until the
	 * kernel drops them lazily, hence the tgid check in BPF as well.
	 */
	struct bpf_link *l = bpf_program__attach_uprobe_opts(prog, r->pid, path, (size_t)off, &o);
	if (!l)
		fp_req_fail(r, "attach", FP_EXIT_ATTACH,
			    "gilstat: attaching the %s probe at offset 0x%llx of %s failed: %s",
			    what, (unsigned long long)off, path, strerror(errno));
	return l;
}

static int run(struct session *s, const struct fp_gil_probes *p, atomic_bool *stop)
{
	struct fp_req *r = s->r;
	struct bpf_link *links[2 * FP_GIL_MAX_TAKE_SITES + FP_GIL_MAX_DROP_SITES] = {0};
	size_t nlinks = 0;
	struct ring_buffer *rb = NULL;
	int rc = -1;
	/* p has at least one take and one drop site: a failed attach is always the last link. */
	for (size_t i = 0; i < p->ntake && (!nlinks || links[nlinks - 1]); i++) {
		links[nlinks++] = attach(r, s->skel->progs.gil_take_enter, p->path, p->take_off[i],
					 false, "take_gil entry");
		if (links[nlinks - 1])
			links[nlinks++] = attach(r, s->skel->progs.gil_take_return, p->path,
						 p->take_off[i], true, "take_gil return");
	}
	for (size_t i = 0; i < p->ndrop && links[nlinks - 1]; i++)
		links[nlinks++] = attach(r, s->skel->progs.gil_drop_enter, p->path, p->drop_off[i],
					 false, "drop_gil");
	if (!links[nlinks - 1])
		goto out;
	rb = ring_buffer__new(bpf_map__fd(s->skel->maps.gil_warnings), on_warning, s, NULL);
	if (!rb) {
		fp_req_fail(r, "attach", FP_EXIT_CMD,
			    "gilstat: setting up the warning ring buffer failed: %s",
			    strerror(errno));
		goto out;
	}
	json_t *ev = fp_msg_event(r->id, "gilstat_start");
	json_object_set_new(ev, "pid", json_integer(r->pid));
	json_object_set_new(ev, "version", json_string(s->py->version));
	json_object_set_new(ev, "binary", json_string(s->py->binary));
	json_object_set_new(ev, "symbols", json_string(p->symbols));
	json_object_set_new(ev, "take_sites", json_integer((json_int_t)p->ntake));
	json_object_set_new(ev, "drop_sites", json_integer((json_int_t)p->ndrop));
	json_object_set_new(ev, "note", p->note[0] ? json_string(p->note) : json_null());
	s->emit_rc = fp_req_emit(r, ev);

	const char *reason = "cancelled";
	double last = now_s();
	while (!s->emit_rc) {
		if (ring_buffer__poll(rb, POLL_MS) < 0 && errno != EINTR)
			break;
		double t = now_s();
		bool gone = target_gone(r->pid);
		bool stopping = fp_req_cancelled(r) || atomic_load(stop) || gone;
		if (stopping || t - last >= s->interval_s) {
			refresh_names(s);
			/* Warnings first: they happened before the report's end. */
			ring_buffer__consume(rb);
			if (!s->emit_rc && (t - last >= 0.5 || !stopping))
				s->emit_rc = report(s, t - last);
			last = t;
		}
		if (stopping) {
			reason = gone ? "exited" : atomic_load(stop) ? "off" : "cancelled";
			break;
		}
	}
	if (!s->emit_rc) {
		ev = fp_msg_event(r->id, "gilstat_stopped");
		json_object_set_new(ev, "reason", json_string(reason));
		fp_req_emit(r, ev);
	}
	rc = 0;
out:
	ring_buffer__free(rb);
	for (size_t i = 0; i < nlinks; i++)
		bpf_link__destroy(links[i]);
	return rc;
}

int fp_cmd_gilstat(struct fp_req *r)
{
	if (fp_req_flag(r, "off")) {
		if (fp_req_authorize(r))
			return -1;
		json_t *ev = fp_msg_event(r->id, "gilstat_off");
		json_object_set_new(ev, "stopped", json_integer(reg_stop(r->pid)));
		return fp_req_emit(r, ev);
	}
	struct session s = {.r = r};
	double threads;
	if (num_arg(r, "take_ms", 5, 0, 3600e3, &s.take_ms) ||
	    num_arg(r, "hold_ms", 5, 0, 3600e3, &s.hold_ms) ||
	    num_arg(r, "interval_s", 5, 0.1, 3600, &s.interval_s) ||
	    num_arg(r, "max_threads", 0, 0, 1e6, &threads))
		return -1;
	s.max_threads = (long)threads;
	struct fp_python py;
	if (fp_req_python(r, &py))
		return -1;
	s.py = &py;
	struct fp_gil_probes probes;
	char err[512];
	if (fp_gil_resolve(r->pid, py.binary, &probes, err, sizeof(err)) != 0)
		return fp_req_fail(r, "no_gil_symbols", FP_EXIT_CMD, "%s", err);

	s.skel = gil_bpf__open();
	if (!s.skel)
		return fp_req_fail(r, "bpf", FP_EXIT_CMD,
				   "gilstat: opening the BPF object failed: %s", strerror(errno));
	s.skel->rodata->target_tgid = (uint32_t)r->pid;
	s.skel->rodata->wait_warn_ns = (uint64_t)(s.take_ms * 1e6);
	s.skel->rodata->hold_warn_ns = (uint64_t)(s.hold_ms * 1e6);
	int rc = gil_bpf__load(s.skel);
	if (rc) {
		gil_bpf__destroy(s.skel);
		return fp_req_fail(r, "bpf", FP_EXIT_CMD,
				   "gilstat: loading the BPF programs failed: %s (fpd needs root)",
				   strerror(-rc));
	}
	atomic_bool stop;
	atomic_init(&stop, false);
	struct running entry = {.pid = r->pid, .stop = &stop};
	reg_add(&entry);
	refresh_names(&s);
	rc = run(&s, &probes, &stop);
	gil_bpf__destroy(s.skel);
	reg_remove(&entry);
	fp_stack_free(&s.names);
	free(s.tasks);
	free(s.prev);
	return rc;
}
