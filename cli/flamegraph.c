/*
 * Flame graph SVG in the spirit of Brendan Gregg's flamegraph.pl.
 *
 * Layout: one root "all" with a rectangle per thread as its first level,
 * then the Python (and native) frames outermost first.  One root rather than
 * one graph per thread keeps every percentage, the search total and the zoom
 * relative to the same whole process, while the thread level still shows
 * how the samples split between threads.
 *
 * Frames are merged by kind + function + file (library for native frames
 * without a file), so the current line of a frame does not split it; the
 * tooltip shows the first line seen.  Siblings sort by name, as
 * flamegraph.pl does, so two graphs of one program line up.
 *
 * Size: a rectangle narrower than CLI_FG_MIN_WIDTH pixels is not drawn; the
 * narrow children of a frame are merged into one grey block at its right end
 * ("N narrow frames"), dropped too if that block is itself too narrow.  At
 * 100,000 samples and thousands of distinct stacks this bounds the file to
 * what can be seen.  Zooming cannot bring elided frames back.
 *
 * Each frame is <g class="f" data-s data-n data-d> (sample offset, samples,
 * depth) holding <title> (name, place, samples and %), <rect> and <text>.
 * The embedded script recomputes x and width from those on zoom, so the
 * static picture (no script) and the zoomed one come from the same numbers.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "flamegraph.h"

#define XPAD	      10
#define FRAME_H	      16
#define HEADER_H      70
#define FOOTER_H      30
#define FONT_PX	      12
#define CHAR_W	      (FONT_PX * 0.59) /* Verdana's average advance */
#define GRAPH_W	      (CLI_FG_WIDTH - 2 * XPAD)
#define PCT(n, total) ((total) ? 100.0 * (double)(n) / (double)(total) : 0.0)

enum fg_kind {
	FG_ROOT,
	FG_THREAD,
	FG_PYTHON,
	FG_NATIVE,
	FG_MERGED,
};

/* A function: every frame of the same kind, name and file. Strings borrowed from the profile. */
struct fg_fn {
	enum fg_kind kind;
	const char *func;
	const char *file;    /* NULL when unknown */
	const char *library; /* native frames; NULL when unknown */
	json_int_t line;     /* python: first line seen; thread: tid */
};

struct fg_node {
	const struct fg_fn *fn;
	size_t parent;
	size_t first_child, next_sibling; /* 0: none (node 0 is the root, never a child) */
	json_int_t total;
	int depth;
	bool visible; /* wide enough (min_samples), and so is its parent */
};

/* Open addressing over indexes + 1 (0 marks a free slot); the caller compares keys. */
struct fg_table {
	size_t *slot;
	size_t cap; /* a power of two */
};

struct fg {
	struct fg_fn *fns;
	size_t nfns, capfns;
	struct fg_node *nodes;
	size_t nnodes, capnodes;
	struct fg_table fn_tab, node_tab;
	size_t *frame_fn; /* profile frame index -> function */
	size_t nframes;
	size_t threads;
	int max_depth;
	double scale; /* pixels per sample */
	FILE *out;
};

static uint64_t hash_str(uint64_t h, const char *s)
{
	/* FNV-1a; a NULL string hashes differently from "" */
	if (!s)
		return (h ^ 0xff) * 0x100000001b3ULL;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
	return (h ^ 0xfe) * 0x100000001b3ULL;
}

static uint64_t hash_int(uint64_t h, uint64_t v)
{
	for (int i = 0; i < 8; i++, v >>= 8)
		h = (h ^ (v & 0xff)) * 0x100000001b3ULL;
	return h;
}

#define HASH_SEED 0xcbf29ce484222325ULL

static bool str_eq(const char *a, const char *b)
{
	return a == b || (a && b && strcmp(a, b) == 0);
}

/* Grows the table to hold `need` entries at most half full; rehash needs each entry's hash. */
static int table_reserve(struct fg_table *t, size_t need,
			 uint64_t (*hash)(const struct fg *, size_t), const struct fg *g)
{
	if (need * 2 <= t->cap)
		return 0;
	size_t cap = t->cap ? t->cap * 2 : 256;
	while (need * 2 > cap)
		cap *= 2;
	size_t *slot = calloc(cap, sizeof(*slot));
	if (!slot)
		return -1;
	for (size_t i = 0; i < t->cap; i++) {
		if (!t->slot[i])
			continue;
		size_t j = hash(g, t->slot[i] - 1) & (cap - 1);
		while (slot[j])
			j = (j + 1) & (cap - 1);
		slot[j] = t->slot[i];
	}
	free(t->slot);
	t->slot = slot;
	t->cap = cap;
	return 0;
}

