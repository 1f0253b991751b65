/*
 * perf's output formats from one known profile event: collapsed text exactly,
 * speedscope parsed back as JSON, pprof gunzipped and decoded by protobuf-c
 * and by protoc itself.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "cli/profile_formats.h"
#include "profile.pb-c.h"

/* Two threads: MainThread in hot_a (3 samples), worker in hot_b -> leaf (2) and hot_b (1). */
static const char *profile_text =
    "{\"event\":\"profile\",\"samples\":6,\"lost\":0,\"faulted\":0,\"duration_s\":0.06,"
    "\"rate\":100,\"frames\":["
    "{\"kind\":\"python\",\"func\":\"<module>\",\"file\":\"/t.py\",\"line\":20,\"library\":null},"
    "{\"kind\":\"python\",\"func\":\"hot_a\",\"file\":\"/t.py\",\"line\":11,\"library\":null},"
    "{\"kind\":\"python\",\"func\":\"run\",\"file\":\"/usr/lib/python3.11/threading.py\","
    "\"line\":975,\"library\":null},"
    "{\"kind\":\"python\",\"func\":\"hot_b\",\"file\":\"/t.py\",\"line\":7,\"library\":null},"
    "{\"kind\":\"python\",\"func\":\"leaf\",\"file\":\"/t.py\",\"line\":3,\"library\":null},"
    "{\"kind\":\"native\",\"func\":\"take;gil\",\"file\":null,\"line\":0,"
    "\"library\":\"libpython3.11.so.1.0\"}],"
    "\"stacks\":["
    "{\"frames\":[0,1],\"count\":3,\"thread\":\"MainThread\",\"tid\":100},"
    "{\"frames\":[2,3,4],\"count\":2,\"thread\":\"worker\",\"tid\":101},"
    "{\"frames\":[2,3,5],\"count\":1,\"thread\":\"worker\",\"tid\":101}]}";

static json_t *profile(void)
{
	json_error_t e;
	json_t *p = json_loads(profile_text, 0, &e);
	assert_non_null(p);
	return p;
}

/* Runs a writer into memory. */
static char *render(int (*fn)(const json_t *, FILE *), const json_t *p, size_t *len)
{
	char *buf = NULL;
	FILE *f = open_memstream(&buf, len);
	assert_int_equal(fn(p, f), 0);
	fclose(f);
	return buf;
}

static int speedscope(const json_t *p, FILE *f)
{
	return cli_profile_speedscope(p, f, "demo");
}

static void test_format_names(void **state)
{
	(void)state;
	enum cli_profile_format f;
	assert_int_equal(cli_profile_format_parse("pprof", &f), 0);
	assert_int_equal(f, CLI_PROFILE_PPROF);
	assert_string_equal(cli_profile_default_file(f), "profile.pb.gz");
	assert_int_equal(cli_profile_format_parse("svg", &f), 0);
	assert_string_equal(cli_profile_default_file(f), "flamegraph.svg");
	assert_int_equal(cli_profile_format_parse("collapsed", &f), 0);
	assert_string_equal(cli_profile_default_file(f), "profile.collapsed");
	assert_int_equal(cli_profile_format_parse("speedscope", &f), 0);
	assert_string_equal(cli_profile_default_file(f), "profile.speedscope.json");
	assert_int_equal(cli_profile_format_parse("SVG", &f), -1);
	assert_int_equal(cli_profile_format_parse("", &f), -1);
}

static void test_collapsed(void **state)
{
	(void)state;
	json_t *p = profile();
	size_t len;
	char *s = render(cli_profile_collapsed, p, &len);
	/* ';' in a name would split the frame: it becomes ':'. */
	assert_string_equal(s, "MainThread;<module> (/t.py:20);hot_a (/t.py:11) 3\n"
			       "worker;run (/usr/lib/python3.11/threading.py:975);hot_b (/t.py:7);"
			       "leaf (/t.py:3) 2\n"
			       "worker;run (/usr/lib/python3.11/threading.py:975);hot_b (/t.py:7);"
			       "take:gil (libpython3.11.so.1.0) 1\n");
	free(s);
	json_decref(p);
}

