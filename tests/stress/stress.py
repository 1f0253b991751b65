#!/usr/bin/env python3
"""Stress test of fpd: attach/command/detach cycles against targets in every
workload state on every interpreter, with a private fpd.

    FPD_BUILD=build python3 tests/stress/stress.py --cycles 300 --workers 4

One cycle: `fpctl attach PID COMMAND` (commands rotate: stack, stack --native,
stack --locals, getglobal, watch, trace, tt, mem summary, vmtool forceGc,
module, console; perf -d 1 and gilstat now and then), its output checked,
then for a helper command `fpctl detach PID` and the checks that nothing is
left behind.  Cycles run in a pool of workers, one at a time per target
(a detach ends every session on its process).

Targets (tests/stress/targets/stress_target.py) run in states cpu, sleep,
read, threads (64), gil (held in a C call), asyncio, churn (threads coming
and going), one process per (interpreter, state), each in a mount namespace
of its own with private /tmp, /var/tmp and /dev/shm, so that the helper's
session directories of one target are told apart from everyone else's.  The
cycles are spread over rounds; each round starts fresh targets for one
interpreter after another.

Every cycle ends in one outcome:
  pass      the output is what the contract says
  crash     the target or fpd died, or fpd's log has a sanitizer report
  hang      a command ran past its hard timeout, or fpctl's own --timeout
            fired on a command that should have ended by itself, or the
            target stopped answering on stdin
  wrong     an exit status or output other than the expected one
  leftover  after detach: tick() not back to its own code, a sys.monitoring
            tool still held, a profile/trace function left on a thread, a
            session directory left in the target's /tmp, /var/tmp or
            /dev/shm, a second copy of libfpagent mapped, a thread of the
            helper still there, or fpd still listing a helper of the pid
fpd's open fds and RSS are sampled after every cycle: the median over the
last 10% of cycles minus the median over the first 10% must stay within
--max-fd-growth and --max-rss-growth-mb.

A target that hung or died is replaced by a fresh one of its state, so that
one fault counts once (a hang's detail holds the target's stack just after).

Exit status 0 when every cycle passed; the last line is "N passed, N failed":
the cycles, plus each check of the whole run that failed (fd/RSS growth,
fpd's clean exit on SIGTERM).  Details of each failure go to stderr as they
happen (the first --show) and to FAILURES.jsonl in the work directory, every
cycle's command and outcome to CYCLES.jsonl there; the directory is kept
when anything failed.
"""

import argparse
import atexit
import collections
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[0] / "integration"))
import fpdtest  # noqa: E402

SCRIPT = HERE / "targets" / "stress_target.py"


def visible(script):
    """The target script where each target's private /tmp, /var/tmp and
    /dev/shm (WRAPPER) do not hide it: a checkout under one of them is
    copied to a directory of its own in /run for the run."""
    if not str(script).startswith(("/tmp/", "/var/tmp/", "/dev/shm/")):
        return script
    d = Path(tempfile.mkdtemp(prefix="fpd-stress-", dir="/run"))
    d.chmod(0o755)
    atexit.register(shutil.rmtree, str(d), True)
    return Path(shutil.copy2(str(script), str(d / script.name)))


SCRIPT = visible(SCRIPT)
STATES = ["cpu", "sleep", "read", "threads", "gil", "asyncio", "churn"]
# The function each persistent thread of a state runs (a stack must show it).
ENTRY = {"MainThread": "main", "spinner": "loop_cpu", "sleeper": "loop_sleep", "reader": "loop_read",
         "writer": "loop_write", "hog": "loop_hog", "loop-thread": "run_asyncio",
         "churner": "loop_churn"}
ENTRY.update({"w-%02d" % i: "loop_sleep" for i in range(64)})
OUTCOMES = ["pass", "crash", "hang", "wrong", "leftover"]
SESSION_DIRS = ("tmp", "var/tmp", "dev/shm")
# Each target's private temporary directories; then the interpreter.
PRIVATE_TMP = ("for d in /tmp /var/tmp /dev/shm; do mount -t tmpfs -o mode=1777,size=64m fpd-stress $d"
               " || exit 97; done; exec \"$0\" \"$@\"")
WRAPPER = ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", PRIVATE_TMP]

HARD_TIMEOUT = 90  # seconds for one fpctl command, whatever it is
FPCTL_TIMEOUT = 20  # fpctl --timeout for commands that end by themselves
PING_TIMEOUT = 30


# --------------------------------------------------------------------------
# Targets