static uint64_t fn_hash_of(const struct fg_fn *f)
{
	uint64_t h = hash_int(HASH_SEED, f->kind);
	h = hash_str(h, f->func);
	if (f->kind == FG_THREAD)
		return hash_int(h, (uint64_t)f->line);
	return hash_str(h, f->file ? f->file : f->library);
}

static uint64_t fn_hash(const struct fg *g, size_t i)
{
	return fn_hash_of(&g->fns[i]);
}

static bool fn_eq(const struct fg_fn *a, const struct fg_fn *b)
{
	if (a->kind != b->kind || !str_eq(a->func, b->func))
		return false;
	if (a->kind == FG_THREAD)
		return a->line == b->line;
	return str_eq(a->file ? a->file : a->library, b->file ? b->file : b->library);
}

/* The index of the function equal to *key, added if new; (size_t)-1 when out of memory. */
static size_t fn_intern(struct fg *g, const struct fg_fn *key)
{
	if (table_reserve(&g->fn_tab, g->nfns + 1, fn_hash, g))
		return (size_t)-1;
	size_t mask = g->fn_tab.cap - 1;
	size_t j = fn_hash_of(key) & mask;
	for (; g->fn_tab.slot[j]; j = (j + 1) & mask)
		if (fn_eq(&g->fns[g->fn_tab.slot[j] - 1], key))
			return g->fn_tab.slot[j] - 1;
	if (g->nfns == g->capfns) {
		size_t cap = g->capfns ? g->capfns * 2 : 64;
		struct fg_fn *f = realloc(g->fns, cap * sizeof(*f));
		if (!f)
			return (size_t)-1;
		g->fns = f;
		g->capfns = cap;
	}
	g->fns[g->nfns] = *key;
	g->fn_tab.slot[j] = ++g->nfns;
	return g->nfns - 1;
}

/* Nodes refer to functions by index while the tree grows: fns may move. */
static uint64_t node_key_hash(size_t parent, size_t fn)
{
	return hash_int(hash_int(HASH_SEED, parent), fn);
}

static uint64_t node_hash(const struct fg *g, size_t i)
{
	return node_key_hash(g->nodes[i].parent, (size_t)(uintptr_t)g->nodes[i].fn);
}

/* The child of parent for function fn, added if new; (size_t)-1 when out of memory. */
static size_t node_child(struct fg *g, size_t parent, size_t fn)
{
	if (table_reserve(&g->node_tab, g->nnodes + 1, node_hash, g))
		return (size_t)-1;
	size_t mask = g->node_tab.cap - 1;
	size_t j = node_key_hash(parent, fn) & mask;
	for (; g->node_tab.slot[j]; j = (j + 1) & mask) {
		const struct fg_node *n = &g->nodes[g->node_tab.slot[j] - 1];
		if (n->parent == parent && (size_t)(uintptr_t)n->fn == fn)
			return g->node_tab.slot[j] - 1;
	}
	if (g->nnodes == g->capnodes) {
		size_t cap = g->capnodes ? g->capnodes * 2 : 256;
		struct fg_node *n = realloc(g->nodes, cap * sizeof(*n));
		if (!n)
			return (size_t)-1;
		g->nodes = n;
		g->capnodes = cap;
	}
	struct fg_node *n = &g->nodes[g->nnodes];
	/* Until the tree is complete, fn holds the function's index (see resolve_fns). */
	*n = (struct fg_node){.fn = (const struct fg_fn *)(uintptr_t)fn,
			      .parent = parent,
			      .depth = g->nodes[parent].depth + 1,
			      .next_sibling = g->nodes[parent].first_child};
	g->nodes[parent].first_child = g->nnodes;
	g->node_tab.slot[j] = ++g->nnodes;
	return g->nnodes - 1;
}

static const char *jstr_or_null(const json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));
	return s && *s ? s : NULL;
}

