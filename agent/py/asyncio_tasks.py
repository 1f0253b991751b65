# stack -a: the asyncio tasks of every event loop, with their await chains.
#
# Nothing runs on the loops: tasks are read from asyncio's registries
# (tasks._all_tasks in 3.7-3.11, _scheduled_tasks and _eager_tasks from 3.12,
# all_tasks(loop), a walk of them, for a loop found on a stack, or
# Task.all_tasks(loop) in 3.6) and from their attributes (_coro, _loop,
# _state, _fut_waiter), which the C and the Python Task both have; the
# coroutines' own links (cr_await, gi_yieldfrom) give each task's chain of
# suspended frames.  Loops are those of the tasks, and those whose
# run_forever is on a thread's stack (a loop without tasks, and on 3.6 the
# only way to a loop).
import linecache
import sys

_AIO_RETRIES = 100  # a registry another thread changes while it is copied
_AIO_MAX_CHAIN = 256  # frames followed down one task's await chain
_AIO_STATES = {"PENDING": "pending", "CANCELLED": "cancelled", "FINISHED": "done"}


def _aio_copy(registry):
    for _ in range(_AIO_RETRIES):
        try:
            return list(registry)
        except RuntimeError:
            continue  # changed size while iterated: the loop's thread ran
    return []


def _aio_threads():
    """ident -> (name, native id) from threading, when the application imported it."""
    threading = sys.modules.get("threading")
    out = {}
    for ident, t in dict(getattr(threading, "_active", {})).items():
        out[ident] = (getattr(t, "_name", None), getattr(t, "_native_id", None))
    return out


def _aio_running_loops(asyncio):
    """{loop: thread ident} for each loop whose run_forever is on a stack."""
    out = {}
    base = getattr(asyncio, "AbstractEventLoop", object)
    for ident, frame in sys._current_frames().items():
        while frame is not None:
            if frame.f_code.co_name == "run_forever":
                try:
                    loop = frame.f_locals.get("self")
                except Exception:
                    loop = None
                if isinstance(loop, base):
                    out[loop] = ident
            frame = frame.f_back
    return out


def _aio_all_tasks(asyncio, loops):
    tasks_mod = sys.modules.get("asyncio.tasks")
    found = []
    for name in ("_all_tasks", "_scheduled_tasks", "_eager_tasks"):
        registry = getattr(tasks_mod, name, None)
        if registry is not None and not callable(registry):
            found.extend(_aio_copy(registry))
    # Per loop found on a stack: 3.14 keeps native tasks in per-thread lists
    # only all_tasks(loop) walks, and 3.6's C Task keeps its registry private.
    askers = [getattr(asyncio, "all_tasks", None)]
    if askers[0] is None:
        askers = [getattr(getattr(asyncio, "Task", None), "all_tasks", None),
                  getattr(getattr(tasks_mod, "_PyTask", None), "all_tasks", None)]
    for all_tasks in askers:
        for loop in loops:
            try:
                found.extend(all_tasks(loop))
            except Exception:
                pass
    seen, out = set(), []
    for t in found:
        if id(t) not in seen:
            seen.add(id(t))
            out.append(t)
    return out


def _aio_task_name(task):
    get_name = getattr(task, "get_name", None)
    if get_name is not None:
        try:
            return str(get_name())
        except Exception:
            pass
    return None


def _aio_frame(obj, frame):
    code = frame.f_code
    line = frame.f_lineno
    source = linecache.getline(code.co_filename, line).strip() if line else ""
    return {"func": getattr(obj, "__qualname__", None) or code.co_name,
            "file": code.co_filename, "line": line, "source": source or None}


def _aio_chain(coro):
    """The suspended frames from the task's coroutine inwards, down to what
    is not a coroutine or generator (a future's iterator: the task's
    _fut_waiter says which future)."""
    frames = []
    obj = coro
    for _ in range(_AIO_MAX_CHAIN):
        cur = obj
        for fattr, aattr in (("cr_frame", "cr_await"), ("gi_frame", "gi_yieldfrom"),
                             ("ag_frame", "ag_await")):
            if hasattr(cur, fattr):
                frame = getattr(cur, fattr)
                obj = getattr(cur, aattr, None)
                break
        else:
            return frames
        if frame is not None:
            frames.append(_aio_frame(cur, frame))
        if obj is None:
            return frames
    return frames


def _aio_is_task(obj, asyncio):
    return isinstance(obj, asyncio.Task) or (
        hasattr(obj, "_coro") and hasattr(obj, "_fut_waiter"))


