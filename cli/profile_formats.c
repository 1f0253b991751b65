#include "profile_formats.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

#include "cli.h"
#include "flamegraph.h"
#include "profile.pb-c.h"

static const struct {
	const char *name, *file;
} formats[] = {
    [CLI_PROFILE_SVG] = {"svg", "flamegraph.svg"},
    [CLI_PROFILE_COLLAPSED] = {"collapsed", "profile.collapsed"},
    [CLI_PROFILE_SPEEDSCOPE] = {"speedscope", "profile.speedscope.json"},
    [CLI_PROFILE_PPROF] = {"pprof", "profile.pb.gz"},
};

int cli_profile_format_parse(const char *name, enum cli_profile_format *out)
{
	for (size_t i = 0; i < sizeof(formats) / sizeof(formats[0]); i++)
		if (strcmp(formats[i].name, name) == 0) {
			*out = (enum cli_profile_format)i;
			return 0;
		}
	return -1;
}

const char *cli_profile_default_file(enum cli_profile_format f)
{
	return formats[f].file;
}

/* The profile event's arrays, checked once so that the writers can trust them. */
struct prof {
	const json_t *frames, *stacks;
};

static int prof_check(const json_t *p, struct prof *o)
{
	o->frames = json_object_get(p, "frames");
	o->stacks = json_object_get(p, "stacks");
	if (!json_is_array(o->frames) || !json_is_array(o->stacks))
		goto bad;
	size_t nframes = json_array_size(o->frames), i;
	const json_t *v;
	json_array_foreach(o->frames, i,
			   v) if (!json_is_object(v) ||
				  !json_is_string(json_object_get(v, "func"))) goto bad;
	json_array_foreach(o->stacks, i, v)
	{
		const json_t *ix = json_object_get(v, "frames"), *x;
		if (!json_is_array(ix) || !json_is_integer(json_object_get(v, "count")) ||
		    cli_jint(v, "count", -1) < 0)
			goto bad;
		size_t k;
		json_array_foreach(ix, k, x) if (!json_is_integer(x) || json_integer_value(x) < 0 ||
						 (size_t)json_integer_value(x) >= nframes) goto bad;
	}
	return 0;
bad:
	errno = EINVAL;
	return -1;
}

static const json_t *stack_frame(const struct prof *p, const json_t *ix, size_t k)
{
	return json_array_get(p->frames, (size_t)json_integer_value(json_array_get(ix, k)));
}

/* Collapsed stacks give ';' and the last ' ' a meaning; newlines end a record. */
static void put_collapsed(FILE *out, const char *s)
{
	for (; *s; s++)
		putc(*s == ';' ? ':' : (*s == '\n' || *s == '\r') ? ' ' : *s, out);
}

/* "func (file:line)", "func (library)" for native code without a file, else "func". */
static void put_frame_label(FILE *out, const json_t *f, void (*put)(FILE *, const char *))
{
	const char *file = cli_jstr(f, "file", NULL), *lib = cli_jstr(f, "library", NULL);
	put(out, cli_jstr(f, "func", "?"));
	if (file) {
		fputs(" (", out);
		put(out, file);
		fprintf(out, ":%lld)", (long long)cli_jint(f, "line", 0));
	} else if (lib) {
		fputs(" (", out);
		put(out, lib);
		putc(')', out);
	}
}

static int finish(FILE *out)
{
	if (fflush(out) || ferror(out)) {
		if (!errno)
			errno = EIO;
		return -1;
	}
	return 0;
}

int cli_profile_collapsed(const json_t *profile, FILE *out)
{
	struct prof p;
	if (prof_check(profile, &p))
		return -1;
	size_t i;
	const json_t *s;
	json_array_foreach(p.stacks, i, s)
	{
		const json_t *ix = json_object_get(s, "frames");
		put_collapsed(out, cli_jstr(s, "thread", "?"));
		for (size_t k = 0; k < json_array_size(ix); k++) {
			putc(';', out);
			put_frame_label(out, stack_frame(&p, ix, k), put_collapsed);
		}
		fprintf(out, " %lld\n", (long long)cli_jint(s, "count", 0));
	}
	return finish(out);
}

