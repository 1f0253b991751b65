"""Maps the CUDA libraries named on the command line (ctypes), as a CUDA
application would before its first CUDA call, then waits for pings."""

import ctypes
import sys

import fptarget as fpt

LIBS = [ctypes.CDLL(path) for path in sys.argv[1:]]
fpt.serve()
