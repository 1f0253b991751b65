# getglobal module [class] field [-e E] [-x N] [-r] [-v]: the value of a
# module global or class attribute (locate.py finds it, render.py shows it).


@command("getglobal")
def _getglobal(req):
    module, cls, field = locate_args(req, "module [class] field")
    opts = render_options(req)
    value, label = locate_field(module, cls, field, req.cmd)
    expr = req.arg("expr")
    if expr is not None:
        value = eval_user_expr(req, expr, {"target": value})
    fields = render_fields(req, value, "target" if expr is None else expr, opts)
    fields["field"] = label
    req.emit("value", **fields)