static int load_frames(struct fg *g, const json_t *frames)
{
	g->nframes = json_array_size(frames);
	g->frame_fn = calloc(g->nframes ? g->nframes : 1, sizeof(*g->frame_fn));
	if (!g->frame_fn)
		return ENOMEM;
	for (size_t i = 0; i < g->nframes; i++) {
		const json_t *f = json_array_get(frames, i);
		if (!json_is_object(f))
			return EINVAL;
		const char *kind = jstr_or_null(f, "kind");
		struct fg_fn key = {
		    .kind = kind && strcmp(kind, "native") == 0 ? FG_NATIVE : FG_PYTHON,
		    .func = jstr_or_null(f, "func"),
		    .file = jstr_or_null(f, "file"),
		    .library = jstr_or_null(f, "library"),
		};
		if (!key.func)
			key.func = "[unknown]";
		json_t *line = json_object_get(f, "line");
		key.line = json_is_integer(line) ? json_integer_value(line) : 0;
		g->frame_fn[i] = fn_intern(g, &key);
		if (g->frame_fn[i] == (size_t)-1)
			return ENOMEM;
	}
	return 0;
}

static int load_stacks(struct fg *g, const json_t *stacks)
{
	for (size_t i = 0; i < json_array_size(stacks); i++) {
		const json_t *st = json_array_get(stacks, i);
		const json_t *idx = json_object_get(st, "frames");
		json_t *cnt = json_object_get(st, "count");
		if (!json_is_array(idx) || !json_is_integer(cnt))
			return EINVAL;
		json_int_t count = json_integer_value(cnt);
		if (count <= 0)
			continue;
		struct fg_fn tkey = {.kind = FG_THREAD,
				     .func = jstr_or_null(st, "thread"),
				     .line = json_is_integer(json_object_get(st, "tid"))
						 ? json_integer_value(json_object_get(st, "tid"))
						 : 0};
		if (!tkey.func)
			tkey.func = "[unnamed thread]";
		size_t before = g->nfns;
		size_t fn = fn_intern(g, &tkey);
		if (fn == (size_t)-1)
			return ENOMEM;
		g->threads += g->nfns > before;
		size_t n = node_child(g, 0, fn);
		if (n == (size_t)-1)
			return ENOMEM;
		g->nodes[0].total += count;
		g->nodes[n].total += count;
		for (size_t k = 0; k < json_array_size(idx); k++) {
			json_t *v = json_array_get(idx, k);
			if (!json_is_integer(v) || json_integer_value(v) < 0 ||
			    (size_t)json_integer_value(v) >= g->nframes)
				return EINVAL;
			n = node_child(g, n, g->frame_fn[json_integer_value(v)]);
			if (n == (size_t)-1)
				return ENOMEM;
			g->nodes[n].total += count;
		}
	}
	return 0;
}

static int by_total_desc(const void *pa, const void *pb)
{
	json_int_t a = *(const json_int_t *)pa, b = *(const json_int_t *)pb;
	return (a < b) - (a > b);
}

/*
 * The fewest samples a drawn frame holds: CLI_FG_MIN_WIDTH pixels, and no
 * more than CLI_FG_MAX_FRAMES frames in all, so that a browser still opens
 * the file quickly when thousands of stacks part early.  A frame has at
 * least the samples of each child, so "the largest N" keeps every drawn
 * frame's parent drawn.  -1 when out of memory.
 */
static json_int_t min_samples(const struct fg *g)
{
	json_int_t least = (json_int_t)(CLI_FG_MIN_WIDTH / g->scale);
	while ((double)least * g->scale < CLI_FG_MIN_WIDTH)
		least++;
	size_t n = g->nnodes - 1; /* the root is always drawn */
	if (n <= CLI_FG_MAX_FRAMES)
		return least;
	json_int_t *totals = malloc(n * sizeof(*totals));
	if (!totals)
		return -1;
	for (size_t i = 0; i < n; i++)
		totals[i] = g->nodes[i + 1].total;
	qsort(totals, n, sizeof(*totals), by_total_desc);
	/* Strictly more than the first one left out: ties never overshoot the cap. */
	json_int_t cut = totals[CLI_FG_MAX_FRAMES] + 1;
	free(totals);
	return cut > least ? cut : least;
}

/* Once no function is added any more, nodes point at them instead of holding indexes. */
static void resolve_fns(struct fg *g)
{
	for (size_t i = 0; i < g->nnodes; i++)
		g->nodes[i].fn = &g->fns[(size_t)(uintptr_t)g->nodes[i].fn];
}

/* ---- writing ---- */

/*
 * Text from the target, escaped for XML.  Bytes that XML 1.0 forbids
 * (controls, U+FFFE, U+FFFF) become '?'; jansson guarantees valid UTF-8.
 * max_chars > 0 cuts the text after that many characters and appends "..".
 */
