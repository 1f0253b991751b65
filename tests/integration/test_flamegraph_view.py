"""The flame graph SVG as a person sees it: a synthetic profile of 100,000
samples and thousands of distinct stacks rendered by fpctl's renderer (the
unit-test binary's --svg mode runs cli_flamegraph_svg), checked as XML, for
its totals, and screenshotted in headless Chromium (Debian's chromium).  The
screenshot stays in the test's tmp_path for a person to look at."""

import json
import random
import shutil
import struct
import subprocess
import xml.etree.ElementTree as ET
import zlib
from collections import defaultdict

import pytest

import fpdtest

SVG_NS = "{http://www.w3.org/2000/svg}"
WINDOW = (1400, 900)


def synthetic_profile(seed=4, samples=100000):
    """Three threads: a web handler tree with a hot JSON encoder, a worker
    spinning in hot_a/hot_b -> leaf with native frames under it, and a long
    tail of rare stacks (most one or two samples wide)."""
    rnd = random.Random(seed)
    frames, index = [], {}

    def frame(func, file=None, line=1, kind="python", library=None):
        key = (kind, func, file, line, library)
        if key not in index:
            index[key] = len(frames)
            frames.append({"kind": kind, "func": func, "file": file, "line": line, "library": library})
        return index[key]

    app = "/srv/app/server.py"
    stacks = defaultdict(int)

    def add(thread, tid, chain, count):
        stacks[(thread, tid, tuple(chain))] += count

    main = [frame("<module>", app, 120), frame("main", app, 110), frame("serve_forever", app, 90)]
    handler = main + [frame("handle_request", app, 60)]
    left = samples
    plan = [
        ("MainThread", 1001, handler + [frame("render", app, 40), frame("dumps", "/usr/lib/python3.11/json/__init__.py", 231),
                                         frame("encode", "/usr/lib/python3.11/json/encoder.py", 199),
                                         frame("iterencode", "/usr/lib/python3.11/json/encoder.py", 257)], 30000),
        ("MainThread", 1001, handler + [frame("query", "/srv/app/db.py", 77), frame("execute", "/srv/app/db.py", 30),
                                         frame("recv_into", None, 0, "native", "libc.so.6")], 15000),
        ("worker-1", 1002, [frame("run", "/usr/lib/python3.11/threading.py", 975), frame("hot_a", "/srv/app/work.py", 12)], 25000),
        ("worker-1", 1002, [frame("run", "/usr/lib/python3.11/threading.py", 975), frame("hot_b", "/srv/app/work.py", 20),
                            frame("leaf", "/srv/app/work.py", 30), frame("PyNumber_Multiply", None, 0, "native", "libpython3.11.so"),
                            frame("long_mul", None, 0, "native", "libpython3.11.so")], 20000),
    ]
    for thread, tid, chain, count in plan:
        add(thread, tid, chain, count)
        left -= count
    # The long tail: 3,000 distinct stacks sharing the left samples.
    tail_stacks = 3000
    for i in range(tail_stacks):
        depth = rnd.randint(1, 6)
        chain = handler + [frame("helper_%d" % rnd.randint(0, 400), "/srv/app/lib%d.py" % (i % 7), rnd.randint(1, 500))
                           for _ in range(depth)]
        n = left - (tail_stacks - 1 - i) if i == tail_stacks - 1 else rnd.randint(1, 2)
        add("MainThread", 1001, chain, n)
        left -= n
    assert left == 0
    out = [{"frames": list(chain), "count": n, "thread": t, "tid": tid} for (t, tid, chain), n in stacks.items()]
    return {"event": "profile", "samples": samples, "lost": 3, "faulted": 1, "duration_s": 100.0,
            "rate": 1000, "frames": frames, "stacks": out}


@pytest.fixture(scope="module")
def driver():
    path = fpdtest.build_dir() / "tests" / "test_flamegraph"
    if not path.exists():
        pytest.fail("%s is missing: run `make unit` first" % path, pytrace=False)
    return path


