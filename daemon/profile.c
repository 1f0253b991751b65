#include "profile.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

struct pframe {
	enum fp_frame_kind kind;
	char *func, *file, *library; /* file and library may be NULL */
	int line;
	uint64_t hash;
};

struct pstack {
	pid_t tid;
	char *thread;
	uint32_t *frames; /* outermost first */
	size_t nframes;
	uint64_t count;
	uint64_t hash;
};

/* Open addressing over indexes into an array; a slot holds index + 1, 0 is empty. */
struct index {
	uint32_t *slot;
	size_t cap;
};

struct fp_profile {
	struct pframe *frames;
	size_t nframes, frames_cap;
	struct pstack *stacks;
	size_t nstacks, stacks_cap;
	struct index frame_ix, stack_ix;
	uint32_t *scratch; /* one sample's frame indexes */
	size_t scratch_cap;
	size_t bytes; /* estimated size of the JSON */
	uint64_t samples, dropped;
};

/* FNV-1a, continued from h. */
static uint64_t fnv(uint64_t h, const void *data, size_t len)
{
	const unsigned char *p = data;
	for (size_t i = 0; i < len; i++)
		h = (h ^ p[i]) * 0x100000001b3ULL;
	return h;
}

static uint64_t fnv_str(uint64_t h, const char *s)
{
	/* The terminator separates neighbours: ("ab","c") and ("a","bc") differ. */
	return s ? fnv(h, s, strlen(s) + 1) : fnv(h, "\xff", 1);
}

#define FNV_SEED 0xcbf29ce484222325ULL

static bool str_eq(const char *a, const char *b)
{
	return a == b || (a && b && strcmp(a, b) == 0);
}

/* Makes room for one more entry of n; the table stays at most half full. */
static int index_grow(struct index *ix, size_t n, uint64_t (*hash_of)(const void *, uint32_t),
		      const void *owner)
{
	if ((n + 1) * 2 <= ix->cap)
		return 0;
	size_t ncap = ix->cap ? ix->cap * 2 : 1024;
	uint32_t *ns = calloc(ncap, sizeof(*ns));
	if (!ns)
		return -1;
	for (size_t i = 0; i < ix->cap; i++) {
		if (!ix->slot[i])
			continue;
		size_t j = hash_of(owner, ix->slot[i] - 1) & (ncap - 1);
		while (ns[j])
			j = (j + 1) & (ncap - 1);
		ns[j] = ix->slot[i];
	}
	free(ix->slot);
	ix->slot = ns;
	ix->cap = ncap;
	return 0;
}

static uint64_t frame_hash_at(const void *owner, uint32_t i)
{
	return ((const struct fp_profile *)owner)->frames[i].hash;
}

static uint64_t stack_hash_at(const void *owner, uint32_t i)
{
	return ((const struct fp_profile *)owner)->stacks[i].hash;
}

static int reserve(void **v, size_t *cap, size_t n, size_t size)
{
	if (n < *cap)
		return 0;
	size_t ncap = *cap ? *cap * 2 : 64;
	while (ncap <= n)
		ncap *= 2;
	void *nv = realloc(*v, ncap * size);
	if (!nv)
		return -1;
	*v = nv;
	*cap = ncap;
	return 0;
}

struct fp_profile *fp_profile_new(void)
{
	return calloc(1, sizeof(struct fp_profile));
}

void fp_profile_free(struct fp_profile *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->nframes; i++) {
		free(p->frames[i].func);
		free(p->frames[i].file);
		free(p->frames[i].library);
	}
	for (size_t i = 0; i < p->nstacks; i++) {
		free(p->stacks[i].thread);
		free(p->stacks[i].frames);
	}
	free(p->frames);
	free(p->stacks);
	free(p->frame_ix.slot);
	free(p->stack_ix.slot);
	free(p->scratch);
	free(p);
}

static const char *frame_func(const struct fp_frame *f)
{
	/* Native frames without a symbol still need a name in every format. */
	return f->func ? f->func : "[unknown]";
}

static const char *frame_library(const struct fp_frame *f)
{
	return f->kind == FP_FRAME_NATIVE ? f->library : NULL;
}

/* Index of the interned frame; -1 when out of memory, -2 when the profile is full. */
static long intern_frame(struct fp_profile *p, const struct fp_frame *f)
{
	const char *func = frame_func(f), *lib = frame_library(f);
	uint64_t h = fnv(FNV_SEED, &f->kind, sizeof(f->kind));
	h = fnv(h, &f->line, sizeof(f->line));
	h = fnv_str(fnv_str(fnv_str(h, func), f->file), lib);
	if (index_grow(&p->frame_ix, p->nframes, frame_hash_at, p))
		return -1;
	size_t mask = p->frame_ix.cap - 1, j = h & mask;
	for (; p->frame_ix.slot[j]; j = (j + 1) & mask) {
		const struct pframe *e = &p->frames[p->frame_ix.slot[j] - 1];
		if (e->hash == h && e->kind == f->kind && e->line == f->line &&
		    str_eq(e->func, func) && str_eq(e->file, f->file) && str_eq(e->library, lib))
			return p->frame_ix.slot[j] - 1;
	}
	/* Names are JSON-escaped later; twice their length bounds most of them. */
	size_t cost =
	    64 + 2 * (strlen(func) + (f->file ? strlen(f->file) : 0) + (lib ? strlen(lib) : 0));
	if (p->bytes + cost > FP_PROFILE_MAX_BYTES || p->nframes >= UINT32_MAX - 1)
		return -2;
	if (reserve((void **)&p->frames, &p->frames_cap, p->nframes, sizeof(*p->frames)))
		return -1;
	struct pframe *e = &p->frames[p->nframes];
	*e = (struct pframe){.kind = f->kind, .line = f->line, .hash = h};
	e->func = strdup(func);
	e->file = f->file ? strdup(f->file) : NULL;
	e->library = lib ? strdup(lib) : NULL;
	if (!e->func || (f->file && !e->file) || (lib && !e->library)) {
		free(e->func);
		free(e->file);
		free(e->library);
		return -1;
	}
	p->bytes += cost;
	p->frame_ix.slot[j] = (uint32_t)++p->nframes;
	return (long)p->nframes - 1;
}

