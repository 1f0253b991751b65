"""The helper session's directory and socket against a hostile target user
(SPEC §5: fpd never creates, chowns, chmods, opens or removes anything by a
path through a directory another user can write; issue 10 item 2).

The target runs as nobody and nobody drives fpctl, while racer processes,
also nobody, do every swap they can in the target's /tmp, /var/tmp and
/dev/shm: session entries replaced by symlinks to root-owned victim files,
session directories renamed away, symlinks planted inside them, decoy
names made ahead.  Afterwards every victim must still be root's, with its
mode and content, every attach must have worked, and every session
directory a racer saw must have been root's and closed to others.  A second
target lives in a chroot whose /tmp is an absolute symlink to a host
directory: the session must land inside that root, never in the host's
directory.
"""

import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

import fpdtest
from fpdtest import NOBODY, as_user, clean_env, spawn, stop, wait_for

RACE_SECONDS = 20
MIN_ATTACHES = 30
RACERS = 4

# Run as nobody: every swap it can think of, as fast as it can, for argv[1]
# seconds; then one JSON line of what it saw and what worked.
RACER = r'''
import json, os, random, shutil, stat, sys, time
duration, victims, bases = float(sys.argv[1]), sys.argv[2].split(","), sys.argv[3].split(",")
me = "%d-%d" % (os.getpid(), random.randrange(1 << 30))
dirs, worked, planted = {}, 0, []

def attempt(fn, *args):
    global worked
    try:
        fn(*args)
        worked += 1
        return True
    except OSError:
        return False

def plant(path):
    # path becomes a symlink to a victim, replacing whatever is there.
    tmp = "%s.%s" % (path, me)
    try:
        os.symlink(random.choice(victims), tmp)
    except OSError:
        return
    if attempt(os.rename, tmp, path):
        planted.append(path)
    else:
        try:
            os.unlink(tmp)
        except OSError:
            planted.append(tmp)

def swap_socket(d):
    # Where it can write: a symlink ready, swapped in the moment the socket appears.
    tmp = os.path.join(d, ".x" + me)
    if not attempt(os.symlink, random.choice(victims), tmp):
        return
    planted.append(tmp)
    sock = os.path.join(d, "s")
    give_up = time.monotonic() + 0.5
    while time.monotonic() < give_up:
        try:
            if stat.S_ISSOCK(os.lstat(sock).st_mode):
                os.rename(tmp, sock)
                planted.append(sock)
                return
        except OSError:
            pass

# Names made ahead, in case fpd ever picks a guessable one.
for base in bases:
    for i in range(3):
        name = os.path.join(base, ".fpd-decoy-%s-%d" % (me, i))
        if attempt(os.symlink, random.choice(victims), name):
            planted.append(name)

end = time.monotonic() + duration
while time.monotonic() < end:
    for base in bases:
        try:
            names = [n for n in os.listdir(base) if n.startswith(".fpd-")
                     and not n.startswith(".fpd-decoy") and "." not in n[5:]]
        except OSError:
            continue
        for n in names:
            d = os.path.join(base, n)
            try:
                st = os.lstat(d)
            except OSError:
                continue
            if not stat.S_ISDIR(st.st_mode):
                continue  # a racer's own symlink, where a session was
            if d not in dirs:
                dirs[d] = [st.st_uid, oct(st.st_mode & 0o7777)]
                swap_socket(d)
            for inner in ("s", "libfpagent.so", "fpd-attach.py", "pep768.err"):
                attempt(os.unlink, os.path.join(d, inner))
                plant(os.path.join(d, inner))
            attempt(os.chmod, d, 0o777)
            if attempt(os.rename, d, d + ".moved"):
                planted.append(d + ".moved")
            plant(d)
for name in planted:
    try:
        if os.path.isdir(name) and not os.path.islink(name):
            shutil.rmtree(name)
        else:
            os.unlink(name)
    except OSError:
        pass
print(json.dumps({"dirs": dirs, "worked": worked}))
'''


@pytest.fixture
def victims():
    """Root-owned files and a directory nobody may touch, in a private folder
    (a symlink may name them all the same); their owner, mode and content."""
    d = Path(tempfile.mkdtemp(prefix="fpd-race-victims-"))
    files = []
    for i in range(3):
        f = d / ("secret-%d" % i)
        f.write_text("root's secret %d\n" % i)
        os.chmod(str(f), 0o600)
        files.append(f)
    sub = d / "rootdir"
    sub.mkdir()
    os.chmod(str(sub), 0o755)
    yield d, files + [sub]
    shutil.rmtree(str(d), ignore_errors=True)


def snapshot(paths):
    out = {}
    for p in paths:
        st = os.lstat(str(p))
        out[str(p)] = (st.st_uid, st.st_gid, oct(st.st_mode),
                       p.read_text() if p.is_file() else sorted(os.listdir(str(p))))
    return out


