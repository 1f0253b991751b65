/*
 * The C half of `trace` (agent/py/trace.py is the other): a profile hook
 * that follows one traced call in the thread running it and aggregates the
 * calls made inside into a tree while they happen.  See agent/trace.c.
 */
#ifndef FP_AGENT_TRACE_H
#define FP_AGENT_TRACE_H

#include "pyapi.h"

/*
 * The functions the embedded Python calls (agent.c puts them into its
 * namespace); what each takes and returns is in the comment above it in
 * trace.c and in agent/py/trace.py.
 */
PyObject *fp_trace_start(PyObject *self, PyObject *args);
PyObject *fp_trace_stop(PyObject *self, PyObject *args);
PyObject *fp_trace_collect(PyObject *self, PyObject *args);
PyObject *fp_trace_release(PyObject *self, PyObject *args);
PyObject *fp_trace_pause(PyObject *self, PyObject *args);
PyObject *fp_trace_resume(PyObject *self, PyObject *args);
PyObject *fp_trace_selftest(PyObject *self, PyObject *args);
PyObject *fp_trace_monitor_callbacks(PyObject *self, PyObject *args);

#endif