static void test_speedscope(void **state)
{
	(void)state;
	json_t *p = profile();
	size_t len;
	char *s = render(speedscope, p, &len);
	json_error_t e;
	json_t *doc = json_loads(s, 0, &e);
	assert_non_null(doc);
	assert_string_equal(json_string_value(json_object_get(doc, "$schema")),
			    "https://www.speedscope.app/file-format-schema.json");
	assert_string_equal(json_string_value(json_object_get(doc, "name")), "demo");
	json_t *frames = json_object_get(json_object_get(doc, "shared"), "frames");
	assert_int_equal(json_array_size(frames), 6);
	json_t *f1 = json_array_get(frames, 1);
	assert_string_equal(json_string_value(json_object_get(f1, "name")), "hot_a");
	assert_string_equal(json_string_value(json_object_get(f1, "file")), "/t.py");
	assert_int_equal(json_integer_value(json_object_get(f1, "line")), 11);
	assert_string_equal(json_string_value(json_object_get(json_array_get(frames, 5), "file")),
			    "libpython3.11.so.1.0");
	/* One sampled profile per thread, weights summing to its samples. */
	json_t *profiles = json_object_get(doc, "profiles");
	assert_int_equal(json_array_size(profiles), 2);
	json_int_t total = 0;
	size_t i;
	json_t *tp;
	json_array_foreach(profiles, i, tp)
	{
		assert_string_equal(json_string_value(json_object_get(tp, "type")), "sampled");
		json_t *w = json_object_get(tp, "weights"), *x;
		json_int_t sum = 0;
		size_t k;
		json_array_foreach(w, k, x) sum += json_integer_value(x);
		assert_int_equal(sum, json_integer_value(json_object_get(tp, "endValue")));
		assert_int_equal(json_array_size(w),
				 json_array_size(json_object_get(tp, "samples")));
		const char *name = json_string_value(json_object_get(tp, "name"));
		if (strcmp(name, "worker (tid 101)") == 0) {
			assert_int_equal(sum, 3);
			json_t *first = json_array_get(json_object_get(tp, "samples"), 0);
			assert_int_equal(json_integer_value(json_array_get(first, 0)), 2);
			assert_int_equal(json_integer_value(json_array_get(first, 2)), 4);
		} else {
			assert_string_equal(name, "MainThread (tid 100)");
			assert_int_equal(sum, 3);
		}
		total += sum;
	}
	assert_int_equal(total, 6);
	json_decref(doc);
	free(s);
	json_decref(p);
}

static uint8_t *gunzip(const uint8_t *in, size_t len, size_t *out_len)
{
	size_t cap = 1 << 20;
	uint8_t *out = malloc(cap);
	z_stream z = {0};
	assert_int_equal(inflateInit2(&z, 15 + 16), Z_OK); /* gzip header required */
	z.next_in = (uint8_t *)in;
	z.avail_in = (uInt)len;
	z.next_out = out;
	z.avail_out = (uInt)cap;
	assert_int_equal(inflate(&z, Z_FINISH), Z_STREAM_END);
	*out_len = z.total_out;
	inflateEnd(&z);
	return out;
}

static const char *str(const Perftools__Profiles__Profile *m, int64_t i)
{
	assert_true(i >= 0 && (size_t)i < m->n_string_table);
	return m->string_table[i];
}

/* "leaf;hot_b;run" for a sample: function names from the leaf out, via locations. */
static void sample_names(const Perftools__Profiles__Profile *m,
			 const Perftools__Profiles__Sample *s, char *buf, size_t cap)
{
	buf[0] = 0;
	for (size_t i = 0; i < s->n_location_id; i++) {
		const Perftools__Profiles__Location *loc = NULL;
		for (size_t k = 0; k < m->n_location; k++)
			if (m->location[k]->id == s->location_id[i])
				loc = m->location[k];
		assert_non_null(loc);
		assert_int_equal(loc->n_line, 1);
		const Perftools__Profiles__Function *fn = NULL;
		for (size_t k = 0; k < m->n_function; k++)
			if (m->function[k]->id == loc->line[0]->function_id)
				fn = m->function[k];
		assert_non_null(fn);
		if (i)
			strncat(buf, ";", cap - strlen(buf) - 1);
		strncat(buf, str(m, fn->name), cap - strlen(buf) - 1);
	}
}

static void test_pprof_protobuf_c(void **state)
{
	(void)state;
	json_t *p = profile();
	size_t len, plen;
	char *gz = render(cli_profile_pprof, p, &len);
	assert_int_equal((uint8_t)gz[0], 0x1f);
	assert_int_equal((uint8_t)gz[1], 0x8b);
	uint8_t *pb = gunzip((uint8_t *)gz, len, &plen);
	Perftools__Profiles__Profile *m = perftools__profiles__profile__unpack(NULL, plen, pb);
	assert_non_null(m);
	assert_string_equal(str(m, 0), "");
	assert_int_equal(m->n_sample_type, 2);
	assert_string_equal(str(m, m->sample_type[0]->type), "samples");
	assert_string_equal(str(m, m->sample_type[0]->unit), "count");
	assert_string_equal(str(m, m->sample_type[1]->type), "cpu");
	assert_string_equal(str(m, m->sample_type[1]->unit), "nanoseconds");
	assert_int_equal(m->period, 10000000);
	assert_int_equal(m->duration_nanos, 60000000);
	assert_int_equal(m->n_sample, 3);
	static const char *const want[] = {"hot_a;<module>", "leaf;hot_b;run",
					   "take;gil;hot_b;run"};
	static const int64_t counts[] = {3, 2, 1};
	int64_t total = 0;
	for (size_t i = 0; i < m->n_sample; i++) {
		char names[256];
		sample_names(m, m->sample[i], names, sizeof(names));
		assert_string_equal(names, want[i]);
		assert_int_equal(m->sample[i]->n_value, 2);
		assert_int_equal(m->sample[i]->value[0], counts[i]);
		assert_int_equal(m->sample[i]->value[1], counts[i] * 10000000);
		assert_int_equal(m->sample[i]->n_label, 2);
		assert_string_equal(str(m, m->sample[i]->label[0]->key), "thread");
		assert_string_equal(str(m, m->sample[i]->label[0]->str),
				    i == 0 ? "MainThread" : "worker");
		assert_int_equal(m->sample[i]->label[1]->num, i == 0 ? 100 : 101);
		total += m->sample[i]->value[0];
	}
	assert_int_equal(total, 6);
	/* Lines and files of the leaf location of the first sample: hot_a at /t.py:11. */
	const Perftools__Profiles__Location *loc = m->location[m->sample[0]->location_id[0] - 1];
	assert_int_equal(loc->line[0]->line, 11);
	assert_string_equal(str(m, m->function[loc->line[0]->function_id - 1]->filename), "/t.py");
	perftools__profiles__profile__free_unpacked(m, NULL);
	free(pb);
	free(gz);
	json_decref(p);
}