static void put_xml(FILE *out, const char *s, size_t max_chars)
{
	size_t chars = 0;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if ((*p & 0xc0) != 0x80 && max_chars && ++chars > max_chars) {
			fputs("..", out);
			return;
		}
		switch (*p) {
		case '&':
			fputs("&amp;", out);
			break;
		case '<':
			fputs("&lt;", out);
			break;
		case '>':
			fputs("&gt;", out);
			break;
		case '"':
			fputs("&quot;", out);
			break;
		case '\'':
			fputs("&apos;", out);
			break;
		default:
			if (*p < 0x20 && *p != '\t') {
				putc('?', out);
			} else if (p[0] == 0xef && p[1] == 0xbf && (p[2] == 0xbe || p[2] == 0xbf)) {
				putc('?', out);
				p += 2;
			} else {
				putc(*p, out);
			}
		}
	}
}

static size_t utf8_chars(const char *s)
{
	size_t n = 0;
	for (; *s; s++)
		n += ((unsigned char)*s & 0xc0) != 0x80;
	return n;
}

static uint32_t name_hash(const char *s)
{
	return (uint32_t)hash_str(HASH_SEED, s);
}

/* flamegraph.pl's palettes: warm for Python, aqua for native, so the two read apart. */
static void put_fill(FILE *out, const struct fg_fn *fn)
{
	uint32_t h = name_hash(fn->func);
	double v1 = (h & 0xff) / 255.0, v2 = ((h >> 8) & 0xff) / 255.0,
	       v3 = ((h >> 16) & 0xff) / 255.0;
	int r, gr, b;
	switch (fn->kind) {
	case FG_PYTHON:
		r = 205 + (int)(50 * v3);
		gr = (int)(230 * v1);
		b = (int)(55 * v2);
		break;
	case FG_NATIVE:
		r = 50 + (int)(60 * v1);
		gr = 165 + (int)(55 * v1);
		b = 165 + (int)(55 * v2);
		break;
	case FG_THREAD:
		r = 175 + (int)(20 * v1);
		gr = 165 + (int)(20 * v1);
		b = 215;
		break;
	default:
		r = gr = b = fn->kind == FG_ROOT ? 200 : 225;
	}
	fprintf(out, "rgb(%d,%d,%d)", r, gr, b);
}

/*
 * The name a frame shows and searches by (the first line of its title), cut
 * after max_chars characters when max_chars > 0.
 */
static void put_name(struct fg *g, const struct fg_node *n, size_t max_chars)
{
	char tid[32];
	size_t chars = utf8_chars(n->fn->func);
	if (n->fn->kind != FG_THREAD || (max_chars && chars > max_chars)) {
		put_xml(g->out, n->fn->func, max_chars);
		return;
	}
	/* Threads of one name are told apart by tid: "name (tid N)", cut as one string. */
	put_xml(g->out, n->fn->func, 0);
	snprintf(tid, sizeof(tid), " (tid %lld)", (long long)n->fn->line);
	if (max_chars && chars == max_chars)
		fputs("..", g->out);
	else
		put_xml(g->out, tid, max_chars ? max_chars - chars : 0);
}

static size_t name_chars(const struct fg_node *n)
{
	char tid[32];
	if (n->fn->kind != FG_THREAD)
		return utf8_chars(n->fn->func);
	return utf8_chars(n->fn->func) +
	       (size_t)snprintf(tid, sizeof(tid), " (tid %lld)", (long long)n->fn->line);
}

static void put_place(struct fg *g, const struct fg_node *n, json_int_t merged)
{
	const struct fg_fn *fn = n->fn;
	switch (fn->kind) {
	case FG_ROOT:
		fprintf(g->out, "%zu thread%s", g->threads, g->threads == 1 ? "" : "s");
		return;
	case FG_THREAD:
		fputs("thread", g->out);
		return;
	case FG_MERGED:
		fprintf(g->out, "%lld function%s too narrow to draw, merged", (long long)merged,
			merged == 1 ? "" : "s");
		return;
	case FG_NATIVE:
		fputs("native", g->out);
		if (fn->file) {
			fputc(' ', g->out);
			put_xml(g->out, fn->file, 0);
			if (fn->line > 0)
				fprintf(g->out, ":%lld", (long long)fn->line);
		}
		if (fn->library) {
			fputs(" (", g->out);
			put_xml(g->out, fn->library, 0);
			fputc(')', g->out);
		}
		return;
	default:
		put_xml(g->out, fn->file ? fn->file : "<unknown file>", 0);
		if (fn->line > 0)
			fprintf(g->out, ":%lld", (long long)fn->line);
	}
}