class Target(object):
    """One stress_target.py process; its stdin/stdout protocol is serialized
    by the cycle holding self.lock."""

    def __init__(self, interp, state, logdir):
        self.interp, self.state = interp, state
        self.key = (interp.id, state)
        self.label = "%s/%s" % (interp.id, state)
        self.log = Path(logdir) / ("target-%s-%s-%d.log" % (interp.id, state, time.monotonic_ns()))
        self.lock = threading.Lock()
        self.cycles = 0
        # Where the target starts in the command rotation: targets with few
        # cycles each still cover every command between them.
        self.offset = 0
        with open(self.log, "wb") as err:
            self.proc = fpdtest.spawn(WRAPPER + [interp.python, str(SCRIPT), state],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err,
                                      env=fpdtest.clean_env(), cwd="/")
        self.lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.info = None
        self.seq = 0
        self.strays_seen = 0
        self.retired = False

    def _read(self):
        for raw in self.proc.stdout:
            self.lines.put(raw.decode(errors="replace").rstrip("\n"))
        self.lines.put(None)

    def _line(self, deadline):
        try:
            line = self.lines.get(timeout=max(0.05, deadline - time.monotonic()))
        except queue.Empty:
            return None
        if line is None:
            self.lines.put(None)
            raise TargetGone(self.describe_death())
        return line

    def ready(self, timeout=120):
        deadline = time.monotonic() + timeout
        while True:
            line = self._line(deadline)
            if line is None:
                raise RuntimeError("%s: not ready in %d s; stderr:\n%s"
                                   % (self.label, timeout, fpdtest.tail(self.log)))
            if line.startswith("{"):
                self.info = json.loads(line)
                break
        self.pid = self.info["pid"]
        assert self.pid == self.proc.pid, (self.pid, self.proc.pid)
        self.token = "stress-%s-%d" % (self.state, self.pid)
        self.threads = self.info["threads"]  # persistent threads: {name: tid}
        self.tasks = len(os.listdir("/proc/%d/task" % self.pid))
        return self

    def request(self, word, arg="", timeout=PING_TIMEOUT):
        """Sends "word N arg", returns the rest of the answer line (None: none in time)."""
        self.seq += 1
        try:
            self.proc.stdin.write(("%s %d %s\n" % (word, self.seq, arg)).encode())
            self.proc.stdin.flush()
        except OSError:
            raise TargetGone(self.describe_death())
        want = "%s %d" % ("pong" if word == "ping" else word, self.seq)
        deadline = time.monotonic() + timeout
        while True:
            line = self._line(deadline)
            if line is None:
                return None
            if line == want or line.startswith(want + " "):
                return line[len(want):].strip()

    def alive(self):
        return self.proc.poll() is None and fpdtest.proc_stat_state(self.pid) not in (None, "Z", "X")

    def describe_death(self):
        try:
            rc = self.proc.wait(5)
        except subprocess.TimeoutExpired:
            rc = "still running, stdout closed"
        if isinstance(rc, int) and rc < 0:
            rc = "killed by %s" % signal.Signals(-rc).name
        return "target %s (pid %s) died: %s; stderr:\n%s" % (self.label, self.proc.pid, rc,
                                                             fpdtest.tail(self.log, 20))

    def session_entries(self):
        """The helper's session directories left in the target's own temporary dirs."""
        found = []
        for d in SESSION_DIRS:
            try:
                found += ["/%s/%s" % (d, e) for e in os.listdir("/proc/%d/root/%s" % (self.pid, d))
                          if e.startswith(".fpd-")]
            except OSError:
                pass
        return found

    def agent_copies(self):
        paths = set()
        try:
            maps = Path("/proc/%d/maps" % self.pid).read_text()
        except OSError:
            return paths
        for line in maps.splitlines():
            parts = line.split(None, 5)
            if len(parts) == 6 and "libfpagent" in parts[5]:
                paths.add(parts[5])
        return paths

    def task_count(self):
        try:
            return len(os.listdir("/proc/%d/task" % self.pid))
        except OSError:
            return -1

    def kill(self):
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        fpdtest.stop(self.proc)


class TargetGone(Exception):
    pass


# --------------------------------------------------------------------------
# Commands and what their output must be

Run = collections.namedtuple("Run", "rc out err secs timed_out")


class Verdict(Exception):
    def __init__(self, outcome, detail):
        Exception.__init__(self, detail)
        self.outcome, self.detail = outcome, detail


def wrong(detail):
    raise Verdict("wrong", detail)


