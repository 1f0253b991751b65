/*
 * Readers of CPython objects in another address space, for 3.6-3.13, driven
 * by struct fp_layout.  Everything read is untrusted and may change between
 * two reads: every length and count is capped, every pointer is read before
 * it is followed, and the only recursion (container reprs) has a depth bound.
 */
#include "object.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* tp_flags bits, the same in 3.6-3.13 where they exist. */
#define TPF_INLINE_VALUES (1ULL << 2) /* 3.13+ */
#define TPF_MANAGED_DICT  (1ULL << 4) /* 3.11+ */
#define TPF_HEAPTYPE	  (1ULL << 9)
#define TPF_LONG	  (1ULL << 24)
#define TPF_LIST	  (1ULL << 25)
#define TPF_TUPLE	  (1ULL << 26)
#define TPF_BYTES	  (1ULL << 27)
#define TPF_UNICODE	  (1ULL << 28)
#define TPF_DICT	  (1ULL << 29)

/* PyASCIIObject.state: interned:2, kind:3, compact:1, ascii:1 in 3.6-3.13. */
#define STATE_KIND(s)	 (((s) >> 2) & 7u)
#define STATE_COMPACT(s) (((s) >> 5) & 1u)
#define STATE_ASCII(s)	 (((s) >> 6) & 1u)

/* Bounds on what garbage can make us read. */
#define TYPE_BLOB_MAX	512 /* bytes of PyTypeObject read in one go */
#define HEAD_MAX	128 /* bytes of an object header read in one go (PyASCIIObject: 40-48) */
#define SEQ_LEN_MAX	(1LL << 40)
#define DICT_LOG2_MAX	26 /* 64M slots: anything larger is garbage */
#define ENTRY_CHUNK	64 /* dict entries read per system call */
#define LONG_DIGITS_MAX 72 /* 30-bit digits: about 650 decimal digits */
#define REPR_DEPTH	2  /* nesting of container reprs */
#define REPR_ITEMS	8  /* items shown per container */
#define THREADS_MAX	4096
#define KEY_MAX		1024 /* bytes of a key looked up by name */
#define THREAD_NAME_MAX 256

/* 3.13 PyDictValues starts with capacity, size, embedded, valid. */
#define VALUES313_VALID 3

/* Offsets of the managed-dict pre-header words (3.11+), in pointers before the object. */
#define MANAGED_DICT_SLOT   3
#define MANAGED_VALUES_SLOT 4 /* 3.11 only */

struct type_info {
	uint64_t addr;
	uint64_t flags;
	int64_t basicsize;
	int64_t dictoffset;
	uint64_t name;
};

static int read_u64(const struct fp_pyctx *c, uint64_t addr, uint64_t *out)
{
	*out = 0;
	return fp_mem_read_u64(c->mem, addr, out);
}

/* Adds a signed layout offset to an address the way the target's C would. */
static uint64_t at(uint64_t addr, int64_t off)
{
	return addr + (uint64_t)off;
}

static int type_at(const struct fp_pyctx *c, uint64_t tp, struct type_info *t)
{
	const struct fp_layout *l = c->l;
	memset(t, 0, sizeof(*t));
	t->addr = tp;
	if (!tp)
		return -EINVAL;
	int32_t end = l->tp_name;
	if (l->tp_basicsize > end)
		end = l->tp_basicsize;
	if (l->tp_flags > end)
		end = l->tp_flags;
	if (l->tp_dictoffset > end)
		end = l->tp_dictoffset;
	if (l->tp_name < 0 || l->tp_basicsize < 0 || l->tp_flags < 0 || l->tp_dictoffset < 0 ||
	    end + 8 > TYPE_BLOB_MAX)
		return -EINVAL;
	uint8_t blob[TYPE_BLOB_MAX];
	int r = fp_mem_read(c->mem, tp, blob, (size_t)end + 8);
	if (r < 0)
		return r;
	t->name = fp_blob_u64(blob, l->tp_name);
	t->basicsize = fp_blob_i64(blob, l->tp_basicsize);
	t->flags = fp_blob_u64(blob, l->tp_flags);
	t->dictoffset = fp_blob_i64(blob, l->tp_dictoffset);
	return 0;
}

static int read_type(const struct fp_pyctx *c, uint64_t obj, struct type_info *t)
{
	uint64_t tp;
	memset(t, 0, sizeof(*t));
	if (!obj)
		return -EFAULT;
	int r = read_u64(c, at(obj, c->l->ob_type), &tp);
	return r < 0 ? r : type_at(c, tp, t);
}

/*
 * The first len bytes of obj, which hold ob_type and the fields the caller
 * needs, and its type: two reads where field by field would take more.
 */
static int read_head(const struct fp_pyctx *c, uint64_t obj, uint8_t *head, int32_t len,
		     struct type_info *t)
{
	const struct fp_layout *l = c->l;
	memset(t, 0, sizeof(*t));
	if (!obj)
		return -EFAULT;
	if (len > HEAD_MAX || l->ob_type < 0 || l->ob_type + 8 > len)
		return -EINVAL;
	int r = fp_mem_read(c->mem, obj, head, (size_t)len);
	return r < 0 ? r : type_at(c, fp_blob_u64(head, l->ob_type), t);
}

