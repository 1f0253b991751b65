"""Helpers of the integration tests: child processes, targets, fpd, fpctl and
parsers of fpctl's `stack` output (text and --json) into one model."""

import atexit
import json
import os
import pty
import queue
import re
import select
import signal
import socket
import struct
import subprocess
import threading
import time
from collections import namedtuple
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
NOBODY = 65534


def _targets_dir():
    """The target scripts, where an unprivileged user can read them too:
    some tests run targets as nobody, and a checkout under a private
    directory (mktemp -d is 0700) would hide them.  Then a world-readable
    copy is used, removed at exit."""
    here = HERE / "targets"
    if all(os.stat(str(d)).st_mode & 0o001 for d in [here] + list(here.parents)):
        return here
    import shutil
    import tempfile
    copy = Path(tempfile.mkdtemp(prefix="fpd-targets-")) / "targets"
    shutil.copytree(str(here), str(copy))
    for d in (copy.parent, copy):
        os.chmod(str(d), 0o755)
    for f in copy.iterdir():
        os.chmod(str(f), 0o644)
    atexit.register(shutil.rmtree, str(copy.parent), True)
    return copy


TARGETS = _targets_dir()
# Syscall numbers (x86_64) in /proc/PID/task/TID/syscall that tell where a
# thread of a target is blocked.  restart_syscall: a sleep interrupted by a
# ptrace stop (stack --native) goes on under that number.
SYSCALLS = {
    "read": {"0"},
    "sleep": {"23", "35", "230", "270", "219"},  # select nanosleep clock_nanosleep pselect6 restart
    "gil": {"202", "219"},  # futex
    "hog": {"running"},
}


def build_dir():
    """FPD_BUILD (relative to the repo unless absolute), default <repo>/build."""
    build = Path(os.environ.get("FPD_BUILD", "build"))
    return build if build.is_absolute() else REPO / build


# --------------------------------------------------------------------------
# Interpreters

# The versions fpd supports; each one missing on the machine is named in a skip.
EXPECTED_MINORS = [(3, m) for m in range(6, 14)]


class Interp(namedtuple("Interp", "id python minor kind")):
    """One interpreter: id for test names, path, (3, minor), pyenv|debian."""

    def qualname(self, new, old):
        """co_qualname from 3.11 on, co_name before."""
        return new if self.minor >= (3, 11) else old


