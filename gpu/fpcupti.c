/*
 * libfpcupti.so (see fpcupti.h): CUPTI callbacks on the launch, copy, memset
 * and synchronize APIs, each stamped with the launching thread's Python
 * stack, and CUPTI activity records for what ran on the GPU.
 *
 * CUPTI supports subscribing and enabling activity kinds after the CUDA
 * context exists (the attach-late case); only work submitted before
 * fpcupti_start is missed.  The Python C API is looked up with dlsym: this
 * library must load into any CPython 3.6+ without being built against it.
 */
#include "gpu/fpcupti.h"

#include <cupti.h>
#include <dlfcn.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "gpu/gpu_trace.h"

#define EXPORT __attribute__((visibility("default")))

/* Caps that bound the memory one capture takes in the target. */
#define MAX_LAUNCHES	 (1u << 20)
#define MAX_FRAMES_TOTAL (1u << 23)
#define MAX_ACTS	 (1u << 21)
#define ACT_BUFFER_SIZE	 (8u << 20)

struct frame {
	void *code; /* a strong reference, dropped by fpcupti_reset */
	int line;
};

struct launch {
	uint64_t tid, start, end;
	uint32_t corr;
	const char *api; /* CUPTI's static callback name */
	size_t first;	 /* index in g.frames */
	int nframes;
};

struct pyapi {
	int (*gil_check)(void);
	void *(*get_frame)(void);
	void *(*frame_back)(void *);
	void *(*frame_code)(void *);
	int (*frame_line)(void *);
	void (*incref)(void *);
	void (*decref)(void *);
};

static struct {
	pthread_mutex_t lock;
	CUpti_SubscriberHandle sub;
	int running;
	uint64_t t0, dropped;
	struct fpgpu_act *acts;
	size_t nacts, cap_acts;
	struct launch *launches;
	size_t nlaunches, cap_launches;
	struct frame *frames;
	size_t nframes, cap_frames;
	struct pyapi py;
	int have_py;
} g = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* The open runtime launch of this thread: a driver call inside it is its
   implementation, not a second launch. */
static __thread int tl_rt_depth;
static __thread size_t tl_rec;
static __thread int tl_has_rec;

static int grow(void **arr, size_t *cap, size_t need, size_t elem, size_t max)
{
	if (need <= *cap)
		return 0;
	if (need > max)
		return -1;
	size_t n = *cap ? *cap * 2 : 1024;
	while (n < need)
		n *= 2;
	if (n > max)
		n = max;
	void *p = realloc(*arr, n * elem);
	if (!p)
		return -1;
	*arr = p;
	*cap = n;
	return 0;
}

/* PyFrame_GetBack and PyFrame_GetCode appeared in 3.9: older interpreters get no stacks. */
static void resolve_python(void)
{
	struct pyapi p = {
	    .gil_check = (int (*)(void))dlsym(RTLD_DEFAULT, "PyGILState_Check"),
	    .get_frame = (void *(*)(void))dlsym(RTLD_DEFAULT, "PyEval_GetFrame"),
	    .frame_back = (void *(*)(void *))dlsym(RTLD_DEFAULT, "PyFrame_GetBack"),
	    .frame_code = (void *(*)(void *))dlsym(RTLD_DEFAULT, "PyFrame_GetCode"),
	    .frame_line = (int (*)(void *))dlsym(RTLD_DEFAULT, "PyFrame_GetLineNumber"),
	    .incref = (void (*)(void *))dlsym(RTLD_DEFAULT, "Py_IncRef"),
	    .decref = (void (*)(void *))dlsym(RTLD_DEFAULT, "Py_DecRef"),
	};
	g.py = p;
	g.have_py = p.gil_check && p.get_frame && p.frame_back && p.frame_code && p.frame_line &&
		    p.incref && p.decref;
}

