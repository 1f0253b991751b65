"""A target with an asyncio event loop on a thread of its own ("loop-thread";
the main thread serves pings): a "server" task gathering two handler tasks,
one of which awaits a "fetcher" task, which sleeps.  Tasks are named from
3.8 on (before, asyncio has no task names)."""

import asyncio
import sys

import fptarget as fpt

NAMED = sys.version_info >= (3, 8)


def spawn(coro, name):
    task = asyncio.ensure_future(coro)
    if NAMED:
        task.set_name(name)
    return task


async def fetch():
    await asyncio.sleep(fpt.BIG)  # LINE:fetch_sleep


async def handle(n):
    if n == 1:
        await spawn(fetch(), "fetcher")  # LINE:handle_await
    else:
        await asyncio.sleep(fpt.BIG)  # LINE:handle_sleep


async def server():
    handlers = [spawn(handle(n), "handler-%d" % n) for n in (1, 2)]
    fpt.report("server_gather", settle="any")
    await asyncio.gather(*handlers)  # LINE:server_gather


def run_loop():
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    loop.run_until_complete(spawn(server(), "server"))


fpt.expect(2)
fpt.start_thread("loop-thread", run_loop)
fpt.serve()
