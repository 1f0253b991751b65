#!/usr/bin/python3
"""Compute fpd's CPython layout table (struct fp_layout) from a libpython's DWARF.

    tools/layout_from_dwarf.py /root/.pyenv/versions/3.11.7/lib/libpython3.11.so.1.0 [3.11]

Prints one JSON object whose keys are exactly the members of struct fp_layout
(include/fp/layout.h), the same shape `fpd --layout 3.X` prints, so that
tests/integration/test_layout.py can compare the two field by field.

Every value is asked of gdb (batch mode, its embedded Python): offsets as
`&((T *)0)->member`, sizes as `sizeof(T)`, enum constants by name.  The
models (frame chain, line table, dict, instance dict) are inferred from which
members and types exist, not from the version number, so a table that names
the wrong model for a version is caught too.  The version argument only fills
`major`/`minor`; without it they are taken from the file name.

This file runs twice: under /usr/bin/python3 it starts gdb on itself; inside
gdb (where `import gdb` works) it computes the table.
"""

import json
import os
import re
import subprocess
import sys

NO = -1  # FP_NO_FIELD

# enum values of include/fp/layout.h
FRAMES_OBJECT, FRAMES_CFRAME, FRAMES_CURRENT = 1, 2, 3
LINES_LNOTAB, LINES_310, LINES_311 = 1, 2, 3
DICT_36, DICT_311 = 1, 2
INSTDICT_OFFSET, INSTDICT_311, INSTDICT_312, INSTDICT_313 = 1, 2, 3, 4


