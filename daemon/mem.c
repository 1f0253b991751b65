/*
 * Reading another process's memory: process_vm_readv, /proc/PID/mem when the
 * kernel refuses it, and an in-memory fake address space for tests.
 */
#include "mem.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

/* process_vm_readv accepts at most IOV_MAX iovecs per call. */
#define BATCH_MAX 1024

/* A read never crosses this boundary in fp_mem_read_cstr: pages map independently. */
#define PAGE 4096u

static int range_ok(uint64_t addr, size_t len)
{
	return len <= (size_t)SSIZE_MAX && addr + len >= addr;
}

int fp_mem_read(const struct fp_mem *m, uint64_t addr, void *buf, size_t len)
{
	if (len == 0)
		return 0;
	if (!range_ok(addr, len))
		return -EFAULT;
	return m->read(m->ctx, addr, buf, len);
}

int fp_mem_read_u64(const struct fp_mem *m, uint64_t addr, uint64_t *out)
{
	return fp_mem_read(m, addr, out, sizeof(*out));
}

int fp_mem_read_i32(const struct fp_mem *m, uint64_t addr, int32_t *out)
{
	return fp_mem_read(m, addr, out, sizeof(*out));
}

/*
 * Chunks stop at page boundaries so that a short string just before an
 * unmapped page still reads; a chunk that fails is retried byte by byte for
 * backends whose regions end elsewhere.  Returns -ENAMETOOLONG, with the
 * truncated prefix in out, when no NUL comes within cap-1 bytes.
 */
int fp_mem_read_cstr(const struct fp_mem *m, uint64_t addr, char *out, size_t cap)
{
	if (cap == 0)
		return -EINVAL;
	size_t got = 0;
	while (got < cap - 1) {
		uint64_t a = addr + got;
		if (a < addr) {
			out[got] = '\0';
			return -EFAULT;
		}
		size_t chunk = PAGE - (size_t)(a % PAGE);
		if (chunk > cap - 1 - got)
			chunk = cap - 1 - got;
		int r = fp_mem_read(m, a, out + got, chunk);
		for (size_t i = 0; r < 0 && i < chunk; i++) {
			int rb = fp_mem_read(m, a + i, out + got + i, 1);
			if (rb < 0) {
				out[got + i] = '\0';
				return rb;
			}
			if (out[got + i] == '\0')
				return 0;
		}
		char *nul = memchr(out + got, '\0', chunk);
		if (nul)
			return 0;
		got += chunk;
	}
	out[cap - 1] = '\0';
	return -ENAMETOOLONG;
}

/* Live process */

static int memfd_open(struct fp_mem_proc *p)
{
	if (p->memfd >= 0)
		return 0;
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/mem", (int)p->pid);
	p->memfd = open(path, O_RDONLY | O_CLOEXEC);
	if (p->memfd < 0)
		return errno == ENOENT ? -ESRCH : -errno;
	return 0;
}

/* /proc/PID/mem reports an unmapped address as EIO; callers expect EFAULT. */
static int pread_full(int fd, uint64_t addr, void *buf, size_t len)
{
	size_t done = 0;
	while (done < len) {
		if (addr + done > (uint64_t)INT64_MAX)
			return -EFAULT;
		ssize_t r = pread(fd, (char *)buf + done, len - done, (off_t)(addr + done));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return errno == EIO ? -EFAULT : -errno;
		if (r == 0)
			return -EFAULT;
		done += (size_t)r;
	}
	return 0;
}

static int proc_read(void *ctx, uint64_t addr, void *buf, size_t len)
{
	struct fp_mem_proc *p = ctx;
	if (p->memfd < 0) {
		struct iovec local = {buf, len};
		struct iovec remote = {(void *)(uintptr_t)addr, len};
		ssize_t r = process_vm_readv(p->pid, &local, 1, &remote, 1, 0);
		if (r == (ssize_t)len)
			return 0;
		if (r >= 0)
			return -EFAULT;
		if (errno != EPERM && errno != ENOSYS)
			return -errno;
		int e = memfd_open(p);
		if (e < 0)
			return e;
	}
	return pread_full(p->memfd, addr, buf, len);
}

/*
 * One process_vm_readv for as many requests as it takes.  The kernel stops at
 * the first remote iovec it cannot read, so the request where it stopped is
 * read alone (which sets its err) and the batch resumes after it.
 */