/* One frame: offset and width in samples; `merged` counts the functions of a merged block. */
static void put_frame(struct fg *g, const struct fg_node *n, json_int_t offset, json_int_t samples,
		      json_int_t merged)
{
	FILE *out = g->out;
	double x = XPAD + (double)offset * g->scale, w = (double)samples * g->scale;
	int y = HEADER_H + (g->max_depth - n->depth) * FRAME_H;
	fprintf(out, "<g class=\"f%s\" data-s=\"%lld\" data-n=\"%lld\" data-d=\"%d\"><title>",
		n->fn->kind == FG_MERGED ? " m" : "", (long long)offset, (long long)samples,
		n->depth);
	put_name(g, n, 0);
	fputc('\n', out);
	put_place(g, n, merged);
	fprintf(out, "\n%lld sample%s, %.2f%%</title>", (long long)samples, samples == 1 ? "" : "s",
		PCT(samples, g->nodes[0].total));
	fprintf(out, "<rect x=\"%.2f\" y=\"%d\" width=\"%.2f\" height=\"%d\" fill=\"", x, y, w,
		FRAME_H - 1);
	put_fill(out, n->fn);
	fputs("\"/>", out);
	/*
	 * The same rule as label() in the script.  Most frames of a large
	 * profile are too narrow for a label: they get no <text> at all (the
	 * script adds one when a zoom widens them), which keeps the file small.
	 */
	long fit = (long)((w - 6) / CHAR_W);
	if (fit >= 3) {
		fprintf(out, "<text x=\"%.2f\" y=\"%d\">", x + 3, y + FRAME_H - 4);
		size_t chars = name_chars(n);
		put_name(g, n, chars <= (size_t)fit ? 0 : (size_t)fit - 2);
		fputs("</text>", out);
	}
	fputs("</g>\n", out);
}

static int by_name(const void *pa, const void *pb)
{
	const struct fg_node *a = *(const struct fg_node *const *)pa;
	const struct fg_node *b = *(const struct fg_node *const *)pb;
	int c = strcmp(a->fn->func, b->fn->func);
	if (c)
		return c;
	if (a->fn->kind == FG_THREAD)
		return (a->fn->line > b->fn->line) - (a->fn->line < b->fn->line);
	const char *fa = a->fn->file ? a->fn->file : a->fn->library;
	const char *fb = b->fn->file ? b->fn->file : b->fn->library;
	return strcmp(fa ? fa : "", fb ? fb : "");
}

static const struct fg_fn merged_fn = {.kind = FG_MERGED, .func = "[narrow frames]"};

/* A node at sample offset `offset`, then its children left to right. */
static int put_subtree(struct fg *g, const struct fg_node *n, json_int_t offset)
{
	put_frame(g, n, offset, n->total, 0);
	size_t nkids = 0;
	for (size_t c = n->first_child; c; c = g->nodes[c].next_sibling)
		nkids++;
	if (!nkids)
		return 0;
	const struct fg_node **kids = malloc(nkids * sizeof(*kids));
	if (!kids)
		return ENOMEM;
	size_t k = 0;
	for (size_t c = n->first_child; c; c = g->nodes[c].next_sibling)
		kids[k++] = &g->nodes[c];
	qsort(kids, nkids, sizeof(*kids), by_name);
	json_int_t narrow = 0, narrow_fns = 0;
	for (k = 0; k < nkids; k++) {
		if (!kids[k]->visible) {
			narrow += kids[k]->total;
			narrow_fns++;
			continue;
		}
		int rc = put_subtree(g, kids[k], offset);
		if (rc) {
			free(kids);
			return rc;
		}
		offset += kids[k]->total;
	}
	free(kids);
	if (narrow && (double)narrow * g->scale >= CLI_FG_MIN_WIDTH) {
		struct fg_node m = {.fn = &merged_fn, .depth = n->depth + 1};
		put_frame(g, &m, offset, narrow, narrow_fns);
	}
	return 0;
}

