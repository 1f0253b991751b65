"""torch profile / torch memory end to end (SPEC §3 torch, issue 6): fpd
injects the helper into torch_target.py (a small nn.Module called in a loop
by a thread, and a coroutine on an event loop) and fpctl writes the Chrome
trace it streams back, relative to fpctl's working directory.

Needs an interpreter with torch.  In order: build/torch-venv (made once from
pyenv's 3.12.1 with pip and PyTorch's CPU wheels; a few minutes and ~700 MB
the first time), else Debian's python3-torch under /usr/bin/python3, else
the module is skipped saying so.  No CUDA here: the memory commands are
checked for their clear no-CUDA line; a process without torch must get one
line and must not have torch imported into it."""

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

import fpdtest

REPO = Path(__file__).resolve().parents[2]
VENV = REPO / "build" / "torch-venv"
VENV_BASE = "3.12.1"
CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def has_torch(python):
    try:
        return subprocess.run([str(python), "-c", "import torch"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, timeout=120).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def make_venv():
    """build/torch-venv with a CPU torch from pip; the reason it failed, or None."""
    base = Path(fpdtest.pyenv_root() or "/nonexistent") / "versions" / VENV_BASE / "bin" / "python3"
    if not base.exists():
        return "%s is not installed" % base
    try:
        subprocess.run([str(base), "-m", "venv", str(VENV)], check=True, capture_output=True,
                       timeout=300)
        r = subprocess.run([str(VENV / "bin" / "pip"), "install", "--retries", "1", "--timeout",
                            "20", "torch", "--index-url", CPU_INDEX], capture_output=True,
                           timeout=1800)
    except (OSError, subprocess.SubprocessError) as e:
        return str(e)
    if r.returncode != 0:
        return "pip install torch failed: %s" % r.stderr.decode(errors="replace")[-300:].strip()
    return None


@pytest.fixture(scope="module")
def torch_python():
    venv_python = VENV / "bin" / "python"
    if venv_python.exists() and has_torch(venv_python):
        return str(venv_python)
    if has_torch("/usr/bin/python3"):
        return "/usr/bin/python3"
    why = make_venv()
    if why is None and has_torch(venv_python):
        return str(venv_python)
    pytest.skip("no interpreter with torch: %s (install Debian's python3-torch, or let "
                "pip reach %s)" % (why or "torch does not import", CPU_INDEX))


@pytest.fixture(scope="module")
def target(torch_python, workdir):
    t = fpdtest.Target(torch_python, "torch_target.py", logdir=workdir).ready(timeout=120)
    yield t
    t.kill()


@pytest.fixture
def outdir(tmp_path):
    tmp_path.chmod(0o755)
    return tmp_path


def torch_cmd(fpctl, pid, *args, **kw):
    return fpctl("attach", pid, "torch", *args, **kw)


def value(fpctl, pid, module, name, expr):
    r = fpctl("attach", pid, "getglobal", module, name, "-e", expr)
    m = re.search(r"^VALUE: (.*)$", r.out, re.M | re.S)
    assert m, r.out
    return m.group(1).strip()


def trace_names(path):
    with open(str(path)) as f:
        trace = json.load(f)
    events = trace["traceEvents"] if isinstance(trace, dict) else trace
    return set(e.get("name", "") for e in events)


def assert_restored(fpctl, target):
    """The next profile still works (the last one left nothing installed),
    and the application went on."""
    before = int(value(fpctl, target.pid, "__main__", "COUNTS", "target['calls']"))
    fpdtest.wait_for(lambda: int(value(fpctl, target.pid, "__main__", "COUNTS",
                                       "target['calls']")) > before, 30, "worker calls")
    target.ping()


def test_profile_writes_chrome_trace(fpctl, target, outdir):
    r = torch_cmd(fpctl, target.pid, "profile", "__main__", "infer", "-f", "infer.json",
                  cwd=str(outdir))
    assert "waiting for the next call of __main__.infer" in r.err
    assert re.search(r"^Wrote the torch profile of __main__\.infer \(one call, [0-9.]+ ms\) "
                     r"to infer\.json \(\d+ bytes\)$", r.out, re.M), r.out
    names = trace_names(outdir / "infer.json")
    assert any(n.startswith("aten::") for n in names), sorted(names)[:50]
    assert "aten::linear" in names or "aten::addmm" in names, sorted(names)[:50]
    assert_restored(fpctl, target)


def test_profile_default_file_method_and_nested(fpctl, target, outdir):
    r = torch_cmd(fpctl, target.pid, "profile", "__main__", "Model", "forward", cwd=str(outdir))
    assert "to trace.json" in r.out
    assert any(n.startswith("aten::relu") for n in trace_names(outdir / "trace.json"))
    r = torch_cmd(fpctl, target.pid, "profile", "__main__", "ainfer", "-f", "a.json",
                  cwd=str(outdir))
    assert "__main__.ainfer" in r.out
    assert any(n.startswith("aten::") for n in trace_names(outdir / "a.json"))
    assert_restored(fpctl, target)


def test_cancel_before_the_call(fpctl, target, outdir):
    r = fpctl("--timeout", "1", "attach", target.pid, "torch", "profile", "__main__", "never",
              "-f", "n.json", check=False, cwd=str(outdir))
    assert r.rc == 1, r
    assert "stopped before the call ended; nothing written" in r.err, r.err
    assert list(outdir.iterdir()) == []
    assert value(fpctl, target.pid, "__main__", "never",
                 "target.__code__ is target.__globals__['NEVER_CODE']") == "True"
    assert_restored(fpctl, target)


def test_memory_without_cuda(fpctl, target, outdir):
    for args in (["memory", "-s"], ["memory", "-r", "__main__", "infer"],
                 ["memory", "-s", "-f", "m.pickle"]):
        r = torch_cmd(fpctl, target.pid, *args, check=False, cwd=str(outdir))
        assert r.rc == 1, r
        assert r.err.strip().count("\n") == 0, r.err
        assert "CUDA is not available in process" in r.err, r.err
    assert list(outdir.iterdir()) == []
    assert_restored(fpctl, target)


def test_bad_input(fpctl, target, outdir):
    cases = [
        (["profile", "__main__", "infer", "-f", "x.txt"], 2, "give a path ending in .json"),
        (["memory", "-s", "-f", "x.json"], 2, "give a path ending in .pickle"),
        (["profile", "__main__", "infer", "-f", "/nonexistent/dir/t.json"], 1,
         "cannot write /nonexistent/dir/t.json"),
        (["profile", "__main__", "nosuch"], 1, "nosuch"),
        (["profile", "__main__", "Model", "nosuch"], 1, "nosuch"),
        (["profile", "__main__"], 2, "missing arguments"),
        (["memory"], 2, "either -s"),
        (["memory", "-s", "__main__", "infer"], 2, "takes no module"),
        (["memory", "-s", "-r", "__main__", "infer"], 2, "either -s"),
        (["profile", "__main__", "infer", "-s"], 2, "belong to torch memory"),
        (["bogus"], 2, "unknown subcommand"),
    ]
    for args, rc, text in cases:
        r = torch_cmd(fpctl, target.pid, *args, check=False, cwd=str(outdir))
        assert r.rc == rc, (args, r)
        assert text in r.err, (args, r.err)
        assert len(r.err.strip().splitlines()) <= 2, (args, r.err)  # the line (+ help hint)
    assert list(outdir.iterdir()) == [], "a failed command left a file"
    assert_restored(fpctl, target)


def test_process_without_torch(fpctl, idle, outdir):
    for args in (["profile", "__main__", "x"], ["memory", "-s"],
                 ["memory", "-r", "__main__", "x"]):
        r = torch_cmd(fpctl, idle.pid, *args, check=False, cwd=str(outdir))
        assert r.rc == 1, r
        assert r.err.strip() == ("fpctl: torch is not loaded in process %d; torch commands work "
                                 "on processes that use PyTorch" % idle.pid), r.err
    assert value(fpctl, idle.pid, "sys", "modules", "'torch' in target") == "False"
    assert list(outdir.iterdir()) == []
    idle.ping()


# ----------------------------------------------------------------------------
# Every interpreter, with a stand-in torch (targets/fake_torch_target.py):
# the helper's side on 3.6-3.14 (both instrumentation mechanisms), the CUDA
# paths, and output that takes several chunks.

@pytest.fixture(scope="module")
def fake(interp, workdir):
    t = fpdtest.Target(interp.python, "fake_torch_target.py", logdir=workdir).ready()
    yield t
    t.kill()


def test_fake_torch_every_interpreter(fpctl, fake, outdir):
    import pickle

    def log_is(expr):
        return value(fpctl, fake.pid, "__main__", "LOG", expr) == "True"

    r = torch_cmd(fpctl, fake.pid, "profile", "__main__", "step", cwd=str(outdir))
    assert "__main__.step" in r.out and "to trace.json" in r.out, r.out
    with open(str(outdir / "trace.json")) as f:
        trace = json.load(f)
    assert (outdir / "trace.json").stat().st_size > 2 * 768 * 1024
    assert len(trace["traceEvents"]) == 30000
    assert trace["traceEvents"][0]["tid"] == "worker"  # started in the caller's thread
    assert trace["activities"] == ["cpu", "cuda"]
    assert log_is("target == ['start', 'stop']")

    r = torch_cmd(fpctl, fake.pid, "memory", "-s", "-f", "s.pickle", cwd=str(outdir))
    assert "Wrote the CUDA memory snapshot" in r.out and "to s.pickle" in r.out, r.out
    with open(str(outdir / "s.pickle"), "rb") as f:
        assert pickle.load(f)["segments"] == [{"size": 1 << 20}]

    r = torch_cmd(fpctl, fake.pid, "memory", "-r", "__main__", "step", cwd=str(outdir))
    assert "Wrote the CUDA memory record of __main__.step" in r.out, r.out
    with open(str(outdir / "snapshot.pickle"), "rb") as f:
        snap = pickle.load(f)
    # On while the call ran, the snapshot before turning it off.
    assert snap["recording"] == [("record", "all", 100000), "snapshot"]
    assert log_is("target[-3:] == [('record', 'all', 100000), 'snapshot', ('record', None, 9)]")
    before = int(value(fpctl, fake.pid, "__main__", "COUNTS", "target['calls']"))
    fpdtest.wait_for(lambda: int(value(fpctl, fake.pid, "__main__", "COUNTS",
                                       "target['calls']")) > before, 30, "worker calls")
    fake.ping()
