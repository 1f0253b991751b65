/*
 * PY_UNWIND (a frame left by an exception) and PY_THROW (an exception
 * thrown into a suspended generator) cannot be sys.monitoring local events:
 * instrument.py has to set them for every frame of the process while
 * anything is instrumented.  A Python callback would then cost every
 * exception that leaves any frame of the application a Python call
 * (100-250 ns a frame); these C callbacks let the events of code objects
 * nobody instruments go at the price of a few pointer comparisons, and call
 * the Python handlers only for the instrumented ones.
 *
 * Everything runs with the GIL held: instrument.py sets the list, CPython
 * calls the callbacks.
 */
#include "instrument.h"

#include <stdlib.h>

static const struct fp_pyapi *py;
/* The instrumented code objects (strong references) and the Python handlers. */
static PyObject **g_codes;
static Py_ssize_t g_ncodes;
static PyObject *g_unwind, *g_throw;

static PyObject *none(void)
{
	py->Py_IncRef(py->Py_None);
	return py->Py_None;
}

static void clear(void)
{
	for (Py_ssize_t i = 0; i < g_ncodes; i++)
		py->Py_DecRef(g_codes[i]);
	free(g_codes);
	g_codes = NULL;
	g_ncodes = 0;
	if (g_unwind)
		py->Py_DecRef(g_unwind);
	if (g_throw)
		py->Py_DecRef(g_throw);
	g_unwind = g_throw = NULL;
}

/*
 * _fp_instr_codes(unwind, throw, code, ...): from now on _fp_instr_unwind
 * and _fp_instr_throw call unwind(code, offset, exc) and throw(code,
 * offset, exc) for these code objects only; with no code, for none.
 */
PyObject *fp_instr_codes(PyObject *self, PyObject *const *args, Py_ssize_t n)
{
	(void)self;
	if (!py) {
		/* Loaded already: agent.c runs no Python without it. */
		char why[200];
		py = fp_pyapi_load(why, sizeof(why));
	}
	if (n < 2) {
		py->PyErr_SetString(py->PyExc_RuntimeError,
				    "_fp_instr_codes(unwind, throw, code, ...)");
		return NULL;
	}
	PyObject **codes = n > 2 ? calloc((size_t)(n - 2), sizeof(*codes)) : NULL;
	if (n > 2 && !codes)
		return py->PyErr_NoMemory();
	clear();
	for (Py_ssize_t i = 2; i < n; i++) {
		py->Py_IncRef(args[i]);
		codes[i - 2] = args[i];
	}
	g_codes = codes;
	g_ncodes = n - 2;
	py->Py_IncRef(args[0]);
	py->Py_IncRef(args[1]);
	g_unwind = args[0];
	g_throw = args[1];
	return none();
}

/* instrument.py registers these callbacks only after its first _fp_instr_codes. */
static PyObject *forward(PyObject *handler, PyObject *const *args, Py_ssize_t n)
{
	if (n == 3 && handler)
		for (Py_ssize_t i = 0; i < g_ncodes; i++)
			if (g_codes[i] == args[0])
				return py->PyObject_CallFunction(handler, "OOO", args[0], args[1],
								 args[2]);
	return none();
}

/* PY_UNWIND callback (code, offset, exception). */
PyObject *fp_instr_unwind(PyObject *self, PyObject *const *args, Py_ssize_t n)
{
	(void)self;
	return forward(g_unwind, args, n);
}

/* PY_THROW callback (code, offset, exception). */
PyObject *fp_instr_throw(PyObject *self, PyObject *const *args, Py_ssize_t n)
{
	(void)self;
	return forward(g_throw, args, n);
}