def check_stack(t, r):
    bad = [(int(tid), name) for tid, name in re.findall(r"^Traceback for thread (-?\d+) \((.*)\) ", r.out, re.M)
           if int(tid) <= 0]
    if bad:
        wrong("bogus tids: %s" % ", ".join("%d (%s)" % b for b in bad))
    try:
        dump = fpdtest.parse_text(r.out)
    except fpdtest.ParseError as e:
        wrong("stack output does not parse: %s" % e)
    if dump.pid != t.pid:
        wrong("stack names process %s, not %d" % (dump.pid, t.pid))
    seen = collections.Counter(th.tid for th in dump.threads)
    dup = [tid for tid, n in seen.items() if n > 1]
    if dup:
        wrong("tids listed twice: %s" % dup)
    problems = []
    for th in dump.threads:
        if th.tid <= 0:
            problems.append("bogus tid %d (%s)" % (th.tid, th.name))
    by_name = {th.name: th for th in dump.threads}
    for name, tid in sorted(t.threads.items()):
        th = by_name.get(name)
        if th is None:
            problems.append("thread %s (tid %d) missing" % (name, tid))
            continue
        if th.tid != tid:
            problems.append("thread %s shown with tid %d, it is %d" % (name, th.tid, tid))
        funcs = [f.func.rsplit(".", 1)[-1] for f in th.python()]
        if ENTRY[name] not in funcs and not th.error:
            problems.append("thread %s: no frame of %s in %s" % (name, ENTRY[name], funcs))
    # Any other thread: one the process has now (the helper's) or had (churn).
    others = [th for th in dump.threads if th.name not in t.threads
              and not os.path.exists("/proc/%d/task/%d" % (t.pid, th.tid))]
    if others:
        answer = t.request("never", ",".join(str(th.tid) for th in others))
        if answer is None:
            raise Verdict("hang", "target answers no 'never' within %d s" % PING_TIMEOUT)
        for tid in json.loads(answer):
            problems.append("thread %d (%s) was never a thread of the process"
                            % (tid, [th.name for th in others if th.tid == tid][0]))
    if problems:
        wrong("; ".join(problems))


def check_getglobal(t, r):
    lines = r.out.rstrip("\n").split("\n")
    want = ["EXPR:  target", "TYPE:  str", "VALUE: '%s'" % t.token]
    if lines != want:
        wrong("getglobal printed %r, want %r" % (lines, want))


def check_watch(t, r):
    n = len(re.findall(r"method=__main__\.tick cost=", r.out))
    if n != 1 or "is_exp=False" not in r.out:
        wrong("watch -n 1: %d records of __main__.tick" % n)


def check_trace(t, r):
    heads = re.findall(r"^\S+ \S+ thread=(\S+) tid=(-?\d+) daemon=\S+ cost=\S+$", r.out, re.M)
    if len(heads) != 1:
        wrong("trace -n 1: %d call headers" % len(heads))
    name, tid = heads[0][0], int(heads[0][1])
    if tid <= 0:
        wrong("trace header has tid %d" % tid)
    if name in t.threads and t.threads[name] != tid:
        wrong("trace names thread %s with tid %d, it is %d" % (name, tid, t.threads[name]))
    if not re.search(r"^\[[0-9.]+ms\] tick +stress_target\.py:\d+$", r.out, re.M):
        wrong("trace tree has no tick node")


def check_tt(t, r):
    if not re.search(r"^\d{4,}\s+\S+ \S+\s+[0-9.]+\s+true\s+false\s+__main__\s+tick$", r.out, re.M):
        wrong("tt -t -n 1: no record row for __main__ tick")
    if "1 call recorded (the -n limit)" not in r.err:
        wrong("tt -t -n 1: no '1 call recorded' line")


def check_mem(t, r):
    if not re.search(r"^\d+ objects, .* in \d+ types", r.out, re.M) or not re.search(r"^ +dict \|", r.out, re.M):
        wrong("mem summary: no dict row or no total line")


def check_gc(t, r):
    if not re.match(r"^Garbage collection done: \d+ unreachable objects found and freed$", r.out.strip()):
        wrong("vmtool -a forceGc printed %r" % r.out.strip())


def check_module(t, r):
    # 3.6's asyncio imports multiprocessing, which also names the script's
    # module __mp_main__: both names are the file's.
    names = r.out.split()
    if "__main__" not in names or not set(names) <= {"__main__", "__mp_main__"}:
        wrong("module of the script: %r, want '__main__'" % r.out.strip())


def check_console(t, r):
    if (t.token + "!") not in r.out.split("\n"):
        wrong("console: no line %r in the output" % (t.token + "!"))