static int type_name_of(const struct fp_pyctx *c, const struct type_info *t, char *out, size_t cap)
{
	if (cap == 0)
		return -EINVAL;
	int r = fp_mem_read_cstr(c->mem, t->name, out, cap);
	/* A truncated name still names the type; it never equals a shorter one. */
	return r == -ENAMETOOLONG ? 0 : r;
}

int fp_py_type_name(const struct fp_pyctx *c, uint64_t obj, char *out, size_t cap)
{
	struct type_info t;
	if (cap)
		out[0] = '\0';
	int r = read_type(c, obj, &t);
	return r < 0 ? r : type_name_of(c, &t, out, cap);
}

static int check_size(int64_t n)
{
	return n < 0 || n > SEQ_LEN_MAX ? -EINVAL : 0;
}

/* Reads ob_size of a variable-size object; fails on a negative or absurd size. */
static int read_var_size(const struct fp_pyctx *c, uint64_t obj, int64_t *n)
{
	uint64_t v;
	int r = read_u64(c, at(obj, c->l->var_size), &v);
	if (r < 0)
		return r;
	*n = (int64_t)v;
	return check_size(*n);
}

/* ob_size of a tuple or bytes whose type has flag. */
static int read_var_head(const struct fp_pyctx *c, uint64_t obj, uint64_t flag, int64_t *n)
{
	uint8_t head[HEAD_MAX];
	struct type_info t;
	*n = 0;
	if (c->l->var_size < 0)
		return -EINVAL;
	int r = read_head(c, obj, head, c->l->var_size + 8, &t);
	if (r < 0)
		return r;
	if (!(t.flags & flag))
		return -EINVAL;
	*n = fp_blob_i64(head, c->l->var_size);
	return check_size(*n);
}

/* str */

struct str_info {
	int64_t length; /* in code points */
	unsigned kind;	/* bytes per code point: 1, 2 or 4 */
	bool ascii;
	uint64_t data;
};

/* Parses the header of a str whose first unicode_ascii_size bytes are in hdr. */
static int str_info_parse(const struct fp_pyctx *c, uint64_t obj, const uint8_t *hdr,
			  struct str_info *s)
{
	const struct fp_layout *l = c->l;
	uint32_t state;
	memcpy(&state, hdr + l->unicode_state, sizeof(state));
	s->length = fp_blob_i64(hdr, l->unicode_length);
	s->kind = STATE_KIND(state);
	s->ascii = STATE_ASCII(state);
	if (s->length < 0 || s->length > SEQ_LEN_MAX)
		return -EINVAL;
	if (s->kind != 1 && s->kind != 2 && s->kind != 4)
		return -ENOTSUP; /* kind 0: a legacy string not made ready (<= 3.11) */
	if (s->ascii && s->kind != 1)
		return -EINVAL;
	if (STATE_COMPACT(state)) {
		s->data = at(obj, s->ascii ? l->unicode_ascii_size : l->unicode_compact_size);
		return 0;
	}
	/* Legacy PyUnicodeObject: data.any follows the PyCompactUnicodeObject part. */
	int r = read_u64(c, at(obj, l->unicode_compact_size), &s->data);
	if (r < 0)
		return r;
	return s->data ? 0 : -EINVAL;
}

/* The str header fields we parse all lie inside PyASCIIObject, as does ob_type. */
static bool str_layout_ok(const struct fp_layout *l)
{
	return l->unicode_ascii_size > 0 && l->unicode_ascii_size <= HEAD_MAX &&
	       l->unicode_length >= 0 && l->unicode_length + 8 <= l->unicode_ascii_size &&
	       l->unicode_state >= 0 && l->unicode_state + 4 <= l->unicode_ascii_size &&
	       l->ob_type >= 0 && l->ob_type + 8 <= l->unicode_ascii_size;
}

/* Header and type of a str, in two reads. */
static int str_header(const struct fp_pyctx *c, uint64_t obj, struct str_info *s)
{
	const struct fp_layout *l = c->l;
	if (!str_layout_ok(l))
		return -EINVAL;
	uint8_t hdr[HEAD_MAX];
	struct type_info t;
	int r = read_head(c, obj, hdr, l->unicode_ascii_size, &t);
	if (r < 0)
		return r;
	if (!(t.flags & TPF_UNICODE))
		return -EINVAL;
	return str_info_parse(c, obj, hdr, s);
}

