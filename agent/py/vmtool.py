# vmtool -a getInstances -c "module class" [-e E] [-x N] [-n N] [-r] [-v]
# vmtool -a forceGc
import gc

# Objects type-checked per C call while scanning the heap: each chunk takes
# a few milliseconds, and between chunks the interpreter may hand the GIL to
# the application's threads (the scan loop is bytecode).
_VMTOOL_CHUNK = 65536


def _vmtool_class(req):
    """The class -c names: "module class" in one word, or -c module followed
    by the class as a positional word (the reference tool's spelling)."""
    spec = req.arg("class")
    argv = req.arg("argv", [])
    if type(spec) is not str or not spec.strip():
        raise CommandError("vmtool: getInstances needs -c \"module class\"", code="usage", exit=2)
    words = spec.split()
    if type(argv) is list and len(words) == 1 and len(argv) == 1 and type(argv[0]) is str:
        words.append(argv[0])
    elif argv:
        raise CommandError("vmtool: unexpected argument %s" % argv[0], code="usage", exit=2)
    if len(words) != 2:
        raise CommandError("vmtool: -c takes \"module class\" (two words), not \"%s\"" % spec,
                           code="usage", exit=2)
    return words[0], words[1]


def _vmtool_subclasses(cls):
    """cls and every class derived from it, as {id: class}."""
    out, todo = {}, [cls]
    while todo:
        c = todo.pop()
        if id(c) in out:
            continue
        out[id(c)] = c
        try:
            todo.extend(type.__subclasses__(c))
        except TypeError:
            pass
    return out


def find_instances(cls, limit, cancelled=None):
    """(first `limit` live instances of cls or its subclasses (all for
    limit < 0), how many there are).  Objects the garbage collector does not
    track are not seen (instances of a class with no __dict__ and only
    atomic slots)."""
    import itertools
    wanted = _vmtool_subclasses(cls)
    is_wanted = wanted.__contains__
    objs = gc.get_objects()
    found, total = [], 0
    try:
        for start in range(0, len(objs), _VMTOOL_CHUNK):
            chunk = objs[start:start + _VMTOOL_CHUNK]
            hits = list(itertools.compress(chunk, map(is_wanted, map(id, map(type, chunk)))))
            total += len(hits)
            if limit < 0 or len(found) < limit:
                found.extend(hits if limit < 0 else hits[:limit - len(found)])
            if cancelled is not None and cancelled():
                raise CommandError("vmtool: cancelled", code="cancelled")
    finally:
        del objs
    return found, total


@command("vmtool")
def _vmtool(req):
    action = req.arg("action")
    if action == "forceGc":
        for key in ("class", "expr", "limits", "expand", "raw", "verbose"):
            if req.arg(key) is not None:
                raise CommandError("vmtool: -a forceGc takes no other option", code="usage",
                                   exit=2)
        before = len(gc.garbage)
        n = gc.collect()
        req.emit("gc", collected=n, uncollectable=max(0, len(gc.garbage) - before))
        return
    if action != "getInstances":
        raise CommandError("vmtool: -a takes getInstances or forceGc, not %s" % action,
                           code="usage", exit=2)
    module, cls_path = _vmtool_class(req)
    opts = render_options(req)
    limit = req.arg("limits", 10)
    if type(limit) is not int or limit == 0 or limit < -1:
        raise CommandError("vmtool: -n takes a positive number, or -1 for all", code="usage",
                           exit=2)
    cls = locate_class(locate_module(module, "vmtool"), cls_path, "vmtool")
    instances, total = find_instances(cls, limit, req.cancelled)
    expr = req.arg("expr")
    value = instances
    if expr is not None:
        value = eval_user_expr(req, expr, {"instances": instances})
    fields = render_fields(req, value, "instances" if expr is None else expr, opts)
    fields.update({"class": class_label(cls), "total": total, "count": len(instances)})
    req.emit("instances", **fields)
