/*
 * The part of CPython's C API the helper uses, resolved at run time: the
 * helper links no libpython, so one binary serves every CPython 3.6-3.14.
 * Only functions whose signatures did not change across those versions are
 * listed; objects are opaque.
 */
#ifndef FP_AGENT_PYAPI_H
#define FP_AGENT_PYAPI_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

typedef struct _object PyObject;
typedef struct _ts PyThreadState;
typedef int PyGILState_STATE;
typedef PyObject *(*PyCFunction)(PyObject *self, PyObject *args);
typedef ssize_t Py_ssize_t;
typedef struct _frame PyFrameObject;
typedef int (*Py_tracefunc)(PyObject *obj, PyFrameObject *frame, int what, PyObject *arg);

/* Stable since CPython 1.x: the layout of a method table entry. */
struct PyMethodDef {
	const char *ml_name;
	PyCFunction ml_meth;
	int ml_flags;
	const char *ml_doc;
};
#define FP_METH_VARARGS	 0x0001
#define FP_METH_FASTCALL 0x0080 /* PyObject *(*)(PyObject *, PyObject *const *, Py_ssize_t) */
#define FP_PY_FILE_INPUT 257

struct fp_pyapi {
	int (*Py_IsInitialized)(void);
	const char *(*Py_GetVersion)(void);
	PyGILState_STATE (*PyGILState_Ensure)(void);
	void (*PyGILState_Release)(PyGILState_STATE);
	PyThreadState *(*PyEval_SaveThread)(void);
	void (*PyEval_RestoreThread)(PyThreadState *);
	int (*Py_AddPendingCall)(int (*)(void *), void *);
	int (*PyEval_ThreadsInitialized)(void); /* absent from 3.13 on: threads always exist */
	void (*PyEval_InitThreads)(void);
	PyObject *(*PyDict_New)(void);
	int (*PyDict_SetItemString)(PyObject *, const char *, PyObject *);
	PyObject *(*PyDict_GetItemString)(PyObject *, const char *);
	PyObject *(*PyEval_GetBuiltins)(void);
	PyObject *(*Py_CompileString)(const char *, const char *, int);
	PyObject *(*PyEval_EvalCode)(PyObject *, PyObject *, PyObject *);
	PyObject *(*PyCFunction_NewEx)(struct PyMethodDef *, PyObject *, PyObject *);
	int (*PyArg_ParseTuple)(PyObject *, const char *, ...);
	PyObject *(*Py_BuildValue)(const char *, ...);
	PyObject *(*PyObject_CallFunction)(PyObject *, const char *, ...);
	PyObject *(*PyObject_Str)(PyObject *);
	const char *(*PyUnicode_AsUTF8)(PyObject *);
	PyObject *(*PyUnicode_FromString)(const char *);
	PyObject *(*PyLong_FromLong)(long);
	PyObject *(*PyBool_FromLong)(long);
	int (*PyThreadState_SetAsyncExc)(unsigned long, PyObject *);
	PyObject *(*PyErr_Occurred)(void);
	void (*PyErr_Fetch)(PyObject **, PyObject **, PyObject **);
	void (*PyErr_SetString)(PyObject *, const char *);
	void (*PyErr_Clear)(void);
	void (*Py_IncRef)(PyObject *);
	void (*Py_DecRef)(PyObject *);
	PyObject *Py_None;
	PyObject *PyExc_OSError;

	/* trace (agent/trace.c) */
	void (*PyEval_SetProfile)(Py_tracefunc, PyObject *);
	PyFrameObject *(*PyEval_GetFrame)(void);
	PyThreadState *(*PyThreadState_Get)(void);
	unsigned long (*PyType_GetFlags)(PyObject *);
	int (*PyType_IsSubtype)(PyObject *, PyObject *);
	PyObject *(*PyList_New)(Py_ssize_t);
	int (*PyList_Append)(PyObject *, PyObject *);
	PyObject *(*PyLong_FromVoidPtr)(void *);
	void *(*PyLong_AsVoidPtr)(PyObject *);
	PyObject *(*PyErr_NoMemory)(void);
	PyObject *(*PyObject_GetAttrString)(PyObject *, const char *);
	long (*PyLong_AsLong)(PyObject *);
	Py_ssize_t (*PyTuple_Size)(PyObject *);
	PyObject *(*PyTuple_GetItem)(PyObject *, Py_ssize_t);
	PyObject *(*PyFrame_GetCode)(PyFrameObject *); /* 3.9+, else NULL */
	PyObject *PyExc_RuntimeError;
	PyObject *PyCFunction_Type;
	PyObject *PyCMethod_Type; /* 3.9+, else NULL */
	PyObject *PyMethodDescr_Type;
	PyObject *PyModule_Type;
	PyObject *PyCode_Type;
};

/*
 * Resolves the API in this process: dlsym(RTLD_DEFAULT) finds the symbols of
 * a static interpreter (built with -export-dynamic) and of a libpython loaded
 * globally; an embedder that loaded libpython RTLD_LOCAL is reached through
 * dlopen(RTLD_NOLOAD) of the libpython named in /proc/self/maps, which never
 * loads a second copy.  Returns the table, or NULL with why (one line).
 */
const struct fp_pyapi *fp_pyapi_load(char *why, size_t len);

#endif
