"""A target that uses PyTorch: a small nn.Module called in a loop by a worker
thread (Model.forward, and infer() around it), plus an async variant on an
event loop thread.  Without torch installed it cannot run: the tests pick an
interpreter that has it."""

import asyncio
import threading
import time

import torch

import fptarget as fpt

COUNTS = {"calls": 0, "async_calls": 0}


class Model(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = torch.nn.Linear(32, 64)
        self.fc2 = torch.nn.Linear(64, 8)

    def forward(self, x):
        return torch.relu(self.fc2(torch.relu(self.fc1(x))))


MODEL = Model()


def never():
    """Never called: a torch profile of it waits until cancelled."""
    return MODEL


NEVER_CODE = never.__code__


def infer(batch):
    with torch.no_grad():
        return MODEL(batch).sum().item()


async def ainfer(batch):
    await asyncio.sleep(0.001)
    return infer(batch)


def worker():
    fpt.report("work", settle="any")
    batch = torch.randn(16, 32)
    while True:  # LINE:work
        infer(batch)
        COUNTS["calls"] += 1
        time.sleep(0.005)


def loop_thread():
    fpt.report("loop", settle="any")
    batch = torch.randn(4, 32)

    async def main():
        while True:
            await ainfer(batch)
            COUNTS["async_calls"] += 1
            await asyncio.sleep(0.005)

    asyncio.new_event_loop().run_until_complete(main())  # LINE:loop


fpt.expect(3)
threading.Thread(target=worker, name="worker", daemon=True).start()
threading.Thread(target=loop_thread, name="loop", daemon=True).start()
fpt.serve()
