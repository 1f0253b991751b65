/* Sample aggregation of perf/top: interning, stack order, counts, the size budget, JSON. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "daemon/profile.h"

static struct fp_frame py(const char *func, const char *file, int line)
{
	return (struct fp_frame){
	    .kind = FP_FRAME_PY, .func = (char *)func, .file = (char *)file, .line = line};
}

static void add(struct fp_profile *p, pid_t tid, const char *thread, const struct fp_frame *f,
		size_t n)
{
	struct fp_sample_info s = {.tid = tid, .thread = thread, .frames = f, .nframes = n};
	assert_int_equal(fp_profile_add(p, &s), 0);
}

/* The profile's JSON as compact text with sorted keys, for exact comparisons. */
static char *dump(const struct fp_profile *p)
{
	json_t *o = json_object();
	assert_int_equal(fp_profile_to_json(p, o), 0);
	char *s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(o);
	return s;
}

static void test_aggregates_and_orders(void **state)
{
	(void)state;
	struct fp_profile *p = fp_profile_new();
	/* Innermost first, as the sampler hands them out. */
	struct fp_frame b[] = {py("leaf", "/t.py", 3), py("hot_b", "/t.py", 7),
			       py("<module>", "/t.py", 20)};
	struct fp_frame a[] = {py("hot_a", "/t.py", 11), py("<module>", "/t.py", 20)};
	add(p, 11, "worker", b, 3);
	add(p, 10, "MainThread", a, 2);
	add(p, 11, "worker", b, 3);
	add(p, 10, "MainThread", a, 2);
	add(p, 10, "MainThread", a, 2);
	assert_int_equal(fp_profile_samples(p), 5);
	assert_int_equal(fp_profile_dropped(p), 0);
	char *s = dump(p);
	assert_string_equal(
	    s, "{\"frames\":["
	       "{\"file\":\"/t.py\",\"func\":\"<module>\",\"kind\":\"python\",\"library\":null,"
	       "\"line\":20},"
	       "{\"file\":\"/t.py\",\"func\":\"hot_b\",\"kind\":\"python\",\"library\":null,"
	       "\"line\":7},"
	       "{\"file\":\"/t.py\",\"func\":\"leaf\",\"kind\":\"python\",\"library\":null,"
	       "\"line\":3},"
	       "{\"file\":\"/t.py\",\"func\":\"hot_a\",\"kind\":\"python\",\"library\":null,"
	       "\"line\":11}],"
	       "\"stacks\":["
	       "{\"count\":2,\"frames\":[0,1,2],\"thread\":\"worker\",\"tid\":11},"
	       "{\"count\":3,\"frames\":[0,3],\"thread\":\"MainThread\",\"tid\":10}]}");
	free(s);
	fp_profile_free(p);
}

/* A frame is its (kind, func, file, line, library): any difference is a new frame. */
static void test_frame_identity(void **state)
{
	(void)state;
	struct fp_profile *p = fp_profile_new();
	struct fp_frame f[] = {
	    py("f", "/a.py", 1),
	    py("f", "/a.py", 2),
	    py("f", "/b.py", 1),
	    py("g", "/a.py", 1),
	    {.kind = FP_FRAME_NATIVE, .func = "f", .file = "/a.py", .line = 1, .library = "x.so"},
	    {.kind = FP_FRAME_NATIVE, .func = NULL, .library = "libc.so.6"},
	    py("f", "/a.py", 1),
	};
	add(p, 1, "t", f, sizeof(f) / sizeof(f[0]));
	json_t *o = json_object();
	assert_int_equal(fp_profile_to_json(p, o), 0);
	json_t *frames = json_object_get(o, "frames");
	assert_int_equal(json_array_size(frames), 6);
	json_t *nat = json_array_get(frames, 1); /* second innermost of the sample */
	assert_string_equal(json_string_value(json_object_get(nat, "kind")), "native");
	assert_string_equal(json_string_value(json_object_get(nat, "func")), "[unknown]");
	assert_true(json_is_null(json_object_get(nat, "file")));
	assert_string_equal(json_string_value(json_object_get(nat, "library")), "libc.so.6");
	/* Outermost and innermost are the same frame: one index, used twice. */
	json_t *ix = json_object_get(json_array_get(json_object_get(o, "stacks"), 0), "frames");
	assert_int_equal(json_array_size(ix), 7);
	assert_int_equal(json_integer_value(json_array_get(ix, 0)),
			 json_integer_value(json_array_get(ix, 6)));
	json_decref(o);
	fp_profile_free(p);
}

