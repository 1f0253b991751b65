/*
 * Aggregation of samples into the profile that `perf` and `top` send: frames
 * interned by (kind, func, file, line, library), each distinct stack of each
 * thread counted once with its number of samples.
 *
 * JSON (the body of the "profile" event, see daemon/perf.c):
 *   "frames": [{"kind":"python","func":"f","file":"/x.py","line":3,"library":null}, ...]
 *   "stacks": [{"frames":[0,1,2],"count":7,"thread":"MainThread","tid":123}, ...]
 * Stack frames are indexes into "frames", outermost first.
 */
#ifndef FP_PROFILE_H
#define FP_PROFILE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "sampler.h"

/*
 * The encoded profile travels in one protocol frame (FP_MAX_FRAME): past
 * this many bytes of estimated JSON, samples that would add a new frame or
 * stack are counted as dropped instead.  Existing stacks still count.
 */
#define FP_PROFILE_MAX_BYTES (12u << 20)

struct fp_profile;

struct fp_profile *fp_profile_new(void);
void fp_profile_free(struct fp_profile *p);

/* Counts one sample.  -1 when out of memory (the sample is then dropped). */
int fp_profile_add(struct fp_profile *p, const struct fp_sample_info *s);

/* Samples counted, and samples dropped because the profile was full. */
uint64_t fp_profile_samples(const struct fp_profile *p);
uint64_t fp_profile_dropped(const struct fp_profile *p);

/* Adds "frames" and "stacks" to obj.  -1 when out of memory. */
int fp_profile_to_json(const struct fp_profile *p, json_t *obj);

#endif
