"""tools/fpd.service: the unit is valid for systemd, and fpd does its whole
job with exactly the capabilities the unit grants.

The capability set, the ambient set and NoNewPrivileges are read from the
unit (never repeated here).  fpd then runs as uid 0 under setpriv with that
bounding set (a root process's permitted and effective sets are its
bounding set after execve, as under systemd), in a mount namespace that
stands in for the unit's sandbox: private /tmp and /var/tmp (PrivateTmp),
everything read-only but the socket's directory, /proc, /sys and /dev
(ProtectSystem=strict, ReadWritePaths), and no memory both writable and
executable (MemoryDenyWriteExecute, through prctl(PR_SET_MDWE)).  Every
command runs through it against a root target and a target of nobody, with
fpctl run by root and, for nobody's target, by nobody; each must do what it
does without the restriction.  fpctl here has no fpd next to it, so it can
never fall back to starting an unrestricted one."""

import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

import fpdtest
from fpdtest import NOBODY, as_user

UNIT = fpdtest.REPO / "tools" / "fpd.service"


def unit_settings(path=UNIT):
    """{key: [values]} of the [Service] section (continuation lines joined)."""
    settings, section, pending = {}, None, ""
    for raw in path.read_text().splitlines():
        line = pending + raw.strip()
        pending = ""
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        if section == "Service" and "=" in line:
            key, value = line.split("=", 1)
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def caps_of(settings, key):
    """The capabilities a key names, as setpriv spells them (sys_ptrace, ...)."""
    names = []
    for value in settings.get(key, []):
        if not value:
            names = []  # an empty assignment resets the list
        names += [n.lower()[len("cap_"):] for n in value.split()]
    return names


CAP_NUMBERS = {
    "chown": 0, "dac_override": 1, "dac_read_search": 2, "fowner": 3, "fsetid": 4, "kill": 5,
    "setgid": 6, "setuid": 7, "setpcap": 8, "linux_immutable": 9, "net_bind_service": 10,
    "net_broadcast": 11, "net_admin": 12, "net_raw": 13, "ipc_lock": 14, "ipc_owner": 15,
    "sys_module": 16, "sys_rawio": 17, "sys_chroot": 18, "sys_ptrace": 19, "sys_pacct": 20,
    "sys_admin": 21, "sys_boot": 22, "sys_nice": 23, "sys_resource": 24, "sys_time": 25,
    "sys_tty_config": 26, "mknod": 27, "lease": 28, "audit_write": 29, "audit_control": 30,
    "setfcap": 31, "mac_override": 32, "mac_admin": 33, "syslog": 34, "wake_alarm": 35,
    "block_suspend": 36, "audit_read": 37, "perfmon": 38, "bpf": 39, "checkpoint_restore": 40,
}


def cap_mask(names):
    return sum(1 << CAP_NUMBERS[n] for n in names)


# --------------------------------------------------------------------------
# The unit file

def test_unit_verifies(build, tmp_path):
    """systemd-analyze verify, with ExecStart pointed at the build's fpd: no
    error and not a single warning (an unknown key is only a warning)."""
    if not shutil.which("systemd-analyze"):
        pytest.fail("systemd-analyze is missing: `make deps` installs the systemd package")
    exec_start = unit_settings()["ExecStart"]
    assert len(exec_start) == 1 and re.match(r"^/\S+/fpd --socket /run/fpd/fpd\.sock$", exec_start[0]), \
        exec_start
    text = UNIT.read_text().replace("ExecStart=" + exec_start[0].split()[0],
                                    "ExecStart=" + str(build / "fpd"))
    copy = tmp_path / "fpd.service"
    copy.write_text(text)
    r = subprocess.run(["systemd-analyze", "verify", str(copy)], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=120)
    assert r.returncode == 0 and r.stderr.decode().strip() == "", r.stderr.decode()


def test_unit_grants_a_fixed_set():
    s = unit_settings()
    bounding, ambient = caps_of(s, "CapabilityBoundingSet"), caps_of(s, "AmbientCapabilities")
    assert bounding and set(ambient) <= set(bounding), (bounding, ambient)
    assert all(n in CAP_NUMBERS for n in bounding), bounding
    assert s.get("NoNewPrivileges") == ["yes"]
    assert "User" not in s, "fpd must run as uid 0"


