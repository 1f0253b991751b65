/*
 * The interactive flame graph SVG of a profile event (see daemon/perf.c for
 * its schema): one self-contained file, no external resources, that a
 * browser opens directly.
 */
#ifndef FP_CLI_FLAMEGRAPH_H
#define FP_CLI_FLAMEGRAPH_H

#include <jansson.h>
#include <stdio.h>

/*
 * Width of the graph in pixels, the narrowest rectangle drawn, and the most
 * frames drawn (the narrowest beyond that are merged too).
 */
#define CLI_FG_WIDTH	  1200
#define CLI_FG_MIN_WIDTH  0.1
#define CLI_FG_MAX_FRAMES 20000

/*
 * Writes the flame graph of `profile` to out.  title may be NULL.  Returns 0,
 * or -1 with errno: EINVAL for a profile that does not follow the schema,
 * ENOMEM, or the error of writing out.
 */
int cli_flamegraph_svg(const json_t *profile, FILE *out, const char *title);

#endif