static size_t utf8_encode(uint32_t cp, char *out)
{
	if ((cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
		cp = 0xfffd; /* lone surrogates are legal in str, never in UTF-8 */
	if (cp < 0x80) {
		out[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (char)(0xc0 | (cp >> 6));
		out[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (char)(0xe0 | (cp >> 12));
		out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		out[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	out[0] = (char)(0xf0 | (cp >> 18));
	out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
	out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
	out[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/* Converts the code points of s to UTF-8 in chunks, stopping before a character that does not fit.
 */
static int str_decode(const struct fp_pyctx *c, const struct str_info *s, char *out, size_t cap)
{
	uint8_t chunk[1024];
	size_t per = sizeof(chunk) / s->kind;
	size_t want = (uint64_t)s->length < cap - 1 ? (size_t)s->length : cap - 1;
	size_t o = 0;
	for (size_t i = 0; i < want;) {
		size_t n = want - i < per ? want - i : per;
		int r = fp_mem_read(c->mem, s->data + i * s->kind, chunk, n * s->kind);
		if (r < 0) {
			out[o] = '\0';
			return r;
		}
		for (size_t j = 0; j < n; j++) {
			uint32_t cp;
			if (s->kind == 1) {
				cp = chunk[j];
				if (s->ascii && cp >= 0x80)
					cp = '?';
			} else if (s->kind == 2) {
				uint16_t u;
				memcpy(&u, chunk + j * 2, 2);
				cp = u;
			} else {
				memcpy(&cp, chunk + j * 4, 4);
			}
			char enc[4];
			size_t k = utf8_encode(cp, enc);
			if (o + k > cap - 1) {
				out[o] = '\0';
				return 0;
			}
			memcpy(out + o, enc, k);
			o += k;
		}
		i += n;
	}
	out[o] = '\0';
	return 0;
}

int fp_py_str(const struct fp_pyctx *c, uint64_t obj, char *out, size_t cap)
{
	if (cap == 0)
		return -EINVAL;
	out[0] = '\0';
	struct str_info s;
	int r = str_header(c, obj, &s);
	return r < 0 ? r : str_decode(c, &s, out, cap);
}

/* bytes, tuple */

int fp_py_bytes(const struct fp_pyctx *c, uint64_t obj, uint8_t *out, size_t cap, size_t *len)
{
	*len = 0;
	int64_t n;
	int r = read_var_head(c, obj, TPF_BYTES, &n);
	if (r < 0)
		return r;
	size_t copy = (uint64_t)n < cap ? (size_t)n : cap;
	r = fp_mem_read(c->mem, at(obj, c->l->bytes_sval), out, copy);
	if (r < 0)
		return r;
	*len = (size_t)n;
	return 0;
}

int fp_py_tuple(const struct fp_pyctx *c, uint64_t obj, uint64_t *items, size_t cap, size_t *n)
{
	*n = 0;
	int64_t len;
	int r = read_var_head(c, obj, TPF_TUPLE, &len);
	if (r < 0)
		return r;
	size_t copy = (uint64_t)len < cap ? (size_t)len : cap;
	r = fp_mem_read(c->mem, at(obj, c->l->tuple_item), items, copy * sizeof(uint64_t));
	if (r < 0)
		return r;
	*n = (size_t)len;
	return 0;
}

/* int */

/*
 * Sign and 30-bit digits of an int: ob_size carries both up to 3.11, lv_tag
 * (ndigits << 3 | sign bits, 0 positive, 1 zero, 2 negative) from 3.12.
 */
static int long_digits(const struct fp_pyctx *c, uint64_t obj, uint32_t *digits, size_t cap,
		       size_t *nd, int *sign)
{
	const struct fp_layout *l = c->l;
	uint64_t v;
	int r;
	if (l->long_lv_tag != FP_NO_FIELD) {
		r = read_u64(c, at(obj, l->long_lv_tag), &v);
		if (r < 0)
			return r;
		unsigned s = v & 3;
		if (s == 3)
			return -EINVAL;
		*sign = 1 - (int)s;
		*nd = (size_t)(v >> 3);
		if ((*nd == 0) != (*sign == 0))
			return -EINVAL;
	} else {
		r = read_u64(c, at(obj, l->var_size), &v);
		if (r < 0)
			return r;
		int64_t size = (int64_t)v;
		*sign = size < 0 ? -1 : size > 0;
		*nd = size < 0 ? (size_t)(-(size + 1)) + 1 : (size_t)size;
	}
	if (*nd > cap)
		return -ERANGE;
	r = fp_mem_read(c->mem, at(obj, l->long_digit), digits, *nd * sizeof(uint32_t));
	if (r < 0)
		return r;
	for (size_t i = 0; i < *nd; i++)
		if (digits[i] >> 30)
			return -EINVAL;
	return 0;
}

static int check_long(const struct fp_pyctx *c, uint64_t obj)
{
	struct type_info t;
	int r = read_type(c, obj, &t);
	if (r < 0)
		return r;
	return t.flags & TPF_LONG ? 0 : -EINVAL;
}

static int long_value(const struct fp_pyctx *c, uint64_t obj, int64_t *out)
{
	uint32_t d[3];
	size_t nd;
	int sign;
	int r = long_digits(c, obj, d, 3, &nd, &sign);
	if (r < 0)
		return r;
	unsigned __int128 m = 0;
	for (size_t i = nd; i-- > 0;)
		m = (m << 30) | d[i];
	if (sign >= 0 && m > (unsigned __int128)INT64_MAX)
		return -ERANGE;
	if (sign < 0 && m > (unsigned __int128)INT64_MAX + 1)
		return -ERANGE;
	*out = sign < 0 ? (int64_t)(0 - (uint64_t)m) : (int64_t)m;
	return 0;
}

int fp_py_long(const struct fp_pyctx *c, uint64_t obj, int64_t *out)
{
	*out = 0;
	int r = check_long(c, obj);
	return r < 0 ? r : long_value(c, obj, out);
}

/* repr */

/* Output that truncates with "..." and never splits a UTF-8 sequence. */
struct sbuf {
	char *p;
	size_t cap; /* > 0 */
	size_t len;
	bool full;
};

static void sb_putn(struct sbuf *b, const char *s, size_t n)
{
	if (b->full)
		return;
	if (b->len + n > b->cap - 1) {
		b->full = true;
		return;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void sb_puts(struct sbuf *b, const char *s)
{
	sb_putn(b, s, strlen(s));
}

static void sb_printf(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(struct sbuf *b, const char *fmt, ...)
{
	char tmp[128];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n >= 0)
		sb_putn(b, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

/* Ends a truncated output with "...", cutting back to a character boundary. */
static void sb_finish(struct sbuf *b)
{
	if (!b->full)
		return;
	size_t keep = b->cap - 1 >= 3 ? b->cap - 1 - 3 : 0;
	if (keep > b->len)
		keep = b->len;
	while (keep > 0 && ((unsigned char)b->p[keep] & 0xc0) == 0x80 && keep < b->len)
		keep--;
	size_t dots = b->cap - 1 - keep < 3 ? b->cap - 1 - keep : 3;
	memcpy(b->p + keep, "...", dots);
	b->len = keep + dots;
	b->p[b->len] = '\0';
}

static void repr_long(const struct fp_pyctx *c, uint64_t obj, struct sbuf *b)
{
	uint32_t d[LONG_DIGITS_MAX];
	size_t nd;
	int sign;
	if (long_digits(c, obj, d, LONG_DIGITS_MAX, &nd, &sign) < 0) {
		sb_printf(b, "<int at 0x%" PRIx64 ">", obj);
		return;
	}
	/* Schoolbook division by 10^9 of the base-2^30 digits, least significant chunk first. */
	uint32_t dec[(LONG_DIGITS_MAX * 30) / 29 + 2];
	size_t nc = 0;
	while (nd > 0) {
		uint64_t rem = 0;
		for (size_t i = nd; i-- > 0;) {
			uint64_t cur = (rem << 30) | d[i];
			d[i] = (uint32_t)(cur / 1000000000u);
			rem = cur % 1000000000u;
		}
		dec[nc++] = (uint32_t)rem;
		while (nd > 0 && d[nd - 1] == 0)
			nd--;
	}
	if (sign < 0)
		sb_puts(b, "-");
	sb_printf(b, "%" PRIu32, nc ? dec[nc - 1] : 0);
	for (size_t i = nc - (nc ? 1 : 0); i-- > 0;)
		sb_printf(b, "%09" PRIu32, dec[i]);
}

/* Python's float repr: the shortest round-tripping digits, exponent outside [-4, 16). */
static void repr_float(double v, struct sbuf *b)
{
	if (isnan(v)) {
		sb_puts(b, "nan");
		return;
	}
	if (isinf(v)) {
		sb_puts(b, v < 0 ? "-inf" : "inf");
		return;
	}
	char e[40];
	for (int prec = 0; prec < 17; prec++) {
		snprintf(e, sizeof(e), "%.*e", prec, v);
		if (strtod(e, NULL) == v)
			break;
	}
	/* e is [-]D[.DDD]e[+-]XX */
	char *ep = strchr(e, 'e');
	int exp = atoi(ep + 1);
	*ep = '\0';
	const char *m = e;
	bool neg = *m == '-';
	if (neg)
		m++;
	char digits[24];
	size_t nd = 0;
	for (const char *p = m; *p && nd < sizeof(digits) - 1; p++)
		if (*p != '.')
			digits[nd++] = *p;
	digits[nd] = '\0';
	if (neg)
		sb_puts(b, "-");
	if (exp < -4 || exp >= 16) {
		sb_putn(b, digits, 1);
		if (nd > 1) {
			sb_puts(b, ".");
			sb_puts(b, digits + 1);
		}
		sb_printf(b, "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
		return;
	}
	if (exp < 0) {
		sb_puts(b, "0.");
		for (int i = -1; i > exp; i--)
			sb_puts(b, "0");
		sb_puts(b, digits);
		return;
	}
	size_t intlen = (size_t)exp + 1;
	for (size_t i = 0; i < intlen; i++)
		sb_putn(b, i < nd ? &digits[i] : "0", 1);
	sb_puts(b, ".");
	sb_puts(b, nd > intlen ? digits + intlen : "0");
}

static void repr_quoted(struct sbuf *b, const uint8_t *s, size_t n, bool bytes, bool more)
{
	bool sq = memchr(s, '\'', n) != NULL, dq = memchr(s, '"', n) != NULL;
	char q = sq && !dq ? '"' : '\'';
	if (bytes)
		sb_puts(b, "b");
	sb_putn(b, &q, 1);
	for (size_t i = 0; i < n && !b->full; i++) {
		uint8_t ch = s[i];
		if (ch == (uint8_t)q || ch == '\\')
			sb_printf(b, "\\%c", ch);
		else if (ch == '\n')
			sb_puts(b, "\\n");
		else if (ch == '\r')
			sb_puts(b, "\\r");
		else if (ch == '\t')
			sb_puts(b, "\\t");
		else if (ch < 0x20 || ch == 0x7f || (bytes && ch >= 0x80))
			sb_printf(b, "\\x%02x", ch);
		else
			sb_putn(b, (const char *)&ch, 1);
	}
	if (more)
		sb_puts(b, "...");
	sb_putn(b, &q, 1);
}

static void repr_at(struct sbuf *b, const char *tn, uint64_t obj)
{
	sb_printf(b, "<%.64s at 0x%" PRIx64 ">", tn, obj);
}

static int repr_obj(const struct fp_pyctx *c, uint64_t obj, struct sbuf *b, int depth);

static void repr_items(const struct fp_pyctx *c, struct sbuf *b, const uint64_t *items, size_t n,
		       size_t total, int depth)
{
	for (size_t i = 0; i < n && !b->full; i++) {
		if (i)
			sb_puts(b, ", ");
		repr_obj(c, items[i], b, depth + 1);
	}
	if (total > n)
		sb_puts(b, ", ...");
}

struct dict_repr {
	const struct fp_pyctx *c;
	struct sbuf *b;
	int depth;
	size_t n;
};

static int dict_repr_item(void *arg, uint64_t key, uint64_t value)
{
	struct dict_repr *d = arg;
	if (d->n == REPR_ITEMS) {
		sb_puts(d->b, ", ...");
		return 1;
	}
	if (d->n++)
		sb_puts(d->b, ", ");
	repr_obj(d->c, key, d->b, d->depth + 1);
	sb_puts(d->b, ": ");
	repr_obj(d->c, value, d->b, d->depth + 1);
	return d->b->full;
}

static void repr_container(const struct fp_pyctx *c, uint64_t obj, const struct type_info *t,
			   const char *tn, struct sbuf *b, int depth)
{
	const struct fp_layout *l = c->l;
	if (t->flags & TPF_DICT) {
		struct dict_repr d = {c, b, depth, 0};
		sb_puts(b, "{");
		if (fp_py_dict_foreach(c, obj, REPR_ITEMS + 1, dict_repr_item, &d) < 0)
			sb_puts(b, "?");
		sb_puts(b, "}");
		return;
	}
	int64_t len;
	uint64_t items[REPR_ITEMS];
	uint64_t arr = at(obj, l->tuple_item);
	if (read_var_size(c, obj, &len) < 0 ||
	    ((t->flags & TPF_LIST) && read_u64(c, at(obj, l->list_item), &arr) < 0)) {
		repr_at(b, tn, obj);
		return;
	}
	size_t n = (uint64_t)len < REPR_ITEMS ? (size_t)len : REPR_ITEMS;
	if (fp_mem_read(c->mem, arr, items, n * sizeof(uint64_t)) < 0) {
		repr_at(b, tn, obj);
		return;
	}
	bool tuple = t->flags & TPF_TUPLE;
	sb_puts(b, tuple ? "(" : "[");
	repr_items(c, b, items, n, (size_t)len, depth);
	sb_puts(b, tuple ? (len == 1 ? ",)" : ")") : "]");
}

/* Fails only when the type is unreadable, after saying so in b. */
static int repr_obj(const struct fp_pyctx *c, uint64_t obj, struct sbuf *b, int depth)
{
	const struct fp_layout *l = c->l;
	struct type_info t;
	char tn[128];
	int r = read_type(c, obj, &t);
	if (r == 0)
		r = type_name_of(c, &t, tn, sizeof(tn));
	if (r < 0) {
		sb_printf(b, "<unreadable at 0x%" PRIx64 ">", obj);
		return r;
	}
	if (strcmp(tn, "NoneType") == 0) {
		sb_puts(b, "None");
	} else if (strcmp(tn, "bool") == 0) {
		int64_t v;
		if (long_value(c, obj, &v) == 0)
			sb_puts(b, v ? "True" : "False");
		else
			repr_at(b, tn, obj);
	} else if (t.flags & TPF_LONG) {
		repr_long(c, obj, b);
	} else if (strcmp(tn, "float") == 0) {
		double v;
		if (fp_mem_read(c->mem, at(obj, l->float_fval), &v, sizeof(v)) == 0)
			repr_float(v, b);
		else
			repr_at(b, tn, obj);
	} else if (t.flags & TPF_UNICODE) {
		char s[512];
		struct str_info si;
		if (str_header(c, obj, &si) < 0 || str_decode(c, &si, s, sizeof(s)) < 0) {
			repr_at(b, tn, obj);
			return 0;
		}
		size_t n = strlen(s);
		repr_quoted(b, (const uint8_t *)s, n, false, (uint64_t)si.length > n);
	} else if (t.flags & TPF_BYTES) {
		uint8_t s[256];
		size_t n;
		if (fp_py_bytes(c, obj, s, sizeof(s), &n) < 0) {
			repr_at(b, tn, obj);
			return 0;
		}
		repr_quoted(b, s, n < sizeof(s) ? n : sizeof(s), true, n > sizeof(s));
	} else if ((t.flags & (TPF_TUPLE | TPF_LIST | TPF_DICT)) && depth < REPR_DEPTH) {
		repr_container(c, obj, &t, tn, b, depth);
	} else {
		repr_at(b, tn, obj);
	}
	return 0;
}

int fp_py_repr(const struct fp_pyctx *c, uint64_t obj, char *out, size_t cap)
{
	if (cap == 0)
		return -EINVAL;
	out[0] = '\0';
	struct sbuf b = {out, cap, 0, false};
	int r = repr_obj(c, obj, &b, 0);
	if (r < 0) {
		out[0] = '\0';
		return r;
	}
	sb_finish(&b);
	return 0;
}

/* dict */

/* Where the live entries of a keys object are, and how to read them. */
struct dict_view {
	uint64_t entries;
	size_t n;	 /* dk_nentries */
	size_t esize;	 /* 24 (hash, key, value) or 16 (key, value) */
	int koff, voff;	 /* in an entry */
	uint64_t values; /* split table: value i is here, entries hold no values */
};

static int keys_view(const struct fp_pyctx *c, uint64_t keys, uint64_t values, struct dict_view *v)
{
	const struct fp_layout *l = c->l;
	memset(v, 0, sizeof(*v));
	if (!keys)
		return -EINVAL;
	int64_t nentries;
	int r = fp_mem_read(c->mem, at(keys, l->dk_nentries), &nentries, sizeof(nentries));
	if (r < 0)
		return r;
	uint64_t slots, index_bytes;
	bool general = true;
	if (l->dict_model == FP_DICT_36) {
		int64_t size;
		r = fp_mem_read(c->mem, at(keys, l->dk_size), &size, sizeof(size));
		if (r < 0)
			return r;
		if (size <= 0 || size > (1LL << DICT_LOG2_MAX) || (size & (size - 1)))
			return -EINVAL;
		slots = (uint64_t)size;
		unsigned width = size <= 0xff ? 1 : size <= 0xffff ? 2 : 4;
		index_bytes = slots * width;
	} else if (l->dict_model == FP_DICT_311) {
		uint8_t log2_size, log2_index, kind;
		if ((r = fp_mem_read(c->mem, at(keys, l->dk_log2_size), &log2_size, 1)) < 0 ||
		    (r = fp_mem_read(c->mem, at(keys, l->dk_log2_index_bytes), &log2_index, 1)) <
			0 ||
		    (r = fp_mem_read(c->mem, at(keys, l->dk_kind), &kind, 1)) < 0)
			return r;
		if (log2_size > DICT_LOG2_MAX || log2_index < log2_size ||
		    log2_index > log2_size + 3 || kind > 2)
			return -EINVAL;
		slots = 1ULL << log2_size;
		index_bytes = 1ULL << log2_index;
		general = kind == 0; /* DICT_KEYS_GENERAL; UNICODE and SPLIT drop the hash */
	} else {
		return -EINVAL;
	}
	if (nentries < 0 || (uint64_t)nentries > slots)
		return -EINVAL;
	v->entries = at(keys, l->dk_indices) + index_bytes;
	v->n = (size_t)nentries;
	v->esize = general ? 24 : 16;
	v->koff = general ? 8 : 0;
	v->voff = general ? 16 : 8;
	v->values = values ? at(values, l->dict_values_values) : 0;
	return 0;
}

static int dict_view(const struct fp_pyctx *c, uint64_t dict, struct dict_view *v)
{
	const struct fp_layout *l = c->l;
	struct type_info t;
	uint8_t head[HEAD_MAX];
	if (l->dict_keys < 0 || l->dict_values < 0)
		return -EINVAL;
	int32_t len = (l->dict_keys > l->dict_values ? l->dict_keys : l->dict_values) + 8;
	int r = read_head(c, dict, head, len, &t);
	if (r < 0)
		return r;
	if (!(t.flags & TPF_DICT))
		return -EINVAL;
	return keys_view(c, fp_blob_u64(head, l->dict_keys), fp_blob_u64(head, l->dict_values), v);
}

/* Calls fn with each chunk of live (key, value) pairs; stops when fn returns non-zero. */
typedef int (*chunk_fn)(void *arg, const uint64_t *keys, const uint64_t *values, size_t n);

static int view_chunks(const struct fp_pyctx *c, const struct dict_view *v, chunk_fn fn, void *arg)
{
	uint8_t ebuf[ENTRY_CHUNK * 24];
	uint64_t vbuf[ENTRY_CHUNK], keys[ENTRY_CHUNK], values[ENTRY_CHUNK];
	for (size_t i = 0; i < v->n; i += ENTRY_CHUNK) {
		size_t k = v->n - i < ENTRY_CHUNK ? v->n - i : ENTRY_CHUNK;
		int r = fp_mem_read(c->mem, v->entries + i * v->esize, ebuf, k * v->esize);
		if (r < 0)
			return r;
		if (v->values &&
		    (r = fp_mem_read(c->mem, v->values + i * 8, vbuf, k * sizeof(uint64_t))) < 0)
			return r;
		size_t m = 0;
		for (size_t j = 0; j < k; j++) {
			uint64_t key = fp_blob_u64(ebuf + j * v->esize, v->koff);
			uint64_t val =
			    v->values ? vbuf[j] : fp_blob_u64(ebuf + j * v->esize, v->voff);
			/* A deleted entry or an unset split slot has no value. */
			if (key && val) {
				keys[m] = key;
				values[m++] = val;
			}
		}
		if (m && (r = fn(arg, keys, values, m)) != 0)
			return r;
	}
	return 0;
}

struct foreach_arg {
	fp_dict_fn fn;
	void *arg;
	size_t left;
	bool limited; /* stopped by the limit, not by fn */
};

static int foreach_chunk(void *arg, const uint64_t *keys, const uint64_t *values, size_t n)
{
	struct foreach_arg *f = arg;
	for (size_t i = 0; i < n; i++) {
		if (f->left == 0) {
			f->limited = true;
			return 1;
		}
		f->left--;
		int r = f->fn(f->arg, keys[i], values[i]);
		if (r)
			return r;
	}
	return 0;
}

int fp_py_dict_foreach(const struct fp_pyctx *c, uint64_t dict, size_t limit, fp_dict_fn fn,
		       void *arg)
{
	struct dict_view v;
	int r = dict_view(c, dict, &v);
	if (r < 0)
		return r;
	struct foreach_arg f = {fn, arg, limit, false};
	r = view_chunks(c, &v, foreach_chunk, &f);
	return f.limited ? 0 : r;
}

/*
 * Looking up a str key: the key headers of a chunk come in one batched read,
 * and only a key of the right length has its characters read.
 */
struct lookup {
	const struct fp_pyctx *c;
	const char *name;
	size_t bytes;  /* strlen(name) */
	size_t points; /* code points in name */
	bool ascii;
	uint64_t str_type; /* a type already checked to be a str type */
	uint64_t found;
};

static int key_matches(struct lookup *k, uint64_t key, const uint8_t *hdr)
{
	const struct fp_pyctx *c = k->c;
	uint64_t tp = fp_blob_u64(hdr, c->l->ob_type);
	struct str_info s;
	if (str_info_parse(c, key, hdr, &s) < 0 || (uint64_t)s.length != k->points)
		return 0;
	if (tp != k->str_type) {
		struct type_info t;
		if (read_type(c, key, &t) < 0 || !(t.flags & TPF_UNICODE))
			return 0;
		k->str_type = tp;
	}
	char buf[KEY_MAX + 2];
	if (k->ascii && s.ascii) {
		if (fp_mem_read(c->mem, s.data, buf, k->bytes) < 0)
			return 0;
		return memcmp(buf, k->name, k->bytes) == 0;
	}
	if (str_decode(c, &s, buf, k->bytes + 2) < 0)
		return 0;
	return strcmp(buf, k->name) == 0;
}

static int lookup_chunk(void *arg, const uint64_t *keys, const uint64_t *values, size_t n)
{
	struct lookup *k = arg;
	const struct fp_layout *l = k->c->l;
	uint8_t hdrs[ENTRY_CHUNK][HEAD_MAX];
	struct fp_mem_req reqs[ENTRY_CHUNK];
	size_t hsize = (size_t)l->unicode_ascii_size;
	for (size_t i = 0; i < n; i++)
		reqs[i] = (struct fp_mem_req){.addr = keys[i], .buf = hdrs[i], .len = hsize};
	fp_mem_readv(k->c->mem, reqs, n);
	for (size_t i = 0; i < n; i++) {
		if (reqs[i].err == 0 && key_matches(k, keys[i], hdrs[i])) {
			k->found = values[i];
			return 1;
		}
	}
	return 0;
}

static int view_get_str(const struct fp_pyctx *c, const struct dict_view *v, const char *name,
			uint64_t *value)
{
	const struct fp_layout *l = c->l;
	*value = 0;
	if (!str_layout_ok(l))
		return -EINVAL;
	struct lookup k = {.c = c, .name = name, .bytes = strlen(name), .ascii = true};
	if (k.bytes > KEY_MAX)
		return -ENAMETOOLONG;
	for (const char *p = name; *p; p++) {
		k.points += ((unsigned char)*p & 0xc0) != 0x80;
		k.ascii &= (unsigned char)*p < 0x80;
	}
	int r = view_chunks(c, v, lookup_chunk, &k);
	if (r < 0)
		return r;
	*value = k.found;
	return 0;
}

int fp_py_dict_get_str(const struct fp_pyctx *c, uint64_t dict, const char *key, uint64_t *value)
{
	*value = 0;
	struct dict_view v;
	int r = dict_view(c, dict, &v);
	return r < 0 ? r : view_get_str(c, &v, key, value);
}

/* Attributes kept in a values array keyed by the type's shared keys (3.11+). */
static int values_get_str(const struct fp_pyctx *c, const struct type_info *t, uint64_t values,
			  const char *name, uint64_t *value)
{
	uint64_t keys;
	struct dict_view v;
	int r;
	if (!(t->flags & TPF_HEAPTYPE))
		return -EINVAL;
	if ((r = read_u64(c, at(t->addr, c->l->ht_cached_keys), &keys)) < 0 ||
	    (r = keys_view(c, keys, values, &v)) < 0)
		return r;
	return view_get_str(c, &v, name, value);
}

int fp_py_getattr(const struct fp_pyctx *c, uint64_t obj, const char *name, uint64_t *value)
{
	const struct fp_layout *l = c->l;
	*value = 0;
	struct type_info t;
	int r = read_type(c, obj, &t);
	if (r < 0)
		return r;
	uint64_t dict = 0;
	const uint64_t slot = MANAGED_DICT_SLOT * sizeof(uint64_t);
	bool managed = (t.flags & TPF_MANAGED_DICT) && l->instdict_model != FP_INSTDICT_OFFSET;
	if (managed && l->instdict_model == FP_INSTDICT_311) {
		uint64_t pre[2]; /* values pointer at obj[-4], dict at obj[-3] */
		r = fp_mem_read(c->mem, obj - MANAGED_VALUES_SLOT * sizeof(uint64_t), pre,
				sizeof(pre));
		if (r < 0)
			return r;
		if (pre[0])
			return values_get_str(c, &t, pre[0], name, value);
		dict = pre[1];
	} else if (managed && l->instdict_model == FP_INSTDICT_312) {
		uint64_t dv;
		if ((r = read_u64(c, obj - slot, &dv)) < 0)
			return r;
		if (dv & 1) /* tagged: PyDictValues pointer - 1, not a dict */
			return values_get_str(c, &t, dv + 1, name, value);
		dict = dv;
	} else if (l->instdict_model == FP_INSTDICT_313 &&
		   (t.flags & (TPF_INLINE_VALUES | TPF_MANAGED_DICT))) {
		if (t.flags & TPF_INLINE_VALUES) {
			if (t.basicsize <= 0 || t.basicsize > SEQ_LEN_MAX)
				return -EINVAL;
			uint64_t values = at(obj, t.basicsize);
			uint8_t valid;
			if ((r = fp_mem_read(c->mem, values + VALUES313_VALID, &valid, 1)) < 0)
				return r;
			/* Invalid inline values mean the attributes moved to the managed dict. */
			if (valid)
				return values_get_str(c, &t, values, name, value);
		}
		if ((t.flags & TPF_MANAGED_DICT) && (r = read_u64(c, obj - slot, &dict)) < 0)
			return r;
	} else if (t.dictoffset > 0 && t.dictoffset < SEQ_LEN_MAX) {
		if ((r = read_u64(c, at(obj, t.dictoffset), &dict)) < 0)
			return r;
	} else if (t.dictoffset < 0) {
		/* Relative to the end of a variable-size object: int, tuple and str subclasses. */
		return -ENOTSUP;
	}
	return dict ? fp_py_dict_get_str(c, dict, name, value) : 0;
}

/* threading._active */

struct thread_walk {
	const struct fp_pyctx *c;
	fp_thread_name_fn fn;
	void *arg;
};

static int thread_item(void *arg, uint64_t key, uint64_t value)
{
	struct thread_walk *w = arg;
	int64_t ident;
	uint64_t nameobj;
	char name[THREAD_NAME_MAX];
	if (fp_py_long(w->c, key, &ident) < 0 ||
	    fp_py_getattr(w->c, value, "_name", &nameobj) < 0 || !nameobj ||
	    fp_py_str(w->c, nameobj, name, sizeof(name)) < 0)
		return 0; /* a thread starting or ending: skip it */
	w->fn(w->arg, (uint64_t)ident, name);
	return 0;
}

int fp_py_thread_names(const struct fp_pyctx *c, uint64_t interp, fp_thread_name_fn fn, void *arg)
{
	const struct fp_layout *l = c->l;
	uint64_t modules, mod, md_dict, active;
	int r;
	if (l->interp_modules == FP_NO_FIELD || l->module_dict == FP_NO_FIELD)
		return -ENOTSUP;
	if ((r = read_u64(c, at(interp, l->interp_modules), &modules)) < 0 ||
	    (r = fp_py_dict_get_str(c, modules, "threading", &mod)) < 0)
		return r;
	if (!mod)
		return 0; /* threading never imported: no names to find */
	char tn[16];
	if ((r = fp_py_type_name(c, mod, tn, sizeof(tn))) < 0)
		return r;
	if (strcmp(tn, "module") != 0)
		return -EINVAL;
	if ((r = read_u64(c, at(mod, l->module_dict), &md_dict)) < 0 ||
	    (r = fp_py_dict_get_str(c, md_dict, "_active", &active)) < 0)
		return r;
	if (!active)
		return -ENOENT;
	struct thread_walk w = {c, fn, arg};
	return fp_py_dict_foreach(c, active, THREADS_MAX, thread_item, &w);
}
