/*
 * Code objects decoded once: file, function, first line, line table and
 * (optionally) local names, keyed by address.  `stack` keeps one cache for a
 * request; the sampler keeps one for a whole profile, so it revalidates an
 * entry (once per epoch) before trusting it: the code object at an address
 * may have died and another object taken its place.
 */
#ifndef FP_PY_CODECACHE_H
#define FP_PY_CODECACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "object.h"
#include "python.h"

struct fp_code_info {
	uint64_t addr;
	uint64_t filename_obj; /* co_filename's address: checked with ob_type on revalidation */
	uint32_t epoch;	       /* the cache epoch this entry was last checked in */
	char *file;
	char *func;
	int firstlineno;
	uint32_t flags; /* co_flags, 0 where the layout does not have it */
	uint8_t *table;
	size_t tlen;
	char **names;	/* local names in localsplus order, when the cache reads them */
	uint8_t *kinds; /* 3.11+: CO_FAST_* per local; NULL before */
	size_t ncells;	/* <= 3.10: first index of cell/free variables */
	size_t nnames;
};

struct fp_codecache {
	const struct fp_python *py;
	struct fp_pyctx ctx;
	bool locals; /* also read local names */
	uint32_t epoch;
	struct fp_code_info *v; /* open addressing; addr 0 marks an empty slot */
	size_t cap, n;
};

static inline uint64_t fp_hash64(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	return x;
}

void fp_codecache_init(struct fp_codecache *cc, const struct fp_python *py,
		       const struct fp_mem *mem, bool locals);
void fp_codecache_free(struct fp_codecache *cc);

/* The decoded code object at addr, NULL when it is not one; a cached entry is trusted. */
const struct fp_code_info *fp_codecache_get(struct fp_codecache *cc, uint64_t addr);

/*
 * Like fp_codecache_get, but an entry not checked since the last
 * fp_codecache_new_epoch is first checked against the target (still a code
 * object, same filename object) and decoded again when it changed.
 */
const struct fp_code_info *fp_codecache_get_checked(struct fp_codecache *cc, uint64_t addr);
void fp_codecache_new_epoch(struct fp_codecache *cc);

/*
 * Current line of a frame at byte offset lasti (< 0: not started yet, the
 * first line); 0 when unknown.
 */
int fp_codecache_line(const struct fp_codecache *cc, const struct fp_code_info *ci, int64_t lasti);

#endif
