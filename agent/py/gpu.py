# gpu [-d SECONDS]: CUDA kernels, copies, memsets and synchronizations of the
# target for a while, captured through CUPTI by libfpcupti.so (gpu/), with
# the Python stack of the thread behind each launch.  The trace goes to fpctl
# in chunks of Chrome trace events ("gpu_trace"), then the per-kernel
# summary ("gpu_summary"); fpctl writes the file.
#
# Nothing CUDA is ever loaded into a process that has not loaded it: the
# checks read /proc/self/maps and ask the already-mapped driver library
# (dlopen RTLD_NOLOAD) whether a context exists; only then is libfpcupti.so
# (and the libcupti it needs) loaded.  It stays loaded afterwards: CUPTI does
# not support being unloaded from a process that keeps running CUDA.
import ctypes
import json
import os
import threading
import time

_GPU_CHUNK = 2000
_GPU_TOP = 20
# CUresult values the context probe tells apart.
_GPU_CUDA_ERRORS = {3: "the driver is not initialized (no CUDA call has run)",
                    34: "the CUDA driver library is a stub (no NVIDIA driver)",
                    100: "no CUDA-capable device"}
_GPU_LIB = []
# One capture at a time: CUPTI has one subscriber per process.
_GPU_BUSY = threading.Lock()


def _gpu_mapped():
    """{"libcuda.so": path, "libcudart.so": path, "libcupti.so": path} of what is mapped."""
    found = {}
    with open("/proc/self/maps") as f:
        for line in f:
            parts = line.split(None, 5)
            if len(parts) < 6:
                continue
            path = parts[5].strip()
            base = path.rsplit("/", 1)[-1]
            for key in ("libcuda.so", "libcudart.so", "libcupti.so"):
                if base.startswith(key):
                    found.setdefault(key, path)
    return found


def _gpu_probe_context(pid, mapped):
    """Raises CommandError unless the mapped driver has a device with an active context."""
    if "libcuda.so" not in mapped:
        if "libcudart.so" not in mapped:
            raise CommandError("gpu: CUDA is not loaded in process %d (neither libcuda nor "
                               "libcudart is mapped)" % pid)
        raise CommandError("gpu: no CUDA device/context in process %d (libcudart is loaded but "
                           "the driver library is not: no CUDA call has run yet)" % pid)
    try:
        cuda = ctypes.CDLL(mapped["libcuda.so"], mode=os.RTLD_NOLOAD | ctypes.RTLD_LOCAL)
    except OSError as e:
        raise CommandError("gpu: cannot reach the CUDA driver library of process %d: %s"
                           % (pid, e))
    count = ctypes.c_int(0)
    rc = cuda.cuDeviceGetCount(ctypes.byref(count))
    if rc != 0 or count.value == 0:
        why = _GPU_CUDA_ERRORS.get(rc, "cuDeviceGetCount: CUDA error %d" % rc) if rc else \
            "no CUDA-capable device"
        raise CommandError("gpu: no CUDA device/context in process %d (%s)" % (pid, why))
    for ordinal in range(count.value):
        dev, flags, active = ctypes.c_int(0), ctypes.c_uint(0), ctypes.c_int(0)
        if cuda.cuDeviceGet(ctypes.byref(dev), ordinal) == 0 and \
                cuda.cuDevicePrimaryCtxGetState(dev, ctypes.byref(flags),
                                                ctypes.byref(active)) == 0 and active.value:
            return
    raise CommandError("gpu: no CUDA device/context in process %d (%d device(s), no active "
                       "primary context)" % (pid, count.value))


def _gpu_check_lib(path):
    """The library fpctl names must be one the target's user could not be
    tricked into loading: libfpcupti.so, owned by root or that user, in a
    folder of the same, neither writable by others (fpd attaches as root)."""
    if not path:
        raise CommandError("gpu: fpd was built without CUPTI (no libfpcupti.so next to fpctl "
                           "or in its ../lib/fpd)")
    real = os.path.realpath(path)
    if not os.path.isabs(path) or os.path.basename(real) != "libfpcupti.so":
        raise CommandError("gpu: %s is not a libfpcupti.so" % path, exit=2)
    for p in (real, os.path.dirname(real)):
        try:
            st = os.stat(p)
        except OSError as e:
            raise CommandError("gpu: the target cannot see %s (%s; a target in another mount "
                               "namespace needs it at the same path)" % (p, e.strerror))
        if st.st_uid not in (0, os.geteuid()) or st.st_mode & 0o022:
            raise CommandError("gpu: refusing %s: owned by uid %d with mode %o (it must belong "
                               "to root or the target's user and be writable by no one else)"
                               % (p, st.st_uid, st.st_mode & 0o7777))
    return real


