/*
 * CPython's C API, found at run time (see pyapi.h).
 */
#include "pyapi.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

static struct fp_pyapi api;
static bool loaded;
static char load_error[200];
static pthread_once_t once = PTHREAD_ONCE_INIT;
static void *libpython;

/* The libpython this process mapped, reopened without loading anything new. */
static void *find_libpython(void)
{
	FILE *f = fopen("/proc/self/maps", "re");
	char line[4096];
	void *h = NULL;
	while (f && !h && fgets(line, sizeof(line), f)) {
		char *path = strchr(line, '/');
		if (!path || !strstr(path, "/libpython"))
			continue;
		path[strcspn(path, "\n")] = '\0';
		h = dlopen(path, RTLD_LAZY | RTLD_NOLOAD);
	}
	if (f)
		fclose(f);
	return h;
}

static void *sym(const char *name)
{
	void *p = dlsym(RTLD_DEFAULT, name);
	if (!p && libpython)
		p = dlsym(libpython, name);
	return p;
}

static void load(void)
{
	if (!dlsym(RTLD_DEFAULT, "Py_IsInitialized"))
		libpython = find_libpython();
#define REQ(n)                                                                                     \
	do {                                                                                       \
		*(void **)&api.n = sym(#n);                                                        \
		if (!api.n) {                                                                      \
			snprintf(load_error, sizeof(load_error),                                   \
				 "the Python C API function " #n                                   \
				 " is not exported by this process");                              \
			return;                                                                    \
		}                                                                                  \
	} while (0)
	REQ(Py_IsInitialized);
	REQ(Py_GetVersion);
	REQ(PyGILState_Ensure);
	REQ(PyGILState_Release);
	REQ(PyEval_SaveThread);
	REQ(PyEval_RestoreThread);
	REQ(Py_AddPendingCall);
	REQ(PyDict_New);
	REQ(PyDict_SetItemString);
	REQ(PyDict_GetItemString);
	REQ(PyEval_GetBuiltins);
	REQ(Py_CompileString);
	REQ(PyEval_EvalCode);
	REQ(PyCFunction_NewEx);
	REQ(PyArg_ParseTuple);
	REQ(Py_BuildValue);
	REQ(PyObject_CallFunction);
	REQ(PyObject_Str);
	REQ(PyUnicode_AsUTF8);
	REQ(PyUnicode_FromString);
	REQ(PyLong_FromLong);
	REQ(PyBool_FromLong);
	REQ(PyThreadState_SetAsyncExc);
	REQ(PyErr_Occurred);
	REQ(PyErr_Fetch);
	REQ(PyErr_SetString);
	REQ(PyErr_Clear);
	REQ(Py_IncRef);
	REQ(Py_DecRef);
	REQ(PyEval_SetProfile);
	REQ(PyEval_GetFrame);
	REQ(PyThreadState_Get);
	REQ(PyType_GetFlags);
	REQ(PyType_IsSubtype);
	REQ(PyList_New);
	REQ(PyList_Append);
	REQ(PyLong_FromVoidPtr);
	REQ(PyLong_AsVoidPtr);
	REQ(PyErr_NoMemory);
	REQ(PyObject_GetAttrString);
	REQ(PyLong_AsLong);
	REQ(PyTuple_Size);
	REQ(PyTuple_GetItem);
#undef REQ
	*(void **)&api.PyEval_ThreadsInitialized = sym("PyEval_ThreadsInitialized");
	*(void **)&api.PyEval_InitThreads = sym("PyEval_InitThreads");
	api.Py_None = sym("_Py_NoneStruct");
	PyObject **oserror = sym("PyExc_OSError");
	if (!api.Py_None || !oserror) {
		snprintf(load_error, sizeof(load_error),
			 "the Python objects None/OSError are not exported by this process");
		return;
	}
	api.PyExc_OSError = *oserror;
	*(void **)&api.PyFrame_GetCode = sym("PyFrame_GetCode");
	PyObject **runtime_error = sym("PyExc_RuntimeError");
	api.PyCFunction_Type = sym("PyCFunction_Type");
	api.PyCMethod_Type = sym("PyCMethod_Type");
	api.PyMethodDescr_Type = sym("PyMethodDescr_Type");
	api.PyModule_Type = sym("PyModule_Type");
	api.PyCode_Type = sym("PyCode_Type");
	if (!runtime_error || !api.PyCFunction_Type || !api.PyMethodDescr_Type ||
	    !api.PyModule_Type || !api.PyCode_Type) {
		snprintf(load_error, sizeof(load_error),
			 "the Python types and exceptions trace needs are not exported by this "
			 "process");
		return;
	}
	api.PyExc_RuntimeError = *runtime_error;
	loaded = true;
}

const struct fp_pyapi *fp_pyapi_load(char *why, size_t len)
{
	pthread_once(&once, load);
	if (!loaded) {
		snprintf(why, len, "%s", load_error[0] ? load_error : "no Python in this process");
		return NULL;
	}
	return &api;
}