/* The calling thread's Python stack, innermost first; only where it holds the GIL. */
static int capture_stack(struct frame *out)
{
	if (!g.have_py || !g.py.gil_check())
		return 0;
	void *f = g.py.get_frame();
	if (!f)
		return 0;
	g.py.incref(f);
	int n = 0;
	while (f && n < FPCUPTI_MAX_FRAMES) {
		out[n].code = g.py.frame_code(f);
		out[n].line = g.py.frame_line(f);
		n++;
		void *back = g.py.frame_back(f);
		g.py.decref(f);
		f = back;
	}
	if (f)
		g.py.decref(f);
	return n;
}

static void record_enter(const char *api, uint32_t corr)
{
	struct frame stack[FPCUPTI_MAX_FRAMES];
	int n = capture_stack(stack);
	uint64_t ts = 0;
	cuptiGetTimestamp(&ts);
	pthread_mutex_lock(&g.lock);
	tl_has_rec = 0;
	if (g.running &&
	    !grow((void **)&g.launches, &g.cap_launches, g.nlaunches + 1, sizeof(*g.launches),
		  MAX_LAUNCHES) &&
	    !grow((void **)&g.frames, &g.cap_frames, g.nframes + (size_t)n, sizeof(*g.frames),
		  MAX_FRAMES_TOTAL)) {
		struct launch *l = &g.launches[g.nlaunches];
		*l = (struct launch){.tid = (uint64_t)syscall(SYS_gettid),
				     .start = ts,
				     .end = ts,
				     .corr = corr,
				     .api = api,
				     .first = g.nframes,
				     .nframes = n};
		memcpy(&g.frames[g.nframes], stack, (size_t)n * sizeof(*stack));
		g.nframes += (size_t)n;
		tl_rec = g.nlaunches++;
		tl_has_rec = 1;
		n = 0; /* the references now belong to the record */
	} else if (g.running) {
		g.dropped++;
	}
	pthread_mutex_unlock(&g.lock);
	for (int i = 0; i < n; i++)
		g.py.decref(stack[i].code);
}

static void record_exit(void)
{
	uint64_t ts = 0;
	cuptiGetTimestamp(&ts);
	pthread_mutex_lock(&g.lock);
	if (tl_has_rec && tl_rec < g.nlaunches)
		g.launches[tl_rec].end = ts;
	tl_has_rec = 0;
	pthread_mutex_unlock(&g.lock);
}

static void CUPTIAPI on_callback(void *ud, CUpti_CallbackDomain domain, CUpti_CallbackId cbid,
				 const void *data)
{
	(void)ud;
	(void)cbid; /* only the launch-like APIs are enabled (enable_callbacks) */
	const CUpti_CallbackData *cb = data;
	int rt = domain == CUPTI_CB_DOMAIN_RUNTIME_API;
	if (!rt && (domain != CUPTI_CB_DOMAIN_DRIVER_API || tl_rt_depth))
		return;
	if (cb->callbackSite == CUPTI_API_ENTER) {
		tl_rt_depth += rt;
		record_enter(cb->functionName, cb->correlationId);
	} else {
		/* An exit whose enter came before fpcupti_start has nothing to close. */
		if (rt && tl_rt_depth > 0)
			tl_rt_depth--;
		record_exit();
	}
}

static int wanted_api(const char *name)
{
	static const char *const prefixes[] = {"cudaLaunch",	  "cudaMemcpy",	  "cudaMemset",
					       "cudaGraphLaunch", "cuLaunch",	  "cuMemcpy",
					       "cuMemset",	  "cuGraphLaunch"};
	for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++)
		if (strncmp(name, prefixes[i], strlen(prefixes[i])) == 0)
			return 1;
	return 0;
}

/* Only the launch-like APIs get a callback: the others would cost without adding a flow. */
static CUptiResult enable_callbacks(CUpti_CallbackDomain domain, int size)
{
	for (int id = 1; id < size; id++) {
		const char *name = NULL;
		if (cuptiGetCallbackName(domain, (uint32_t)id, &name) != CUPTI_SUCCESS || !name)
			continue;
		if (!wanted_api(name))
			continue;
		CUptiResult r = cuptiEnableCallback(1, g.sub, domain, (CUpti_CallbackId)id);
		if (r != CUPTI_SUCCESS)
			return r;
	}
	return CUPTI_SUCCESS;
}