int fp_profile_add(struct fp_profile *p, const struct fp_sample_info *s)
{
	if (reserve((void **)&p->scratch, &p->scratch_cap, s->nframes, sizeof(*p->scratch)))
		goto oom;
	/* Samples list the innermost frame first; profiles keep the outermost first. */
	for (size_t i = 0; i < s->nframes; i++) {
		long ix = intern_frame(p, &s->frames[s->nframes - 1 - i]);
		if (ix == -1)
			goto oom;
		if (ix == -2) {
			p->dropped++;
			return 0;
		}
		p->scratch[i] = (uint32_t)ix;
	}
	const char *thread = s->thread ? s->thread : "";
	uint64_t h = fnv(FNV_SEED, &s->tid, sizeof(s->tid));
	h = fnv(fnv_str(h, thread), p->scratch, s->nframes * sizeof(*p->scratch));
	if (index_grow(&p->stack_ix, p->nstacks, stack_hash_at, p))
		goto oom;
	size_t mask = p->stack_ix.cap - 1, j = h & mask;
	for (; p->stack_ix.slot[j]; j = (j + 1) & mask) {
		struct pstack *e = &p->stacks[p->stack_ix.slot[j] - 1];
		if (e->hash == h && e->tid == s->tid && e->nframes == s->nframes &&
		    strcmp(e->thread, thread) == 0 &&
		    memcmp(e->frames, p->scratch, s->nframes * sizeof(*p->scratch)) == 0) {
			e->count++;
			p->samples++;
			return 0;
		}
	}
	/* 8 bytes per index ("1234567,") and the thread's name and numbers. */
	size_t cost = 80 + 8 * s->nframes + 2 * strlen(thread);
	if (p->bytes + cost > FP_PROFILE_MAX_BYTES || p->nstacks >= UINT32_MAX - 1) {
		p->dropped++;
		return 0;
	}
	if (reserve((void **)&p->stacks, &p->stacks_cap, p->nstacks, sizeof(*p->stacks)))
		goto oom;
	struct pstack *e = &p->stacks[p->nstacks];
	*e = (struct pstack){.tid = s->tid, .nframes = s->nframes, .count = 1, .hash = h};
	e->thread = strdup(thread);
	e->frames = malloc((s->nframes ? s->nframes : 1) * sizeof(*e->frames));
	if (!e->thread || !e->frames) {
		free(e->thread);
		free(e->frames);
		goto oom;
	}
	memcpy(e->frames, p->scratch, s->nframes * sizeof(*e->frames));
	p->bytes += cost;
	p->stack_ix.slot[j] = (uint32_t)++p->nstacks;
	p->samples++;
	return 0;
oom:
	p->dropped++;
	return -1;
}

uint64_t fp_profile_samples(const struct fp_profile *p)
{
	return p->samples;
}

uint64_t fp_profile_dropped(const struct fp_profile *p)
{
	return p->dropped;
}

static json_t *jstr_or_null(const char *s)
{
	/* Names come from the target: invalid UTF-8 must not lose the frame. */
	if (!s)
		return json_null();
	json_t *j = json_string(s);
	return j ? j : json_string("[invalid UTF-8]");
}

int fp_profile_to_json(const struct fp_profile *p, json_t *obj)
{
	json_t *frames = json_array(), *stacks = json_array();
	if (!frames || !stacks)
		goto oom;
	for (size_t i = 0; i < p->nframes; i++) {
		const struct pframe *f = &p->frames[i];
		json_t *j = json_object();
		if (!j || json_array_append_new(frames, j))
			goto oom;
		json_object_set_new_nocheck(
		    j, "kind",
		    json_string_nocheck(f->kind == FP_FRAME_NATIVE ? "native" : "python"));
		json_object_set_new_nocheck(j, "func", jstr_or_null(f->func));
		json_object_set_new_nocheck(j, "file", jstr_or_null(f->file));
		json_object_set_new_nocheck(j, "line", json_integer(f->line));
		json_object_set_new_nocheck(j, "library", jstr_or_null(f->library));
	}
	for (size_t i = 0; i < p->nstacks; i++) {
		const struct pstack *s = &p->stacks[i];
		json_t *j = json_object(), *ix = json_array();
		if (!j || !ix || json_array_append_new(stacks, j)) {
			json_decref(ix);
			goto oom;
		}
		for (size_t k = 0; k < s->nframes; k++)
			if (json_array_append_new(ix, json_integer(s->frames[k]))) {
				json_decref(ix);
				goto oom;
			}
		json_object_set_new_nocheck(j, "frames", ix);
		json_object_set_new_nocheck(j, "count", json_integer((json_int_t)s->count));
		json_object_set_new_nocheck(j, "thread", jstr_or_null(s->thread));
		json_object_set_new_nocheck(j, "tid", json_integer(s->tid));
	}
	json_object_set_new_nocheck(obj, "frames", frames);
	json_object_set_new_nocheck(obj, "stacks", stacks);
	return 0;
oom:
	json_decref(frames);
	json_decref(stacks);
	return -1;
}