def attach_value(fpctl, pid):
    r = fpctl("attach", pid, "getglobal", "__main__", "counter", user=NOBODY, check=False,
              timeout=60)
    ok = r.rc == 0 and r.out.rstrip("\n").split("\n")[-1] == "VALUE: 61"
    return ok, r


def test_swaps_lose(fpctl, debian_python, workdir, victims):
    """Four racers swap what they can while nobody attaches to their own
    process again and again: nothing of root's changes hands."""
    root, paths = victims
    before = snapshot(paths)
    target = fpdtest.Target(debian_python, "values_target.py", wrapper=as_user(NOBODY, []),
                            logdir=workdir).ready()
    bases = [b for b in ("/tmp", "/var/tmp", "/dev/shm") if os.path.isdir(b)]
    racers = [spawn(as_user(NOBODY, [debian_python, "-c", RACER, str(RACE_SECONDS),
                                     ",".join(map(str, paths)), ",".join(bases)]),
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=clean_env())
              for _ in range(RACERS)]
    attaches, failures = 0, []
    try:
        end = time.monotonic() + RACE_SECONDS
        while time.monotonic() < end:
            ok, r = attach_value(fpctl, target.pid)
            attaches += 1
            if not ok:
                failures.append("rc %d: %s%s" % (r.rc, r.out[-300:], r.err[-300:]))
        reports = []
        for p in racers:
            out, err = p.communicate(timeout=RACE_SECONDS + 30)
            assert p.returncode == 0, err.decode(errors="replace")
            reports.append(json.loads(out.decode().strip().splitlines()[-1]))
    finally:
        for p in racers:
            stop(p)
        target.kill()
    assert snapshot(paths) == before, "a victim changed hands"
    assert not failures, "%d of %d attaches failed, first: %s" % (len(failures), attaches,
                                                                failures[0])
    assert attaches >= MIN_ATTACHES, "only %d attaches in %d s" % (attaches, RACE_SECONDS)
    dirs = {}
    for rep in reports:
        dirs.update(rep["dirs"])
    # Proof that the race ran: the racers did find session directories.
    assert dirs, "the racers never saw a session directory in %d attaches" % attaches
    bad = {n: v for n, v in dirs.items() if v[0] != 0 or int(v[1], 8) & 0o7066}
    assert not bad, "session directories not root's or open to others: %s" % bad
    assert not session_leftovers(bases), "session directories left behind"


def session_leftovers(bases):
    """Session directories that stay (other fpds' sessions come and go)."""
    def names():
        out = set()
        for path in (os.path.join(b, n) for b in bases for n in os.listdir(b)
                     if n.startswith(".fpd-")):
            try:
                if os.lstat(path).st_uid == 0:
                    out.add(path)
            except OSError:
                pass
        return out
    first = names()
    if first:
        time.sleep(3)
    return sorted(first & names())


@pytest.fixture
def chroot_target(debian_python, workdir, victims):
    """nobody's Python in a chroot (own mount namespace, /usr bound in) whose
    /tmp is a symlink to the absolute path of a root-owned host directory;
    its /var/tmp is a plain shared one."""
    victim_dir = victims[0] / "rootdir"
    root = Path(tempfile.mkdtemp(prefix="fpd-race-root-"))
    os.chmod(str(root), 0o755)
    for name in ("bin", "lib", "lib64", "sbin"):
        if os.path.islink("/" + name):
            os.symlink(os.readlink("/" + name), str(root / name))
    (root / "usr").mkdir()
    (root / "var" / "tmp").mkdir(parents=True)
    os.chmod(str(root / "var" / "tmp"), 0o1777)
    os.symlink(str(victim_dir), str(root / "tmp"))
    code = "import time\ncounter = 61\nprint('ready', flush=True)\ntime.sleep(600)\n"
    script = 'mount --bind /usr "$0/usr" && exec chroot "$0" "$@"'
    proc = spawn(["unshare", "--mount", "sh", "-c", script, str(root)]
                 + as_user(NOBODY, [debian_python, "-c", code]),
                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=clean_env(PYTHONHASHSEED="0"))
    try:
        line = proc.stdout.readline().decode().strip()
        if line != "ready":
            pytest.skip("cannot run a chrooted target here: %s"
                        % proc.stderr.read().decode(errors="replace").strip())
        wait_for(lambda: os.readlink("/proc/%d/root" % proc.pid) == str(root), 10,
                 "the target to be in its chroot")
        yield proc.pid, victim_dir
    finally:
        stop(proc)
        shutil.rmtree(str(root), ignore_errors=True)


def test_tmp_symlink_out_of_a_chroot(fpctl, chroot_target, victims):
    """The target's /tmp names a host directory by an absolute symlink: fpd
    resolves it inside the target's root (where it leads nowhere) and makes
    the session in the target's /var/tmp; the host directory stays as it was."""
    pid, victim_dir = chroot_target
    before = snapshot(victims[1])
    for _ in range(3):
        ok, r = attach_value(fpctl, pid)
        assert ok, (r.rc, r.out, r.err)
    assert snapshot(victims[1]) == before
    assert os.listdir(str(victim_dir)) == []
