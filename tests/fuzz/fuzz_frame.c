/* libFuzzer: the wire-protocol frame parser, fed a stream of frames. */
#include <stddef.h>
#include <stdint.h>

#include "fp/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	while (size > 0) {
		json_t *obj = NULL;
		size_t used = 0;
		int rc = fp_frame_parse(data, size, &obj, &used);
		if (rc != FP_FRAME_OK)
			break;
		if (fp_frame_check(obj) != FP_FRAME_OK || used == 0 || used > size)
			__builtin_trap();
		json_decref(obj);
		data += used;
		size -= used;
	}
	return 0;
}
