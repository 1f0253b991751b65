"""A target for tt: a worker thread places an order every 20 ms through
Shop.place (a method: the target, an order dict, a keyword-only coupon),
which raises for every third order; after each call the worker changes
the order it passed (a record holding the live dict would show that),
then calls the plain function add."""

import threading
import time

import fptarget as fpt


class Shop(object):
    def __init__(self):
        self.placed = 0
        self.lock = threading.Lock()  # deepcopy refuses it: the target is kept as text

    def place(self, order, *, coupon=None):
        with self.lock:
            self.placed += 1
        if order["n"] % 3 == 2:
            raise ValueError("order %d refused" % order["n"])
        return {"order": order["n"], "total": order["price"] * order["qty"], "coupon": coupon}


SHOP = Shop()


def add(a, b):
    return a + b


def worker():
    fpt.report("tick", settle="any")
    n = 0
    while True:
        order = {"n": n, "price": 10, "qty": 2, "tags": ["new"]}
        try:
            SHOP.place(order, coupon="SAVE")
        except ValueError:
            pass
        order["tags"].append("shipped")
        order["price"] = 0
        add(n, 1)
        n += 1
        time.sleep(0.02)  # LINE:tick


fpt.expect(2)
threading.Thread(target=worker, name="worker", daemon=True).start()
fpt.serve()