/* Runs when the file is opened: hover details, click to zoom, search. */
static const char script[] =
    "(function () {\n"
    "'use strict';\n"
    "var svg = document.documentElement;\n"
    "var W = +svg.getAttribute('data-graph-width'), X0 = +svg.getAttribute('data-x0');\n"
    "var total = +svg.getAttribute('data-samples'), CW = +svg.getAttribute('data-char-width');\n"
    "var details = document.getElementById('details'), matched = "
    "document.getElementById('matched');\n"
    "var reset = document.getElementById('reset'), input = document.getElementById('search');\n"
    "var frames = [], root = null, zoomed = null;\n"
    "Array.prototype.forEach.call(document.querySelectorAll('g.f'), function (g) {\n"
    "  var t = g.querySelector('title').textContent.split('\\n');\n"
    "  var f = {g: g, name: t[0], tip: t.join('   \\u2022   '), s: +g.getAttribute('data-s'),\n"
    "    n: +g.getAttribute('data-n'), d: +g.getAttribute('data-d'), rect: "
    "g.querySelector('rect'),\n"
    "    text: g.querySelector('text'), merged: g.classList.contains('m')};\n"
    "  f.fill = f.rect.getAttribute('fill');\n"
    "  g.fgFrame = f;\n"
    "  if (f.d === 0) root = f;\n"
    "  frames.push(f);\n"
    "});\n"
    "function label(f, w) {\n"
    "  var c = Math.floor((w - 6) / CW), chars = Array.from(f.name);\n"
    "  if (c < 3) return '';\n"
    "  return chars.length <= c ? f.name : chars.slice(0, c - 2).join('') + '..';\n"
    "}\n"
    "function place(f, x, w) {\n"
    "  var text = label(f, w);\n"
    "  f.rect.setAttribute('x', x.toFixed(2));\n"
    "  f.rect.setAttribute('width', w.toFixed(2));\n"
    "  if (!f.text && text) {\n"
    "    f.text = document.createElementNS('http://www.w3.org/2000/svg', 'text');\n"
    "    f.text.setAttribute('y', +f.rect.getAttribute('y') + +f.rect.getAttribute('height') - "
    "3);\n"
    "    f.g.appendChild(f.text);\n"
    "  }\n"
    "  if (!f.text) return;\n"
    "  f.text.setAttribute('x', (x + 3).toFixed(2));\n"
    "  f.text.textContent = text;\n"
    "}\n"
    "function zoom(z) {\n"
    "  frames.forEach(function (f) {\n"
    "    var inside = f.d >= z.d && f.s >= z.s && f.s + f.n <= z.s + z.n;\n"
    "    var above = f.d < z.d && f.s <= z.s && f.s + f.n >= z.s + z.n;\n"
    "    f.g.classList.toggle('hide', !inside && !above);\n"
    "    f.g.classList.toggle('anc', above);\n"
    "    if (inside) place(f, X0 + (f.s - z.s) / z.n * W, f.n / z.n * W);\n"
    "    else if (above) place(f, X0, W);\n"
    "  });\n"
    "  reset.classList.toggle('hide', z === root);\n"
    "  zoomed = z;\n"
    "  remember();\n"
    "}\n"
    "/* The view lives in the URL (#z=offset,depth&s=term): a link or a reload shows it again. */\n"
    "function remember() {\n"
    "  var p = new URLSearchParams();\n"
    "  if (zoomed && zoomed !== root) p.set('z', zoomed.s + ',' + zoomed.d);\n"
    "  if (input && input.value) p.set('s', input.value);\n"
    "  try { history.replaceState(null, '', '#' + p.toString()); } catch (e) { /* file: may refuse "
    "*/ }\n"
    "}\n"
    "function search(term) {\n"
    "  var re = null, spans = [], sum = 0, end = -1;\n"
    "  if (term) {\n"
    "    try { re = new RegExp(term); }\n"
    "    catch (e) { re = new RegExp(term.replace(/[.*+?^${}()|[\\]\\\\]/g, '\\\\$&')); }\n"
    "  }\n"
    "  frames.forEach(function (f) {\n"
    "    var hit = re !== null && f.d > 0 && !f.merged && re.test(f.name);\n"
    "    f.rect.setAttribute('fill', hit ? 'rgb(230,0,230)' : f.fill);\n"
    "    if (hit) spans.push([f.s, f.s + f.n]);\n"
    "  });\n"
    "  if (re === null) { matched.textContent = ''; return; }\n"
    "  /* Nested matches (recursion) count once: merge the sample ranges. */\n"
    "  spans.sort(function (a, b) { return a[0] - b[0] || b[1] - a[1]; });\n"
    "  spans.forEach(function (p) {\n"
    "    if (p[1] > end) { sum += p[1] - Math.max(p[0], end); end = p[1]; }\n"
    "  });\n"
    "  matched.textContent = 'Matched: ' + (total ? (100 * sum / total).toFixed(2) : "
    "'0.00') +\n"
    "    '% (' + sum + ' of ' + total + ' samples)';\n"
    "}\n"
    "function frameOf(e) {\n"
    "  var g = e.target.closest ? e.target.closest('g.f') : null;\n"
    "  return g ? g.fgFrame : null;\n"
    "}\n"
    "svg.addEventListener('mouseover', function (e) {\n"
    "  var f = frameOf(e);\n"
    "  details.textContent = f ? f.tip : ' ';\n"
    "});\n"
    "svg.addEventListener('click', function (e) {\n"
    "  var f = frameOf(e);\n"
    "  if (f) zoom(f);\n"
    "});\n"
    "reset.addEventListener('click', function () { zoom(root); });\n"
    "if (input) {\n"
    "  input.addEventListener('input', function () { search(input.value); remember(); });\n"
    "  document.addEventListener('keydown', function (e) {\n"
    "    if ((e.ctrlKey || e.metaKey) && e.key === 'f') { e.preventDefault(); input.focus(); }\n"
    "    else if (e.key === 'Escape') { input.value = ''; search(''); remember(); }\n"
    "  });\n"
    "}\n"
    "var want = new URLSearchParams(location.hash.slice(1));\n"
    "if (input && want.get('s')) { input.value = want.get('s'); search(input.value); }\n"
    "if (want.get('z')) {\n"
    "  var at = want.get('z').split(',');\n"
    "  frames.forEach(function (f) { if (f.s === +at[0] && f.d === +at[1]) zoom(f); });\n"
    "}\n"
    "})();\n";