/* The speedscope profile of a thread: its samples and weights, keyed by "name (tid T)". */
static json_t *thread_profile(json_t *by_thread, const json_t *stack)
{
	char name[160];
	snprintf(name, sizeof(name), "%.120s (tid %lld)", cli_jstr(stack, "thread", "?"),
		 (long long)cli_jint(stack, "tid", 0));
	json_t *tp = json_object_get(by_thread, name);
	if (tp)
		return tp;
	tp = json_pack("{s:s, s:s, s:s, s:i, s:I, s:[], s:[]}", "type", "sampled", "name", name,
		       "unit", "none", "startValue", 0, "endValue", (json_int_t)0, "samples",
		       "weights");
	if (tp)
		json_object_set_new(by_thread, name, tp);
	return tp;
}

int cli_profile_speedscope(const json_t *profile, FILE *out, const char *name)
{
	struct prof p;
	if (prof_check(profile, &p))
		return -1;
	json_t *frames = json_array(), *by_thread = json_object(), *profiles = json_array();
	json_t *doc = NULL;
	int rc = -1;
	if (!frames || !by_thread || !profiles)
		goto out;
	size_t i;
	const json_t *v;
	json_array_foreach(p.frames, i, v)
	{
		json_t *f = json_pack("{s:O}", "name", json_object_get(v, "func"));
		const json_t *file = json_object_get(v, "file");
		if (json_is_string(file)) {
			json_object_set(f, "file", (json_t *)file);
			json_object_set_new(f, "line", json_integer(cli_jint(v, "line", 0)));
		} else if (json_is_string(json_object_get(v, "library"))) {
			json_object_set(f, "file", json_object_get(v, "library"));
		}
		if (!f || json_array_append_new(frames, f))
			goto out;
	}
	json_array_foreach(p.stacks, i, v)
	{
		json_t *tp = thread_profile(by_thread, v);
		if (!tp)
			goto out;
		/* speedscope stacks are indexes into shared.frames, root first, as ours are. */
		json_t *ix = json_deep_copy(json_object_get(v, "frames"));
		json_int_t count = cli_jint(v, "count", 0);
		if (!ix || json_array_append_new(json_object_get(tp, "samples"), ix) ||
		    json_array_append_new(json_object_get(tp, "weights"), json_integer(count)))
			goto out;
		json_object_set_new(tp, "endValue",
				    json_integer(cli_jint(tp, "endValue", 0) + count));
	}
	const char *key;
	json_t *tp;
	json_object_foreach(by_thread, key, tp) json_array_append(profiles, tp);
	doc = json_pack("{s:s, s:{s:O}, s:O, s:s, s:i, s:s}", "$schema",
			"https://www.speedscope.app/file-format-schema.json", "shared", "frames",
			frames, "profiles", profiles, "name", name ? name : "fpd profile",
			"activeProfileIndex", 0, "exporter", "fpctl");
	if (!doc)
		goto out;
	rc = json_dumpf(doc, out, JSON_COMPACT) ? -1 : 0;
	if (rc == 0) {
		putc('\n', out);
		rc = finish(out);
	}
out:
	if (rc && !errno)
		errno = ENOMEM;
	json_decref(doc);
	json_decref(frames);
	json_decref(by_thread);
	json_decref(profiles);
	return rc;
}

/* ---- pprof ---- */

struct strtab {
	json_t *index; /* string -> its index */
	char **v;
	size_t n, cap;
};

/* Index of s in the string table, added if new; -1 when out of memory. */
static int64_t str_id(struct strtab *t, const char *s)
{
	json_t *known = json_object_get(t->index, s);
	if (known)
		return json_integer_value(known);
	if (t->n == t->cap) {
		size_t ncap = t->cap ? t->cap * 2 : 64;
		char **nv = realloc(t->v, ncap * sizeof(*nv));
		if (!nv)
			return -1;
		t->v = nv;
		t->cap = ncap;
	}
	if (json_object_set_new(t->index, s, json_integer((json_int_t)t->n)))
		return -1;
	/* The table points into the index's keys, which live as long as it does. */
	t->v[t->n] = (char *)json_object_iter_key(json_object_iter_at(t->index, s));
	return (int64_t)t->n++;
}

