#include "codecache.h"

#include <stdlib.h>
#include <string.h>

#include "code.h"

#define MAX_LINETABLE (1u << 20)
#define MAX_LOCALS    256
#define FUNC_NAME_MAX 256
#define FILE_NAME_MAX 1024

void fp_codecache_init(struct fp_codecache *cc, const struct fp_python *py,
		       const struct fp_mem *mem, bool locals)
{
	memset(cc, 0, sizeof(*cc));
	cc->py = py;
	cc->ctx.mem = mem;
	cc->ctx.l = &py->layout;
	cc->locals = locals;
}

static void info_free(struct fp_code_info *c)
{
	free(c->file);
	free(c->func);
	free(c->table);
	for (size_t i = 0; i < c->nnames; i++)
		free(c->names[i]);
	free(c->names);
	free(c->kinds);
	memset(c, 0, sizeof(*c));
}

void fp_codecache_free(struct fp_codecache *cc)
{
	for (size_t i = 0; i < cc->cap; i++)
		if (cc->v[i].addr)
			info_free(&cc->v[i]);
	free(cc->v);
	cc->v = NULL;
	cc->cap = cc->n = 0;
}

void fp_codecache_new_epoch(struct fp_codecache *cc)
{
	cc->epoch++;
}

static struct fp_code_info *slot(struct fp_codecache *cc, uint64_t addr)
{
	if (cc->n * 2 >= cc->cap) {
		size_t ncap = cc->cap ? cc->cap * 2 : 256;
		struct fp_code_info *nv = calloc(ncap, sizeof(*nv));
		if (!nv)
			return NULL;
		for (size_t i = 0; i < cc->cap; i++) {
			if (!cc->v[i].addr)
				continue;
			size_t j = fp_hash64(cc->v[i].addr) & (ncap - 1);
			while (nv[j].addr)
				j = (j + 1) & (ncap - 1);
			nv[j] = cc->v[i];
		}
		free(cc->v);
		cc->v = nv;
		cc->cap = ncap;
	}
	size_t j = fp_hash64(addr) & (cc->cap - 1);
	while (cc->v[j].addr && cc->v[j].addr != addr)
		j = (j + 1) & (cc->cap - 1);
	return &cc->v[j];
}

