"""Checks of the helper's lazy loading (core.py's _fp_load with the manifest
tools/embed_py.py generates), run under every interpreter by checkrun.py:
each command, first in a namespace holding only core.py, loads what it
needs -- a name it reads from a file that was not loaded would show up as
a helper_error (NameError) instead of the command's own answer."""
import harness

# Arguments each command rejects at once (a bad one is enough: it must get
# past loading to reject it); console is left out: it would wait for input.
BAD_ARGS = {"getglobal": {"argv": ["__main__"]}, "vmtool": {"action": "nope"},
            "module": {"argv": []}, "reload": {"argv": ["__main__"]},
            "mem": {"argv": ["nope"]}, "watch": {"argv": ["__main__"]},
            "trace": {"argv": ["__main__"]}, "tt": {}, "stack_async": {}, "hello": {}}


def check_each_command_loads_alone(ns_unused):
    manifest = harness.load_agent(lazy=True)["_FP_COMMAND_FILES"]
    for cmd in sorted(manifest):
        if cmd == "console":
            continue
        ns = harness.load_agent(lazy=True)
        assert "core" not in ns["_LOADED"] and not ns["_LOADED"], ns["_LOADED"]
        events, last = harness.run(ns, cmd, BAD_ARGS.get(cmd, {}))
        assert last is not None, (cmd, events)
        if last[0] == "error":
            assert last[1]["code"] != "helper_error", (cmd, last)
        wanted = set([manifest[cmd]]) | set(ns["_FP_DEPS"].get(manifest[cmd], ()))
        assert wanted - set(["core"]) <= ns["_LOADED"], (cmd, ns["_LOADED"])


def check_only_needed_files_load(ns_unused):
    ns = harness.load_agent(lazy=True)
    harness.run(ns, "getglobal", {"argv": ["__main__", "harness"]})
    assert "tt" not in ns["_LOADED"] and "mem" not in ns["_LOADED"], ns["_LOADED"]
