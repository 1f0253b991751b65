"""A root service that read a secret, then dropped to another uid for good
(the way daemons shed privileges): its ids are all that uid's, but the
kernel marks it not dumpable, so that user may not ptrace it.

argv: SECRET_FILE UID.  Keeps the secret in SECRET and the file open as
SECRET_FD, then serves pings as the lower uid.
"""

import os
import sys

import fptarget as fpt

SECRET_FD = os.open(sys.argv[1], os.O_RDONLY)
SECRET = os.read(SECRET_FD, 4096).decode()
uid = int(sys.argv[2])
os.setgroups([])
os.setresgid(uid, uid, uid)
os.setresuid(uid, uid, uid)
fpt.extra(dumpable_dropped=True)
fpt.serve()