def _gpu_load(path):
    """(lib without the GIL, lib with the GIL) over one dlopen'd copy."""
    if not _GPU_LIB:
        nogil, gil = ctypes.CDLL(path), ctypes.PyDLL(path)
        nogil.fpcupti_start.argtypes = [ctypes.c_char_p, ctypes.c_int]
        gil.fpcupti_gpu_json.restype = ctypes.c_void_p
        gil.fpcupti_free.argtypes = [ctypes.c_void_p]
        gil.fpcupti_launch_count.restype = ctypes.c_size_t
        gil.fpcupti_t0.restype = ctypes.c_uint64
        gil.fpcupti_dropped.restype = ctypes.c_uint64
        gil.fpcupti_launch.argtypes = [ctypes.c_size_t] + [ctypes.c_void_p] * 6
        gil.fpcupti_frame.argtypes = [ctypes.c_size_t, ctypes.c_int, ctypes.c_void_p,
                                      ctypes.c_void_p]
        _GPU_LIB.extend((nogil, gil))
    return _GPU_LIB


def _gpu_us(ns):
    return round(ns / 1000.0, 3)


def _gpu_code_names(cache, ptr):
    if ptr not in cache:
        code = ctypes.cast(ctypes.c_void_p(ptr), ctypes.py_object).value
        name = getattr(code, "co_qualname", None) or code.co_name
        cache[ptr] = (name, code.co_filename)
    return cache[ptr]


def _gpu_launches(gil):
    """[(tid, start, end, corr, api, [(func, file, line) outermost first])] in time order."""
    out, cache = [], {}
    tid, start, end = ctypes.c_uint64(), ctypes.c_uint64(), ctypes.c_uint64()
    corr, api, n = ctypes.c_uint32(), ctypes.c_char_p(), ctypes.c_int()
    code, line = ctypes.c_void_p(), ctypes.c_int()
    for i in range(gil.fpcupti_launch_count()):
        if gil.fpcupti_launch(i, ctypes.byref(tid), ctypes.byref(start), ctypes.byref(end),
                              ctypes.byref(corr), ctypes.byref(api), ctypes.byref(n)) != 0:
            continue
        stack = []
        for j in range(n.value):
            if gil.fpcupti_frame(i, j, ctypes.byref(code), ctypes.byref(line)) == 0 and code.value:
                func, path = _gpu_code_names(cache, code.value)
                stack.append((func, path, line.value))
        stack.reverse()
        out.append((tid.value, start.value, end.value, corr.value,
                    (api.value or b"?").decode("ascii", "replace"), stack))
    out.sort(key=lambda l: l[1])
    return out


def _gpu_cpu_events(pid, launches):
    """Per thread, each Python frame as one slice for as long as consecutive
    launches keep it on their stack, the API call inside, and the flow start
    that the kernel's flow end (same correlation id) points back to."""
    events, open_by_tid = [], {}

    def close(tid, frames, keep):
        while len(frames) > keep:
            key, ts, end = frames.pop()
            events.append({"name": key[0], "cat": "python", "ph": "X", "pid": pid, "tid": tid,
                           "ts": _gpu_us(ts), "dur": _gpu_us(end - ts),
                           "args": {"file": key[1], "line": key[2]}})

    for tid, start, end, corr, api, stack in launches:
        frames = open_by_tid.setdefault(tid, [])
        same = 0
        while same < len(frames) and same < len(stack) and frames[same][0] == stack[same]:
            same += 1
        close(tid, frames, same)
        for f in frames:
            f[2] = max(f[2], end)
        for key in stack[same:]:
            frames.append([key, start, end])
        events.append({"name": api, "cat": "api", "ph": "X", "pid": pid, "tid": tid,
                       "ts": _gpu_us(start), "dur": _gpu_us(end - start),
                       "args": {"correlation": corr,
                                "stack": ["%s (%s:%d)" % f for f in reversed(stack)]}})
        events.append({"name": "launch", "cat": "launch", "ph": "s", "id": corr, "pid": pid,
                       "tid": tid, "ts": _gpu_us(start)})
    for tid, frames in open_by_tid.items():
        close(tid, frames, 0)
    return events