def _aio_waiter(task, asyncio, names):
    """What the task waits for, from its _fut_waiter."""
    w = getattr(task, "_fut_waiter", None)
    if w is None:
        return None
    if _aio_is_task(w, asyncio):
        return {"kind": "task", "id": id(w), "name": names.get(id(w))}
    children = getattr(w, "_children", None)
    if isinstance(children, list):
        kids = []
        for c in children:
            if _aio_is_task(c, asyncio):
                kids.append({"kind": "task", "id": id(c), "name": names.get(id(c))})
            else:
                kids.append({"kind": "future", "type": type(c).__name__,
                             "state": _AIO_STATES.get(getattr(c, "_state", ""), "?")})
        return {"kind": "gather", "children": kids}
    return {"kind": "future", "type": type(w).__name__,
            "state": _AIO_STATES.get(getattr(w, "_state", ""), "?")}


def _aio_tree_order(tasks, waits):
    """Tasks nobody awaits first, by name, each followed by the tasks it
    awaits, depth first: the order of a tree of await chains."""
    by_id = dict((id(t), t) for t in tasks)
    awaited = set()
    for w in waits.values():
        for target in _aio_targets(w):
            awaited.add(target)
    roots = sorted((t for t in tasks if id(t) not in awaited),
                   key=lambda t: (str(_aio_task_name(t)), id(t)))
    out, seen = [], set()
    for start in roots + tasks:
        stack = [start]
        while stack:
            t = stack.pop()
            if id(t) in seen:
                continue
            seen.add(id(t))
            out.append(t)
            kids = [by_id[k] for k in _aio_targets(waits.get(id(t))) if k in by_id]
            stack.extend(reversed(kids))
    return out


def _aio_targets(w):
    """Ids of the tasks a waiter description names."""
    if not w:
        return []
    if w["kind"] == "task":
        return [w["id"]]
    if w["kind"] == "gather":
        return [c["id"] for c in w["children"] if c["kind"] == "task"]
    return []


def _aio_current(asyncio, loop):
    """The task running on loop now: a dict lookup, from 3.7 on of
    tasks._current_tasks, before of Task.current_task(loop)."""
    current = getattr(sys.modules.get("asyncio.tasks"), "_current_tasks", None)
    if isinstance(current, dict):
        return current.get(loop)
    try:
        return asyncio.Task.current_task(loop)
    except Exception:
        return None


def _aio_loop_of(task):
    loop = getattr(task, "_loop", None)
    if loop is None and hasattr(task, "get_loop"):
        try:
            loop = task.get_loop()
        except Exception:
            pass
    return loop


@command("stack_async")
def _stack_async(req):
    asyncio = sys.modules.get("asyncio")
    if asyncio is None or not hasattr(asyncio, "Task"):
        req.emit("async_none", reason="asyncio is not imported in this process")
        return
    running = _aio_running_loops(asyncio)
    tasks = _aio_all_tasks(asyncio, list(running))
    names = {}
    for t in tasks:
        names[id(t)] = _aio_task_name(t)
    # who waits for whom: a task waiting on another, alone or in a gather
    awaited_by = {}
    waits = {}
    for t in tasks:
        w = _aio_waiter(t, asyncio, names)
        waits[id(t)] = w
        for target in _aio_targets(w):
            awaited_by.setdefault(target, []).append({"id": id(t), "name": names[id(t)]})
    loops = []
    by_loop = {}
    for loop in running:
        by_loop[id(loop)] = (loop, [])
        loops.append(loop)
    for t in tasks:
        loop = _aio_loop_of(t)
        if id(loop) not in by_loop:
            by_loop[id(loop)] = (loop, [])
            loops.append(loop)
        by_loop[id(loop)][1].append(t)
    for loop in loops:
        by_loop[id(loop)] = (loop, _aio_tree_order(by_loop[id(loop)][1], waits))
    threads = _aio_threads()
    if not loops:
        req.emit("async_none", reason="no asyncio event loop or task in this process")
        return
    for loop in loops:
        _, ltasks = by_loop[id(loop)]
        ident = running.get(loop, getattr(loop, "_thread_id", None))
        tname, native = threads.get(ident, (None, None))
        now = _aio_current(asyncio, loop)
        out = []
        for t in ltasks:
            coro = getattr(t, "_coro", None)
            frames = _aio_chain(coro)
            state = _AIO_STATES.get(getattr(t, "_state", ""), "?")
            if state == "pending" and t is now:
                state = "running"
            elif state == "pending" and getattr(t, "_must_cancel", False):
                state = "pending (cancel requested)"
            out.append({
                "id": id(t), "name": names[id(t)], "state": state,
                "coro": getattr(coro, "__qualname__", None) if coro is not None else None,
                "frames": frames, "waiting": waits[id(t)],
                "awaited_by": awaited_by.get(id(t), [])})
        req.emit("async_loop", loop_type=type(loop).__name__, loop_id=hex(id(loop)),
                 running=bool(getattr(loop, "_thread_id", None)) or loop in running,
                 closed=bool(getattr(loop, "_closed", False)), thread_ident=ident,
                 thread_id=native, thread_name=tname, tasks=out)
