#!/usr/bin/python3
"""Generate tests/unit/fixtures_linetable.h from every CPython on the machine.

    tools/gen_linetable_fixtures.py [-o tests/unit/fixtures_linetable.h]

Each interpreter (pyenv 3.6+, /usr/bin/python3.X) compiles the same sample
source (loops, multi-line expressions, exceptions, line gaps wider than a
signed byte, instructions far apart) and reports, for every code object, the
raw line table it keeps (co_lnotab up to 3.9, co_linetable after) and, for
each instruction offset, the line the interpreter itself gives: its C
function PyCode_Addr2Line, called through ctypes, cross-checked against the
Python-level view of that version (dis.findlinestarts, or co_lines()).
3.11+ run a second time with -X no_debug_ranges, whose tables use the
"no column" entries that ordinary compilation never emits.

The output is committed; rerun this script after installing a new Python.
"""

import argparse
import glob
import json
import os
import re
import shutil
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Runs inside each target interpreter (3.6 syntax): prints one JSON object.
PROBE = r'''
import ctypes, dis, json, sys

SAMPLE = %(sample)r

addr2line = ctypes.pythonapi.PyCode_Addr2Line
addr2line.argtypes = [ctypes.py_object, ctypes.c_int]
addr2line.restype = ctypes.c_int

def walk(code):
    yield code
    for c in code.co_consts:
        if hasattr(c, "co_code"):
            for sub in walk(c):
                yield sub

def python_lines(code):
    """The line of each 2-byte instruction slot, per the Python-level API."""
    n = len(code.co_code) // 2
    if hasattr(code, "co_lines"):
        lines = [-1] * n
        for start, end, line in code.co_lines():
            for off in range(start, end, 2):
                lines[off // 2] = -1 if line is None else line
        return lines
    lines, cur, starts = [], code.co_firstlineno, dict(dis.findlinestarts(code))
    for i in range(n):
        cur = starts.get(2 * i, cur)
        lines.append(cur)
    return lines

out = []
for code in walk(compile(SAMPLE, "sample.py", "exec")):
    table = code.co_linetable if sys.version_info >= (3, 10) else code.co_lnotab
    lines = [addr2line(code, 2 * i) for i in range(len(code.co_code) // 2)]
    if lines != python_lines(code):
        sys.exit("%%s: PyCode_Addr2Line and the Python API disagree" %% code.co_name)
    out.append({"name": getattr(code, "co_qualname", code.co_name),
                "firstlineno": code.co_firstlineno, "table": table.hex(), "lines": lines})
print(json.dumps({"version": "%%d.%%d.%%d" %% sys.version_info[:3], "codes": out}))
'''

# 3.6 syntax: no walrus, no positional-only parameters, no match.
SAMPLE = '''
import os

def loops(n):
    total = 0
    for i in range(n):
        while total < i:
            total += 1
        else:
            total -= 1
    return total

def multiline(a, b):
    value = (a +
             b *
             2)
    call = max(
        a,
        b,
    )
    return {
        "a": a,
        "b": [b,
              value],
    }, call

def exceptions(x):
    try:
        y = 1 / x
    except ZeroDivisionError as e:
        y = str(e)
    except (TypeError, ValueError):
        raise
    else:
        y += 1
    finally:
        x = None
    with open(os.devnull) as f:
        f.read()
    return y

def far_apart():
    a = 1
''' + "\n" * 200 + '''    b = 2
''' + "\n" * 300 + '''    return a + b

def backwards(items):
    return [
        x * 2
        for x in items
        if x
    ]

def long_line(v):
    x = [''' + ", ".join("v" for i in range(300)) + ''']
    return x

def far_back(a, b):
    return max(a,
''' + "\n" * 200 + '''               b)

def big_body(x):
''' + "".join("    x = x + %d if x > %d else x - %d\n" % (i, i, i) for i in range(150)) + '''\
    return x

def gen():
    yield 1
    yield from range(3)

async def coro(other):
    await other
    async with other as o:
        async for i in o:
            pass

class Klass:
    attr = [i for i in range(3)]

    @staticmethod
    def method(self,
               other):
        return lambda q: (q,
                          other)

def columns_over_127():
    return                                                                                                                       os.path.join("a", "b")
'''