def _gpu_metadata(pid, cpu_tids, gpu_events):
    names = dict((t.native_id, t.name) for t in threading.enumerate()
                 if getattr(t, "native_id", None))
    meta = [{"name": "process_name", "ph": "M", "pid": pid,
             "args": {"name": "python (pid %d)" % pid}}]
    for tid in sorted(cpu_tids):
        meta.append({"name": "thread_name", "ph": "M", "pid": pid, "tid": tid,
                     "args": {"name": names.get(tid, "thread %d" % tid)}})
    tracks = set((e["pid"], e["tid"]) for e in gpu_events if e.get("ph") == "X")
    for gpid in sorted(set(p for p, _ in tracks)):
        meta.append({"name": "process_name", "ph": "M", "pid": gpid,
                     "args": {"name": "GPU %d" % (gpid - 100000000)}})
    for gpid, tid in sorted(tracks):
        meta.append({"name": "thread_name", "ph": "M", "pid": gpid, "tid": tid,
                     "args": {"name": "sync" if tid == 0xffffff else "stream %d" % tid}})
    return meta


def _gpu_summary(gpu_events):
    per = {}
    copies, copied = 0, 0
    for e in gpu_events:
        if e.get("ph") != "X":
            continue
        if e["cat"] == "kernel":
            row = per.setdefault(e["name"], [0.0, 0])
            row[0] += e["dur"]
            row[1] += 1
        elif e["cat"] == "memcpy":
            copies += 1
            copied += e["args"].get("bytes", 0)
    rows = [{"name": k, "total_us": round(v[0], 3), "count": v[1],
             "avg_us": round(v[0] / v[1], 3)} for k, v in per.items()]
    rows.sort(key=lambda r: -r["total_us"])
    return rows, copies, copied


@command("gpu")
def _gpu(req):
    pid = os.getpid()
    if not _GPU_BUSY.acquire(False):
        raise CommandError("gpu: a capture is already running in process %d" % pid)
    try:
        _gpu_capture(req, pid)
    finally:
        _GPU_BUSY.release()


def _gpu_capture(req, pid):
    duration = float(req.arg("duration", 5))
    _gpu_probe_context(pid, _gpu_mapped())
    nogil, gil = _gpu_load(_gpu_check_lib(req.arg("lib")))
    msg = ctypes.create_string_buffer(512)
    if nogil.fpcupti_start(msg, len(msg)) != 0:
        raise CommandError("gpu: cannot trace process %d: %s"
                           % (pid, msg.value.decode("utf-8", "replace")))
    try:
        req.emit("gpu_started", pid=pid, duration=duration)
        deadline = time.time() + duration
        while not req.cancelled() and time.time() < deadline:
            time.sleep(min(0.1, max(0.0, deadline - time.time())))
    finally:
        nogil.fpcupti_stop()
    try:
        ptr = gil.fpcupti_gpu_json()
        if not ptr:
            raise CommandError("gpu: out of memory in process %d building the trace" % pid)
        try:
            gpu_events = json.loads(ctypes.string_at(ptr).decode("utf-8", "replace"))
        finally:
            gil.fpcupti_free(ptr)
        launches = _gpu_launches(gil)
        dropped = gil.fpcupti_dropped()
    finally:
        gil.fpcupti_reset()
    cpu_events = _gpu_cpu_events(pid, launches)
    events = _gpu_metadata(pid, set(l[0] for l in launches), gpu_events) + cpu_events + gpu_events
    for i in range(0, len(events), _GPU_CHUNK):
        req.emit("gpu_trace", events=events[i:i + _GPU_CHUNK])
    rows, copies, copied = _gpu_summary(gpu_events)
    req.emit("gpu_summary", pid=pid, duration=duration, kernels=rows[:_GPU_TOP],
             kernel_names=len(rows), launches=len(launches), memcpy=copies,
             memcpy_bytes=copied, dropped=dropped, events=len(events))
