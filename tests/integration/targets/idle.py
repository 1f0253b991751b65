"""Only the main thread, waiting for pings."""

import fptarget as fpt

fpt.serve()