def pyenv_root():
    try:
        out = subprocess.run(["pyenv", "root"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                             timeout=20).stdout.decode().strip()
    except (OSError, subprocess.SubprocessError):
        out = ""
    return Path(out) if out and Path(out).is_dir() else Path("/root/.pyenv")


def discover():
    """(interpreters found, [(id, reason)] for those expected and missing)."""
    found, missing = [], []
    versions = pyenv_root() / "versions"
    pyenv = []
    if versions.is_dir():
        for d in versions.iterdir():
            m = re.match(r"^3\.(\d+)\.\d+((a|b|rc)\d+)?$", d.name)
            python = d / "bin" / "python3"
            if m and os.access(str(python), os.X_OK):
                pyenv.append(Interp("pyenv-" + d.name, str(python), (3, int(m.group(1))), "pyenv"))
    pyenv.sort(key=lambda i: (i.minor, i.id))
    found += pyenv
    have = {i.minor for i in pyenv}
    for minor in EXPECTED_MINORS:
        if minor not in have:
            missing.append(("pyenv-%d.%d" % minor, "CPython %d.%d is not installed (expected under %s)"
                            % (minor + (versions,))))
    debian = []
    for p in Path("/usr/bin").glob("python3.*"):
        m = re.match(r"^python3\.(\d+)$", p.name)
        if m and os.access(str(p), os.X_OK):
            debian.append(Interp("debian-3." + m.group(1), str(p), (3, int(m.group(1))), "debian"))
    debian.sort(key=lambda i: i.minor)
    found += debian
    if not debian:
        missing.append(("debian-python3", "no /usr/bin/python3.X (Debian's python3 package)"))
    return found, missing


INTERPRETERS, MISSING = discover()


# --------------------------------------------------------------------------
# Every child process goes through spawn(): whatever a test leaves running is
# killed at teardown, and at interpreter exit as a last resort.

_live = []
_live_lock = threading.Lock()


def spawn(cmd, **kw):
    kw.setdefault("start_new_session", True)
    proc = subprocess.Popen([str(c) for c in cmd], **kw)
    with _live_lock:
        _live.append(proc)
    return proc


def stop(proc, sig=signal.SIGKILL, timeout=10):
    """Signals the process group of proc (spawned in its own session), reaps it."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
    with _live_lock:
        if proc in _live:
            _live.remove(proc)
    return proc.returncode


@atexit.register
def _kill_leftovers():
    for proc in list(_live):
        stop(proc)


def clean_env(**extra):
    """The environment for children: no PYTHON* settings of ours leak in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["NO_COLOR"] = "1"
    env.update(extra)
    return env


def as_user(uid, cmd):
    return ["setpriv", "--reuid=%d" % uid, "--regid=%d" % uid, "--clear-groups"] + list(cmd)


def wait_for(cond, timeout, what, interval=0.01):
    """Polls cond() until it returns something true; fails naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %ss waiting for %s" % (timeout, what))
        time.sleep(interval)


def tail(path, n=40):
    try:
        lines = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(lines[-n:])


# --------------------------------------------------------------------------
# /proc

def proc_stat_state(pid):
    try:
        stat = Path("/proc/%d/stat" % pid).read_text()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2]


def thread_syscall(pid, tid):
    """First field of /proc/PID/task/TID/syscall: a number, 'running', or None."""
    try:
        return Path("/proc/%d/task/%d/syscall" % (pid, tid)).read_text().split()[0]
    except (OSError, IndexError):
        return None


def ns_ids(path):
    """The NSpid line of a status file: ids from the host's namespace inwards."""
    for line in Path(path).read_text().splitlines():
        if line.startswith("NSpid:"):
            return [int(x) for x in line.split()[1:]]
    return []


def host_tid_map(pid):
    """{tid inside the target's pid namespace: host tid} for every thread."""
    out = {}
    for task in Path("/proc/%d/task" % pid).iterdir():
        try:
            out[ns_ids(task / "status")[-1]] = int(task.name)
        except (OSError, IndexError):
            pass
    return out


def descendants(pid):
    """Host pids of all descendants of pid."""
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            tasks = list(Path("/proc/%d/task" % p).iterdir())
        except OSError:
            continue
        for task in tasks:
            try:
                kids = [int(x) for x in (task / "children").read_text().split()]
            except OSError:
                continue
            found += kids
            todo += kids
    return found


def pids_with_arg(arg):
    """Pids whose command line has `arg` as one of its words."""
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            words = (d / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if arg.encode() in words:
            out.append(int(d.name))
    return out


# --------------------------------------------------------------------------
# Markers: `# LINE:<name>` comments in the targets give line numbers.

_MARKER = re.compile(r"#\s*LINE:(\w+)")
_markers = {}


def markers(path):
    path = str(path)
    if path not in _markers:
        found = {}
        with open(path) as f:
            for n, line in enumerate(f, 1):
                m = _MARKER.search(line)
                if m:
                    assert m.group(1) not in found, "marker %s twice in %s" % (m.group(1), path)
                    found[m.group(1)] = n
        _markers[path] = found
    return _markers[path]


def marker_line(path, name):
    return markers(path)[name]


def source_line(path, line):
    try:
        with open(path, errors="replace") as f:
            for n, text in enumerate(f, 1):
                if n == line:
                    return text.strip()
    except OSError:
        return None
    return None


# --------------------------------------------------------------------------
# Targets

PyFrame = namedtuple("PyFrame", "file line func")
Expected = namedtuple("Expected", "name tid nstid ident settle frames")


class TargetDied(AssertionError):
    pass


class Target(object):
    """A Python script from targets/ run by `python`, optionally under a
    wrapper (unshare, setpriv).  Spawning does not wait; ready() does."""

    def __init__(self, python, script, args=(), wrapper=(), logdir="/tmp", env=None):
        self.python = str(python)
        self.script = str(TARGETS / script)
        self.label = "%s %s %s" % (Path(self.python).name, script, " ".join(map(str, args)))
        self.log = Path(logdir) / ("target-%s-%d.log" % (Path(script).stem, id(self)))
        with open(self.log, "wb") as err:
            self.proc = spawn(list(wrapper) + [self.python, self.script] + list(args),
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err,
                              env=env or clean_env(), cwd=str(TARGETS))
        self._lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.info = None
        self._ping = 0

    def _read(self):
        for raw in self.proc.stdout:
            self._lines.put(raw.decode(errors="replace"))
        self._lines.put(None)

    def _line(self, timeout):
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError("%s: no output in %ss; stderr:\n%s" % (self.label, timeout, tail(self.log)))
        if line is None:
            self._lines.put(None)
            raise TargetDied("%s exited (status %s); stderr:\n%s"
                             % (self.label, self.proc.wait(), tail(self.log)))
        return line

    def ready(self, timeout=60):
        """Waits for the ready line, then until every thread is settled."""
        if self.info is not None:
            return self
        deadline = time.monotonic() + timeout
        while True:
            line = self._line(max(0.1, deadline - time.monotonic()))
            if line.startswith("{"):
                info = json.loads(line)
                if info.get("ready"):
                    break
        self.info = info
        self.version = info["version"]
        self.pid = self._host_pid(info["pid"])
        nsmap = host_tid_map(self.pid)
        self.threads = {}
        for t in info["threads"]:
            frames = [PyFrame(*f) for f in t["frames"]]
            last = frames[-1]
            frames[-1] = last._replace(line=marker_line(last.file, t["marker"]))
            self.threads[t["name"]] = Expected(t["name"], nsmap[t["tid"]], t["tid"], t["ident"],
                                               t["settle"], frames)
        self.extra = info.get("extra", {})
        self.settle(max(1.0, deadline - time.monotonic()))
        return self

    def _host_pid(self, inner_pid):
        if inner_pid == self.proc.pid:
            return inner_pid
        for pid in descendants(self.proc.pid):
            try:
                if ns_ids("/proc/%d/status" % pid)[-1] == inner_pid:
                    return pid
            except (OSError, IndexError):
                pass
        raise AssertionError("%s: no descendant of %d is pid %d in its namespace"
                             % (self.label, self.proc.pid, inner_pid))

    def settled(self):
        for t in self.threads.values():
            sc = thread_syscall(self.pid, t.tid)
            if sc is None or (t.settle in SYSCALLS and sc not in SYSCALLS[t.settle]):
                return False
        return True

    def settle(self, timeout=30):
        """Until /proc shows every thread where it said it would be, three
        polls in a row (the hog needs a moment to take the GIL back)."""
        streak = [0]

        def stable():
            streak[0] = streak[0] + 1 if self.settled() else 0
            return streak[0] >= 3

        wait_for(stable, timeout, "%s: threads settling" % self.label)

    def ping(self, timeout=30):
        """Asserts the target still answers on its main thread, and waits
        until that thread is back where it blocks."""
        self._ping += 1
        assert self.proc.poll() is None, "%s exited:\n%s" % (self.label, tail(self.log))
        self.proc.stdin.write(("ping %d\n" % self._ping).encode())
        self.proc.stdin.flush()
        want = "pong %d" % self._ping
        deadline = time.monotonic() + timeout
        while True:
            line = self._line(max(0.1, deadline - time.monotonic())).strip()
            if line == want:
                break
        self.settle(timeout)

    def alive(self):
        return self.proc.poll() is None and proc_stat_state(self.pid) not in (None, "Z", "X")

    def exe(self):
        return os.readlink("/proc/%d/exe" % self.pid)

    def maps_paths(self):
        out = set()
        for line in Path("/proc/%d/maps" % self.pid).read_text().splitlines():
            parts = line.split(None, 5)
            if len(parts) == 6 and parts[5].startswith("/"):
                out.add(parts[5])
        return out

    def kill(self):
        if self.proc.stdin:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
        stop(self.proc)


class TargetPool(object):
    """Targets spawned together (they start in parallel), waited for on use."""

    def __init__(self, logdir):
        self.logdir = logdir
        self.targets = {}

    def spawn(self, key, python, script, *args, **kw):
        kw.setdefault("logdir", self.logdir)
        self.targets[key] = Target(python, script, args, **kw)
        return self.targets[key]

    def get(self, key):
        return self.targets[key].ready()

    def close(self):
        for t in self.targets.values():
            t.kill()
        self.targets.clear()


# --------------------------------------------------------------------------
# fpd and fpctl

SANITIZER_MARKS = ("AddressSanitizer", "LeakSanitizer", "UndefinedBehaviorSanitizer", "runtime error:")


class Daemon(object):
    def __init__(self, binary, workdir):
        self.binary = Path(binary)
        self.workdir = Path(workdir)
        self.socket = str(self.workdir / "fpd.sock")
        self.log = self.workdir / "fpd.log"
        self.proc = None

    def command(self):
        """How fpd is started (a subclass may wrap it)."""
        return [self.binary, "--socket", self.socket]

    def start(self, timeout=60):
        with open(self.log, "wb") as log:
            self.proc = spawn(self.command(), stdin=subprocess.DEVNULL,
                              stdout=log, stderr=subprocess.STDOUT, env=clean_env())

        def listening():
            if self.proc.poll() is not None:
                raise AssertionError("fpd exited with status %s at start:\n%s"
                                     % (self.proc.returncode, tail(self.log)))
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(self.socket)
                return True
            except OSError:
                return False
            finally:
                s.close()

        wait_for(listening, timeout, "fpd to listen on %s" % self.socket, interval=0.05)

    def check_alive(self):
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError("fpd died (status %s); log:\n%s" % (self.proc.returncode, tail(self.log)))

    def stop(self):
        """SIGTERM; returns a problem description, or None when fpd stopped cleanly."""
        if self.proc is None:
            return None
        problems = []
        if self.proc.poll() is not None:
            problems.append("fpd had already exited with status %s" % self.proc.returncode)
        else:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                problems.append("fpd did not stop within 20 s of SIGTERM")
            stop(self.proc)
            if self.proc.returncode != 0:
                problems.append("fpd exited with status %s on SIGTERM" % self.proc.returncode)
        log = self.log.read_text(errors="replace") if self.log.exists() else ""
        if any(m in log for m in SANITIZER_MARKS):
            problems.append("sanitizer report in fpd's log")
        if problems:
            return "; ".join(problems) + "\nfpd log:\n" + tail(self.log, 80)
        return None


Result = namedtuple("Result", "rc out err")


class Fpctl(object):
    """fpctl(*args, check=True) -> Result(rc, out, err); --socket added first."""

    def __init__(self, binary, daemon, workdir):
        self.binary = str(binary)
        self.daemon = daemon
        self.workdir = Path(workdir)
        self.home = self.workdir / "home"
        self.home.mkdir(exist_ok=True)

    def env(self, user=None, **extra):
        home = self.home if user is None else self.workdir / ("home-%d" % user)
        if not home.exists():
            home.mkdir()
            if user is not None:
                os.chown(str(home), user, user)
        path = "%s:%s" % (self.binary.rsplit("/", 1)[0], os.environ.get("PATH", "/usr/bin:/bin"))
        return clean_env(HOME=str(home), PATH=path, **extra)

    def command(self, args, user=None, socket=True):
        cmd = [self.binary]
        if socket:
            cmd += ["--socket", self.daemon.socket]
        cmd += [str(a) for a in args]
        return as_user(user, cmd) if user is not None else cmd

    def __call__(self, *args, check=True, timeout=120, user=None, cwd=None, socket=True, env=None):
        cmd = self.command(args, user=user, socket=socket)
        try:
            r = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=timeout, cwd=cwd,
                               env=env or self.env(user))
        except subprocess.TimeoutExpired:
            raise AssertionError("%s: no exit within %ss" % (" ".join(cmd), timeout))
        out = r.stdout.decode(errors="replace")
        err = r.stderr.decode(errors="replace")
        if any(m in err for m in SANITIZER_MARKS):
            raise AssertionError("sanitizer report from %s:\n%s" % (" ".join(cmd), err))
        self.daemon.check_alive()
        if check and r.returncode != 0:
            raise AssertionError("%s: exit %d\nstdout:\n%s\nstderr:\n%s"
                                 % (" ".join(cmd), r.returncode, out[-4000:], err[-4000:]))
        return Result(r.returncode, out, err)


# --------------------------------------------------------------------------
# fpd's wire protocol, for tests that talk to the socket directly

def frame(payload):
    if not isinstance(payload, bytes):
        payload = json.dumps(payload).encode()
    return struct.pack(">I", len(payload)) + payload


def recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def recv_frame(sock):
    """The next frame as a dict, or None at end of stream."""
    head = recv_exact(sock, 4)
    if head is None:
        return None
    body = recv_exact(sock, struct.unpack(">I", head)[0])
    if body is None:
        return None
    return json.loads(body.decode())


# --------------------------------------------------------------------------
# The output of `stack`, text or --json, parsed into one model.

class OFrame(object):
    def __init__(self, kind, file, line, func, library=None, source=None, locals=None, pc=None):
        self.kind, self.file, self.line, self.func = kind, file, line, func
        self.library, self.source, self.locals, self.pc = library, source, locals, pc

    def key(self):
        return PyFrame(self.file, self.line, self.func)

    def __repr__(self):
        if self.kind == "python":
            return "py(%s:%s %s)" % (self.file, self.line, self.func)
        return "c(%s %s)" % (self.func, self.library)


class OThread(object):
    def __init__(self, tid, name, state, truncated=0, error=None):
        self.tid, self.name, self.state, self.truncated = tid, name, state, truncated
        self.error = error  # why this thread's stack could not be (fully) read
        self.frames = []  # outermost first

    def python(self):
        return [f for f in self.frames if f.kind == "python"]

    def python_keys(self):
        return [f.key() for f in self.python()]

    def __repr__(self):
        error = " error=%r" % self.error if self.error else ""
        return "thread(%s %s %s%s %r)" % (self.tid, self.name, self.state, error, self.frames)


class ODump(object):
    def __init__(self):
        self.pid = self.exe = self.version = self.binary = None
        self.threads = []

    def by_name(self, name):
        found = [t for t in self.threads if t.name == name]
        assert len(found) == 1, "%d threads named %r in %r" % (len(found), name, self.threads)
        return found[0]

    def names(self):
        return sorted(t.name for t in self.threads)


class ParseError(AssertionError):
    pass


_HEAD_PROCESS = re.compile(r"^Process (\d+): (.+)$")
_HEAD_PYTHON = re.compile(r"^Python v(\S+) \((.+)\)$")
_THREAD = re.compile(r"^Traceback for thread (\d+) (?:\((.*)\) )?\[([^\]]+)\] \(most recent call last\):$")
_TRUNC = re.compile(r"^    \.\.\. (\d+) older frames not shown \(stack deeper than (\d+) frames\)$")
_PYFRAME = re.compile(r'^    \(Python\) File "(.*)", line (\d+), in (.+)$')
_CFRAME = re.compile(r'^    \(C\) File "(.*)", line (\S+), in (.+) \((.*)\)$')
_LOCAL = re.compile(r"^            (\S+) = (.*)$")
_SOURCE = re.compile(r"^        (\S.*)$")
_THREAD_ERROR = re.compile(r"^    \(error: (.*)\)$")


def parse_text(text):
    """Strict: a line that fits nowhere in the contract is an error."""
    dump = ODump()
    thread = frame_ = None
    in_locals = False
    for n, line in enumerate(text.splitlines(), 1):
        def bad(why):
            raise ParseError("line %d %s: %r\n--- output:\n%s" % (n, why, line, text[:3000]))

        if not line.strip():
            continue
        m = _HEAD_PROCESS.match(line)
        if m and thread is None:
            dump.pid, dump.exe = int(m.group(1)), m.group(2)
            continue
        m = _HEAD_PYTHON.match(line)
        if m and thread is None:
            dump.version, dump.binary = m.group(1), m.group(2)
            continue
        m = _THREAD.match(line)
        if m:
            thread = OThread(int(m.group(1)), m.group(2), m.group(3))
            dump.threads.append(thread)
            frame_, in_locals = None, False
            continue
        if thread is None:
            bad("before any thread")
        m = _TRUNC.match(line)
        if m:
            if thread.frames:
                bad("truncation note after frames")
            thread.truncated = int(m.group(1))
            thread.limit = int(m.group(2))
            continue
        m = _THREAD_ERROR.match(line)
        if m:
            thread.error = m.group(1)
            frame_ = None
            continue
        m = _PYFRAME.match(line)
        if m:
            frame_ = OFrame("python", m.group(1), int(m.group(2)), m.group(3))
            thread.frames.append(frame_)
            in_locals = False
            continue
        m = _CFRAME.match(line)
        if m:
            lineno = int(m.group(2)) if m.group(2).isdigit() else 0
            lineno = lineno or None  # 0: unknown
            frame_ = OFrame("native", m.group(1), lineno, m.group(3), library=m.group(4))
            thread.frames.append(frame_)
            in_locals = False
            continue
        if frame_ is None:
            bad("before any frame")
        if line == "        Locals:":
            frame_.locals = {}
            in_locals = True
            continue
        m = _LOCAL.match(line)
        if m and in_locals:
            frame_.locals[m.group(1)] = m.group(2)
            continue
        m = _SOURCE.match(line)
        if m and not in_locals and frame_.source is None:
            frame_.source = m.group(1)
            continue
        bad("not in the stack format")
    return dump


def _locals_from_json(value):
    if value is None or isinstance(value, dict):
        return value
    out = {}
    for item in value:
        if isinstance(item, dict):
            out[item["name"]] = item["repr"]
        else:
            out[item[0]] = item[1]
    return out


def parse_json(text):
    dump = ODump()
    seen_process = False
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            raise ParseError("line %d is not JSON: %r" % (n, line))
        if not isinstance(obj, dict) or not isinstance(obj.get("type"), str):
            raise ParseError("line %d is not an object with a type: %r" % (n, line))
        if obj["type"] != "event":
            continue
        if obj.get("event") == "process":
            assert not dump.threads, "process event after thread events"
            seen_process = True
            dump.pid = obj.get("pid")
            dump.exe = obj.get("exe", obj.get("executable"))
            dump.version = obj.get("version")
            dump.binary = obj.get("binary")
        elif obj.get("event") == "thread":
            t = OThread(obj["tid"], obj["name"], obj["state"], int(obj.get("truncated") or 0),
                        obj.get("error"))
            for f in obj["frames"]:
                if f["kind"] == "python":
                    t.frames.append(OFrame("python", f["file"], f["line"], f["func"],
                                           source=f.get("source"),
                                           locals=_locals_from_json(f.get("locals"))))
                else:
                    assert f["kind"] == "native", f
                    pc = f.get("pc")
                    if isinstance(pc, str):
                        pc = int(pc, 16)
                    t.frames.append(OFrame("native", f.get("file"), f.get("line") or None, f.get("func"),
                                           library=f.get("library"), pc=pc))
            dump.threads.append(t)
    assert seen_process, "no process event in:\n" + text[:2000]
    return dump


def parse(fmt, text):
    return parse_json(text) if fmt == "json" else parse_text(text)


# --------------------------------------------------------------------------
# A terminal for the interactive shell

class PtySession(object):
    def __init__(self, cmd, env, cwd=None):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # child
            try:
                if cwd:
                    os.chdir(cwd)
                os.execve(cmd[0], cmd, env)
            finally:
                os._exit(127)
        self.buf = ""
        self.status = None

    def read(self, timeout):
        r, _, _ = select.select([self.fd], [], [], timeout)
        if not r:
            return False
        try:
            data = os.read(self.fd, 65536)
        except OSError:  # EIO: the child closed the terminal
            data = b""
        if not data:
            raise EOFError(self.buf)
        self.buf += data.decode(errors="replace")
        return True

    def expect(self, cond, timeout, what):
        """Reads until cond(text since the last expect) is true."""
        start = len(self.buf)
        deadline = time.monotonic() + timeout
        while not cond(_plain(self.buf[start:])):
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("shell: timed out waiting for %s; got:\n%s" % (what, self.buf[-3000:]))
            try:
                self.read(left)
            except EOFError:
                raise AssertionError("shell: terminal closed waiting for %s; got:\n%s" % (what, self.buf[-3000:]))
        return _plain(self.buf[start:])

    def send(self, text):
        os.write(self.fd, text.encode())

    def wait(self, timeout):
        """Drains the terminal until the child exits; its exit status."""
        deadline = time.monotonic() + timeout
        while True:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.status = os.waitstatus_to_exitcode(status)
                self._drain()
                return self.status
            if time.monotonic() > deadline:
                raise AssertionError("shell did not exit; output:\n" + self.buf[-3000:])
            try:
                self.read(0.05)
            except EOFError:
                time.sleep(0.01)  # terminal closed; the exit status follows

    def _drain(self):
        """Reads what the child wrote before it exited: the terminal keeps it
        after the exit, so a wait that stops at the exit status loses the tail."""
        try:
            while self.read(0.5):
                pass
        except EOFError:
            pass

    def close(self):
        if self.status is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
        os.close(self.fd)


def attach_shell(fpctl, pid, prompt, env):
    """`fpctl attach PID` in a terminal, once `prompt` (a regex) shows."""
    sh = PtySession(fpctl.command(["attach", pid]), env)
    try:
        sh.expect(lambda t: prompt.search(t), 60, "the shell's first prompt")
    except BaseException:
        sh.close()
        raise
    return sh


_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Z0-9]|\r")


def _plain(text):
    return _ANSI.sub("", text)
