/*
 * The C half of instrument.py's sys.monitoring path (CPython 3.12+): the
 * callbacks of the exception events, which cannot be local to the
 * instrumented code objects.  See agent/instrument.c.
 */
#ifndef FP_AGENT_INSTRUMENT_H
#define FP_AGENT_INSTRUMENT_H

#include "pyapi.h"

/* The functions the embedded Python calls (agent.c puts them into its namespace). */
PyObject *fp_instr_codes(PyObject *self, PyObject *const *args, Py_ssize_t n);
PyObject *fp_instr_unwind(PyObject *self, PyObject *const *args, Py_ssize_t n);
PyObject *fp_instr_throw(PyObject *self, PyObject *const *args, Py_ssize_t n);

#endif