def pyenv_root():
    if os.environ.get("PYENV_ROOT"):
        return os.environ["PYENV_ROOT"]
    if shutil.which("pyenv"):
        r = subprocess.run(["pyenv", "root"], stdout=subprocess.PIPE, text=True)
        if r.returncode == 0 and r.stdout.strip():
            return r.stdout.strip()
    return "/root/.pyenv"


def interpreters():
    found = []
    dirs = glob.glob(os.path.join(pyenv_root(), "versions", "3.*"))
    for d in sorted(dirs, key=lambda d: [int(x) for x in re.findall(r"\d+", os.path.basename(d))]):
        exe = os.path.join(d, "bin", "python3")
        if os.access(exe, os.X_OK):
            found.append(exe)
    found += sorted(p for p in glob.glob("/usr/bin/python3.*") if p[-1].isdigit())
    return found


def probe(exe, flags):
    r = subprocess.run([exe] + flags + ["-c", PROBE % {"sample": SAMPLE}],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if r.returncode:
        sys.exit("%s: %s" % (exe, r.stderr.strip()))
    return json.loads(r.stdout)


def kind(version):
    minor = int(version.split(".")[1])
    return "FP_LINES_LNOTAB" if minor < 10 else "FP_LINES_310" if minor == 10 else "FP_LINES_311"


def c_bytes(hexstr):
    b = bytes.fromhex(hexstr)
    items = ["0x%02x" % x for x in b] or ["0"]
    return ",".join(items)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-o", default=os.path.join(REPO, "tests/unit/fixtures_linetable.h"))
    args = ap.parse_args()
    runs = []
    for exe in interpreters():
        data = probe(exe, [])
        runs.append((exe, "", data))
        if int(data["version"].split(".")[1]) >= 11:
            runs.append((exe, "-X no_debug_ranges", probe(exe, ["-X", "no_debug_ranges"])))

    body, entries = [], []
    for exe, flags, data in runs:
        for code in data["codes"]:
            n = len(entries)
            body.append("static const uint8_t lt_table_%d[] = {%s};" % (n, c_bytes(code["table"])))
            body.append("static const int lt_lines_%d[] = {%s};" %
                        (n, ",".join(str(x) for x in code["lines"]) or "0"))
            label = "%s %s%s" % (data["version"], exe, " " + flags if flags else "")
            entries.append('\t{"%s", "%s", %s, %d, lt_table_%d, %d, lt_lines_%d, %d},' % (
                label, code["name"], kind(data["version"]), code["firstlineno"], n,
                len(code["table"]) // 2, n, len(code["lines"])))
    with open(args.o, "w") as f:
        f.write("/* Generated by tools/gen_linetable_fixtures.py from %s: do not edit. */\n"
                % ", ".join(dict.fromkeys(d["version"] for _, _, d in runs)))
        f.write("// clang-format off\n")
        f.write("struct lt_fixture {\n\tconst char *python;\n\tconst char *name;\n"
                "\tenum fp_linetable_kind kind;\n\tint firstlineno;\n\tconst uint8_t *table;\n"
                "\tsize_t len;\n\tconst int *lines; /* line of the instruction at byte 2*i */\n"
                "\tsize_t nlines;\n};\n\n")
        f.write("\n".join(body))
        f.write("\n\nstatic const struct lt_fixture lt_fixtures[] = {\n")
        f.write("\n".join(entries))
        f.write("\n};\n// clang-format on\n")
    print("%s: %d code objects from %d runs" % (args.o, len(entries), len(runs)))


if __name__ == "__main__":
    main()