/* protoc, independent of protobuf-c, reads what we wrote against cli/profile.proto. */
static void test_pprof_protoc(void **state)
{
	(void)state;
	if (access("cli/profile.proto", R_OK) != 0 || system("protoc --version >/dev/null 2>&1")) {
		skip();
		return;
	}
	json_t *p = profile();
	size_t len, plen;
	char *gz = render(cli_profile_pprof, p, &len);
	uint8_t *pb = gunzip((uint8_t *)gz, len, &plen);
	char in[] = "/tmp/fp-pprof-XXXXXX";
	int fd = mkstemp(in);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, pb, plen), (ssize_t)plen);
	close(fd);
	char cmd[256];
	snprintf(cmd, sizeof(cmd),
		 "protoc --decode=perftools.profiles.Profile --proto_path=cli cli/profile.proto "
		 "< %s",
		 in);
	FILE *f = popen(cmd, "r");
	assert_non_null(f);
	char out[16384];
	size_t n = fread(out, 1, sizeof(out) - 1, f);
	out[n] = 0;
	assert_int_equal(pclose(f), 0);
	unlink(in);
	assert_non_null(strstr(out, "string_table: \"hot_a\""));
	assert_non_null(strstr(out, "string_table: \"leaf\""));
	assert_non_null(strstr(out, "period: 10000000"));
	assert_non_null(strstr(out, "sample {\n  location_id: 2\n  location_id: 1\n  value: 3\n"));
	free(pb);
	free(gz);
	json_decref(p);
}

static void test_malformed(void **state)
{
	(void)state;
	static const char *const bad[] = {
	    "{}",
	    "{\"frames\":[],\"stacks\":{}}",
	    "{\"frames\":[],\"stacks\":[{\"frames\":[0],\"count\":1}]}",
	    "{\"frames\":[{\"func\":\"f\"}],\"stacks\":[{\"frames\":[-1],\"count\":1}]}",
	    "{\"frames\":[{\"func\":\"f\"}],\"stacks\":[{\"frames\":[0],\"count\":-1}]}",
	    "{\"frames\":[{\"func\":1}],\"stacks\":[]}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		json_t *p = json_loads(bad[i], 0, NULL);
		assert_non_null(p);
		for (int fmt = CLI_PROFILE_COLLAPSED; fmt <= CLI_PROFILE_PPROF; fmt++) {
			char *buf = NULL;
			size_t len = 0;
			FILE *f = open_memstream(&buf, &len);
			errno = 0;
			assert_int_equal(cli_profile_write(p, fmt, f, "x"), -1);
			assert_int_equal(errno, EINVAL);
			fclose(f);
			free(buf);
		}
		json_decref(p);
	}
}

/* An empty profile (a target that exited at once) still makes valid files. */
static void test_empty(void **state)
{
	(void)state;
	json_t *p = json_loads("{\"samples\":0,\"rate\":100,\"duration_s\":0.1,\"frames\":[],"
			       "\"stacks\":[]}",
			       0, NULL);
	size_t len, plen;
	char *s = render(cli_profile_collapsed, p, &len);
	assert_int_equal(len, 0);
	free(s);
	s = render(speedscope, p, &len);
	json_t *doc = json_loads(s, 0, NULL);
	assert_int_equal(json_array_size(json_object_get(doc, "profiles")), 0);
	json_decref(doc);
	free(s);
	s = render(cli_profile_pprof, p, &len);
	uint8_t *pb = gunzip((uint8_t *)s, len, &plen);
	Perftools__Profiles__Profile *m = perftools__profiles__profile__unpack(NULL, plen, pb);
	assert_non_null(m);
	assert_int_equal(m->n_sample, 0);
	perftools__profiles__profile__free_unpacked(m, NULL);
	free(pb);
	free(s);
	json_decref(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_format_names), cmocka_unit_test(test_collapsed),
	    cmocka_unit_test(test_speedscope),	 cmocka_unit_test(test_pprof_protobuf_c),
	    cmocka_unit_test(test_pprof_protoc), cmocka_unit_test(test_malformed),
	    cmocka_unit_test(test_empty),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