static char *read_str(struct fp_codecache *cc, uint64_t obj, size_t cap)
{
	char *buf = malloc(cap);
	if (buf && fp_py_str(&cc->ctx, obj, buf, cap) < 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

/* Names of a tuple of str, appended to names[*n..]. */
static void read_names(struct fp_codecache *cc, uint64_t tuple, char **names, size_t *n, size_t cap)
{
	uint64_t items[MAX_LOCALS];
	size_t len = 0;
	if (!tuple || fp_py_tuple(&cc->ctx, tuple, items, MAX_LOCALS, &len) < 0)
		return;
	for (size_t i = 0; i < len && i < MAX_LOCALS && *n < cap; i++) {
		char *s = read_str(cc, items[i], 128);
		names[(*n)++] = s ? s : strdup("?");
	}
}

static void read_local_names(struct fp_codecache *cc, const uint8_t *blob, struct fp_code_info *ci)
{
	const struct fp_layout *l = cc->ctx.l;
	ci->names = calloc(MAX_LOCALS, sizeof(char *));
	if (!ci->names)
		return;
	if (l->co_localsplusnames != FP_NO_FIELD) {
		read_names(cc, fp_blob_u64(blob, l->co_localsplusnames), ci->names, &ci->nnames,
			   MAX_LOCALS);
		uint8_t kinds[MAX_LOCALS];
		size_t klen = 0;
		uint64_t kobj = fp_blob_u64(blob, l->co_localspluskinds);
		if (fp_py_bytes(&cc->ctx, kobj, kinds, sizeof(kinds), &klen) == 0) {
			ci->kinds = calloc(MAX_LOCALS, 1);
			if (ci->kinds)
				memcpy(ci->kinds, kinds, klen < MAX_LOCALS ? klen : MAX_LOCALS);
		}
		return;
	}
	/* <= 3.10: f_localsplus holds varnames, then cellvars, then freevars. */
	read_names(cc, fp_blob_u64(blob, l->co_varnames), ci->names, &ci->nnames, MAX_LOCALS);
	int32_t nlocals = fp_blob_i32(blob, l->co_nlocals);
	if (nlocals >= 0 && (size_t)nlocals < ci->nnames)
		ci->nnames = (size_t)nlocals;
	ci->ncells = ci->nnames;
	read_names(cc, fp_blob_u64(blob, l->co_cellvars), ci->names, &ci->nnames, MAX_LOCALS);
	read_names(cc, fp_blob_u64(blob, l->co_freevars), ci->names, &ci->nnames, MAX_LOCALS);
}

/* Decodes the code object at addr into *c; -1 when it is not one. */
static int decode(struct fp_codecache *cc, uint64_t addr, struct fp_code_info *c)
{
	const struct fp_layout *l = cc->ctx.l;
	uint8_t blob[512];
	size_t sz = (size_t)l->co_size < sizeof(blob) ? (size_t)l->co_size : sizeof(blob);
	if (fp_mem_read(cc->ctx.mem, addr, blob, sz) != 0)
		return -1;
	if (cc->py->code_type && fp_blob_u64(blob, l->ob_type) != cc->py->code_type)
		return -1;

	memset(c, 0, sizeof(*c));
	c->addr = addr;
	c->epoch = cc->epoch;
	c->filename_obj = fp_blob_u64(blob, l->co_filename);
	c->file = read_str(cc, c->filename_obj, FILE_NAME_MAX);
	int32_t name_off = l->co_qualname != FP_NO_FIELD ? l->co_qualname : l->co_name;
	c->func = read_str(cc, fp_blob_u64(blob, name_off), FUNC_NAME_MAX);
	if (!c->file || !c->func) {
		info_free(c);
		return -1;
	}
	c->firstlineno = fp_blob_i32(blob, l->co_firstlineno);
	if (l->co_flags != FP_NO_FIELD)
		c->flags = (uint32_t)fp_blob_i32(blob, l->co_flags);
	uint64_t tobj = fp_blob_u64(blob, l->co_linetable);
	size_t cap = 4096, len = 0;
	c->table = malloc(cap);
	if (c->table && fp_py_bytes(&cc->ctx, tobj, c->table, cap, &len) == 0 && len > cap &&
	    len <= MAX_LINETABLE) {
		uint8_t *big = realloc(c->table, len);
		if (big) {
			c->table = big;
			cap = len;
			fp_py_bytes(&cc->ctx, tobj, c->table, cap, &len);
		}
	}
	c->tlen = len <= cap ? len : 0;
	if (cc->locals)
		read_local_names(cc, blob, c);
	return 0;
}

const struct fp_code_info *fp_codecache_get(struct fp_codecache *cc, uint64_t addr)
{
	/* 0 marks the cache's empty slots, and is never a code object anyway. */
	struct fp_code_info *ci = addr ? slot(cc, addr) : NULL;
	if (!ci)
		return NULL;
	if (ci->addr == addr)
		return ci;
	struct fp_code_info c;
	if (decode(cc, addr, &c) != 0)
		return NULL;
	*ci = c;
	cc->n++;
	return ci;
}

/* Whether the object at ci->addr is still the code object ci describes. */
static bool still_same(struct fp_codecache *cc, const struct fp_code_info *ci)
{
	const struct fp_layout *l = cc->ctx.l;
	uint64_t type = 0, filename = 0;
	struct fp_mem_req reqs[] = {
	    {.addr = ci->addr + (uint64_t)l->ob_type, .buf = &type, .len = sizeof(type)},
	    {.addr = ci->addr + (uint64_t)l->co_filename,
	     .buf = &filename,
	     .len = sizeof(filename)},
	};
	if (fp_mem_readv(cc->ctx.mem, reqs, 2) != 0)
		return false;
	return (!cc->py->code_type || type == cc->py->code_type) && filename == ci->filename_obj;
}

const struct fp_code_info *fp_codecache_get_checked(struct fp_codecache *cc, uint64_t addr)
{
	struct fp_code_info *ci = addr ? slot(cc, addr) : NULL;
	if (!ci)
		return NULL;
	if (ci->addr == addr) {
		if (ci->epoch == cc->epoch)
			return ci;
		if (still_same(cc, ci)) {
			ci->epoch = cc->epoch;
			return ci;
		}
	}
	struct fp_code_info c;
	if (decode(cc, addr, &c) != 0)
		return NULL; /* a dead entry stays until it is checked again: it fails again */
	if (ci->addr == addr)
		info_free(ci);
	else
		cc->n++;
	*ci = c;
	return ci;
}

int fp_codecache_line(const struct fp_codecache *cc, const struct fp_code_info *ci, int64_t lasti)
{
	if (lasti < 0 || lasti > INT32_MAX)
		return ci->firstlineno > 0 ? ci->firstlineno : 0;
	int line =
	    fp_code_line(cc->ctx.l->linetable, ci->table, ci->tlen, ci->firstlineno, (int)lasti);
	return line < 0 ? 0 : line;
}
