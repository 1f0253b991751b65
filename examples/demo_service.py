"""A small threaded HTTP service to point fpctl at (Python 3.8+).

    python3 examples/demo_service.py [PORT]      (default 8765, 127.0.0.1 only)

- GET /work?n=N   a worker pool computes primes below N (CPU work), while
                  holding the shared statistics lock for the bookkeeping
- GET /stats      request counts and the latest results (JSON)
- GET /tick       the number of ticks of the asyncio part
- GET /quit       stops the service

Threads: the HTTP server's request threads, "pool_N" workers, "asyncio-loop"
(an event loop running a few periodic tasks: "ticker", "janitor",
"aggregator"), "reporter" (sleeps, then reads the stats under the lock), and
the main thread waiting in serve_forever().
"""

import asyncio
import json
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.requests = 0
        self.primes = {}
        self.ticks = 0

    def record(self, n, count):
        with self.lock:
            self.requests += 1
            self.primes[n] = count

    def snapshot(self):
        with self.lock:
            return {"requests": self.requests, "primes": dict(self.primes), "ticks": self.ticks}


STATS = Stats()
POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="pool")


def count_primes(n):
    """Deliberately naive: something to see in a stack."""
    count = 0
    for candidate in range(2, n):
        if is_prime(candidate):
            count += 1
    return count


def is_prime(k):
    d = 2
    while d * d <= k:
        if k % d == 0:
            return False
        d += 1
    return True


def work(n):
    count = count_primes(n)
    STATS.record(n, count)
    return count


# --- asyncio part: an event loop in its own thread

async def ticker():
    while True:
        await asyncio.sleep(0.5)
        with STATS.lock:
            STATS.ticks += 1


async def janitor():
    while True:
        await asyncio.sleep(2)
        with STATS.lock:
            if len(STATS.primes) > 100:
                STATS.primes.clear()


async def aggregator():
    while True:
        await asyncio.sleep(1)
        await asyncio.get_running_loop().run_in_executor(POOL, work, 2000)


def run_loop():
    async def main():
        tasks = [asyncio.create_task(ticker(), name="ticker"),
                 asyncio.create_task(janitor(), name="janitor"),
                 asyncio.create_task(aggregator(), name="aggregator")]
        await asyncio.gather(*tasks)

    asyncio.run(main())


def reporter():
    while True:
        time.sleep(5)
        STATS.snapshot()


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        url = urlparse(self.path)
        if url.path == "/work":
            n = int(parse_qs(url.query).get("n", ["20000"])[0])
            body = {"n": n, "primes": POOL.submit(work, n).result()}
        elif url.path == "/stats":
            body = STATS.snapshot()
        elif url.path == "/tick":
            body = {"ticks": STATS.snapshot()["ticks"]}
        elif url.path == "/quit":
            body = {"bye": True}
            threading.Thread(target=self.server.shutdown, daemon=True).start()
        else:
            self.send_error(404)
            return
        data = json.dumps(body).encode() + b"\n"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, fmt, *args):
        pass


def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8765
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=run_loop, name="asyncio-loop", daemon=True).start()
    threading.Thread(target=reporter, name="reporter", daemon=True).start()
    print("demo service on http://127.0.0.1:%d (pid %d)" % (port, os.getpid()), flush=True)
    try:
        server.serve_forever()
    finally:
        POOL.shutdown(wait=False)


if __name__ == "__main__":
    main()
