/*
 * The flame graph SVG: well-formed XML, escaping of target strings, merging
 * of frames by function and file, elision of narrow rectangles, totals, and
 * errors.
 *
 * `test_flamegraph --svg PROFILE.json OUT.svg [TITLE]` renders a profile
 * event with the same code as `perf`; the integration test that screenshots
 * the graph in Chromium uses it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/flamegraph.h"

/* Renders a profile into a string; asserts success. */
static char *render(const json_t *profile, const char *title)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	assert_non_null(f);
	assert_int_equal(cli_flamegraph_svg(profile, f, title), 0);
	fclose(f);
	return buf;
}

static char *render_text(const char *json, const char *title)
{
	json_error_t jerr;
	json_t *p = json_loads(json, 0, &jerr);
	if (!p)
		fail_msg("bad test JSON: %s", jerr.text);
	char *svg = render(p, title);
	json_decref(p);
	return svg;
}

/*
 * A small XML checker: tags nest and match, attributes are quoted, '&' starts
 * a known entity, no '<' in text, CDATA and the prolog are skipped.  Returns
 * NULL or what is wrong.
 */
static const char *xml_problem(const char *s)
{
	const char *stack[256];
	size_t depth = 0;
	bool root_seen = false;
	const char *p = s;
	while (*p) {
		if (strncmp(p, "<?", 2) == 0) {
			p = strstr(p, "?>");
			if (!p)
				return "unterminated <?";
			p += 2;
		} else if (strncmp(p, "<![CDATA[", 9) == 0) {
			p = strstr(p, "]]>");
			if (!p)
				return "unterminated CDATA";
			p += 3;
		} else if (strncmp(p, "</", 2) == 0) {
			const char *name = p + 2;
			size_t n = strcspn(name, ">");
			if (!depth || strncmp(stack[depth - 1], name, n) != 0 ||
			    strcspn(stack[depth - 1], " />\n") != n)
				return "mismatched end tag";
			depth--;
			p = name + n + 1;
		} else if (*p == '<') {
			const char *name = p + 1;
			size_t n = strcspn(name, " />\n");
			if (!n)
				return "empty tag name";
			if (!depth && root_seen)
				return "second root element";
			root_seen = true;
			const char *q = name + n;
			for (;;) {
				while (*q == ' ' || *q == '\n')
					q++;
				if (*q == '>' || (q[0] == '/' && q[1] == '>'))
					break;
				size_t an = strcspn(q, "=> ");
				if (!an || q[an] != '=' || q[an + 1] != '"')
					return "unquoted attribute";
				const char *end = strchr(q + an + 2, '"');
				if (!end)
					return "unterminated attribute";
				for (const char *c = q + an + 2; c < end; c++)
					if (*c == '<')
						return "'<' in an attribute";
				q = end + 1;
			}
			if (*q == '>') {
				if (depth == sizeof(stack) / sizeof(stack[0]))
					return "too deep";
				stack[depth++] = name;
				p = q + 1;
			} else {
				p = q + 2;
			}
		} else if (*p == '&') {
			static const char *const ents[] = {"&amp;", "&lt;", "&gt;", "&quot;",
							   "&apos;"};
			bool ok = false;
			for (size_t i = 0; i < 5; i++)
				ok = ok || strncmp(p, ents[i], strlen(ents[i])) == 0;
			if (!ok)
				return "bare '&'";
			p++;
		} else {
			if ((unsigned char)*p < 0x20 && *p != '\n' && *p != '\t' && *p != '\r')
				return "control character";
			p++;
		}
	}
	return depth ? "unclosed element" : root_seen ? NULL : "no element";
}