/* Same frames on two threads (or two tids of one name) are two stacks; no frames is a stack. */
static void test_threads_and_empty_stacks(void **state)
{
	(void)state;
	struct fp_profile *p = fp_profile_new();
	struct fp_frame f[] = {py("run", "/r.py", 5)};
	add(p, 1, "a", f, 1);
	add(p, 2, "a", f, 1);
	add(p, 1, "b", f, 1);
	add(p, 3, NULL, NULL, 0);
	add(p, 3, NULL, NULL, 0);
	char *s = dump(p);
	assert_non_null(
	    strstr(s, "\"stacks\":[{\"count\":1,\"frames\":[0],\"thread\":\"a\",\"tid\":1},"
		      "{\"count\":1,\"frames\":[0],\"thread\":\"a\",\"tid\":2},"
		      "{\"count\":1,\"frames\":[0],\"thread\":\"b\",\"tid\":1},"
		      "{\"count\":2,\"frames\":[],\"thread\":\"\",\"tid\":3}]"));
	free(s);
	fp_profile_free(p);
}

/* Many stacks: the hash tables grow and every count stays right. */
static void test_many_stacks(void **state)
{
	(void)state;
	struct fp_profile *p = fp_profile_new();
	char names[500][16];
	for (int round = 0; round < 3; round++)
		for (int i = 0; i < 500; i++) {
			snprintf(names[i], sizeof(names[i]), "f%d", i);
			struct fp_frame f[] = {py(names[i], "/m.py", i), py("main", "/m.py", 1)};
			add(p, 7, "MainThread", f, 2);
		}
	json_t *o = json_object();
	assert_int_equal(fp_profile_to_json(p, o), 0);
	assert_int_equal(json_array_size(json_object_get(o, "frames")), 501);
	json_t *stacks = json_object_get(o, "stacks"), *st;
	size_t i;
	assert_int_equal(json_array_size(stacks), 500);
	json_array_foreach(stacks, i, st)
	    assert_int_equal(json_integer_value(json_object_get(st, "count")), 3);
	json_decref(o);
	fp_profile_free(p);
}

/* Past FP_PROFILE_MAX_BYTES new frames and stacks are dropped and counted; known ones still count.
 */
static void test_budget(void **state)
{
	(void)state;
	struct fp_profile *p = fp_profile_new();
	size_t len = 8000;
	char *name = malloc(len + 1);
	memset(name, 'x', len);
	name[len] = 0;
	struct fp_frame first[] = {py("first", "/b.py", 1)};
	add(p, 1, "t", first, 1);
	size_t n = FP_PROFILE_MAX_BYTES / len + 10;
	for (size_t i = 0; i < n; i++) {
		snprintf(name, 12, "%010zu", i); /* distinct names, same length */
		name[10] = 'x';
		struct fp_frame f[] = {py(name, "/b.py", 1)};
		add(p, 1, "t", f, 1);
	}
	add(p, 1, "t", first, 1);
	assert_true(fp_profile_dropped(p) > 0);
	assert_int_equal(fp_profile_samples(p) + fp_profile_dropped(p), n + 2);
	json_t *o = json_object();
	assert_int_equal(fp_profile_to_json(p, o), 0);
	char *s = json_dumps(o, JSON_COMPACT);
	assert_true(strlen(s) < FP_MAX_FRAME);
	assert_int_equal(json_integer_value(json_object_get(
			     json_array_get(json_object_get(o, "stacks"), 0), "count")),
			 2);
	free(s);
	json_decref(o);
	free(name);
	fp_profile_free(p);
}

static void test_invalid_utf8_names(void **state)
{
	(void)state;
	struct fp_profile *p = fp_profile_new();
	struct fp_frame f[] = {py("bad\xff", "/x\xfe.py", 1)};
	add(p, 1, "t\xff", f, 1);
	json_t *o = json_object();
	assert_int_equal(fp_profile_to_json(p, o), 0);
	json_t *fr = json_array_get(json_object_get(o, "frames"), 0);
	assert_string_equal(json_string_value(json_object_get(fr, "func")), "[invalid UTF-8]");
	json_decref(o);
	fp_profile_free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_aggregates_and_orders),
	    cmocka_unit_test(test_frame_identity),
	    cmocka_unit_test(test_threads_and_empty_stacks),
	    cmocka_unit_test(test_many_stacks),
	    cmocka_unit_test(test_budget),
	    cmocka_unit_test(test_invalid_utf8_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