static void proc_readv(struct fp_mem_proc *p, struct fp_mem_req *reqs, size_t n)
{
	struct iovec local[BATCH_MAX], remote[BATCH_MAX];
	size_t idx[BATCH_MAX];
	size_t i = 0;
	while (i < n) {
		size_t k = 0;
		for (; i < n && k < BATCH_MAX; i++) {
			struct fp_mem_req *q = &reqs[i];
			if (q->len == 0 || !range_ok(q->addr, q->len)) {
				q->err = q->len ? -EFAULT : 0;
				continue;
			}
			if (p->memfd >= 0) {
				q->err = proc_read(p, q->addr, q->buf, q->len);
				continue;
			}
			local[k] = (struct iovec){q->buf, q->len};
			remote[k] = (struct iovec){(void *)(uintptr_t)q->addr, q->len};
			idx[k++] = i;
		}
		if (k == 0)
			return;
		ssize_t r = process_vm_readv(p->pid, local, k, remote, k, 0);
		int e = r < 0 ? errno : 0;
		if (e == EPERM || e == ENOSYS || e == ESRCH) {
			/* proc_read switches to /proc/PID/mem, or fails fast on a dead pid. */
			for (size_t j = 0; j < k; j++)
				reqs[idx[j]].err =
				    e == ESRCH ? -ESRCH
					       : proc_read(p, reqs[idx[j]].addr, reqs[idx[j]].buf,
							   reqs[idx[j]].len);
			continue;
		}
		size_t left = r < 0 ? 0 : (size_t)r;
		size_t m = 0;
		for (; m < k && left >= local[m].iov_len; m++) {
			reqs[idx[m]].err = 0;
			left -= local[m].iov_len;
		}
		if (m == k)
			continue;
		struct fp_mem_req *f = &reqs[idx[m]];
		f->err = proc_read(p, f->addr, f->buf, f->len);
		i = idx[m] + 1;
	}
}

void fp_mem_proc_init(struct fp_mem *m, struct fp_mem_proc *p, pid_t pid)
{
	p->pid = pid;
	p->memfd = -1;
	m->read = proc_read;
	m->ctx = p;
}

void fp_mem_proc_close(struct fp_mem_proc *p)
{
	if (p->memfd >= 0)
		close(p->memfd);
	p->memfd = -1;
}

/* Fake address space */

static int buf_read(void *ctx, uint64_t addr, void *buf, size_t len)
{
	const struct fp_mem_buf *b = ctx;
	for (size_t i = 0; i < b->n; i++) {
		const struct fp_mem_region *r = &b->regions[i];
		if (addr >= r->addr && addr - r->addr <= r->len &&
		    len <= r->len - (addr - r->addr)) {
			memcpy(buf, r->data + (addr - r->addr), len);
			return 0;
		}
	}
	return -EFAULT;
}

void fp_mem_buf_init(struct fp_mem *m, struct fp_mem_buf *b)
{
	m->read = buf_read;
	m->ctx = b;
}

int fp_mem_readv(const struct fp_mem *m, struct fp_mem_req *reqs, size_t n)
{
	if (m->read == proc_read)
		proc_readv(m->ctx, reqs, n);
	else
		for (size_t i = 0; i < n; i++)
			reqs[i].err = fp_mem_read(m, reqs[i].addr, reqs[i].buf, reqs[i].len);
	for (size_t i = 0; i < n; i++)
		if (reqs[i].err)
			return reqs[i].err;
	return 0;
}

/*
 * Direct-mapped: a walk's working set is small and local, and a collision
 * only costs one more read.  A page that cannot be read whole (it is not
 * mapped) is read around: the request goes to the underlying reader as is.
 */
static int cache_read(void *ctx, uint64_t addr, void *buf, size_t len)
{
	struct fp_mem_cache *c = ctx;
	uint8_t *out = buf;
	while (len > 0) {
		uint64_t page = addr & ~(uint64_t)(FP_MEM_PAGE - 1);
		size_t off = (size_t)(addr - page);
		size_t n = FP_MEM_PAGE - off < len ? FP_MEM_PAGE - off : len;
		size_t slot = (size_t)(page / FP_MEM_PAGE) % FP_MEM_CACHE_SLOTS;
		if (c->tags[slot] != page + 1) {
			c->tags[slot] = 0;
			if (fp_mem_read(c->under, page, c->pages[slot], FP_MEM_PAGE) != 0)
				return fp_mem_read(c->under, addr, out, len);
			c->tags[slot] = page + 1;
		}
		memcpy(out, c->pages[slot] + off, n);
		out += n;
		addr += n;
		len -= n;
	}
	return 0;
}

int fp_mem_cache_init(struct fp_mem *m, struct fp_mem_cache *c, const struct fp_mem *under)
{
	memset(c, 0, sizeof(*c));
	c->under = under;
	c->pages = malloc(FP_MEM_CACHE_SLOTS * sizeof(*c->pages));
	if (!c->pages)
		return -ENOMEM;
	m->read = cache_read;
	m->ctx = c;
	return 0;
}

void fp_mem_cache_reset(struct fp_mem_cache *c)
{
	memset(c->tags, 0, sizeof(c->tags));
}

void fp_mem_cache_free(struct fp_mem_cache *c)
{
	free(c->pages);
	c->pages = NULL;
}
