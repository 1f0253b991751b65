/*
 * Reading another process's memory.
 *
 * Every reader of target memory goes through struct fp_mem, so that the same
 * code walks a live process (process_vm_readv, falling back to /proc/PID/mem)
 * or a buffer (unit tests, fuzzers).  Everything read is untrusted: callers
 * bound every length and check every pointer they follow.
 */
#ifndef FP_MEM_H
#define FP_MEM_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct fp_mem {
	/* Reads len bytes at addr into buf: 0, or -errno (-EFAULT when unmapped). */
	int (*read)(void *ctx, uint64_t addr, void *buf, size_t len);
	void *ctx;
};

/* One piece of a batched read. */
struct fp_mem_req {
	uint64_t addr;
	void *buf;
	size_t len;
	int err; /* out: 0 or -errno */
};

int fp_mem_read(const struct fp_mem *m, uint64_t addr, void *buf, size_t len);
int fp_mem_read_u64(const struct fp_mem *m, uint64_t addr, uint64_t *out);
int fp_mem_read_i32(const struct fp_mem *m, uint64_t addr, int32_t *out);
/*
 * Reads a NUL-terminated string of at most cap-1 bytes; -ENAMETOOLONG, with
 * the truncated prefix in out, when it is longer.
 */
int fp_mem_read_cstr(const struct fp_mem *m, uint64_t addr, char *out, size_t cap);

/*
 * Several reads in one system call where the backend allows it.  Sets every
 * req's err; returns 0, or the err of the first request that failed.
 */
int fp_mem_readv(const struct fp_mem *m, struct fp_mem_req *reqs, size_t n);

/* A live process.  Takes no reference: the pid may die at any moment. */
struct fp_mem_proc {
	pid_t pid;
	int memfd; /* /proc/PID/mem, opened lazily when process_vm_readv is refused */
};
void fp_mem_proc_init(struct fp_mem *m, struct fp_mem_proc *p, pid_t pid);
void fp_mem_proc_close(struct fp_mem_proc *p);

/* A fake address space made of (address, bytes) regions, for tests and fuzzers. */
struct fp_mem_region {
	uint64_t addr;
	const uint8_t *data;
	size_t len;
};
struct fp_mem_buf {
	const struct fp_mem_region *regions;
	size_t n;
};
void fp_mem_buf_init(struct fp_mem *m, struct fp_mem_buf *b);

/*
 * A page cache in front of another reader, for one consistent pass over a
 * target: a stack walk touches many small structures that sit close
 * together (frames in the same data-stack chunk, a code object and its
 * strings), so one process_vm_readv per page replaces one per structure.
 * What it holds may be stale as soon as it is read: reset it before reading
 * again something that may have changed.
 */
#define FP_MEM_CACHE_SLOTS 256
#define FP_MEM_PAGE	   4096
struct fp_mem_cache {
	const struct fp_mem *under;
	uint64_t tags[FP_MEM_CACHE_SLOTS]; /* page address + 1; 0 marks an empty slot */
	uint8_t (*pages)[FP_MEM_PAGE];
};
/* 0, or -ENOMEM. */
int fp_mem_cache_init(struct fp_mem *m, struct fp_mem_cache *c, const struct fp_mem *under);
void fp_mem_cache_reset(struct fp_mem_cache *c);
void fp_mem_cache_free(struct fp_mem_cache *c);

/*
 * Fields of a structure already copied out of the target: unaligned-safe
 * loads at a layout offset (the caller has checked the offset is inside).
 */
static inline uint64_t fp_blob_u64(const uint8_t *blob, int32_t off)
{
	uint64_t v;
	__builtin_memcpy(&v, blob + off, sizeof(v));
	return v;
}

static inline int64_t fp_blob_i64(const uint8_t *blob, int32_t off)
{
	return (int64_t)fp_blob_u64(blob, off);
}

static inline int32_t fp_blob_i32(const uint8_t *blob, int32_t off)
{
	int32_t v;
	__builtin_memcpy(&v, blob + off, sizeof(v));
	return v;
}

#endif