# --------------------------------------------------------------------------
# fpd under the unit's capabilities and sandbox

SANDBOX = r"""
set -e
sockdir=$1; shift
mount --make-rprivate /
mount -t tmpfs -o mode=1777 fpd-private-tmp /tmp
mount -t tmpfs -o mode=1777 fpd-private-var-tmp /var/tmp
mount --bind "$sockdir" "$sockdir"
awk '{print $5}' /proc/self/mountinfo | sort -u | while read -r m; do
    case "$m" in
        /proc|/proc/*|/sys|/sys/*|/dev|/dev/*|/tmp|/var/tmp|"$sockdir") ;;
        *) mount -o remount,bind,ro "$m" 2>/dev/null || true ;;
    esac
done
exec "$@"
"""

# prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN): kept across execve.
MDWE = ("import ctypes, os, sys\n"
        "if ctypes.CDLL(None, use_errno=True).prctl(65, 1, 0, 0, 0) != 0:\n"
        "    sys.stderr.write('note: PR_SET_MDWE unsupported, MemoryDenyWriteExecute not emulated\\n')\n"
        "os.execvp(sys.argv[1], sys.argv[1:])\n")


class RestrictedDaemon(fpdtest.Daemon):
    def __init__(self, binary, sockdir, caps, ambient, nnp):
        super().__init__(binary, sockdir)
        caps_arg = "-all" + "".join(",+" + c for c in caps)
        setpriv = ["setpriv", "--bounding-set=" + caps_arg, "--inh-caps=-all" + "".join(",+" + c for c in ambient),
                   "--ambient-caps=-all" + "".join(",+" + c for c in ambient)]
        if nnp:
            setpriv.append("--no-new-privs")
        self.cmd = (["unshare", "--mount", "--", "sh", "-c", SANDBOX, "sandbox", str(sockdir),
                     "/usr/bin/python3", "-c", MDWE] + setpriv + ["--", str(binary), "--socket", self.socket])

    def command(self):
        return self.cmd


@pytest.fixture(scope="module")
def unit_caps():
    s = unit_settings()
    return (caps_of(s, "CapabilityBoundingSet"), caps_of(s, "AmbientCapabilities"),
            s.get("NoNewPrivileges") == ["yes"])


@pytest.fixture(scope="module")
def rfpd(build, unit_caps):
    # ReadWritePaths' stand-in: outside /tmp, which is private to fpd.
    sockdir = Path(tempfile.mkdtemp(prefix="fpd-svc-", dir="/run" if os.path.isdir("/run") else None))
    sockdir.chmod(0o755)
    # Installed the way `make install` lays it out (the helper libraries next
    # to fpd), where the sandbox shows it: a checkout under /tmp is hidden
    # by the private /tmp.
    bindir = sockdir / "bin"
    bindir.mkdir()
    bindir.chmod(0o755)
    for name in ("fpd", "libfpagent.so", "libfpcupti.so"):
        if (build / name).exists():
            shutil.copy2(str(build / name), str(bindir / name))
    daemon = RestrictedDaemon(bindir / "fpd", sockdir, *unit_caps)
    try:
        daemon.start()
        yield daemon
    finally:
        problem = daemon.stop()
        shutil.rmtree(str(sockdir), ignore_errors=True)
    if problem:
        raise AssertionError(problem)


@pytest.fixture(scope="module")
def rfpctl(build, rfpd, workdir):
    """fpctl for the restricted fpd, alone in its directory: it cannot start another fpd."""
    bindir = workdir / "service-bin"
    bindir.mkdir(exist_ok=True)
    bindir.chmod(0o755)
    shutil.copy2(str(build / "fpctl"), str(bindir / "fpctl"))
    home = workdir / "service-home"
    home.mkdir(exist_ok=True)
    f = fpdtest.Fpctl(bindir / "fpctl", rfpd, home)
    return f