static void add_act(const struct fpgpu_act *a)
{
	if (grow((void **)&g.acts, &g.cap_acts, g.nacts + 1, sizeof(*g.acts), MAX_ACTS)) {
		g.dropped++;
		return;
	}
	g.acts[g.nacts] = *a;
	if (a->name && !(g.acts[g.nacts].name = strdup(a->name)))
		g.acts[g.nacts].name = NULL;
	g.nacts++;
}

static void convert(const CUpti_Activity *rec)
{
	struct fpgpu_act a = {0};
	switch (rec->kind) {
	case CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL:
	case CUPTI_ACTIVITY_KIND_KERNEL: {
		const CUpti_ActivityKernel10 *k = (const void *)rec;
		a = (struct fpgpu_act){FPGPU_KERNEL,
				       k->name,
				       k->start,
				       k->end,
				       k->deviceId,
				       k->contextId,
				       k->streamId,
				       k->correlationId,
				       0,
				       0,
				       {k->gridX, k->gridY, k->gridZ},
				       {k->blockX, k->blockY, k->blockZ}};
		break;
	}
	case CUPTI_ACTIVITY_KIND_MEMCPY: {
		const CUpti_ActivityMemcpy6 *m = (const void *)rec;
		a = (struct fpgpu_act){FPGPU_MEMCPY, NULL,	   m->start,	m->end,
				       m->deviceId,  m->contextId, m->streamId, m->correlationId,
				       m->bytes,     m->copyKind,  {0},		{0}};
		break;
	}
	case CUPTI_ACTIVITY_KIND_MEMSET: {
		const CUpti_ActivityMemset4 *m = (const void *)rec;
		a = (struct fpgpu_act){
		    FPGPU_MEMSET, NULL,	       m->start,	 m->end,   m->deviceId,
		    m->contextId, m->streamId, m->correlationId, m->bytes, 0,
		    {0},	  {0}};
		break;
	}
	case CUPTI_ACTIVITY_KIND_SYNCHRONIZATION: {
		const CUpti_ActivitySynchronization2 *s = (const void *)rec;
		a = (struct fpgpu_act){
		    FPGPU_SYNC,	  NULL,	       s->start,	 s->end, 0,
		    s->contextId, s->streamId, s->correlationId, 0,	 (uint32_t)s->type,
		    {0},	  {0}};
		break;
	}
	default:
		return;
	}
	add_act(&a);
}

static void CUPTIAPI buffer_requested(uint8_t **buffer, size_t *size, size_t *max_records)
{
	*buffer = aligned_alloc(8, ACT_BUFFER_SIZE);
	*size = *buffer ? ACT_BUFFER_SIZE : 0;
	*max_records = 0;
}

static void CUPTIAPI buffer_completed(CUcontext ctx, uint32_t stream, uint8_t *buffer, size_t size,
				      size_t valid)
{
	(void)ctx;
	(void)stream;
	(void)size;
	CUpti_Activity *rec = NULL;
	pthread_mutex_lock(&g.lock);
	while (cuptiActivityGetNextRecord(buffer, valid, &rec) == CUPTI_SUCCESS)
		convert(rec);
	pthread_mutex_unlock(&g.lock);
	free(buffer);
}

static const CUpti_ActivityKind kinds[] = {CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL,
					   CUPTI_ACTIVITY_KIND_MEMCPY, CUPTI_ACTIVITY_KIND_MEMSET,
					   CUPTI_ACTIVITY_KIND_SYNCHRONIZATION};

static int fail(char *msg, int len, const char *what, CUptiResult r)
{
	const char *s = NULL;
	if (cuptiGetResultString(r, &s) != CUPTI_SUCCESS || !s)
		s = "unknown CUPTI error";
	if (r == CUPTI_ERROR_MULTIPLE_SUBSCRIBERS_NOT_SUPPORTED)
		s = "another CUPTI client (torch.profiler, Nsight Systems, ...) already traces "
		    "this "
		    "process";
	snprintf(msg, (size_t)len, "%s: %s", what, s);
	return -1;
}