static size_t count(const char *hay, const char *needle)
{
	size_t n = 0;
	for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

/* The data-n of the frame whose title starts with `name\n`; -1 if none. */
static long long frame_samples(const char *svg, const char *name)
{
	char key[256];
	snprintf(key, sizeof(key), "<title>%s\n", name);
	const char *t = strstr(svg, key);
	if (!t)
		return -1;
	/* The <g ...> that holds this title starts just before it. */
	const char *g = t;
	while (g > svg && strncmp(g, "<g ", 3) != 0)
		g--;
	const char *n = strstr(g, "data-n=\"");
	assert_non_null(n);
	return atoll(n + 8);
}

static const char two_threads[] =
    "{\"event\":\"profile\",\"samples\":100,\"lost\":1,\"faulted\":2,\"duration_s\":1.0,"
    "\"rate\":100,"
    "\"frames\":[{\"kind\":\"python\",\"func\":\"<module>\",\"file\":\"/t.py\",\"line\":1},"
    "{\"kind\":\"python\",\"func\":\"hot_a\",\"file\":\"/t.py\",\"line\":12},"
    "{\"kind\":\"python\",\"func\":\"hot_a\",\"file\":\"/t.py\",\"line\":13},"
    "{\"kind\":\"python\",\"func\":\"hot_b\",\"file\":\"/t.py\",\"line\":20},"
    "{\"kind\":\"python\",\"func\":\"leaf\",\"file\":\"/t.py\",\"line\":30},"
    "{\"kind\":\"native\",\"func\":\"memcpy\",\"file\":null,\"line\":0,\"library\":\"libc.so.6\"},"
    "{\"kind\":\"python\",\"func\":\"hot_a\",\"file\":\"/other.py\",\"line\":5}],"
    "\"stacks\":[{\"frames\":[0,1],\"count\":30,\"thread\":\"A\",\"tid\":11},"
    "{\"frames\":[0,2],\"count\":10,\"thread\":\"A\",\"tid\":11},"
    "{\"frames\":[0,2,5],\"count\":5,\"thread\":\"A\",\"tid\":11},"
    "{\"frames\":[0,3,4],\"count\":40,\"thread\":\"B\",\"tid\":12},"
    "{\"frames\":[0,6],\"count\":15,\"thread\":\"B\",\"tid\":12}]}";

static void test_wellformed_and_totals(void **state)
{
	(void)state;
	char *svg = render_text(two_threads, "Test profile");
	const char *why = xml_problem(svg);
	if (why)
		fail_msg("not well-formed: %s", why);
	assert_non_null(strstr(svg, "data-samples=\"100\""));
	assert_non_null(strstr(svg, "<title>all\n2 threads\n100 samples, 100.00%</title>"));
	assert_int_equal(frame_samples(svg, "A (tid 11)"), 45);
	assert_int_equal(frame_samples(svg, "B (tid 12)"), 55);
	assert_non_null(
	    strstr(svg, "100 samples in 1.0 s at 100 Hz, 2 threads, 1 lost, 2 faulted"));
	assert_non_null(strstr(svg, ">Test profile</text>"));
	/* Self-contained: nothing is fetched. */
	assert_null(strstr(svg, "href"));
	free(svg);
}

static void test_merging(void **state)
{
	(void)state;
	char *svg = render_text(two_threads, NULL);
	/* hot_a of /t.py at lines 12 and 13 is one frame of 45 samples; the one in /other.py is
	 * not. */
	assert_non_null(strstr(svg, "<title>hot_a\n/t.py:12\n45 samples, 45.00%</title>"));
	assert_non_null(strstr(svg, "<title>hot_a\n/other.py:5\n15 samples, 15.00%</title>"));
	assert_int_equal(count(svg, "<title>hot_a\n"), 2);
	/* <module> appears once per thread. */
	assert_int_equal(count(svg, "<title>&lt;module&gt;\n"), 2);
	assert_non_null(strstr(svg, "<title>memcpy\nnative (libc.so.6)\n5 samples, 5.00%</title>"));
	/* Python warm, native aqua: the two palettes never overlap in red. */
	const char *py = strstr(strstr(svg, "<title>leaf\n"), "fill=\"rgb(");
	const char *nat = strstr(strstr(svg, "<title>memcpy\n"), "fill=\"rgb(");
	assert_true(atoi(py + 10) >= 205);
	assert_true(atoi(nat + 10) <= 110);
	free(svg);
}

static void test_escaping(void **state)
{
	(void)state;
	json_t *p = json_pack("{s:s, s:[{s:s, s:s, s:s, s:i}], s:[{s:[i], s:i, s:s, s:i}]}",
			      "event", "profile", "frames", "kind", "python", "func",
			      "<lambda>&\"x'\x01\x7f\xef\xbf\xbe", "file", "/a&b/<c>.py", "line", 3,
			      "stacks", "frames", 0, "count", 7, "thread", "T<1>&", "tid", 5);
	char *svg = render(p, "a <b> & \"c\"");
	json_decref(p);
	const char *why = xml_problem(svg);
	if (why)
		fail_msg("not well-formed: %s", why);
	assert_non_null(strstr(
	    svg, "<title>&lt;lambda&gt;&amp;&quot;x&apos;?\x7f?\n/a&amp;b/&lt;c&gt;.py:3\n"));
	assert_non_null(strstr(svg, "<title>T&lt;1&gt;&amp; (tid 5)\n"));
	assert_non_null(strstr(svg, ">a &lt;b&gt; &amp; &quot;c&quot;</text>"));
	assert_null(strstr(svg, "\x01"));
	assert_null(strstr(svg, "\xef\xbf\xbe"));
	free(svg);
}

/*
 * 100,000 samples: one hot stack and 5,000 distinct one-sample stacks.  Each
 * of those is 0.012 px wide: they must not be drawn one by one, but merged
 * into one block that accounts for their samples.
 */
static void test_narrow_frames(void **state)
{
	(void)state;
	json_t *frames = json_array();
	json_t *stacks = json_array();
	json_array_append_new(frames, json_pack("{s:s,s:s,s:s,s:i}", "kind", "python", "func",
						"main", "file", "/m.py", "line", 1));
	json_array_append_new(frames, json_pack("{s:s,s:s,s:s,s:i}", "kind", "python", "func",
						"hot", "file", "/m.py", "line", 2));
	json_array_append_new(stacks, json_pack("{s:[i,i],s:i,s:s,s:i}", "frames", 0, 1, "count",
						95000, "thread", "MainThread", "tid", 1));
	for (int i = 0; i < 5000; i++) {
		char name[32];
		snprintf(name, sizeof(name), "cold_%04d", i);
		json_array_append_new(frames,
				      json_pack("{s:s,s:s,s:s,s:i}", "kind", "python", "func", name,
						"file", "/m.py", "line", 100 + i));
		json_array_append_new(stacks,
				      json_pack("{s:[i,i],s:i,s:s,s:i}", "frames", 0, i + 2,
						"count", 1, "thread", "MainThread", "tid", 1));
	}
	json_t *p = json_pack("{s:s,s:i,s:o,s:o}", "event", "profile", "samples", 100000, "frames",
			      frames, "stacks", stacks);
	char *svg = render(p, NULL);
	json_decref(p);
	assert_null(xml_problem(svg));
	assert_non_null(strstr(svg, "data-samples=\"100000\""));
	assert_null(strstr(svg, "cold_"));
	assert_non_null(strstr(
	    svg,
	    "<title>[narrow frames]\n5000 functions too narrow to draw, merged\n5000 samples"));
	assert_int_equal(frame_samples(svg, "[narrow frames]"), 5000);
	assert_int_equal(frame_samples(svg, "hot"), 95000);
	/* root, thread, main, hot, the merged block */
	assert_int_equal(count(svg, "<g class=\"f"), 5);
	assert_true(strlen(svg) < 20000);
	free(svg);
}

/*
 * 5,000 stacks that part at once, 6 deep, 20 samples each: 30,000 frames of
 * 0.24 px.  At most CLI_FG_MAX_FRAMES are drawn; the rest merge.
 */
static void test_frame_cap(void **state)
{
	(void)state;
	json_t *frames = json_array();
	json_t *stacks = json_array();
	for (int i = 0; i < 5000; i++) {
		json_t *chain = json_array();
		for (int d = 0; d < 6; d++) {
			char name[32];
			snprintf(name, sizeof(name), "f%d_%d", i, d);
			json_array_append_new(chain,
					      json_integer((json_int_t)json_array_size(frames)));
			json_array_append_new(frames,
					      json_pack("{s:s,s:s,s:s,s:i}", "kind", "python",
							"func", name, "file", "/m.py", "line", d));
		}
		json_array_append_new(stacks, json_pack("{s:o,s:i,s:s,s:i}", "frames", chain,
							"count", 20, "thread", "T", "tid", 1));
	}
	json_t *p = json_pack("{s:o,s:o}", "frames", frames, "stacks", stacks);
	char *svg = render(p, NULL);
	json_decref(p);
	assert_null(xml_problem(svg));
	size_t drawn = count(svg, "<g class=\"f\"");
	assert_true(drawn <= CLI_FG_MAX_FRAMES + 2);
	assert_int_equal(frame_samples(svg, "[narrow frames]"), 100000);
	free(svg);
}

static void test_empty_and_bad(void **state)
{
	(void)state;
	char *svg =
	    render_text("{\"event\":\"profile\",\"samples\":0,\"frames\":[],\"stacks\":[]}", NULL);
	assert_null(xml_problem(svg));
	assert_non_null(strstr(svg, "No samples."));
	free(svg);

	static const char *const bad[] = {
	    "[]",
	    "{\"frames\":[],\"stacks\":{}}",
	    "{\"frames\":[],\"stacks\":[{\"frames\":[0],\"count\":1}]}",
	    "{\"frames\":[{\"func\":\"f\"}],\"stacks\":[{\"frames\":[-1],\"count\":1}]}",
	    "{\"frames\":[{\"func\":\"f\"}],\"stacks\":[{\"frames\":[0]}]}",
	    "{\"frames\":[7],\"stacks\":[]}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		json_t *p = json_loads(bad[i], 0, NULL);
		assert_non_null(p);
		FILE *f = fopen("/dev/null", "w");
		errno = 0;
		assert_int_equal(cli_flamegraph_svg(p, f, NULL), -1);
		assert_int_equal(errno, EINVAL);
		fclose(f);
		json_decref(p);
	}
}

static void test_write_error(void **state)
{
	(void)state;
	FILE *f = fopen("/dev/full", "w");
	if (!f)
		skip();
	json_t *p = json_loads(two_threads, 0, NULL);
	assert_int_equal(cli_flamegraph_svg(p, f, NULL), -1);
	assert_int_equal(errno, ENOSPC);
	json_decref(p);
	fclose(f);
}

/* The driver mode: render one profile file, for the integration tests. */
static int render_file(const char *in, const char *out, const char *title)
{
	json_error_t jerr;
	json_t *p = json_load_file(in, 0, &jerr);
	if (!p) {
		fprintf(stderr, "%s: %s\n", in, jerr.text);
		return 1;
	}
	FILE *f = fopen(out, "w");
	if (!f) {
		fprintf(stderr, "%s: %s\n", out, strerror(errno));
		json_decref(p);
		return 1;
	}
	int rc = cli_flamegraph_svg(p, f, title);
	int e = errno;
	json_decref(p);
	if (fclose(f) != 0 || rc != 0) {
		fprintf(stderr, "%s: %s\n", out, strerror(rc ? e : errno));
		return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc >= 4 && strcmp(argv[1], "--svg") == 0)
		return render_file(argv[2], argv[3], argc > 4 ? argv[4] : NULL);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_wellformed_and_totals),
	    cmocka_unit_test(test_merging),
	    cmocka_unit_test(test_escaping),
	    cmocka_unit_test(test_narrow_frames),
	    cmocka_unit_test(test_frame_cap),
	    cmocka_unit_test(test_empty_and_bad),
	    cmocka_unit_test(test_write_error),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
