"""Checks a layout (the JSON of `fpd --layout-pid` on this very process) from
inside the interpreter: each offset is followed with ctypes from a live
object and the result compared with what Python itself says (id(), len(),
sys._getframe(), threading.get_ident(), the C API).  This needs no DWARF, so
it also covers stripped builds such as Debian's /usr/bin/python3.X.

Protocol: prints "ready", reads one line of JSON (the layout), prints one line
of JSON {"checked": [fields], "failed": ["field: why"]} and exits.
Python 3.6 syntax.
"""

import ctypes
import json
import sys
import threading

VER = sys.version_info[:2]
api = ctypes.pythonapi
for _name, _args in (("PyThreadState_Get", []), ("PyInterpreterState_Head", []),
                     ("PyInterpreterState_Next", [ctypes.c_void_p]),
                     ("PyInterpreterState_ThreadHead", [ctypes.c_void_p]),
                     ("PyThreadState_Next", [ctypes.c_void_p])):
    getattr(api, _name).restype = ctypes.c_void_p
    getattr(api, _name).argtypes = _args

# include/fp/layout.h
FRAMES_OBJECT, FRAMES_CFRAME, FRAMES_CURRENT = 1, 2, 3
DICT_36, DICT_311 = 1, 2
INSTDICT_OFFSET, INSTDICT_311, INSTDICT_312, INSTDICT_313 = 1, 2, 3, 4

L = {}
checked, failed = [], []


def ptr(addr):
    return ctypes.c_void_p.from_address(addr).value or 0


def obj(addr):
    return ctypes.cast(addr, ctypes.py_object).value


def i32(addr):
    return ctypes.c_int32.from_address(addr).value


def u8(addr):
    return ctypes.c_uint8.from_address(addr).value


def ssize(addr):
    return ctypes.c_ssize_t.from_address(addr).value


def ulong(addr):
    return ctypes.c_ulong.from_address(addr).value


def check(fields, got, want):
    """fields: the member checked, or a tuple of those the value depends on."""
    fields = fields if isinstance(fields, tuple) else (fields,)
    checked.extend(fields)
    if got != want:
        failed.append("%s (%s): got %r, expected %r" % (
            "+".join(fields), ", ".join(str(L.get(f)) for f in fields), got, want))


def has(field):
    return L[field] >= 0


def check_objects():
    t = (object(), 2)
    check("ob_type", ptr(id(t) + L["ob_type"]), id(tuple))
    check("var_size", ssize(id(t) + L["var_size"]), 2)
    check("tuple_item", [ptr(id(t) + L["tuple_item"] + 8 * i) for i in (0, 1)], [id(x) for x in t])
    lst = [t, 5]
    check("list_item", ptr(ptr(id(lst) + L["list_item"]) + 8), id(5))
    check("tp_name", ctypes.string_at(ptr(id(int) + L["tp_name"])), b"int")
    for tp in (int, tuple, type(check.__code__), Klass):
        check("tp_basicsize", ssize(id(tp) + L["tp_basicsize"]), tp.__basicsize__)
        check("tp_flags", ulong(id(tp) + L["tp_flags"]), tp.__flags__)
    check("tp_dictoffset", ssize(id(Klass) + L["tp_dictoffset"]), Klass.__dictoffset__)
    b = b"".join([b"by", b"tes"])
    check("bytes_sval", ctypes.string_at(id(b) + L["bytes_sval"], 6), b"bytes\0")
    f = float("2.5")
    check("float_fval", ctypes.c_double.from_address(id(f) + L["float_fval"]).value, 2.5)
    n, neg = int("12345"), int("-7")
    check("long_digit", ctypes.c_uint32.from_address(id(n) + L["long_digit"]).value, 12345)
    if has("long_lv_tag"):
        # one digit, sign 0 (positive) or 2 (negative)
        check("long_lv_tag", [ulong(id(x) + L["long_lv_tag"]) for x in (n, neg)], [8, 10])
    else:
        check("var_size", [ssize(id(x) + L["var_size"]) for x in (n, neg)], [1, -1])
    check("module_dict", ptr(id(json) + L["module_dict"]), id(json.__dict__))