EXPORT int fpcupti_start(char *msg, int len)
{
	if (g.running)
		return 0;
	resolve_python();
	CUptiResult r = cuptiSubscribe(&g.sub, on_callback, NULL);
	if (r != CUPTI_SUCCESS)
		return fail(msg, len, "cuptiSubscribe", r);
	r = enable_callbacks(CUPTI_CB_DOMAIN_RUNTIME_API, CUPTI_RUNTIME_TRACE_CBID_SIZE);
	if (r == CUPTI_SUCCESS)
		r = enable_callbacks(CUPTI_CB_DOMAIN_DRIVER_API, CUPTI_DRIVER_TRACE_CBID_SIZE);
	if (r == CUPTI_SUCCESS)
		r = cuptiActivityRegisterCallbacks(buffer_requested, buffer_completed);
	if (r != CUPTI_SUCCESS) {
		cuptiUnsubscribe(g.sub);
		return fail(msg, len, "CUPTI callbacks", r);
	}
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		r = cuptiActivityEnable(kinds[i]);
		if (r != CUPTI_SUCCESS) {
			while (i--)
				cuptiActivityDisable(kinds[i]);
			cuptiUnsubscribe(g.sub);
			return fail(msg, len, "cuptiActivityEnable", r);
		}
	}
	pthread_mutex_lock(&g.lock);
	cuptiGetTimestamp(&g.t0);
	g.running = 1;
	pthread_mutex_unlock(&g.lock);
	return 0;
}

EXPORT void fpcupti_stop(void)
{
	if (!g.running)
		return;
	cuptiActivityFlushAll(CUPTI_ACTIVITY_FLAG_FLUSH_FORCED);
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		cuptiActivityDisable(kinds[i]);
	cuptiUnsubscribe(g.sub);
	/* Records still in flight land after the unsubscribe: flush them too. */
	cuptiActivityFlushAll(CUPTI_ACTIVITY_FLAG_FLUSH_FORCED);
	pthread_mutex_lock(&g.lock);
	g.running = 0;
	pthread_mutex_unlock(&g.lock);
}

EXPORT uint64_t fpcupti_t0(void)
{
	return g.t0;
}

EXPORT uint64_t fpcupti_dropped(void)
{
	return g.dropped;
}

EXPORT char *fpcupti_gpu_json(void)
{
	pthread_mutex_lock(&g.lock);
	size_t cap = 4096, pos = 1;
	char *out = malloc(cap);
	for (size_t i = 0; out && i < g.nacts; i++) {
		/* Room for the worst case: every byte of the name escaped as \u00XX. */
		const char *name = g.acts[i].name;
		size_t need = pos + 2 + (name ? strlen(name) * 6 : 0) + 1024;
		if (need > cap) {
			while (need > cap)
				cap *= 2;
			char *p = realloc(out, cap);
			if (!p) {
				free(out);
				out = NULL;
				break;
			}
			out = p;
		}
		size_t at = pos > 1 ? pos + 1 : pos;
		int n = fpgpu_event_json(&g.acts[i], g.t0, out + at, cap - at - 2);
		if (n < 0)
			continue; /* cannot happen with the room above; the record is left out */
		if (pos > 1)
			out[pos] = ',';
		pos = at + (size_t)n;
	}
	pthread_mutex_unlock(&g.lock);
	if (out) {
		out[0] = '[';
		out[pos++] = ']';
		out[pos] = '\0';
	}
	return out;
}

EXPORT void fpcupti_free(void *p)
{
	free(p);
}

EXPORT size_t fpcupti_launch_count(void)
{
	return g.nlaunches;
}