def check_perf(t, r):
    m = re.search(r"^Wrote (\d+) samples to (\S+)$", r.out, re.M)
    if not m:
        wrong("perf: no 'Wrote N samples' line")
    path = Path(m.group(2))
    if not path.is_file():
        wrong("perf: %s not written" % path)
    path.unlink()
    if t.state in ("cpu", "gil") and int(m.group(1)) == 0:
        wrong("perf: 0 samples of a process that keeps a CPU busy")


def check_gilstat(t, r):
    if not r.out.startswith("gilstat on process %d " % t.pid):
        wrong("gilstat: no 'gilstat on process' header")


Command = collections.namedtuple("Command", "name args helper stdin check rcs bpf")


def commands(workdir):
    perf_file = lambda t: str(Path(workdir) / ("perf-%d.collapsed" % t.pid))  # noqa: E731
    return [
        Command("stack", lambda t: ["stack"], False, None, check_stack, (0,), False),
        Command("getglobal", lambda t: ["getglobal", "__main__", "STRESS_TOKEN"], True, None,
                check_getglobal, (0,), False),
        Command("watch", lambda t: ["watch", "__main__", "tick", "-n", "1"], True, None, check_watch,
                (0,), False),
        Command("stack --native", lambda t: ["stack", "--native"], False, None, check_stack, (0,), False),
        Command("trace", lambda t: ["trace", "__main__", "tick", "-n", "1"], True, None, check_trace,
                (0,), False),
        Command("console", lambda t: ["console"], True, b"print(STRESS_TOKEN + '!')\n", check_console,
                (0,), False),
        Command("stack --locals", lambda t: ["stack", "--locals"], False, None, check_stack, (0,), False),
        Command("tt", lambda t: ["tt", "-t", "__main__", "tick", "-n", "1"], True, None, check_tt, (0,),
                False),
        Command("mem summary", lambda t: ["mem", "summary"], True, None, check_mem, (0,), False),
        Command("vmtool forceGc", lambda t: ["vmtool", "-a", "forceGc"], True, None, check_gc, (0,),
                False),
        Command("module", lambda t: ["module", t.info["script"]], True, None, check_module, (0,), False),
    ], {
        "perf": Command("perf", lambda t: ["perf", "-d", "1", "--format", "collapsed", "-f", perf_file(t)],
                        False, None, check_perf, (0,), True),
        # --timeout ends it: exit 1 with "timed out after 2 s" today (issue 10
        # item 7 makes it one behaviour); either status with that line passes.
        "gilstat": Command("gilstat", lambda t: ["--timeout", "2", "gilstat", "on"], False, None,
                           check_gilstat, (0, 1), True),
    }


# --------------------------------------------------------------------------
# The run