def check_unicode():
    s = "".join(["ab", "c"])
    u = "".join(["\xe9", "x"])
    check("unicode_length", [ssize(id(x) + L["unicode_length"]) for x in (s, u)], [3, 2])
    # interned:2, kind:3, compact:1, ascii:1 (3.6-3.13)
    state = [ctypes.c_uint32.from_address(id(x) + L["unicode_state"]).value for x in (s, u)]
    check("unicode_state", [((st >> 2) & 7, (st >> 5) & 1, (st >> 6) & 1) for st in state],
          [(1, 1, 1), (1, 1, 0)])
    check("unicode_ascii_size", ctypes.string_at(id(s) + L["unicode_ascii_size"], 4), b"abc\0")
    check("unicode_compact_size", ctypes.string_at(id(u) + L["unicode_compact_size"], 3),
          b"\xe9x\0")


def check_dict():
    k1, k2, k3 = "".join(["k", "1"]), "k2", "k3"
    d = {k1: t1, k2: 2, k3: 3}
    check("dict_used", ssize(id(d) + L["dict_used"]), 3)
    check("dict_values", ptr(id(d) + L["dict_values"]), 0)
    keys = ptr(id(d) + L["dict_keys"])
    check(("dict_keys", "dk_nentries"), ssize(keys + L["dk_nentries"]), 3)
    if L["dict_model"] == DICT_36:
        check("dk_size", ssize(keys + L["dk_size"]), 8)
        entries, width = keys + L["dk_indices"] + 8, 24
        entry_key = entries + 8
    else:
        check("dk_log2_size", u8(keys + L["dk_log2_size"]), 3)
        check("dk_log2_index_bytes", u8(keys + L["dk_log2_index_bytes"]), 3)
        check("dk_kind", u8(keys + L["dk_kind"]), 1)  # DICT_KEYS_UNICODE
        entries, width = keys + L["dk_indices"] + 8, 16
        entry_key = entries
    check(("dict_model", "dk_indices"), [ptr(entry_key + width * i) for i in range(3)],
          [id(k1), id(k2), id(k3)])
    check("dk_indices", ptr(entry_key + 8), id(t1))


t1 = object()


class Klass:
    def __init__(self):
        self.first = t1
        self.second = 2


def check_instance_dict():
    o = Klass()
    o2 = Klass()
    model = L["instdict_model"]
    keys = ptr(id(Klass) + L["ht_cached_keys"])
    check("ht_cached_keys", ssize(keys + L["dk_nentries"]), 2)
    vv = L["dict_values_values"]
    if model == INSTDICT_OFFSET:
        dptr = ptr(id(o) + Klass.__dictoffset__)
        check("instdict_model", dptr, id(o.__dict__))
        check("ht_cached_keys", ptr(dptr + L["dict_keys"]), keys)
        values = ptr(dptr + L["dict_values"])
    elif model == INSTDICT_311:
        check("instdict_model", ptr(id(o) - 24), 0)
        values = ptr(id(o) - 32)
    elif model == INSTDICT_312:
        tagged = ptr(id(o) - 24)
        check("instdict_model", tagged & 1, 1)
        values = tagged + 1
    else:
        check("instdict_model", ptr(id(o) - 24), 0)
        values = id(o) + Klass.__basicsize__
    check("dict_values_values", ptr(values + vv), id(t1))
    if model != INSTDICT_OFFSET:
        d = o2.__dict__
        check("instdict_model", ptr(id(o2) - 24), id(d))


