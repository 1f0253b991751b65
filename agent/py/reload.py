# reload module [class] method [-v]: recompile a function from its source
# file as it is on disk now and put the new code into the live function
# object (func.__code__ = new), so every reference to it (the class, other
# modules that imported it, callbacks, bound methods) runs the new code from
# its next call on; calls already running finish with the old code.
#
# The whole file is compiled (never executed): the new code object then has
# the right file name, line numbers and enclosing scopes (a method using
# super() gets its __class__ cell, exactly as the running one has).  The def
# is found in the file's AST by the function's qualified name, so nothing of
# the application is imported or run.  Limits, each refused with one line:
# a function defined inside another function (qualified name with
# <locals>), new code that needs variables of enclosing scopes the running
# function does not have, and new parameters whose default values are not
# literals (a default is evaluated when the def runs, which reload does not
# do; literal defaults are taken from the new source).
import ast
import os
import sys
import types

_RELOAD_ARGFLAGS = 0x04 | 0x08  # CO_VARARGS | CO_VARKEYWORDS
_RELOAD_LITERAL_TYPES = (int, float, complex, str, bytes, bool, type(None))


def _reload_source_file(func, cmd, label):
    filename = func.__code__.co_filename
    if not filename or filename.startswith("<"):
        raise CommandError("%s: %s was not compiled from a file (%s); there is no source to "
                           "reload it from" % (cmd, label, filename), code="no_source")
    if not os.path.isabs(filename):
        mod = sys.modules.get(getattr(func, "__module__", None) or "")
        mfile = (namespace_of(mod) or {}).get("__file__") if mod is not None else None
        if type(mfile) is str and os.path.basename(mfile) == os.path.basename(filename):
            filename = mfile
        filename = os.path.abspath(filename)
    return filename


def _reload_read(filename, cmd):
    """(source bytes, module AST, module code) of filename as it is now."""
    try:
        with open(filename, "rb") as f:
            source = f.read()
    except OSError as e:
        raise CommandError("%s: cannot read %s: %s" % (cmd, filename, e.strerror or e),
                           code="no_source")
    try:
        tree = ast.parse(source, filename)
        code = compile(source, filename, "exec", dont_inherit=True)
    except (SyntaxError, ValueError) as e:
        where = "%s:%s" % (filename, getattr(e, "lineno", "?"))
        raise CommandError("%s: %s: %s: %s; nothing was changed" % (
            cmd, where, type(e).__name__, getattr(e, "msg", None) or e), code="syntax_error")
    return source, tree, code


def _reload_scope(body, out):
    """The defs and classes of a scope, also those under if/try/with/for."""
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out.append(node)
            continue
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.stmt):
                _reload_scope([child], out)
            elif not isinstance(child, ast.expr) and isinstance(getattr(child, "body", None),
                                                                list):
                _reload_scope(child.body, out)  # except handlers, match cases
    return out


def _reload_accessor_role(node):
    """The property role a def's decorators give it, or None."""
    for d in node.decorator_list:
        if isinstance(d, ast.Name) and d.id == "property":
            return "fget"
        if isinstance(d, ast.Attribute) and d.attr in ("getter", "setter", "deleter"):
            return {"getter": "fget", "setter": "fset", "deleter": "fdel"}[d.attr]
    return None


def _reload_find_def(tree, qualname, role, old_first, cmd, filename):
    """The def node of qualname (e.g. "A.B.method") in the file's AST."""
    parts = qualname.split(".")
    body, where = tree.body, filename
    for part in parts[:-1]:
        classes = [n for n in _reload_scope(body, []) if isinstance(n, ast.ClassDef) and
                   n.name == part]
        if not classes:
            raise CommandError("%s: class %s is no longer defined in %s; nothing was changed"
                               % (cmd, part, where), code="not_found")
        body, where = classes[-1].body, "class %s of %s" % (part, filename)
    name = parts[-1]
    defs = [n for n in _reload_scope(body, []) if
            isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == name]
    if role != "function":
        defs = [n for n in defs if _reload_accessor_role(n) == role]
    if not defs:
        raise CommandError("%s: %s is no longer defined in %s; nothing was changed" % (
            cmd, name, where), code="not_found")
    for n in defs:
        if old_first in _reload_lines(n):
            return n, len(defs)
    return defs[-1], len(defs)


def _reload_lines(node):
    """The lines a def's code may report as its first one: the def line and
    its decorators' (the AST says one or the other across versions)."""
    return set([node.lineno] + [d.lineno for d in node.decorator_list])