def status_caps(pid):
    caps = {}
    for line in Path("/proc/%d/status" % pid).read_text().splitlines():
        key, _, value = line.partition(":")
        if key.startswith("Cap"):
            caps[key] = int(value.strip(), 16)
    return caps


def test_fpd_holds_exactly_the_unit_set(rfpd, unit_caps):
    bounding, ambient, _ = unit_caps
    caps = status_caps(rfpd.proc.pid)
    assert caps["CapBnd"] == caps["CapPrm"] == caps["CapEff"] == cap_mask(bounding), caps
    assert caps["CapAmb"] == cap_mask(ambient), caps
    status = Path("/proc/%d/status" % rfpd.proc.pid).read_text()
    assert re.search(r"^NoNewPrivs:\s+1$", status, re.M), status
    assert re.search(r"^Uid:\s+0\s+0\s+0\s+0$", status, re.M), status
    # The sandbox's stand-in is in place: a private /tmp and a read-only root.
    mounts = {}
    for line in Path("/proc/%d/mountinfo" % rfpd.proc.pid).read_text().splitlines():
        fields = line.split()
        mounts[fields[4]] = (fields[5], line.split(" - ")[1].split()[1])
    assert mounts["/tmp"][1] == "fpd-private-tmp", mounts.get("/tmp")
    assert mounts["/"][0].split(",")[0] == "ro", mounts["/"]


# --------------------------------------------------------------------------
# Every command, through the restricted fpd

COMBOS = [("root", "root"), ("root", "nobody"), ("nobody", "nobody")]


@pytest.fixture(scope="module", params=COMBOS, ids=["root-client-root-target", "root-client-nobody-target",
                                                  "nobody-client-nobody-target"])
def combo(request, debian_python, workdir):
    """A target of its own for each pair (the commands change it: reload, tt's store)."""
    client, owner = request.param
    uid = NOBODY if client == "nobody" else None
    cwd = workdir / ("service-out-%s-%s" % request.param)
    cwd.mkdir(exist_ok=True)
    if uid is not None:
        os.chown(str(cwd), uid, uid)
    wrapper = as_user(NOBODY, []) if owner == "nobody" else ()
    target = fpdtest.Target(debian_python, "watch_target.py", wrapper=wrapper, logdir=workdir).ready()
    yield {"uid": uid, "target": target, "cwd": cwd}
    target.kill()


@pytest.fixture(scope="module")
def nobodys_target(debian_python, workdir):
    target = fpdtest.Target(debian_python, "watch_target.py", wrapper=as_user(NOBODY, []), logdir=workdir)
    yield target.ready()
    target.kill()