def check_threads():
    ts = api.PyThreadState_Get()
    interp = api.PyInterpreterState_Head()
    if VER >= (3, 7):
        rt = ctypes.addressof(ctypes.c_char.in_dll(api, "_PyRuntime"))
        check("runtime_interpreters_head", ptr(rt + L["runtime_interpreters_head"]), interp)
    check("interp_next", ptr(interp + L["interp_next"]), api.PyInterpreterState_Next(interp) or 0)
    head = api.PyInterpreterState_ThreadHead(interp)
    check("interp_threads_head", ptr(interp + L["interp_threads_head"]), head)
    check("interp_modules", ptr(interp + L["interp_modules"]), id(sys.modules))
    check("ts_next", ptr(head + L["ts_next"]), api.PyThreadState_Next(head) or 0)
    check("ts_interp", ptr(ts + L["ts_interp"]), interp)
    check("ts_thread_id", ulong(ts + L["ts_thread_id"]), threading.get_ident())
    if has("ts_native_thread_id"):
        check("ts_native_thread_id", ulong(ts + L["ts_native_thread_id"]),
              threading.get_native_id())
    gil = None
    if has("runtime_gil"):
        gil = rt + L["runtime_gil"]
    elif has("interp_gil_ptr"):
        gil = ptr(interp + L["interp_gil_ptr"])
    if gil is not None:
        # we run Python, so we hold it
        base = ("runtime_gil",) if has("runtime_gil") else ("interp_gil_ptr",)
        check(base + ("gil_locked",), i32(gil + L["gil_locked"]), 1)
        check(base + ("gil_last_holder",), ptr(gil + L["gil_last_holder"]), ts)


def python_chain():
    f, out = sys._getframe(1), []
    while f:
        out.append(f)
        f = f.f_back
    return out


def check_frames(arg):
    """Called from inner(), which is called from outer(): reads the chain from here.

    The first read goes straight through ctypes: calling a Python helper such
    as ptr() would make the helper's frame the current one."""
    ts = api.PyThreadState_Get()
    chain = python_chain()  # [check_frames, inner, outer, main, <module>]
    model = L["frame_model"]
    if model == FRAMES_OBJECT:
        fr, addrs = ctypes.c_void_p.from_address(ts + L["ts_frame"]).value, []
        while fr:
            addrs.append(fr)
            fr = ptr(fr + L["fo_back"])
        check(("frame_model", "ts_frame", "fo_back"), addrs, [id(f) for f in chain])
        inner = addrs[1]
        check("fo_code", ptr(inner + L["fo_code"]), id(chain[1].f_code))
        lasti = i32(inner + L["fo_lasti"]) * (2 if L["linetable"] == 2 else 1)
        check("fo_lasti", lasti, chain[1].f_lasti)
        check("fo_localsplus", ptr(inner + L["fo_localsplus"]), id(arg))
        return
    if model == FRAMES_CFRAME:
        cframe = ctypes.c_void_p.from_address(ts + L["ts_cframe"]).value
        fr = ctypes.c_void_p.from_address(cframe + L["cframe_current_frame"]).value
        chain_fields = ("frame_model", "ts_cframe", "cframe_current_frame", "if_previous")
    else:
        fr = ctypes.c_void_p.from_address(ts + L["ts_current_frame"]).value
        chain_fields = ("frame_model", "ts_current_frame", "if_previous")
    frames, cstack = [], 0
    while fr:
        if has("owner_cstack") and u8(fr + L["if_owner"]) == L["owner_cstack"]:
            cstack += 1
        else:
            frames.append(fr)
        fr = ptr(fr + L["if_previous"])
    check(chain_fields + ("if_code",), [ptr(f + L["if_code"]) for f in frames],
          [id(f.f_code) for f in chain])
    inner, code = frames[1], chain[1].f_code
    check("if_instr", ptr(inner + L["if_instr"]) - (id(code) + L["co_code_adaptive"]),
          chain[1].f_lasti)
    check("if_localsplus", ptr(inner + L["if_localsplus"]), id(arg))
    check("if_owner", u8(inner + L["if_owner"]), 0)  # FRAME_OWNED_BY_THREAD
    if has("if_is_entry"):
        # only the frame that C code called (the module's) is an entry frame
        check("if_is_entry", [u8(f + L["if_is_entry"]) for f in frames],
              [0] * (len(frames) - 1) + [1])
    if has("owner_cstack"):
        check("owner_cstack", cstack >= 1, True)
    if has("ts_root_cframe"):
        # The cframes of nested eval loops lead back to the thread's root one
        # (_PyCFrame.previous follows current_frame in 3.11 and 3.12).
        c, last = cframe, None
        while c:
            last, c = c, ptr(c + L["cframe_current_frame"] + 8)
        check("ts_root_cframe", (cframe != ts + L["ts_root_cframe"], last),
              (True, ts + L["ts_root_cframe"]))
    if has("owner_generator"):
        check("owner_generator", next(generator_owner()), L["owner_generator"])