def _reload_find_code(code, name, lines):
    """The code object compiled from the def named name at one of lines."""
    todo = [code]
    while todo:
        c = todo.pop()
        for k in c.co_consts:
            if type(k) is types.CodeType:
                if k.co_name == name and k.co_firstlineno in lines:
                    return k
                todo.append(k)
    return None


def _reload_key(code):
    """What a code object does, line numbers left out."""
    consts = tuple(_reload_key(c) if type(c) is types.CodeType else (type(c).__name__, repr(c))
                   for c in code.co_consts)
    return (code.co_code, consts, code.co_names, code.co_varnames, code.co_freevars,
            code.co_cellvars, code.co_flags, code.co_argcount, code.co_kwonlyargcount,
            getattr(code, "co_posonlyargcount", 0))


def _reload_lines_of(code):
    lnotab = getattr(code, "co_linetable", None)
    return (code.co_firstlineno, lnotab if lnotab is not None else code.co_lnotab)


def _reload_signature(code):
    n = code.co_argcount + code.co_kwonlyargcount
    n += bool(code.co_flags & 0x04) + bool(code.co_flags & 0x08)
    return (code.co_argcount, getattr(code, "co_posonlyargcount", 0), code.co_kwonlyargcount,
            code.co_varnames[:n], code.co_flags & _RELOAD_ARGFLAGS)


def _reload_is_literal(v, depth=0):
    t = type(v)
    if t in _RELOAD_LITERAL_TYPES:
        return True
    if depth > 8:
        return False
    if t in (tuple, list, set, frozenset):
        return all(_reload_is_literal(x, depth + 1) for x in v)
    if t is dict:
        return all(_reload_is_literal(k, depth + 1) and _reload_is_literal(x, depth + 1)
                   for k, x in v.items())
    return False


def _reload_same_value(old, new):
    return type(old) is type(new) and _reload_is_literal(old) and old == new


def _reload_defaults(func, node, old_code, new_code, cmd, label):
    """(__defaults__, __kwdefaults__, note) for the new code: literal
    defaults from the new source (keeping the running objects when equal),
    else the running ones when the parameters did not change."""
    a = node.args
    old_def, old_kw = func.__defaults__, func.__kwdefaults__
    try:
        new_def = tuple(ast.literal_eval(d) for d in a.defaults)
        new_kw = dict((arg.arg, ast.literal_eval(d)) for arg, d in zip(a.kwonlyargs, a.kw_defaults)
                      if d is not None)
    except Exception:
        same = _reload_signature(old_code) == _reload_signature(new_code)
        if same and len(a.defaults) == len(old_def or ()) and \
                set(arg.arg for arg, d in zip(a.kwonlyargs, a.kw_defaults) if d is not None) == \
                set(old_kw or ()):
            return old_def, old_kw, "default values kept from the running function (not " \
                                    "literals, so not re-evaluated)"
        raise CommandError("%s: the parameters of %s changed and their default values are not "
                           "all literals, which reload cannot evaluate; restart the process to "
                           "load this change" % (cmd, label), code="unsupported")
    olds = tuple(old_def or ())
    if len(olds) == len(new_def) and all(_reload_same_value(o, n) for o, n in zip(olds, new_def)):
        new_def = old_def
    else:
        new_def = new_def or None
    oldk = dict(old_kw or {})
    if set(oldk) == set(new_kw) and all(_reload_same_value(oldk[k], new_kw[k]) for k in new_kw):
        new_kw = old_kw
    else:
        new_kw = new_kw or None
    changed = new_def is not old_def or new_kw is not old_kw
    return new_def, new_kw, "default values updated" if changed else None


