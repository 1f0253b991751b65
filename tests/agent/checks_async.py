"""Checks of agent/py/asyncio_tasks.py (stack -a), run under every
interpreter by checkrun.py (CPython 3.6+ syntax only).  Each check runs an
event loop on a thread of its own, asks the helper for its tasks from
another thread as in the target, and stops the loop."""
import asyncio
import sys
import threading
import time
import types

from reqthread import ReqThread

NAMED = sys.version_info >= (3, 8)  # tasks have names from 3.8 on


class LoopThread(object):
    """A loop running main() on a thread named "loop-thread" until stop()."""

    def __init__(self, main):
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(main,), name="loop-thread")
        self.thread.daemon = True
        self.thread.start()
        assert self.ready.wait(10), "the loop did not start"
        time.sleep(0.2)  # every task reaches its await

    def _run(self, main):
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(self.ready.set)
        try:
            self.loop.run_until_complete(main(self))
        except asyncio.CancelledError:
            pass
        finally:
            self.loop.close()

    def stop(self):
        def cancel_all():
            for t in list(self.tasks):
                t.cancel()
        self.loop.call_soon_threadsafe(cancel_all)
        self.thread.join(10)
        assert not self.thread.is_alive()


def stack_async(ns):
    events, last = ReqThread(ns, "stack_async").join()
    assert last == ("end", None), last
    return events


def our_loop(events, lt):
    mine = [e for e in events if e["event"] == "async_loop" and e["loop_id"] == hex(id(lt.loop))]
    assert len(mine) == 1, events
    return mine[0]


def short(qualname):
    return qualname.rsplit(".", 1)[-1]


def by_coro(ev):
    """Tasks by the name of their coroutine function (without its <locals> path)."""
    return dict((short(t["coro"]), t) for t in ev["tasks"])


async def inner():
    await asyncio.sleep(3600)


async def worker():
    await inner()


def check_tasks_chains_and_gather(ns):
    async def main(lt):
        w = asyncio.ensure_future(worker())
        s = asyncio.ensure_future(asyncio.sleep(3600))
        lt.tasks = [w, s, current_task()]
        await asyncio.gather(w, s)

    lt = LoopThread(main)
    try:
        ev = our_loop(stack_async(ns), lt)
    finally:
        lt.stop()
    assert ev["running"] and not ev["closed"] and ev["thread_name"] == "loop-thread", ev
    assert ev["thread_ident"] == lt.thread.ident, ev
    tasks = by_coro(ev)
    assert sorted(tasks) == ["main", "sleep", "worker"], tasks
    m, w, s = tasks["main"], tasks["worker"], tasks["sleep"]
    # the task nobody awaits comes first, then those it awaits
    assert short(ev["tasks"][0]["coro"]) == "main", ev["tasks"]
    assert [f["func"] for f in w["frames"]] == ["worker", "inner", "sleep"], w["frames"]
    assert w["frames"][0]["file"] == __file__ and w["frames"][1]["source"] == \
        "await asyncio.sleep(3600)", w["frames"]
    assert [t["state"] for t in (m, w, s)] == ["pending"] * 3
    assert m["waiting"]["kind"] == "gather", m
    assert sorted(c["id"] for c in m["waiting"]["children"]) == sorted([w["id"], s["id"]])
    assert w["waiting"] == {"kind": "future", "type": "Future", "state": "pending"}, w
    assert [a["id"] for a in w["awaited_by"]] == [m["id"]] and m["awaited_by"] == [], (w, m)
    if NAMED:
        assert m["name"].startswith("Task-") and w["awaited_by"][0]["name"] == m["name"]
    else:
        assert m["name"] is None


def current_task():
    return asyncio.current_task() if hasattr(asyncio, "current_task") else \
        asyncio.Task.current_task()


def check_task_awaiting_task_and_states(ns):
    async def failing():
        raise ValueError("boom")

    async def main(lt):
        child = asyncio.ensure_future(worker())
        if NAMED:
            child.set_name("the-child")
        done = asyncio.ensure_future(asyncio.sleep(0))
        broken = asyncio.ensure_future(failing())
        gone = asyncio.ensure_future(asyncio.sleep(3600))
        await asyncio.sleep(0.01)
        gone.cancel()
        await asyncio.sleep(0.01)
        lt.tasks = [child, current_task()]
        lt.keep = [done, broken, gone]
        await child

    lt = LoopThread(main)
    try:
        ev = our_loop(stack_async(ns), lt)
    finally:
        lt.keep[1].exception()  # retrieved: no "never retrieved" warning at exit
        lt.stop()
    states = sorted((short(t["coro"]), t["state"]) for t in ev["tasks"])
    assert ("failing", "done") in states and ("main", "pending") in states, states
    assert ("sleep", "done") in states and ("sleep", "cancelled") in states, states
    main_task = by_coro(ev)["main"]
    child = by_coro(ev)["worker"]
    assert main_task["waiting"]["kind"] == "task" and main_task["waiting"]["id"] == child["id"]
    assert [a["id"] for a in child["awaited_by"]] == [main_task["id"]]
    if NAMED:
        assert child["name"] == "the-child" and main_task["waiting"]["name"] == "the-child"


def check_generator_based_chain(ns):
    @types.coroutine
    def legacy():
        yield from asyncio.sleep(3600)

    async def main(lt):
        lt.tasks = [current_task()]
        await legacy()

    lt = LoopThread(main)
    try:
        ev = our_loop(stack_async(ns), lt)
    finally:
        lt.stop()
    frames = [f["func"] for f in ev["tasks"][0]["frames"]]
    assert frames[:2] == ["check_generator_based_chain.<locals>.main",
                          "check_generator_based_chain.<locals>.legacy"], frames
    assert frames[-1] == "sleep", frames


def check_running_task_and_idle_loop(ns):
    """A task busy in Python code is the loop's current task; a loop with
    nothing scheduled shows with no task."""
    stop = []

    async def main(lt):
        lt.tasks = [current_task()]
        while not stop:
            pass

    lt = LoopThread(main)
    idle = asyncio.new_event_loop()
    idle_thread = threading.Thread(target=idle.run_forever, name="idle-loop")
    idle_thread.start()
    time.sleep(0.2)
    try:
        events = stack_async(ns)
    finally:
        stop.append(1)
        lt.stop()
        idle.call_soon_threadsafe(idle.stop)
        idle_thread.join(10)
        idle.close()
    ev = our_loop(events, lt)
    assert [t["state"] for t in ev["tasks"]] == ["running"], ev["tasks"]
    assert ev["tasks"][0]["waiting"] is None
    idle_ev = [e for e in events if e["event"] == "async_loop" and e["loop_id"] == hex(id(idle))]
    assert len(idle_ev) == 1 and idle_ev[0]["tasks"] == [], events
    assert idle_ev[0]["running"] and idle_ev[0]["thread_name"] == "idle-loop", idle_ev


def check_no_asyncio(ns):
    saved = dict((k, v) for k, v in sys.modules.items() if k == "asyncio" or
                 k.startswith("asyncio."))
    for k in saved:
        del sys.modules[k]
    try:
        events = stack_async(ns)
    finally:
        sys.modules.update(saved)
    assert events == [{"event": "async_none",
                       "reason": "asyncio is not imported in this process"}], events


def check_no_loop(ns):
    # Tasks of the checks that ran before in this process stay in asyncio's
    # weak registries until the collector frees their cycles.
    import gc
    gc.collect()
    events = stack_async(ns)
    assert events == [{"event": "async_none",
                       "reason": "no asyncio event loop or task in this process"}], events
