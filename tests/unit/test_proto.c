/* Frame codec: round trips, partial input, oversized and malformed frames. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fp/proto.h"

static size_t frame(uint8_t *buf, const char *payload)
{
	size_t n = strlen(payload);
	buf[0] = (uint8_t)(n >> 24);
	buf[1] = (uint8_t)(n >> 16);
	buf[2] = (uint8_t)(n >> 8);
	buf[3] = (uint8_t)n;
	memcpy(buf + 4, payload, n);
	return n + 4;
}

static void test_parse_ok(void **state)
{
	(void)state;
	uint8_t buf[256];
	size_t n = frame(buf, "{\"type\":\"request\",\"id\":7,\"cmd\":\"stack\"}");
	json_t *obj;
	size_t used;
	assert_int_equal(fp_frame_parse(buf, n, &obj, &used), FP_FRAME_OK);
	assert_int_equal(used, n);
	assert_string_equal(json_string_value(json_object_get(obj, "cmd")), "stack");
	json_decref(obj);
}

static void test_parse_partial(void **state)
{
	(void)state;
	uint8_t buf[256];
	size_t n = frame(buf, "{\"type\":\"end\",\"id\":1}");
	json_t *obj;
	size_t used;
	for (size_t cut = 0; cut < n; cut++) {
		assert_int_equal(fp_frame_parse(buf, cut, &obj, &used), FP_FRAME_EOF);
		assert_null(obj);
	}
}

static void test_parse_malformed(void **state)
{
	(void)state;
	static const char *const bad[] = {
	    "not json",
	    "[1,2,3]",
	    "{\"id\":1}",
	    "{\"type\":5}",
	    "{\"type\":\"a\",\"type\":\"b\"}",
	    "{\"type\":\"end\"",
	    "\"type\"",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint8_t buf[256];
		size_t n = frame(buf, bad[i]);
		json_t *obj;
		size_t used;
		assert_int_equal(fp_frame_parse(buf, n, &obj, &used), FP_FRAME_MALFORMED);
		assert_null(obj);
	}
	uint8_t zero[4] = {0, 0, 0, 0};
	json_t *obj;
	size_t used;
	assert_int_equal(fp_frame_parse(zero, 4, &obj, &used), FP_FRAME_MALFORMED);
}

static void test_parse_too_big(void **state)
{
	(void)state;
	uint8_t hdr[4] = {0xff, 0xff, 0xff, 0xff};
	json_t *obj;
	size_t used;
	assert_int_equal(fp_frame_parse(hdr, 4, &obj, &used), FP_FRAME_TOOBIG);
	uint32_t n = FP_MAX_FRAME + 1;
	uint8_t hdr2[4] = {(uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n};
	assert_int_equal(fp_frame_parse(hdr2, 4, &obj, &used), FP_FRAME_TOOBIG);
}

static void test_socket_round_trip(void **state)
{
	(void)state;
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	json_t *msg = fp_msg_error(3, "not_python", FP_EXIT_ATTACH, "process %d is not Python", 42);
	assert_int_equal(fp_frame_send(sv[0], msg), FP_FRAME_OK);
	json_decref(msg);
	json_t *got;
	assert_int_equal(fp_frame_recv(sv[1], &got, 1000), FP_FRAME_OK);
	assert_string_equal(json_string_value(json_object_get(got, "type")), "error");
	assert_int_equal(json_integer_value(json_object_get(got, "exit")), FP_EXIT_ATTACH);
	assert_string_equal(json_string_value(json_object_get(got, "message")),
			    "process 42 is not Python");
	json_decref(got);

	/* Nothing more: a bounded wait times out, a closed peer is a clean EOF. */
	assert_int_equal(fp_frame_recv(sv[1], &got, 50), FP_FRAME_TIMEOUT);
	close(sv[0]);
	assert_int_equal(fp_frame_recv(sv[1], &got, 1000), FP_FRAME_EOF);
	close(sv[1]);
}

static void test_socket_cut_mid_frame(void **state)
{
	(void)state;
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	uint8_t buf[64];
	size_t n = frame(buf, "{\"type\":\"end\",\"id\":1}");
	assert_int_equal(write(sv[0], buf, n - 3), (ssize_t)(n - 3));
	close(sv[0]);
	json_t *got;
	assert_int_equal(fp_frame_recv(sv[1], &got, 1000), FP_FRAME_IO);
	assert_null(got);
	close(sv[1]);
}

static void test_oversized_on_socket(void **state)
{
	(void)state;
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	uint8_t hdr[4] = {0x7f, 0, 0, 0};
	assert_int_equal(write(sv[0], hdr, 4), 4);
	json_t *got;
	/* Rejected from the header alone: nothing of the announced size is allocated or read. */
	assert_int_equal(fp_frame_recv(sv[1], &got, 1000), FP_FRAME_TOOBIG);
	close(sv[0]);
	close(sv[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_ok),
	    cmocka_unit_test(test_parse_partial),
	    cmocka_unit_test(test_parse_malformed),
	    cmocka_unit_test(test_parse_too_big),
	    cmocka_unit_test(test_socket_round_trip),
	    cmocka_unit_test(test_socket_cut_mid_frame),
	    cmocka_unit_test(test_oversized_on_socket),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
