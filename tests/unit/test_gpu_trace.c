/* gpu/gpu_trace.c: CUPTI activity records as Chrome trace events. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "gpu/gpu_trace.h"

/* The events of a as a JSON array (the function writes them without brackets). */
static json_t *events(const struct fpgpu_act *a, uint64_t t0)
{
	char buf[4096], arr[4100];
	int n = fpgpu_event_json(a, t0, buf, sizeof(buf));
	assert_true(n > 0);
	assert_int_equal((size_t)n, strlen(buf));
	snprintf(arr, sizeof(arr), "[%s]", buf);
	json_error_t err;
	json_t *j = json_loads(arr, 0, &err);
	if (!j)
		fail_msg("not JSON (%s): %s", err.text, arr);
	return j;
}

static void test_kernel(void **state)
{
	(void)state;
	struct fpgpu_act a = {.kind = FPGPU_KERNEL,
			      .name = "void k<\"q\\\">(float*)\n",
			      .start = 1001234567,
			      .end = 1001240000,
			      .device = 1,
			      .context = 3,
			      .stream = 7,
			      .corr = 42,
			      .grid = {4, 2, 1},
			      .block = {128, 1, 1}};
	json_t *j = events(&a, 1000000000);
	assert_int_equal(json_array_size(j), 2);
	json_t *x = json_array_get(j, 0), *f = json_array_get(j, 1);
	assert_string_equal(json_string_value(json_object_get(x, "name")), a.name);
	assert_string_equal(json_string_value(json_object_get(x, "ph")), "X");
	assert_string_equal(json_string_value(json_object_get(x, "cat")), "kernel");
	assert_int_equal(json_integer_value(json_object_get(x, "pid")), FPGPU_TRACE_PID_BASE + 1);
	assert_int_equal(json_integer_value(json_object_get(x, "tid")), 7);
	assert_true(json_real_value(json_object_get(x, "ts")) == 1234.567);
	assert_true(json_real_value(json_object_get(x, "dur")) == 5.433);
	json_t *args = json_object_get(x, "args");
	assert_int_equal(json_integer_value(json_object_get(args, "correlation")), 42);
	assert_int_equal(json_integer_value(json_array_get(json_object_get(args, "grid"), 0)), 4);
	assert_int_equal(json_integer_value(json_array_get(json_object_get(args, "block"), 0)),
			 128);
	/* The flow ends on the kernel's own track at its start, bound to it. */
	assert_string_equal(json_string_value(json_object_get(f, "ph")), "f");
	assert_string_equal(json_string_value(json_object_get(f, "bp")), "e");
	assert_int_equal(json_integer_value(json_object_get(f, "id")), 42);
	assert_int_equal(json_integer_value(json_object_get(f, "tid")), 7);
	assert_true(json_real_value(json_object_get(f, "ts")) == 1234.567);
	json_decref(j);
}

static void test_copy_memset_sync(void **state)
{
	(void)state;
	struct fpgpu_act c = {.kind = FPGPU_MEMCPY,
			      .start = 5000,
			      .end = 6000,
			      .bytes = 1 << 20,
			      .detail = 1,
			      .stream = 2};
	json_t *j = events(&c, 0);
	/* No correlation id: no flow. */
	assert_int_equal(json_array_size(j), 1);
	json_t *x = json_array_get(j, 0);
	assert_string_equal(json_string_value(json_object_get(x, "name")), "Memcpy HtoD");
	assert_int_equal(json_integer_value(json_object_get(json_object_get(x, "args"), "bytes")),
			 1 << 20);
	assert_true(json_real_value(json_object_get(x, "ts")) == 5.0);
	json_decref(j);

	c.detail = 999; /* a kind from a newer CUPTI */
	j = events(&c, 0);
	assert_string_equal(json_string_value(json_object_get(json_array_get(j, 0), "name")),
			    "Memcpy ?");
	json_decref(j);

	struct fpgpu_act m = {.kind = FPGPU_MEMSET, .start = 10, .end = 5, .bytes = 64};
	j = events(&m, 100); /* before t0, end before start: clamped, never negative */
	x = json_array_get(j, 0);
	assert_string_equal(json_string_value(json_object_get(x, "name")), "Memset");
	assert_true(json_number_value(json_object_get(x, "ts")) == 0);
	assert_true(json_number_value(json_object_get(x, "dur")) == 0);
	json_decref(j);

	struct fpgpu_act s = {
	    .kind = FPGPU_SYNC, .start = 1, .end = 2, .detail = 3, .stream = 9, .corr = 5};
	j = events(&s, 0);
	x = json_array_get(j, 0);
	assert_string_equal(json_string_value(json_object_get(x, "name")), "Stream synchronize");
	assert_int_equal(json_integer_value(json_object_get(x, "tid")), FPGPU_SYNC_TID);
	json_decref(j);
}

static void test_small_buffer(void **state)
{
	(void)state;
	struct fpgpu_act a = {.kind = FPGPU_KERNEL, .name = "kernel", .corr = 1};
	char buf[4096];
	int n = fpgpu_event_json(&a, 0, buf, sizeof(buf));
	assert_true(n > 0);
	for (size_t len = 0; len <= (size_t)n; len++)
		assert_int_equal(fpgpu_event_json(&a, 0, buf, len), -1);
	assert_int_equal(fpgpu_event_json(&a, 0, buf, (size_t)n + 1), n);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_kernel),
	    cmocka_unit_test(test_copy_memset_sync),
	    cmocka_unit_test(test_small_buffer),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