static void put_header(struct fg *g, const json_t *profile, const char *title, int height)
{
	FILE *out = g->out;
	json_int_t total = g->nodes[0].total;
	fprintf(out,
		"<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"no\"?>\n"
		"<svg version=\"1.1\" xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" "
		"height=\"%d\" viewBox=\"0 0 %d %d\" data-samples=\"%lld\" "
		"data-graph-width=\"%d\" data-x0=\"%d\" data-char-width=\"%.2f\">\n",
		CLI_FG_WIDTH, height, CLI_FG_WIDTH, height, (long long)total, GRAPH_W, XPAD,
		CHAR_W);
	fputs("<style type=\"text/css\"><![CDATA[\n"
	      "text { font-family: Verdana, 'DejaVu Sans', sans-serif; font-size: 12px; fill: "
	      "#000; }\n"
	      "#title { font-size: 17px; text-anchor: middle; }\n"
	      "#sub { fill: #444; text-anchor: middle; }\n"
	      "#matched { text-anchor: end; }\n"
	      "#reset { fill: #0645ad; cursor: pointer; text-decoration: underline; }\n"
	      "g.f { cursor: pointer; }\n"
	      "g.f rect { rx: 2px; }\n"
	      "g.f:hover rect { stroke: #000; stroke-width: 0.7; }\n"
	      "g.f text { pointer-events: none; }\n"
	      "g.anc rect { opacity: 0.45; }\n"
	      ".hide { display: none; }\n"
	      "]]></style>\n"
	      "<defs><linearGradient id=\"bg\" x1=\"0\" y1=\"0\" x2=\"0\" y2=\"1\">"
	      "<stop stop-color=\"#eeeeee\" offset=\"5%\"/><stop stop-color=\"#eeeeb0\" "
	      "offset=\"95%\"/></linearGradient></defs>\n",
	      out);
	fprintf(out, "<rect x=\"0\" y=\"0\" width=\"%d\" height=\"%d\" fill=\"url(#bg)\"/>\n",
		CLI_FG_WIDTH, height);
	fprintf(out, "<text id=\"title\" x=\"%d\" y=\"24\">", CLI_FG_WIDTH / 2);
	put_xml(out, title ? title : "Flame Graph", 0);
	fputs("</text>\n", out);

	fprintf(out, "<text id=\"sub\" x=\"%d\" y=\"44\">%lld samples", CLI_FG_WIDTH / 2,
		(long long)total);
	json_t *v;
	if (json_is_number(v = json_object_get(profile, "duration_s")))
		fprintf(out, " in %.1f s", json_number_value(v));
	if (json_is_number(v = json_object_get(profile, "rate")))
		fprintf(out, " at %g Hz", json_number_value(v));
	fprintf(out, ", %zu thread%s", g->threads, g->threads == 1 ? "" : "s");
	if (json_is_integer(v = json_object_get(profile, "lost")))
		fprintf(out, ", %lld lost", (long long)json_integer_value(v));
	if (json_is_integer(v = json_object_get(profile, "faulted")))
		fprintf(out, ", %lld faulted", (long long)json_integer_value(v));
	fputs("</text>\n", out);

	/* The legend explains the colours. */
	static const struct {
		const char *fill, *what;
	} legend[] = {{"rgb(230,120,30)", "Python"},
		      {"rgb(80,195,200)", "native"},
		      {"rgb(185,175,215)", "thread"}};
	for (size_t i = 0; i < sizeof(legend) / sizeof(legend[0]); i++)
		fprintf(out,
			"<rect x=\"%zu\" y=\"50\" width=\"12\" height=\"12\" fill=\"%s\"/>"
			"<text x=\"%zu\" y=\"60\">%s</text>\n",
			XPAD + i * 80, legend[i].fill, XPAD + i * 80 + 16, legend[i].what);
	fputs("<text id=\"reset\" class=\"hide\" x=\"10\" y=\"24\">Reset zoom</text>\n", out);
	fprintf(out,
		"<foreignObject x=\"%d\" y=\"8\" width=\"260\" height=\"28\">"
		"<input xmlns=\"http://www.w3.org/1999/xhtml\" id=\"search\" type=\"search\" "
		"placeholder=\"Search (regex), Ctrl-F\" "
		"style=\"width:240px;font:12px Verdana,sans-serif\"/></foreignObject>\n",
		CLI_FG_WIDTH - XPAD - 260);
	if (!total)
		fprintf(out, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">No samples.</text>\n",
			CLI_FG_WIDTH / 2, HEADER_H + FRAME_H);
}

