/*
 * libFuzzer: the object readers (repr, dict iteration and lookup, instance
 * attributes, thread names) over a forged address space, with the layout of
 * each CPython version.  Whatever the bytes, every reader must stay in bounds,
 * terminate and leave valid, NUL-terminated output.
 *
 * Input: [version byte] then regions: [addr u32][len u16][bytes].  Region
 * addresses are 0x10000 + (addr & 0xffff0); the object (or interpreter)
 * under test is at ROOT.  Type objects sit at fixed addresses (TYPES +
 * i * TYPE_STRIDE, in the order of type_defs) so that forged objects can
 * point at real-looking types; the managed-dict class keeps its shared keys
 * at CACHED_KEYS, inside the input's reach.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "daemon/py/object.h"
#include "tests/fuzz/py313_debug_offsets.h"
#include "tests/fuzz/regions.h"

#define MAX_REGIONS 32
#define ROOT	    0x10040ULL
#define TYPES	    0x200000ULL
#define TYPE_STRIDE 0x400
#define CACHED_KEYS 0x18000ULL
#define NVERSIONS   8 /* 3.6 ... 3.13 */

#define TPF_INLINE_VALUES (1ULL << 2)
#define TPF_MANAGED_DICT  (1ULL << 4)
#define TPF_HEAPTYPE	  (1ULL << 9)

static const struct {
	const char *name;
	uint64_t flags;
	int64_t basicsize, dictoffset;
} type_defs[] = {
    {"str", 1ULL << 28, 0, 0},
    {"bytes", 1ULL << 27, 0, 0},
    {"int", 1ULL << 24, 0, 0},
    {"bool", 1ULL << 24, 0, 0},
    {"float", 0, 24, 0},
    {"NoneType", 0, 16, 0},
    {"tuple", 1ULL << 26, 24, 0},
    {"list", 1ULL << 25, 40, 0},
    {"dict", 1ULL << 29, 48, 0},
    {"module", 0, 48, 16},
    {"Thread", TPF_HEAPTYPE, 24, 16},
    {"Managed", TPF_HEAPTYPE | TPF_MANAGED_DICT | TPF_INLINE_VALUES, 16, -1},
};
#define NTYPES (sizeof(type_defs) / sizeof(type_defs[0]))

struct version {
	struct fp_layout l;
	uint8_t types[NTYPES * TYPE_STRIDE];
};

static void put64(uint8_t *p, int64_t off, uint64_t v)
{
	memcpy(p + off, &v, sizeof(v));
}

static const struct version *version_get(unsigned i)
{
	static struct version v[NVERSIONS];
	static bool ready[NVERSIONS];
	if (ready[i])
		return &v[i];
	const struct fp_layout *l = fp_layout_for(3, 6 + (int)i);
	if (l) {
		v[i].l = *l;
	} else {
		char err[128];
		if (fp_layout_from_debug_offsets(py313_debug_offsets, sizeof(py313_debug_offsets),
						 &v[i].l, err, sizeof(err)) != 0)
			__builtin_trap();
	}
	for (size_t t = 0; t < NTYPES; t++) {
		uint8_t *p = v[i].types + t * TYPE_STRIDE;
		/* The name lives at the end of the type's slot. */
		size_t name_at = TYPE_STRIDE - 32;
		strcpy((char *)p + name_at, type_defs[t].name);
		uint64_t flags = type_defs[t].flags;
		if (v[i].l.instdict_model != FP_INSTDICT_313)
			flags &= ~TPF_INLINE_VALUES;
		if (v[i].l.instdict_model == FP_INSTDICT_OFFSET)
			flags &= ~TPF_MANAGED_DICT;
		put64(p, 0, 1);
		put64(p, v[i].l.tp_name, TYPES + t * TYPE_STRIDE + name_at);
		put64(p, v[i].l.tp_flags, flags);
		put64(p, v[i].l.tp_basicsize, (uint64_t)type_defs[t].basicsize);
		put64(p, v[i].l.tp_dictoffset, (uint64_t)type_defs[t].dictoffset);
		if (flags & TPF_HEAPTYPE)
			put64(p, v[i].l.ht_cached_keys, CACHED_KEYS);
	}
	ready[i] = true;
	return &v[i];
}

static int on_item(void *arg, uint64_t key, uint64_t value)
{
	size_t *n = arg;
	(void)key;
	(void)value;
	return ++*n >= 1000;
}

static void on_thread(void *arg, uint64_t ident, const char *name)
{
	size_t *n = arg;
	(void)ident;
	if (strlen(name) >= 256)
		__builtin_trap();
	++*n;
}

static void check_str(const char *s, size_t cap)
{
	if (strnlen(s, cap) == cap)
		__builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	const struct version *v = version_get(data[0] % NVERSIONS);
	data++;
	size--;

	struct fp_mem_region regions[MAX_REGIONS + 1];
	regions[0] = (struct fp_mem_region){TYPES, v->types, sizeof(v->types)};
	size_t n = 1 + fuzz_regions(data, size, regions + 1, MAX_REGIONS);

	struct fp_mem_buf buf = {.regions = regions, .n = n};
	struct fp_mem mem;
	fp_mem_buf_init(&mem, &buf);
	struct fp_pyctx c = {&mem, &v->l};

	char out[128];
	fp_py_repr(&c, ROOT, out, sizeof(out));
	check_str(out, sizeof(out));
	fp_py_str(&c, ROOT, out, sizeof(out));
	check_str(out, sizeof(out));
	fp_py_type_name(&c, ROOT, out, 16);
	check_str(out, 16);
	size_t items = 0;
	fp_py_dict_foreach(&c, ROOT, 100, on_item, &items);
	if (items > 100)
		__builtin_trap();
	uint64_t value;
	fp_py_dict_get_str(&c, ROOT, "_active", &value);
	fp_py_getattr(&c, ROOT, "_name", &value);
	size_t threads = 0;
	fp_py_thread_names(&c, ROOT, on_thread, &threads);
	return 0;
}