def render(driver, profile, tmp_path):
    src, svg = tmp_path / "profile.json", tmp_path / "flamegraph.svg"
    src.write_text(json.dumps(profile))
    r = subprocess.run([str(driver), "--svg", str(src), str(svg), "fpctl perf: synthetic <test> & co"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    assert r.returncode == 0, r.stdout.decode(errors="replace")
    return svg


def frames_of(root):
    out = []
    for g in root.iter(SVG_NS + "g"):
        if "f" not in g.get("class", "").split():
            continue
        title = g.find(SVG_NS + "title").text.split("\n")
        out.append({"name": title[0], "place": title[1], "s": int(g.get("data-s")), "n": int(g.get("data-n")),
                    "d": int(g.get("data-d")), "merged": "m" in g.get("class").split()})
    return out


def test_svg_structure_and_totals(driver, tmp_path):
    profile = synthetic_profile()
    svg = render(driver, profile, tmp_path)
    size = svg.stat().st_size
    assert size < 2 << 20, "flame graph of %d bytes: narrow frames were not elided" % size
    root = ET.parse(str(svg)).getroot()  # raises on anything that is not well-formed XML
    assert root.tag == SVG_NS + "svg"
    total = sum(s["count"] for s in profile["stacks"])
    assert int(root.get("data-samples")) == total == profile["samples"]
    frames = frames_of(root)
    assert frames[0]["d"] == 0 and frames[0]["n"] == total

    # Threads are the first level and hold every sample.
    threads = {f["name"]: f["n"] for f in frames if f["d"] == 1}
    want = defaultdict(int)
    for s in profile["stacks"]:
        want["%s (tid %d)" % (s["thread"], s["tid"])] += s["count"]
    assert threads == dict(want)

    # Each drawn frame's children fit inside it, and a function's width is its samples.
    by = {(f["name"], f["place"].split(":")[0]): f["n"] for f in frames if not f["merged"]}
    assert by[("hot_a", "/srv/app/work.py")] == 25000
    assert by[("leaf", "/srv/app/work.py")] == 20000
    assert by[("iterencode", "/usr/lib/python3.11/json/encoder.py")] == 30000
    assert by[("long_mul", "native (libpython3.11.so)")] == 20000
    # The tail is merged, not drawn one by one, and nothing is lost on the way.
    assert len(frames) < 3000
    for parent in (f for f in frames if f["d"] >= 1):
        kids = [f for f in frames if f["d"] == parent["d"] + 1 and parent["s"] <= f["s"] < parent["s"] + parent["n"]]
        assert sum(k["n"] for k in kids) <= parent["n"]
    handler = [f for f in frames if f["name"] == "handle_request"]
    assert len(handler) == 1
    h = handler[0]
    kids = [f for f in frames if f["d"] == h["d"] + 1 and h["s"] <= f["s"] < h["s"] + h["n"]]
    assert sum(k["n"] for k in kids) == handler[0]["n"]


def png_pixels(path):
    """(width, height, rows of RGB tuples) of a non-interlaced 8-bit RGB/RGBA PNG."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, head = 8, b"", None
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            head = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    width, height, depth, ctype, _, _, interlace = head
    assert depth == 8 and ctype in (2, 6) and not interlace, head
    bpp = 3 if ctype == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * bpp
    rows, prev = [], bytearray(stride)
    for y in range(height):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append([tuple(line[x * bpp:x * bpp + 3]) for x in range(width)])
        prev = line
    return width, height, rows


def screenshot(svg, png, fragment=""):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        pytest.skip("chromium is not installed (apt-get install chromium): no screenshot of the flame graph")
    r = subprocess.run([chromium, "--headless", "--disable-gpu", "--no-sandbox", "--hide-scrollbars",
                        "--screenshot=%s" % png, "--window-size=%d,%d" % WINDOW, svg.as_uri() + fragment],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120, cwd=str(png.parent))
    assert png.exists(), "chromium wrote no screenshot:\n%s" % r.stdout.decode(errors="replace")[-3000:]
    width, height, rows = png_pixels(png)
    assert (width, height) == WINDOW
    counts = defaultdict(int)
    colours = set()
    for row in rows[::3]:
        for (r_, g, b) in row[::3]:
            colours.add((r_, g, b))
            if r_ >= 205 and b <= 60 and g <= 230:
                counts["python"] += 1
            elif r_ <= 115 and g >= 160 and b >= 160:
                counts["native"] += 1
            elif r_ >= 225 and g <= 10 and b >= 225:
                counts["match"] += 1  # the search highlight, rgb(230,0,230)
            elif r_ + g + b < 150:
                counts["text"] += 1
    assert len(colours) > 50, "the screenshot is nearly blank (%d colours): %s" % (len(colours), png)
    return counts


def test_screenshot_in_chromium(driver, tmp_path):
    svg = render(driver, synthetic_profile(), tmp_path)
    seen = full = screenshot(svg, tmp_path / "flamegraph.png")
    assert seen["python"] > 2000, "no Python frames drawn in %s" % (tmp_path / "flamegraph.png")
    assert seen["native"] > 200, "no native frames drawn"
    assert seen["text"] > 200, "no text drawn"
    assert seen["match"] == 0

    # The script runs: zoomed into handle_request with "leaf|enc" searched (the URL holds the view).
    root = ET.parse(str(svg)).getroot()
    handler = [f for f in frames_of(root) if f["name"] == "handle_request"][0]
    seen = screenshot(svg, tmp_path / "zoomed.png", "#z=%d,%d&s=enc" % (handler["s"], handler["d"]))
    assert seen["match"] > 2000, "search matches not highlighted in %s" % (tmp_path / "zoomed.png")
    # recv_into (native) is about twice as wide, the worker thread's native frames are gone.
    assert 400 < seen["native"] < full["native"], "the zoom did not redraw the frames"