static void fg_free(struct fg *g)
{
	free(g->fns);
	free(g->nodes);
	free(g->fn_tab.slot);
	free(g->node_tab.slot);
	free(g->frame_fn);
}

int cli_flamegraph_svg(const json_t *profile, FILE *out, const char *title)
{
	const json_t *frames = json_object_get(profile, "frames");
	const json_t *stacks = json_object_get(profile, "stacks");
	if (!json_is_object(profile) || !json_is_array(frames) || !json_is_array(stacks)) {
		errno = EINVAL;
		return -1;
	}
	struct fg g = {.out = out};
	static const struct fg_fn root_fn = {.kind = FG_ROOT, .func = "all"};
	int rc = ENOMEM;
	/* The root is node 0 for function 0, outside the node table: it is nobody's child. */
	g.nodes = calloc(1, sizeof(*g.nodes));
	if (!g.nodes || fn_intern(&g, &root_fn) != 0)
		goto fail;
	g.nnodes = g.capnodes = 1;
	if ((rc = load_frames(&g, frames)) || (rc = load_stacks(&g, stacks)))
		goto fail;
	resolve_fns(&g);

	json_int_t total = g.nodes[0].total;
	g.scale = total ? (double)GRAPH_W / (double)total : 0;
	json_int_t least = total ? min_samples(&g) : 0;
	if (least < 0)
		goto fail;
	/* Parents come before their children in the array. */
	g.nodes[0].visible = true;
	for (size_t i = 1; i < g.nnodes; i++) {
		struct fg_node *n = &g.nodes[i];
		n->visible = g.nodes[n->parent].visible && n->total >= least;
		/* A visible parent's narrow children may show as a merged block one level up. */
		if (g.nodes[n->parent].visible && n->depth > g.max_depth)
			g.max_depth = n->depth;
	}
	int height = HEADER_H + (g.max_depth + 1) * FRAME_H + FOOTER_H;
	errno = 0;
	put_header(&g, profile, title, height);
	if (total && (rc = put_subtree(&g, &g.nodes[0], 0)))
		goto fail;
	fprintf(out, "<text id=\"details\" x=\"%d\" y=\"%d\"> </text>\n", XPAD, height - 10);
	fprintf(out, "<text id=\"matched\" x=\"%d\" y=\"%d\"> </text>\n", CLI_FG_WIDTH - XPAD,
		height - 10);
	fprintf(out, "<script type=\"text/ecmascript\"><![CDATA[\n%s]]></script>\n</svg>\n",
		script);
	fg_free(&g);
	if (fflush(out) != 0 || ferror(out)) {
		if (!errno)
			errno = EIO;
		return -1;
	}
	return 0;
fail:
	fg_free(&g);
	errno = rc;
	return -1;
}
