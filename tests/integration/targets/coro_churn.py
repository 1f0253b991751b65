"""Coroutines suspending and resuming all the time on an event loop of their
own thread (loop-thread), beside MainThread serving stdin.  A coroutine's
frame loses its link to its caller each time it suspends, so a reader that
meets it at that moment must not take it for the bottom of the stack."""

import asyncio
import threading

import fptarget as fpt


async def hop(n):
    while True:
        await asyncio.sleep(0)
        sum(range(50 * n))


async def gather():
    await asyncio.gather(*(hop(n) for n in range(8)))


def run_loop():
    fpt.report("loop", settle="cpu")
    loop = asyncio.new_event_loop()
    loop.run_until_complete(gather())  # LINE:loop


def main():
    fpt.expect(2)
    t = threading.Thread(target=run_loop, name="loop-thread", daemon=True)
    t.start()
    fpt.serve()


main()