def run(rfpctl, combo, *args, stdin=None, check=True):
    t = combo["target"]
    if stdin is None:
        return rfpctl(*args, user=combo["uid"], cwd=str(combo["cwd"]), check=check)
    cmd = rfpctl.command(list(args), user=combo["uid"])
    r = subprocess.run(cmd, input=stdin.encode(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       cwd=str(combo["cwd"]), env=rfpctl.env(combo["uid"]), timeout=120)
    rfpctl.daemon.check_alive()
    res = fpdtest.Result(r.returncode, r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace"))
    assert not check or res.rc == 0, (t.pid, args, res)
    return res


def check_stack(r, t):
    names = fpdtest.parse_text(r.out).names()
    assert "MainThread" in names and "caller" in names, r.out
    return True


def check_native(r, t):
    assert "(C) File" in r.out, r.out
    return check_stack(r, t)


def check_perf(r, t, cwd):
    m = re.match(r"^Wrote (\d+) samples to perf\.svg", r.out)
    assert m, r.out
    assert "<svg" in (cwd / "perf.svg").read_text()[:2000]


COMMANDS = [
    ("stack", ["stack"], check_stack),
    ("stack --native", ["stack", "--native"], check_native),
    ("stack --locals", ["stack", "--locals"], check_stack),
    ("perf", ["perf", "-d", "1", "--idle", "-f", "perf.svg"], "perf"),
    ("top", ["--timeout", "2", "top"], "top"),
    ("gilstat", ["--timeout", "2.5", "gilstat", "on", "1", "1", "1"], "gilstat"),
    ("getglobal", ["getglobal", "__main__", "PERIOD"], lambda r, t: "VALUE: 0.02" in r.out),
    ("vmtool forceGc", ["vmtool", "-a", "forceGc"],
     lambda r, t: r.out.startswith("Garbage collection done: ")),
    ("module", ["module", None], lambda r, t: r.out == "__main__\n"),
    ("watch", ["watch", "__main__", "add", "-n", "1"], lambda r, t: "method=__main__.add" in r.out),
    ("trace", ["trace", "__main__", "add", "-n", "1", "-i", "0"],
     lambda r, t: re.search(r"thread=adder-\d tid=\d+", r.out)),
    ("tt", ["tt", "-t", "__main__", "add", "-n", "1"],
     lambda r, t: re.search(r"^\s*1\d{3}\s.*\s__main__\s+add\s*$", r.out, re.M)),
    ("mem summary", ["mem", "summary", "--limit", "5"], lambda r, t: "total size" in r.out),
    ("console", ["console"], "console"),
    ("reload", ["reload", "__main__", "add"], "same"),
    ("torch", ["torch", "profile", "__main__", "add"], "torch"),
    ("ps", None, "ps"),
    ("status", None, "status"),
    ("detach", None, "detach"),
]


@pytest.mark.parametrize("name,args,check", COMMANDS, ids=[c[0] for c in COMMANDS])
def test_command(rfpctl, fpctl, combo, name, args, check):
    t = combo["target"]
    if name == "ps":
        r = run(rfpctl, combo, "ps")
        assert re.search(r"^\s*%d\s" % t.pid, r.out, re.M), r.out
    elif name == "status":
        r = run(rfpctl, combo, "status")
        assert r.out.strip(), r
    elif name == "detach":
        run(rfpctl, combo, "detach", t.pid)
        r = run(rfpctl, combo, "attach", t.pid, "getglobal", "__main__", "instrumented", "-e", "target()")
        assert re.search(r"^VALUE: \[\]$", r.out, re.M), r.out
    elif check == "console":
        r = run(rfpctl, combo, "attach", t.pid, "console", stdin="print(6 * 7)\n")
        assert r.out == "42\n", r
    elif check == "same":
        # The file is unchanged: reload compiles it in the target and says so.
        r = run(rfpctl, combo, "attach", t.pid, *args, check=False)
        full = fpctl("attach", t.pid, *args, user=combo["uid"], cwd=str(combo["cwd"]), check=False)
        assert (r.rc, r.out, r.err) == (full.rc, full.out, full.err), (r, full)
        assert "compiles to the code already running" in r.err, r
    elif check == "torch":
        r = run(rfpctl, combo, "attach", t.pid, *args, check=False)
        assert (r.rc, r.err) == (1, "fpctl: torch is not loaded in process %d; torch commands work on "
                                    "processes that use PyTorch\n" % t.pid), r
    elif check in ("top", "gilstat"):
        globals_, rest = args[:2], args[2:]
        r = run(rfpctl, combo, *globals_, "attach", t.pid, *rest, check=False)
        assert r.rc == 1 and r.err.endswith("fpctl: %s: timed out after %s s\n" % (check, args[1])), r
        assert ("%Own" if check == "top" else "GIL probes placed") in r.out, r.out
    else:
        args = [t.script if a is None else a for a in args]
        r = run(rfpctl, combo, "attach", t.pid, *args)
        if check == "perf":
            check_perf(r, t, combo["cwd"])
        elif check:
            assert check(r, t), r.out
    t.ping()


def test_perf_samples_as_unrestricted(rfpctl, fpctl, nobodys_target, tmp_path):
    """The sampler takes the same way (the tick, kallsyms) as with every capability."""
    tmp_path.chmod(0o777)
    t = nobodys_target
    triggers = []
    for f in (fpctl, rfpctl):
        r = f("--json", "attach", t.pid, "perf", "-d", "1", "--idle", "-f", "p.svg", cwd=str(tmp_path))
        ev = [json.loads(line) for line in r.out.splitlines()]
        triggers.append([e.get("trigger") for e in ev if e.get("event") == "profile"])
    assert triggers[0] == triggers[1] and triggers[0][0], triggers

