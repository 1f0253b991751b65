/*
 * The file formats of `perf`, written from the "profile" event (schema in
 * daemon/perf.c and daemon/profile.h).  Each writer returns 0, or -1 with
 * errno: EINVAL for a profile that does not follow the schema, ENOMEM, or
 * the error of writing out.
 */
#ifndef FP_CLI_PROFILE_FORMATS_H
#define FP_CLI_PROFILE_FORMATS_H

#include <jansson.h>
#include <stdio.h>

enum cli_profile_format {
	CLI_PROFILE_SVG,
	CLI_PROFILE_COLLAPSED,
	CLI_PROFILE_SPEEDSCOPE,
	CLI_PROFILE_PPROF,
};

/* "svg", "collapsed", "speedscope", "pprof" -> 0 and *out; -1 for anything else. */
int cli_profile_format_parse(const char *name, enum cli_profile_format *out);
/* The file perf writes when -f is not given: flamegraph.svg, profile.collapsed, ... */
const char *cli_profile_default_file(enum cli_profile_format f);

/* Brendan Gregg's collapsed stacks: `thread;outer;...;inner count`, frames `func (file:line)`. */
int cli_profile_collapsed(const json_t *profile, FILE *out);
/* speedscope's JSON file format: one sampled profile per thread, weights in samples. */
int cli_profile_speedscope(const json_t *profile, FILE *out, const char *name);
/* pprof: perftools.profiles.Profile, protobuf-encoded and gzip-compressed. */
int cli_profile_pprof(const json_t *profile, FILE *out);

/* Any of the above; title names the profile where the format has a name. */
int cli_profile_write(const json_t *profile, enum cli_profile_format f, FILE *out,
		      const char *title);

#endif