def _reload_plan(role, func, label, cmd, files):
    """What reloading one function changes: a dict, or CommandError."""
    old = func.__code__
    qualname = getattr(old, "co_qualname", None) or func.__qualname__
    if "<locals>" in qualname:
        raise CommandError("%s: %s is defined inside another function (%s); it is created anew "
                           "at each call of that function, so reload the enclosing function "
                           "instead" % (cmd, label, qualname), code="unsupported")
    filename = _reload_source_file(func, cmd, label)
    if filename not in files:
        files[filename] = _reload_read(filename, cmd)
    source, tree, module_code = files[filename]
    node, ndefs = _reload_find_def(tree, qualname, role, old.co_firstlineno, cmd, filename)
    lines = _reload_lines(node)
    new = _reload_find_code(module_code, node.name, lines)
    if new is None:
        raise CommandError("%s: compiling %s gave no code for %s at line %d" % (
            cmd, filename, qualname, node.lineno), code="helper_error")
    if new.co_freevars != old.co_freevars:
        raise CommandError("%s: the new code of %s uses variables of enclosing scopes (%s) that "
                           "the running function does not have (%s); restart the process to "
                           "load this change" % (
                               cmd, label, ", ".join(new.co_freevars) or "none",
                               ", ".join(old.co_freevars) or "none"), code="unsupported")
    new_def, new_kw, note = _reload_defaults(func, node, old, new, cmd, label)
    first = min(lines)
    last = getattr(node, "end_lineno", None)
    decoded = _reload_decode(source)
    text = decoded.splitlines()
    if last is None:
        last = _reload_block_end(decoded, first)
    notes = [note] if note else []
    if ndefs > 1:
        notes.append("%d definitions of %s in %s; took the one at line %d" % (
            ndefs, node.name, filename, node.lineno))
    same_code = _reload_key(old) == _reload_key(new)
    if same_code and new_def is func.__defaults__ and new_kw is func.__kwdefaults__:
        if _reload_lines_of(old) == _reload_lines_of(new):
            return None
        notes.append("only line numbers changed")
    return {"role": role, "func": func, "code": new, "defaults": new_def, "kwdefaults": new_kw,
            "file": filename, "first": first, "last": last, "old_first": old.co_firstlineno,
            "notes": notes, "source": "\n".join(text[first - 1:last]),
            "added": sorted(set(new.co_names) - set(old.co_names)),
            "removed": sorted(set(old.co_names) - set(new.co_names))}


def _reload_block_end(text, first):
    """The last line of the def whose first line (decorators included) is
    first, from the tokens (3.6 and 3.7 have no end_lineno in the AST)."""
    import io
    import tokenize
    skip = (tokenize.NL, tokenize.COMMENT)
    level, started, seen_def, header_done, last = 0, False, False, False, first
    for ttype, tstr, start, end, _ in tokenize.generate_tokens(io.StringIO(text).readline):
        if start[0] < first:
            continue
        if ttype in (tokenize.INDENT, tokenize.DEDENT):
            if not started:
                continue  # the indentation change that leads to the def's line
            level += 1 if ttype == tokenize.INDENT else -1
            if level <= 0:
                return last
            continue
        if ttype == tokenize.ENDMARKER:
            return last
        if ttype in skip:
            continue
        started = True
        if header_done and level == 0:
            return last  # a one-line def: the next statement follows
        if ttype == tokenize.NAME and tstr == "def" and level == 0:
            seen_def = True
        if ttype == tokenize.NEWLINE:
            header_done = seen_def and level == 0
            continue
        last = end[0]
    return last


def _reload_decode(source):
    import importlib.util
    try:
        return importlib.util.decode_source(source)
    except (SyntaxError, UnicodeDecodeError, LookupError):
        return source.decode("utf-8", "replace")


@command("reload")
def _reload(req):
    module, cls, name = locate_args(req, "module [class] method")
    funcs, label, owner = locate_functions(module, cls, name, "reload")
    files = {}
    plans = []
    for role, func in funcs:
        plan = _reload_plan(role, func, label, "reload", files)
        if plan is not None:
            plans.append(plan)
    if not plans:
        raise CommandError("reload: %s in %s compiles to the code already running; nothing to "
                           "reload (save the file first?)" % (
                               label, _reload_source_file(funcs[0][1], "reload", label)),
                           code="unchanged")
    # Every check passed: now change the functions, none of which can fail
    # halfway (the free variables match).
    for p in plans:
        f = p["func"]
        f.__code__ = p["code"]
        f.__defaults__ = p["defaults"]
        f.__kwdefaults__ = p["kwdefaults"]
    import linecache
    for filename in files:
        linecache.checkcache(filename)
    verbose = req.arg("verbose") is True
    for p in plans:
        ev = {"target": label, "role": p["role"], "file": wire_text(p["file"]),
              "first_line": p["first"],
              "last_line": p["last"], "old_first_line": p["old_first"], "notes": p["notes"],
              "names_added": p["added"], "names_removed": p["removed"]}
        if verbose:
            ev["source"] = wire_text(p["source"])
        req.emit("reload", **ev)
