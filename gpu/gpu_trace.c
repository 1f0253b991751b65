#include "gpu/gpu_trace.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

struct out {
	char *buf;
	size_t len, pos;
	int full;
};

static void put(struct out *o, const char *fmt, ...)
{
	if (o->full)
		return;
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(o->buf + o->pos, o->len - o->pos, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= o->len - o->pos)
		o->full = 1;
	else
		o->pos += (size_t)n;
}

/* Kernel names come from the application's code: anything may be in them. */
static void put_string(struct out *o, const char *s)
{
	put(o, "\"");
	for (const unsigned char *p = (const unsigned char *)s; *p && !o->full; p++) {
		if (*p == '"' || *p == '\\')
			put(o, "\\%c", *p);
		else if (*p < 0x20)
			put(o, "\\u%04x", *p);
		else
			put(o, "%c", *p);
	}
	put(o, "\"");
}

/* Microseconds with ns precision, as Chrome's "ts" and "dur" expect. */
static void put_us(struct out *o, const char *key, uint64_t ns)
{
	put(o, ",\"%s\":%" PRIu64 ".%03u", key, ns / 1000, (unsigned)(ns % 1000));
}

static const char *memcpy_name(uint32_t kind)
{
	/* CUpti_ActivityMemcpyKind's values, stable since CUDA 5. */
	static const char *const names[] = {"Memcpy ?",	   "Memcpy HtoD", "Memcpy DtoH",
					    "Memcpy HtoA", "Memcpy AtoH", "Memcpy AtoA",
					    "Memcpy AtoD", "Memcpy DtoA", "Memcpy DtoD",
					    "Memcpy HtoH", "Memcpy PtoP"};
	return kind < sizeof(names) / sizeof(names[0]) ? names[kind] : names[0];
}

static const char *sync_name(uint32_t type)
{
	/* CUpti_ActivitySynchronizationType's values. */
	static const char *const names[] = {"Sync", "Event synchronize", "Stream wait event",
					    "Stream synchronize", "Context synchronize"};
	return type < sizeof(names) / sizeof(names[0]) ? names[type] : names[0];
}

int fpgpu_event_json(const struct fpgpu_act *a, uint64_t t0, char *buf, size_t len)
{
	static const char *const cats[] = {"kernel", "memcpy", "memset", "sync"};
	struct out o = {buf, len, 0, len == 0};
	uint32_t pid = FPGPU_TRACE_PID_BASE + a->device;
	uint32_t tid = a->kind == FPGPU_SYNC ? FPGPU_SYNC_TID : a->stream;
	uint64_t start = a->start > t0 ? a->start - t0 : 0;
	uint64_t dur = a->end > a->start ? a->end - a->start : 0;
	put(&o, "{\"name\":");
	switch (a->kind) {
	case FPGPU_KERNEL:
		put_string(&o, a->name ? a->name : "?");
		break;
	case FPGPU_MEMCPY:
		put(&o, "\"%s\"", memcpy_name(a->detail));
		break;
	case FPGPU_MEMSET:
		put(&o, "\"Memset\"");
		break;
	case FPGPU_SYNC:
		put(&o, "\"%s\"", sync_name(a->detail));
		break;
	}
	put(&o, ",\"cat\":\"%s\",\"ph\":\"X\",\"pid\":%" PRIu32 ",\"tid\":%" PRIu32, cats[a->kind],
	    pid, tid);
	put_us(&o, "ts", start);
	put_us(&o, "dur", dur);
	put(&o,
	    ",\"args\":{\"correlation\":%" PRIu32 ",\"context\":%" PRIu32 ",\"stream\":%" PRIu32,
	    a->corr, a->context, a->stream);
	if (a->kind == FPGPU_KERNEL)
		put(&o, ",\"grid\":[%d,%d,%d],\"block\":[%d,%d,%d]", a->grid[0], a->grid[1],
		    a->grid[2], a->block[0], a->block[1], a->block[2]);
	if (a->kind == FPGPU_MEMCPY || a->kind == FPGPU_MEMSET)
		put(&o, ",\"bytes\":%" PRIu64, a->bytes);
	put(&o, "}}");
	if (a->corr) {
		put(&o,
		    ",{\"name\":\"launch\",\"cat\":\"launch\",\"ph\":\"f\",\"bp\":\"e\",\"id\":"
		    "%" PRIu32 ",\"pid\":%" PRIu32 ",\"tid\":%" PRIu32,
		    a->corr, pid, tid);
		put_us(&o, "ts", start);
		put(&o, "}");
	}
	return o.full ? -1 : (int)o.pos;
}