/* gzip (RFC 1952) of buf, the way `go tool pprof` expects a .pb.gz. */
static int gzip_write(const uint8_t *buf, size_t len, FILE *out)
{
	z_stream z = {0};
	if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) !=
	    Z_OK) {
		errno = ENOMEM;
		return -1;
	}
	uint8_t chunk[64 << 10];
	z.next_in = (uint8_t *)buf;
	z.avail_in = (uInt)len;
	int zr;
	do {
		z.next_out = chunk;
		z.avail_out = sizeof(chunk);
		zr = deflate(&z, Z_FINISH);
		size_t have = sizeof(chunk) - z.avail_out;
		if (zr == Z_STREAM_ERROR || fwrite(chunk, 1, have, out) != have) {
			deflateEnd(&z);
			if (!errno)
				errno = EIO;
			return -1;
		}
	} while (zr != Z_STREAM_END);
	deflateEnd(&z);
	return finish(out);
}

int cli_profile_pprof(const json_t *profile, FILE *out)
{
	typedef Perftools__Profiles__ValueType ValueType;
	typedef Perftools__Profiles__Sample Sample;
	typedef Perftools__Profiles__Label Label;
	typedef Perftools__Profiles__Location Location;
	typedef Perftools__Profiles__Line Line;
	typedef Perftools__Profiles__Function Function;

	struct prof p;
	if (prof_check(profile, &p))
		return -1;
	size_t nframes = json_array_size(p.frames), nstacks = json_array_size(p.stacks);
	struct strtab st = {.index = json_object()};
	/* One location, line and function per frame of the profile: ids are index + 1. */
	Location *locs = calloc(nframes + 1, sizeof(*locs));
	Location **locp = calloc(nframes + 1, sizeof(*locp));
	Line *lines = calloc(nframes + 1, sizeof(*lines));
	Line **linep = calloc(nframes + 1, sizeof(*linep));
	Function *funcs = calloc(nframes + 1, sizeof(*funcs));
	Function **funcp = calloc(nframes + 1, sizeof(*funcp));
	Sample *samples = calloc(nstacks + 1, sizeof(*samples));
	Sample **samplep = calloc(nstacks + 1, sizeof(*samplep));
	Label *labels = calloc(2 * nstacks + 1, sizeof(*labels));
	Label **labelp = calloc(2 * nstacks + 1, sizeof(*labelp));
	uint64_t *ids = NULL;
	int64_t *values = calloc(2 * nstacks + 1, sizeof(*values));
	uint8_t *buf = NULL;
	int rc = -1;
	errno = 0;
	if (!st.index || !locs || !locp || !lines || !linep || !funcs || !funcp || !samples ||
	    !samplep || !labels || !labelp || !values || str_id(&st, "") != 0)
		goto out;

	size_t total_ids = 0, i;
	const json_t *v;
	json_array_foreach(p.stacks, i, v) total_ids +=
	    json_array_size(json_object_get(v, "frames"));
	ids = calloc(total_ids + 1, sizeof(*ids));
	if (!ids)
		goto out;

	int64_t rate = cli_jint(profile, "rate", 100);
	int64_t period = 1000000000 / (rate > 0 ? rate : 100);
	ValueType types[2] = {PERFTOOLS__PROFILES__VALUE_TYPE__INIT,
			      PERFTOOLS__PROFILES__VALUE_TYPE__INIT};
	ValueType *typep[2] = {&types[0], &types[1]};
	ValueType period_type = PERFTOOLS__PROFILES__VALUE_TYPE__INIT;
	int64_t s_samples = str_id(&st, "samples"), s_count = str_id(&st, "count");
	int64_t s_cpu = str_id(&st, "cpu"), s_ns = str_id(&st, "nanoseconds");
	int64_t s_thread = str_id(&st, "thread"), s_tid = str_id(&st, "tid");
	if (s_samples < 0 || s_count < 0 || s_cpu < 0 || s_ns < 0 || s_thread < 0 || s_tid < 0)
		goto out;
	types[0].type = s_samples;
	types[0].unit = s_count;
	types[1].type = period_type.type = s_cpu;
	types[1].unit = period_type.unit = s_ns;

	json_array_foreach(p.frames, i, v)
	{
		const char *file = cli_jstr(v, "file", NULL), *lib = cli_jstr(v, "library", NULL);
		int64_t name = str_id(&st, cli_jstr(v, "func", "?"));
		/* Native code without source: the library stands where the file would. */
		int64_t fname = str_id(&st, file ? file : lib ? lib : "");
		if (name < 0 || fname < 0)
			goto out;
		funcs[i] = (Function)PERFTOOLS__PROFILES__FUNCTION__INIT;
		funcs[i].id = i + 1;
		funcs[i].name = funcs[i].system_name = name;
		funcs[i].filename = fname;
		funcp[i] = &funcs[i];
		lines[i] = (Line)PERFTOOLS__PROFILES__LINE__INIT;
		lines[i].function_id = i + 1;
		lines[i].line = cli_jint(v, "line", 0);
		linep[i] = &lines[i];
		locs[i] = (Location)PERFTOOLS__PROFILES__LOCATION__INIT;
		locs[i].id = i + 1;
		locs[i].n_line = 1;
		locs[i].line = &linep[i];
		locp[i] = &locs[i];
	}
	uint64_t *next_id = ids;
	json_array_foreach(p.stacks, i, v)
	{
		const json_t *ix = json_object_get(v, "frames");
		size_t n = json_array_size(ix);
		Sample *s = &samples[i];
		*s = (Sample)PERFTOOLS__PROFILES__SAMPLE__INIT;
		/* pprof lists the leaf first. */
		for (size_t k = 0; k < n; k++)
			next_id[k] =
			    (uint64_t)json_integer_value(json_array_get(ix, n - 1 - k)) + 1;
		s->location_id = next_id;
		s->n_location_id = n;
		next_id += n;
		json_int_t count = cli_jint(v, "count", 0);
		values[2 * i] = count;
		values[2 * i + 1] = count * period;
		s->value = &values[2 * i];
		s->n_value = 2;
		Label *l = &labels[2 * i];
		l[0] = (Label)PERFTOOLS__PROFILES__LABEL__INIT;
		l[0].key = s_thread;
		l[0].str = str_id(&st, cli_jstr(v, "thread", "?"));
		if (l[0].str < 0)
			goto out;
		l[1] = (Label)PERFTOOLS__PROFILES__LABEL__INIT;
		l[1].key = s_tid;
		l[1].num = cli_jint(v, "tid", 0);
		labelp[2 * i] = &l[0];
		labelp[2 * i + 1] = &l[1];
		s->label = &labelp[2 * i];
		s->n_label = 2;
		samplep[i] = s;
	}

	Perftools__Profiles__Profile msg = PERFTOOLS__PROFILES__PROFILE__INIT;
	msg.n_sample_type = 2;
	msg.sample_type = typep;
	msg.n_sample = nstacks;
	msg.sample = samplep;
	msg.n_location = nframes;
	msg.location = locp;
	msg.n_function = nframes;
	msg.function = funcp;
	msg.n_string_table = st.n;
	msg.string_table = st.v;
	msg.period_type = &period_type;
	msg.period = period;
	double dur = json_number_value(json_object_get(profile, "duration_s"));
	msg.duration_nanos = (int64_t)(dur * 1e9);
	msg.time_nanos = (int64_t)time(NULL) * 1000000000 - msg.duration_nanos;

	size_t len = perftools__profiles__profile__get_packed_size(&msg);
	buf = malloc(len ? len : 1);
	if (!buf)
		goto out;
	perftools__profiles__profile__pack(&msg, buf);
	rc = gzip_write(buf, len, out);
out:
	if (rc && !errno)
		errno = ENOMEM;
	free(buf);
	free(ids);
	free(values);
	free(labelp);
	free(labels);
	free(samplep);
	free(samples);
	free(funcp);
	free(funcs);
	free(linep);
	free(lines);
	free(locp);
	free(locs);
	free(st.v);
	json_decref(st.index);
	return rc;
}

int cli_profile_write(const json_t *profile, enum cli_profile_format f, FILE *out,
		      const char *title)
{
	switch (f) {
	case CLI_PROFILE_SVG:
		return cli_flamegraph_svg(profile, out, title);
	case CLI_PROFILE_COLLAPSED:
		return cli_profile_collapsed(profile, out);
	case CLI_PROFILE_SPEEDSCOPE:
		return cli_profile_speedscope(profile, out, title);
	case CLI_PROFILE_PPROF:
		return cli_profile_pprof(profile, out);
	}
	errno = EINVAL;
	return -1;
}