def compute(major, minor):
    import gdb  # only importable inside gdb

    def off(typ, member):
        try:
            return int(gdb.parse_and_eval("(long)&((%s *)0)->%s" % (typ, member)))
        except gdb.error:
            return None

    def first(typ, *members):
        for m in members:
            v = off(typ, m)
            if v is not None:
                return v
        return NO

    def size(typ):
        try:
            return int(gdb.parse_and_eval("sizeof(%s)" % typ))
        except gdb.error:
            return NO

    def has_type(name):
        try:
            gdb.lookup_type(name)
            return True
        except gdb.error:
            return False

    def member_is_pointer(typ, member):
        try:
            t = gdb.parse_and_eval("((%s *)0)->%s" % (typ, member)).type.strip_typedefs()
        except gdb.error:
            return None
        return t.code == gdb.TYPE_CODE_PTR

    def enum_value(name):
        try:
            return int(gdb.parse_and_eval("(int)%s" % name))
        except gdb.error:
            return NO

    def static_symbol(name):
        return gdb.lookup_static_symbol(name) is not None or \
            gdb.lookup_global_symbol(name) is not None

    ts, interp, rt = "PyThreadState", "PyInterpreterState", "_PyRuntimeState"
    code, iframe, keys = "PyCodeObject", "struct _PyInterpreterFrame", "struct _dictkeysobject"
    cframe = "_PyCFrame"
    L = {"major": major, "minor": minor}

    # Models, from which members exist.
    if off(ts, "frame") is not None:
        L["frame_model"] = FRAMES_OBJECT
    elif off(cframe, "current_frame") is not None:
        L["frame_model"] = FRAMES_CFRAME
    elif off(ts, "current_frame") is not None:
        L["frame_model"] = FRAMES_CURRENT
    else:
        raise SystemExit("no frame chain found in PyThreadState")
    if off(code, "co_lnotab") is not None:
        L["linetable"] = LINES_LNOTAB
    elif off(code, "co_code_adaptive") is None:
        L["linetable"] = LINES_310
    else:
        L["linetable"] = LINES_311
    L["dict_model"] = DICT_36 if off(keys, "dk_size") is not None else DICT_311
    if has_type("PyManagedDictPointer"):
        L["instdict_model"] = INSTDICT_313
    elif has_type("PyDictOrValues"):
        L["instdict_model"] = INSTDICT_312
    elif has_type("PyDictValues"):
        L["instdict_model"] = INSTDICT_311
    else:
        L["instdict_model"] = INSTDICT_OFFSET

    # _PyRuntimeState; 3.6 has none and starts at the static interp_head instead.
    if has_type(rt):
        L["runtime_interpreters_head"] = off(rt, "interpreters.head")
        gil_is_struct = member_is_pointer(rt, "ceval.gil") is False
        L["runtime_gil"] = off(rt, "ceval.gil") if gil_is_struct else NO
    else:
        if not static_symbol("interp_head"):
            raise SystemExit("neither _PyRuntimeState nor interp_head in the DWARF")
        L["runtime_interpreters_head"] = 0
        L["runtime_gil"] = NO

    L["interp_next"] = first(interp, "next")
    L["interp_threads_head"] = first(interp, "threads.head", "tstate_head")
    L["interp_modules"] = first(interp, "imports.modules", "modules")
    L["interp_gil_ptr"] = off(interp, "ceval.gil") if member_is_pointer(interp, "ceval.gil") else NO

    gil = "struct _gil_runtime_state"
    L["gil_last_holder"] = first(gil, "last_holder")
    L["gil_locked"] = first(gil, "locked")
    L["gil_size"] = size(gil)

    L["ts_next"] = first(ts, "next")
    L["ts_interp"] = first(ts, "interp")
    objframes = L["frame_model"] == FRAMES_OBJECT
    L["ts_frame"] = off(ts, "frame") if objframes else NO
    # 3.10 has a tstate->cframe too, but without current_frame: not a frame chain.
    L["ts_cframe"] = off(ts, "cframe") if L["frame_model"] == FRAMES_CFRAME else NO
    L["cframe_current_frame"] = first(cframe, "current_frame")
    L["ts_root_cframe"] = off(ts, "root_cframe") if L["frame_model"] == FRAMES_CFRAME else NO
    L["ts_current_frame"] = first(ts, "current_frame")
    L["ts_thread_id"] = first(ts, "thread_id")
    L["ts_native_thread_id"] = first(ts, "native_thread_id")

    # 3.11+ still has a PyFrameObject, but it is no longer the chain we walk.
    fo = "struct _frame"
    for name, member in (("fo_back", "f_back"), ("fo_code", "f_code"), ("fo_lasti", "f_lasti"),
                         ("fo_localsplus", "f_localsplus")):
        L[name] = first(fo, member) if objframes else NO

    L["if_previous"] = first(iframe, "previous")
    L["if_code"] = first(iframe, "f_executable", "f_code")
    L["if_instr"] = first(iframe, "instr_ptr", "prev_instr")
    L["if_localsplus"] = first(iframe, "localsplus")
    L["if_owner"] = first(iframe, "owner")
    L["if_is_entry"] = first(iframe, "is_entry")
    L["if_size"] = L["if_localsplus"]
    L["owner_cstack"] = enum_value("FRAME_OWNED_BY_CSTACK")
    L["owner_generator"] = enum_value("FRAME_OWNED_BY_GENERATOR")

    for m in ("co_argcount", "co_nlocals", "co_flags", "co_firstlineno", "co_filename", "co_name",
              "co_qualname"):
        L[m] = first(code, m)
    L["co_linetable"] = first(code, "co_linetable", "co_lnotab")
    for m in ("co_varnames", "co_cellvars", "co_freevars", "co_localsplusnames",
              "co_localspluskinds", "co_nlocalsplus", "co_code_adaptive"):
        L[m] = first(code, m)
    # 3.11+: the fixed part ends where the bytecode starts.
    L["co_size"] = L["co_code_adaptive"] if L["co_code_adaptive"] != NO else size(code)

    L["ob_type"] = first("PyObject", "ob_type")
    L["var_size"] = first("PyVarObject", "ob_size")
    for m in ("tp_name", "tp_basicsize", "tp_dictoffset", "tp_flags"):
        L[m] = first("PyTypeObject", m)
    L["ht_cached_keys"] = first("PyHeapTypeObject", "ht_cached_keys")
    L["tuple_item"] = first("PyTupleObject", "ob_item")
    L["list_item"] = first("PyListObject", "ob_item")
    L["bytes_sval"] = first("PyBytesObject", "ob_sval")
    L["float_fval"] = first("PyFloatObject", "ob_fval")
    L["long_digit"] = first("struct _longobject", "long_value.ob_digit", "ob_digit")
    L["long_lv_tag"] = first("struct _longobject", "long_value.lv_tag")
    L["module_dict"] = first("PyModuleObject", "md_dict")

    L["unicode_length"] = first("PyASCIIObject", "length")
    L["unicode_state"] = first("PyASCIIObject", "state")
    L["unicode_ascii_size"] = size("PyASCIIObject")
    L["unicode_compact_size"] = size("PyCompactUnicodeObject")

    L["dict_used"] = first("PyDictObject", "ma_used")
    L["dict_keys"] = first("PyDictObject", "ma_keys")
    L["dict_values"] = first("PyDictObject", "ma_values")
    for m in ("dk_size", "dk_log2_size", "dk_log2_index_bytes", "dk_kind", "dk_nentries",
              "dk_indices"):
        L[m] = first(keys, m)
    # <= 3.10: ma_values points straight at the array of values.
    L["dict_values_values"] = first("struct _dictvalues", "values") if has_type(
        "struct _dictvalues") else 0

    missing = [k for k, v in L.items() if v is None]
    if missing:
        raise SystemExit("no value for " + ", ".join(missing))
    return L


def version_from_path(path):
    m = re.search(r"python(\d)\.(\d+)", os.path.basename(path))
    return (int(m.group(1)), int(m.group(2))) if m else None


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit("usage: layout_from_dwarf.py LIBPYTHON [3.X]")
    lib = sys.argv[1]
    ver = sys.argv[2] if len(sys.argv) == 3 else None
    if ver:
        major, minor = (int(x) for x in ver.split(".")[:2])
    else:
        mm = version_from_path(lib)
        if not mm:
            sys.exit("cannot tell the version from %s: pass it as 3.X" % lib)
        major, minor = mm
    env = dict(os.environ, FP_LAYOUT_VERSION="%d.%d" % (major, minor))
    r = subprocess.run(["gdb", "-nx", "-batch", "-x", os.path.abspath(__file__), lib],
                       env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out = [line for line in r.stdout.splitlines() if line.startswith("{")]
    if r.returncode != 0 or not out:
        sys.exit("gdb failed on %s:\n%s%s" % (lib, r.stdout, r.stderr))
    print(json.dumps(json.loads(out[-1]), indent=1))


def in_gdb():
    try:
        import gdb  # noqa: F401
    except ImportError:
        return False
    return True


if __name__ == "__main__":
    if in_gdb():
        major, minor = (int(x) for x in os.environ["FP_LAYOUT_VERSION"].split("."))
        print(json.dumps(compute(major, minor)))
    else:
        main()