def generator_owner():
    """Yields the owner byte of the running frame: its own, a generator's."""
    ts = api.PyThreadState_Get()
    if L["frame_model"] == FRAMES_CFRAME:
        cframe = ctypes.c_void_p.from_address(ts + L["ts_cframe"]).value
        fr = ctypes.c_void_p.from_address(cframe + L["cframe_current_frame"]).value
    else:
        fr = ctypes.c_void_p.from_address(ts + L["ts_current_frame"]).value
    yield u8(fr + L["if_owner"])


def check_code():
    def sample(a, b, *c, **d):
        cell = a

        def closure():
            return cell
        return closure
    code = sample.__code__
    at = id(code)
    for name in ("co_filename", "co_name", "co_qualname"):
        if has(name):
            check(name, ptr(at + L[name]), id(getattr(code, name)))
    # 3.11 added co_positions() for its location table, 3.10 co_lines() for PEP 626
    kind = 3 if hasattr(code, "co_positions") else 2 if hasattr(code, "co_lines") else 1
    check("linetable", L["linetable"], kind)
    table = code.co_linetable if kind > 1 else code.co_lnotab
    check("co_linetable", ptr(at + L["co_linetable"]), id(table))
    check("co_flags", i32(at + L["co_flags"]), code.co_flags)
    for name in ("co_firstlineno", "co_argcount", "co_nlocals", "co_nlocalsplus"):
        if has(name):
            want = getattr(code, name) if name != "co_nlocalsplus" else \
                len(code.co_varnames) + len(code.co_cellvars) + len(code.co_freevars)
            check(name, i32(at + L[name]), want)
    for name in ("co_varnames", "co_cellvars", "co_freevars"):
        if has(name):
            check(name, ptr(at + L[name]), id(getattr(code, name)))
    if has("co_localsplusnames"):
        names = obj(ptr(at + L["co_localsplusnames"]))
        check("co_localsplusnames", sorted(names),
              sorted(set(code.co_varnames + code.co_cellvars + code.co_freevars)))
        check("co_localspluskinds", len(obj(ptr(at + L["co_localspluskinds"]))), len(names))
        check("co_code_adaptive", L["co_code_adaptive"], type(code).__basicsize__)
    check("co_size", L["co_size"], type(code).__basicsize__)


def inner(arg):
    check_frames(arg)


def outer():
    inner(object())


def main():
    print("ready", flush=True)
    L.update(json.loads(sys.stdin.readline()))
    helper_stop = threading.Event()
    helper = threading.Thread(target=helper_stop.wait)
    helper.start()
    for step in (check_objects, check_unicode, check_dict, check_instance_dict, check_threads,
                 check_code, outer):
        try:
            step()
        except Exception as e:  # a wrong offset can raise anywhere: report, go on
            failed.append("%s raised %r" % (step.__name__, e))
    helper_stop.set()
    helper.join()
    print(json.dumps({"checked": sorted(set(checked)), "failed": failed}), flush=True)


main()