EXPORT int fpcupti_launch(size_t i, uint64_t *tid, uint64_t *start, uint64_t *end, uint32_t *corr,
			  const char **api, int *nframes)
{
	if (i >= g.nlaunches)
		return -1;
	const struct launch *l = &g.launches[i];
	*tid = l->tid;
	*start = l->start > g.t0 ? l->start - g.t0 : 0;
	*end = l->end > g.t0 ? l->end - g.t0 : 0;
	*corr = l->corr;
	*api = l->api;
	*nframes = l->nframes;
	return 0;
}

EXPORT int fpcupti_frame(size_t i, int j, void **code, int *line)
{
	if (i >= g.nlaunches || j < 0 || j >= g.launches[i].nframes)
		return -1;
	const struct frame *f = &g.frames[g.launches[i].first + (size_t)j];
	*code = f->code;
	*line = f->line;
	return 0;
}

EXPORT void fpcupti_reset(void)
{
	pthread_mutex_lock(&g.lock);
	for (size_t i = 0; i < g.nframes; i++)
		g.py.decref(g.frames[i].code);
	for (size_t i = 0; i < g.nacts; i++)
		free((void *)g.acts[i].name);
	g.nframes = g.nlaunches = g.nacts = 0;
	g.dropped = 0;
	pthread_mutex_unlock(&g.lock);
}

/*
 * Injection mode: at exit the interpreter may already be gone, so the file
 * holds the GPU activity and the launch API calls, without Python stacks.
 */
static void write_trace_at_exit(void)
{
	fpcupti_stop();
	FILE *f = fopen(getenv("FPCUPTI_TRACE"), "w");
	char *gpu = fpcupti_gpu_json();
	if (!f || !gpu) {
		if (f)
			fclose(f);
		free(gpu);
		return;
	}
	fprintf(f, "{\"traceEvents\":[");
	for (size_t i = 0; i < g.nlaunches; i++) {
		const struct launch *l = &g.launches[i];
		uint64_t s = l->start > g.t0 ? l->start - g.t0 : 0;
		uint64_t d = l->end > l->start ? l->end - l->start : 0;
		fprintf(f,
			"{\"name\":\"%s\",\"cat\":\"api\",\"ph\":\"X\",\"pid\":%d,\"tid\":%" PRIu64
			",\"ts\":%" PRIu64 ".%03u,\"dur\":%" PRIu64 ".%03u},"
			"{\"name\":\"launch\",\"cat\":\"launch\",\"ph\":\"s\",\"id\":%" PRIu32
			",\"pid\":%d,\"tid\":%" PRIu64 ",\"ts\":%" PRIu64 ".%03u},",
			l->api, (int)getpid(), l->tid, s / 1000, (unsigned)(s % 1000), d / 1000,
			(unsigned)(d % 1000), l->corr, (int)getpid(), l->tid, s / 1000,
			(unsigned)(s % 1000));
	}
	/* Each launch left a comma: the GPU events (gpu without its brackets), or a marker, end the
	 * list. */
	size_t n = strlen(gpu);
	if (n > 2)
		fwrite(gpu + 1, 1, n - 2, f);
	else
		fprintf(f, "{\"name\":\"no GPU activity\",\"ph\":\"i\",\"pid\":%d,\"ts\":0}",
			(int)getpid());
	fprintf(f, "],\"displayTimeUnit\":\"ns\"}\n");
	fclose(f);
	free(gpu);
}

/*
 * CUDA_INJECTION64_PATH: the driver calls this as the first context is made.
 * With FPCUPTI_TRACE set the capture starts now and is written at exit;
 * without it the library only stays loaded, so that `fpctl attach PID gpu`
 * finds CUPTI there since the start.
 */
EXPORT int InitializeInjection(void)
{
	const char *path = getenv("FPCUPTI_TRACE");
	if (!path || !*path)
		return 1;
	char msg[256];
	if (fpcupti_start(msg, sizeof(msg)) != 0) {
		fprintf(stderr, "libfpcupti: %s\n", msg);
		return 0;
	}
	atexit(write_trace_at_exit);
	return 1;
}