class Stress(object):
    def __init__(self, args):
        self.args = args
        self.build = fpdtest.build_dir()
        for name in ("fpd", "fpctl", "libfpagent.so"):
            if not os.access(str(self.build / name), os.R_OK):
                sys.exit("stress: %s is missing: build it first (make, or make BUILD=%s)"
                         % (self.build / name, self.build))
        self.workdir = Path(tempfile.mkdtemp(prefix="fpd-stress-"))
        self.workdir.chmod(0o755)
        self.fpctl_bin = str(self.build / "fpctl")
        self.daemon = fpdtest.Daemon(self.build / "fpd", self.workdir)
        self.daemon.start()
        self.fpd_restarts = 0
        self.rotation, self.special = commands(self.workdir)
        self.lock = threading.Lock()
        self.counts = collections.defaultdict(collections.Counter)  # (interp, state) -> outcome counts
        self.by_cmd = collections.defaultdict(collections.Counter)  # command -> outcome counts
        self.samples = []  # (cycle number, fds, rss kB) after each cycle
        self.quiet = []  # (round, interpreter id, (fds, rss kB)) after each slot, no target left
        self.quiet_problems = []  # clients or helpers fpd still lists then
        self.done = 0
        self.seq = 0
        self.stopping = False
        self.failures = open(self.workdir / "FAILURES.jsonl", "w")
        self.journal = open(self.workdir / "CYCLES.jsonl", "w")
        self.nfail = 0
        self.bpf = self.status().get("bpf") == "ok"

    # fpctl ---------------------------------------------------------------

    def fpctl(self, args, stdin=None, timeout=HARD_TIMEOUT):
        cmd = [self.fpctl_bin, "--socket", self.daemon.socket] + [str(a) for a in args]
        start = time.monotonic()
        p = subprocess.Popen(cmd, stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                             env=fpdtest.clean_env(HOME=str(self.workdir)), cwd=str(self.workdir))
        timed_out = False
        try:
            out, err = p.communicate(stdin, timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            os.killpg(p.pid, signal.SIGKILL)
            out, err = p.communicate()
        return Run(p.returncode, out.decode(errors="replace"), err.decode(errors="replace"),
                   time.monotonic() - start, timed_out)

    def status(self):
        r = self.fpctl(["--json", "status"], timeout=30)
        for line in r.out.splitlines():
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            if ev.get("event") == "status":
                return ev
        return {}

    # fpd -----------------------------------------------------------------

    def fpd_problem(self):
        if self.daemon.proc.poll() is not None:
            return "fpd died (status %s); log:\n%s" % (self.daemon.proc.returncode,
                                                       fpdtest.tail(self.daemon.log, 40))
        log = self.daemon.log.read_text(errors="replace")
        if any(m in log for m in fpdtest.SANITIZER_MARKS):
            return "sanitizer report in fpd's log:\n" + fpdtest.tail(self.daemon.log, 60)
        return None

    def restart_fpd(self):
        """After a crash: keep the log, start another fpd so the run goes on."""
        self.fpd_restarts += 1
        old = self.daemon.log
        if self.daemon.proc.poll() is None:
            fpdtest.stop(self.daemon.proc)
        old.rename(old.with_name("fpd-%d.log" % self.fpd_restarts))
        self.daemon.start()

    def sample(self):
        pid = self.daemon.proc.pid
        try:
            fds = len(os.listdir("/proc/%d/fd" % pid))
            rss = int(re.search(r"^VmRSS:\s+(\d+) kB", Path("/proc/%d/status" % pid).read_text(), re.M).group(1))
        except (OSError, AttributeError):
            return None
        with self.lock:
            self.samples.append((self.done, fds, rss))
        return fds, rss

    # one cycle -------------------------------------------------------------

    def pick(self, t, n):
        """The command of the n-th cycle of the run on target t."""
        if self.bpf and n % 29 == 13:
            return self.special["perf"]
        if self.bpf and n % 29 == 27:
            return self.special["gilstat"]
        return self.rotation[(t.cycles + t.offset) % len(self.rotation)]

    def cycle(self, t):
        with self.lock:
            n = self.seq
            self.seq += 1
        cmd = self.pick(t, n)
        t.cycles += 1
        detail = {"cycle": n, "target": t.label, "pid": t.pid, "python": t.interp.python, "command": cmd.name}
        try:
            self.run_cycle(t, cmd, detail)
            outcome = "pass"
        except Verdict as v:
            outcome = v.outcome
            detail["why"] = v.detail
        except TargetGone as e:
            outcome = "crash"
            detail["why"] = str(e)
        if outcome == "hang" and t.alive():
            # What the target does now, for the report; then it makes way
            # for a fresh one, so that one hang is counted once.
            s = self.fpctl(["attach", t.pid, "stack", "--locals"], timeout=30)
            detail["stack_after"] = (s.out + s.err)[-20000:]
            t.retired = True
        problem = self.fpd_problem()
        if problem:
            outcome = "crash"
            detail["why"] = (detail.get("why", "") + "\n" + problem).strip()
            self.restart_fpd()
        self.record(t, cmd, outcome, detail)

    def run_cycle(self, t, cmd, detail):
        args = cmd.args(t)
        fpctl_opts = ["--timeout", str(FPCTL_TIMEOUT)] if cmd.helper else []
        if args[0] == "--timeout":
            fpctl_opts, args = args[:2], args[2:]
        r = self.fpctl(fpctl_opts + ["attach", t.pid] + args, stdin=cmd.stdin)
        detail.update(argv="fpctl %s" % " ".join(map(str, fpctl_opts + ["attach", t.pid] + args)),
                      rc=r.rc, secs=round(r.secs, 3), out=r.out[-20000:], err=r.err[-3000:])
        if not t.alive():
            raise TargetGone(t.describe_death())
        if r.timed_out:
            raise Verdict("hang", "no exit within %d s" % HARD_TIMEOUT)
        if cmd.helper and r.secs >= FPCTL_TIMEOUT - 0.5:
            raise Verdict("hang", "ended by fpctl's --timeout %d after %.1f s (exit %d)"
                          % (FPCTL_TIMEOUT, r.secs, r.rc))
        if any(m in r.err for m in fpdtest.SANITIZER_MARKS):
            raise Verdict("crash", "sanitizer report from fpctl")
        if r.rc not in cmd.rcs or (r.rc != 0 and "timed out after 2 s" not in r.err):
            if "timed out after" in r.err:
                raise Verdict("hang", "fpctl's --timeout fired: %s" % r.err.strip()[-300:])
            wrong("exit status %d: %s" % (r.rc, r.err.strip()[-500:]))
        cmd.check(t, r)
        if cmd.helper:
            d = self.fpctl(["detach", t.pid])
            detail.update(detach_rc=d.rc, detach_out=(d.out + d.err)[-500:])
            if d.timed_out:
                raise Verdict("hang", "fpctl detach: no exit within %d s" % HARD_TIMEOUT)
            if d.rc != 0:
                wrong("fpctl detach: exit %d: %s" % (d.rc, (d.out + d.err).strip()[-500:]))
            self.check_leftovers(t)
        else:
            if t.request("ping") is None:
                raise Verdict("hang", "target answers no ping within %d s" % PING_TIMEOUT)
            if t.session_entries():
                raise Verdict("leftover", "session entries after %s: %s" % (cmd.name, t.session_entries()))

    def check_leftovers(self, t):
        answer = t.request("check")
        if answer is None:
            raise Verdict("hang", "target answers no check within %d s" % PING_TIMEOUT)
        c = json.loads(answer)
        left = []
        if not c["code_ok"]:
            left.append("tick.__code__ is %s, not its own code" % c["code"])
        if c["monitoring"]:
            left.append("sys.monitoring tools still held: %s" % c["monitoring"])
        if len(c["strays"]) > t.strays_seen:
            left.append("profile/trace function left on a thread: %s" % c["strays"][t.strays_seen:])
            t.strays_seen = len(c["strays"])
        entries = t.session_entries()
        if entries:
            left.append("session entries in the target: %s" % entries)
        copies = t.agent_copies()
        if len(copies) > 1:
            left.append("%d copies of libfpagent mapped: %s" % (len(copies), sorted(copies)))
        if t.state != "churn":
            deadline = time.monotonic() + 5
            while t.task_count() > t.tasks and time.monotonic() < deadline:
                time.sleep(0.05)
            if t.task_count() > t.tasks:
                left.append("%d threads, %d before any helper: %s"
                            % (t.task_count(), t.tasks, self.thread_names(t)))
        helpers = self.status().get("helpers") or []
        # Each helper is listed as "PID (Python X.Y.Z)".
        if any(str(h).split()[0] == str(t.pid) for h in helpers):
            left.append("fpctl status still lists a helper of pid %d: %s" % (t.pid, helpers))
        if left:
            raise Verdict("leftover", "; ".join(left))

    @staticmethod
    def thread_names(t):
        names = []
        for task in sorted(os.listdir("/proc/%d/task" % t.pid)):
            try:
                names.append("%s:%s" % (task, Path("/proc/%d/task/%s/comm" % (t.pid, task)).read_text().strip()))
            except OSError:
                pass
        return ", ".join(names)

    def record(self, t, cmd, outcome, detail):
        if self.stopping:
            return  # an interrupted run: its targets are being killed
        with self.lock:
            self.done += 1
            self.counts[t.key][outcome] += 1
            self.by_cmd[cmd.name][outcome] += 1
            self.journal.write(json.dumps({"cycle": detail["cycle"], "target": t.label, "pid": t.pid,
                                           "command": cmd.name, "outcome": outcome,
                                           "secs": detail.get("secs"), "end": round(time.monotonic(), 3)})
                               + "\n")
            if outcome != "pass":
                self.nfail += 1
                detail["outcome"] = outcome
                self.failures.write(json.dumps(detail) + "\n")
                self.failures.flush()
                if self.nfail <= self.args.show:
                    sys.stderr.write("\n%s: %s %s `%s`: %s\n  stdout: %s\n  stderr: %s\n" % (
                        outcome.upper(), t.label, t.pid, detail.get("argv", cmd.name), detail.get("why"),
                        detail.get("out", "")[-800:].replace("\n", "\n          "),
                        detail.get("err", "")[-800:].replace("\n", "\n          ")))
            done = self.done
        if self.args.progress and done % self.args.progress == 0:
            sys.stderr.write("[%d/%d cycles, %d failed, %.0f s]\n" % (done, self.args.cycles, self.nfail,
                                                                      time.monotonic() - self.t0))
        self.sample()

    # rounds ------------------------------------------------------------------

    def plan(self, interps):
        """[(round, interp, cycles)]: the cycles spread over rounds of every
        interpreter, about --per-target cycles per target and round."""
        n = len(interps) * len(STATES)
        rounds = self.args.rounds or max(2, min(self.args.cycles // (n * self.args.per_target), 50))
        slots = [(r, i) for r in range(rounds) for i in interps]
        base, extra = divmod(self.args.cycles, len(slots))
        return [(r, i, base + (1 if k < extra else 0)) for k, (r, i) in enumerate(slots)]

    def run_slot(self, interp, ncycles):
        targets = []
        for state in STATES:
            targets.append(Target(interp, state, self.workdir))
            targets[-1].offset = 3 * (len(self.quiet) * len(STATES) + STATES.index(state))
        try:
            for t in targets:
                t.ready()
            jobs = queue.Queue()
            for k in range(ncycles):
                jobs.put(targets[k % len(targets)])

            def worker():
                while True:
                    try:
                        t = jobs.get_nowait()
                    except queue.Empty:
                        return
                    with t.lock:
                        t = self.current(targets, t)
                        self.cycle(t)

            # Daemons: an interrupted run exits without waiting for them.
            pool = [threading.Thread(target=worker, daemon=True) for _ in range(self.args.workers)]
            for th in pool:
                th.start()
            for th in pool:
                th.join()
        finally:
            for t in targets:
                t.kill()

    def current(self, targets, t):
        """t, or a fresh target of its state if it died (its lock held)."""
        k = [x.key for x in targets].index(t.key)
        t = targets[k]
        if t.alive() and not t.retired:
            return t
        fresh = Target(t.interp, t.state, self.workdir)
        fresh.cycles, fresh.lock = t.cycles, t.lock
        targets[k] = fresh
        t.kill()
        return fresh.ready()

    def run(self, interps):
        self.t0 = time.monotonic()
        plan = self.plan(interps)
        for r, interp, ncycles in plan:
            if ncycles:
                self.run_slot(interp, ncycles)
            # fpd notices the last clients and targets going away on its own time.
            deadline = time.monotonic() + 10
            while True:
                st = self.status()
                if (st.get("clients") == 1 and not st.get("helpers")) or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            self.quiet.append((r, interp.id, self.sample()))
            if st.get("clients") != 1 or st.get("helpers"):
                self.quiet_problems.append("after round %d on %s, with no client but fpctl status: %d clients, "
                                           "helpers %s" % (r + 1, interp.id, st.get("clients", -1),
                                                           st.get("helpers")))
        self.elapsed = time.monotonic() - self.t0
        self.final_fpd = self.daemon.stop()
        self.failures.close()
        self.journal.close()
        return plan

    # report ------------------------------------------------------------------

    def growth(self, lines, verdict):
        """fpd's fds and RSS: per cycle (sessions of other workers in flight)
        the medians of the first and last 10% of cycles, reported; at the end
        of each round (no target left, nothing in flight) the growth from the
        first round, the warm-up (every interpreter seen once), to the last,
        held to the limits."""
        def median(xs):
            xs = sorted(xs)
            return xs[len(xs) // 2]

        s = self.samples
        if len(s) >= 20:
            k = len(s) // 10
            first, last = s[:k], s[-k:]
            lines.append("fpd per cycle: open fds %d -> %d, RSS %.1f -> %.1f MB (medians of the first and "
                         "last 10%% of cycles; max %d fds, %.1f MB)"
                         % (median([x[1] for x in first]), median([x[1] for x in last]),
                            median([x[2] for x in first]) / 1024.0, median([x[2] for x in last]) / 1024.0,
                            max(x[1] for x in s), max(x[2] for x in s) / 1024.0))
        ends = {}
        for r, _, sample in self.quiet:
            if sample:
                ends[r] = sample
        if len(ends) < 2:
            return
        rounds = sorted(ends)
        lines.append("fpd at the end of each round (no target, nothing in flight): %s"
                     % ", ".join("%d fds %.1f MB" % (ends[r][0], ends[r][1] / 1024.0) for r in rounds))
        if self.fpd_restarts:
            return
        warm, end = ends[rounds[0]], ends[rounds[-1]]
        fd_growth, rss_growth = end[0] - warm[0], (end[1] - warm[1]) / 1024.0
        lines.append("fpd growth after the warm-up round: %+d fds, %+.1f MB" % (fd_growth, rss_growth))
        if fd_growth > self.args.max_fd_growth:
            verdict.append("fpd's open fds grew by %d after the warm-up round (limit %d)"
                           % (fd_growth, self.args.max_fd_growth))
        if rss_growth > self.args.max_rss_growth_mb:
            verdict.append("fpd's RSS grew by %.1f MB after the warm-up round (limit %d)"
                           % (rss_growth, self.args.max_rss_growth_mb))

    def report(self, interps, plan):
        rows = []
        total = collections.Counter()
        for interp in interps:
            for state in STATES:
                c = self.counts.get((interp.id, state), collections.Counter())
                total.update(c)
                rows.append([interp.id, state, sum(c.values())] + [c[o] for o in OUTCOMES])
        lines = []
        head = ["interpreter", "state", "cycles"] + OUTCOMES
        lines.append("| " + " | ".join(head) + " |")
        lines.append("|---|---|" + "---:|" * (len(head) - 2))
        for row in rows:
            lines.append("| " + " | ".join(map(str, row)) + " |")
        lines.append("| **all** | | %d | %s |" % (sum(total.values()), " | ".join(str(total[o]) for o in OUTCOMES)))
        lines.append("")
        lines.append("| command | cycles | " + " | ".join(OUTCOMES) + " |")
        lines.append("|---|" + "---:|" * (len(OUTCOMES) + 1))
        for name in sorted(self.by_cmd):
            c = self.by_cmd[name]
            lines.append("| %s | %d | %s |" % (name, sum(c.values()), " | ".join(str(c[o]) for o in OUTCOMES)))
        verdict = []
        lines.append("")
        self.growth(lines, verdict)
        if self.fpd_restarts:
            lines.append("fpd was restarted %d times after crashes (fd/RSS figures are of the last one)"
                         % self.fpd_restarts)
        if self.quiet_problems:
            verdict.append("%d of %d checks between rounds found a client or helper left; the first: %s"
                           % (len(self.quiet_problems), len(self.quiet), self.quiet_problems[0]))
        if self.final_fpd:
            verdict.append("fpd's shutdown: %s" % self.final_fpd)
        rounds = max(r for r, _, _ in plan) + 1
        lines.append("%d cycles in %.0f s, %d workers, %d rounds of %d interpreters x %d states, BPF %s"
                     % (self.done, self.elapsed, self.args.workers, rounds, len(interps), len(STATES),
                        "on" if self.bpf else "unavailable (perf and gilstat not run)"))
        return "\n".join(lines), verdict


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cycles", type=int, default=300)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--per-target", type=int, default=16,
                    help="about this many cycles per target and round (more rounds: fresh targets)")
    ap.add_argument("--interp", action="append", default=[],
                    help="only interpreters whose id contains this (repeatable)")
    ap.add_argument("--rounds", type=int, default=0,
                    help="rounds of fresh targets (default: from --per-target, at least 2)")
    ap.add_argument("--max-fd-growth", type=int, default=20)
    ap.add_argument("--max-rss-growth-mb", type=int, default=50)
    ap.add_argument("--markdown", help="also write the summary tables to this file")
    ap.add_argument("--show", type=int, default=20, help="print the details of this many failures")
    ap.add_argument("--progress", type=int, default=0, help="a progress line every N cycles")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()
    interps = [i for i in fpdtest.INTERPRETERS if not args.interp or any(s in i.id for s in args.interp)]
    if not interps:
        sys.exit("stress: no interpreter found")
    for mid, why in fpdtest.MISSING:
        print("stress: skipping %s: %s" % (mid, why))
    # SIGTERM (make's or timeout's) ends the run like Ctrl-C: fpd and the
    # targets are stopped on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    st = Stress(args)
    print("stress: %d cycles, %d workers, fpd %s, interpreters %s, work dir %s"
          % (args.cycles, args.workers, st.build / "fpd", ", ".join(i.id for i in interps), st.workdir),
          flush=True)
    try:
        plan = st.run(interps)
    except BaseException:
        st.stopping = True
        if st.daemon.proc.poll() is None:
            st.daemon.stop()
        raise
    table, verdict = st.report(interps, plan)
    print(table)
    if args.markdown:
        Path(args.markdown).write_text(table + "\n")
    for v in verdict:
        print("FAIL: " + v)
    if st.nfail:
        print("failure details: %s" % (st.workdir / "FAILURES.jsonl"))
    if st.nfail or verdict or args.keep:
        print("work directory kept: %s" % st.workdir)
    else:
        shutil.rmtree(str(st.workdir), ignore_errors=True)
    # The cycles, and each check of the whole run (fd/RSS growth, fpd's
    # shutdown) that failed.
    print("%d passed, %d failed" % (st.done - st.nfail, st.nfail + len(verdict)))
    sys.exit(1 if st.nfail or verdict else 0)


if __name__ == "__main__":
    main()
