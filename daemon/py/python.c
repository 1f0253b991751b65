/*
 * Finding the interpreter inside a live process from its mappings and ELF
 * files: which binary holds the runtime (libpython or a static executable),
 * its load bias, the address of _PyRuntime and the exact version, and so the
 * layout to read it with.
 */
#include "python.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../elf.h"
#include "../proc.h"
#include "object.h"

static const char *base_name(const char *path)
{
	const char *s = strrchr(path, '/');
	return s ? s + 1 : path;
}

static bool is_libpython(const char *path)
{
	return strncmp(base_name(path), "libpython3", 10) == 0;
}

/* "libpython3.9.so.1.0" or "python3.9" -> 3, 9. */
static bool version_from_name(const char *path, int *major, int *minor)
{
	const char *b = strstr(base_name(path), "python");
	if (!b)
		return false;
	return sscanf(b, "python%d.%d", major, minor) == 2 && *major == 3;
}

/*
 * The PY_VERSION literal ("3.9.18") in .rodata: how Py_GetVersion() builds
 * its answer on versions without the Py_Version symbol (< 3.11), so every
 * build has it.  The linker may merge it into the tail of a longer string
 * (pyenv's prefix "/root/.pyenv/versions/3.9.18"), so it is matched as a
 * NUL-terminated tail preceded by anything but a digit or a dot.  When the
 * file name gave major.minor already, only that version is accepted.
 */
static bool version_from_rodata(struct fp_elf *e, int *major, int *minor, int *micro)
{
	uint64_t off, size;
	bool found = false;
	if (fp_elf_section(e, ".rodata", NULL, &off, &size) == 0 && size < (64u << 20)) {
		char *buf = malloc(size + 1);
		if (buf && pread(fp_elf_fd(e), buf, size, (off_t)off) == (ssize_t)size) {
			buf[size] = '\0';
			for (size_t i = 1; i + 6 < size && !found; i++) {
				char prev = buf[i - 1];
				if (buf[i] != '3' || buf[i + 1] != '.' || prev == '.' ||
				    isdigit((unsigned char)prev))
					continue;
				int a, b, c, n = 0;
				if (sscanf(buf + i, "%d.%d.%d%n", &a, &b, &c, &n) != 3 || b < 6 ||
				    b >= 40 || c >= 100 || n <= 0 || buf[i + (size_t)n] != '\0')
					continue;
				if (*major && (a != *major || b != *minor))
					continue;
				*major = a;
				*minor = b;
				*micro = c;
				found = true;
			}
		}
		free(buf);
	}
	return found;
}

/* Offset of tid inside glibc's struct pthread, from libthread_db's descriptor. */
static uint32_t pthread_tid_offset(pid_t pid, const struct fp_maps *maps)
{
	for (size_t i = 0; i < maps->n; i++) {
		const struct fp_map *m = &maps->v[i];
		if (!m->path || m->offset != 0 || strncmp(base_name(m->path), "libc", 4) != 0)
			continue;
		const char *b = base_name(m->path);
		if (strncmp(b, "libc.so", 7) != 0 && strncmp(b, "libc-", 5) != 0)
			continue;
		struct fp_elf *e = fp_elf_open_mapped(pid, m);
		if (!e)
			continue;
		uint64_t v;
		uint32_t desc[3]; /* size in bits, count, offset */
		uint32_t off = 0;
		if (fp_elf_sym(e, "_thread_db_pthread_tid", &v, NULL) == 0 &&
		    fp_elf_read_vaddr(e, v, desc, sizeof(desc)) == 0 && desc[0] == 32)
			off = desc[2];
		fp_elf_close(e);
		if (off)
			return off;
	}
	return 0;
}

static int set_err(char *err, size_t errlen, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int set_err(char *err, size_t errlen, int rc, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return rc;
}

/* Looks for the runtime symbols in one binary; true when it is the interpreter. */
static bool find_runtime(struct fp_elf *e, uint64_t *runtime, bool *is36)
{
	uint64_t v;
	if (fp_elf_sym(e, "_PyRuntime", &v, NULL) == 0) {
		*runtime = v;
		*is36 = false;
		return true;
	}
	/* 3.6 has no _PyRuntime; its interpreter list starts at the static interp_head. */
	if (fp_elf_sym(e, "interp_head", &v, NULL) == 0) {
		*runtime = v;
		*is36 = true;
		return true;
	}
	return false;
}

int fp_python_discover(pid_t pid, struct fp_python *py, char *err, size_t errlen)
{
	memset(py, 0, sizeof(*py));
	py->pid = pid;
	struct fp_proc_info info;
	int rc = fp_proc_info(pid, &info);
	if (rc == -ENOENT)
		return set_err(err, errlen, FP_PY_NO_PROCESS, "no process with pid %d", (int)pid);
	if (rc < 0)
		return set_err(err, errlen, FP_PY_NO_ACCESS, "cannot read /proc/%d/status: %s",
			       (int)pid, strerror(-rc));
	if (info.state == 'Z' || info.state == 'X')
		return set_err(
		    err, errlen, FP_PY_ZOMBIE,
		    "process %d is a zombie (it has exited and its parent has not reaped "
		    "it yet); nothing to inspect",
		    (int)pid);

	struct fp_maps maps;
	rc = fp_maps_read(pid, &maps);
	if (rc == -ENOENT || rc == -ESRCH)
		return set_err(err, errlen, FP_PY_NO_PROCESS, "no process with pid %d", (int)pid);
	if (rc < 0)
		return set_err(err, errlen, FP_PY_NO_ACCESS, "cannot read /proc/%d/maps: %s",
			       (int)pid, strerror(-rc));
	if (maps.n == 0) {
		fp_maps_free(&maps);
		return set_err(err, errlen, FP_PY_NOT_PYTHON,
			       "process %d has no memory mappings (a kernel thread?); it is not a "
			       "Python process",
			       (int)pid);
	}

	/*
	 * libpython first (an embedding or pyenv-style shared build), then the
	 * main executable (static builds such as Debian's /usr/bin/python3.X).
	 */
	const struct fp_map *found = NULL;
	struct fp_elf *elf = NULL;
	uint64_t runtime_sym = 0;
	bool is36 = false;
	for (int pass = 0; pass < 2 && !found; pass++) {
		for (size_t i = 0; i < maps.n && !found; i++) {
			const struct fp_map *m = &maps.v[i];
			if (!m->path || m->path[0] != '/' || m->offset != 0)
				continue;
			bool want =
			    pass == 0 ? is_libpython(m->path) : strcmp(m->path, info.exe) == 0;
			if (!want)
				continue;
			elf = fp_elf_open_mapped(pid, m);
			if (!elf)
				continue;
			if (find_runtime(elf, &runtime_sym, &is36))
				found = m;
			else
				fp_elf_close(elf);
		}
	}
	if (!found) {
		fp_maps_free(&maps);
		return set_err(err, errlen, FP_PY_NOT_PYTHON,
			       "process %d (%s) is not a Python process: neither libpython nor its "
			       "executable has the CPython runtime symbols",
			       (int)pid, info.comm);
	}

	snprintf(py->binary, sizeof(py->binary), "%s", found->path);
	py->shared = is_libpython(found->path);
	py->stripped = !fp_elf_has_symtab(elf);
	py->dtrace = fp_elf_has_stapsdt(elf);
	py->bias = fp_elf_is_pie(elf) ? found->start - fp_elf_first_load(elf) : 0;
	py->runtime = py->bias + runtime_sym;

	struct fp_mem_proc mp;
	struct fp_mem mem;
	fp_mem_proc_init(&mem, &mp, pid);

	uint64_t sym;
	uint32_t hexver = 0;
	if (fp_elf_sym(elf, "Py_Version", &sym, NULL) == 0 &&
	    fp_mem_read(&mem, py->bias + sym, &hexver, sizeof(hexver)) == 0 && hexver) {
		py->major = (int)(hexver >> 24);
		py->minor = (int)((hexver >> 16) & 0xff);
		py->micro = (int)((hexver >> 8) & 0xff);
	} else {
		int ma = 0, mi = 0, mc = -1;
		bool named = version_from_name(found->path, &ma, &mi);
		if (!version_from_rodata(elf, &ma, &mi, &mc) && !named) {
			rc = set_err(err, errlen, FP_PY_UNSUPPORTED,
				     "process %d: cannot tell the CPython version of %s", (int)pid,
				     found->path);
			goto out;
		}
		py->major = ma;
		py->minor = mi;
		py->micro = mc;
	}
	if (py->micro >= 0)
		snprintf(py->version, sizeof(py->version), "%d.%d.%d", py->major, py->minor,
			 py->micro);
	else
		snprintf(py->version, sizeof(py->version), "%d.%d", py->major, py->minor);

	if (py->major == 3 && py->minor >= 13) {
		uint8_t dbg[FP_DEBUG_OFFSETS_SIZE];
		char why[256] = "";
		if (fp_mem_read(&mem, py->runtime, dbg, sizeof(dbg)) != 0) {
			rc = set_err(err, errlen, FP_PY_NO_ACCESS,
				     "process %d: reading _Py_DebugOffsets at 0x%llx failed",
				     (int)pid, (unsigned long long)py->runtime);
			goto out;
		}
		if (fp_layout_from_debug_offsets(dbg, sizeof(dbg), &py->layout, why, sizeof(why))) {
			rc = set_err(err, errlen, FP_PY_UNSUPPORTED,
				     "process %d: Python %s is not supported: %s", (int)pid,
				     py->version, why);
			goto out;
		}
	} else {
		const struct fp_layout *l = fp_layout_for(py->major, py->minor);
		if (!l) {
			rc = set_err(err, errlen, FP_PY_UNSUPPORTED,
				     "process %d runs Python %s, which fpd does not support "
				     "(supported: 3.6 to 3.13)",
				     (int)pid, py->version);
			goto out;
		}
		py->layout = *l;
	}

	if (is36) {
		if (fp_elf_sym(elf, "gil_last_holder", &sym, NULL) == 0)
			py->gil_last_holder = py->bias + sym;
		if (fp_elf_sym(elf, "gil_locked", &sym, NULL) == 0)
			py->gil_locked = py->bias + sym;
		/* 3.6 keeps the GIL's condition variables in statics next to each other. */
		uint64_t lo = 0, hi = 0, sz = 0;
		static const char *const parts[] = {"gil_cond", "gil_mutex", "switch_cond",
						    "switch_mutex"};
		for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
			if (fp_elf_sym(elf, parts[i], &sym, &sz) != 0)
				continue;
			if (!lo || sym < lo)
				lo = sym;
			if (sym + sz > hi)
				hi = sym + sz;
		}
		if (lo) {
			py->gil = py->bias + lo;
			py->layout.gil_size = (int32_t)(hi - lo);
		}
	} else if (py->layout.runtime_gil != FP_NO_FIELD) {
		py->gil = py->runtime + (uint64_t)py->layout.runtime_gil;
	}
	if (fp_elf_sym(elf, "PyCode_Type", &sym, NULL) == 0)
		py->code_type = py->bias + sym;
	if (py->layout.ts_native_thread_id == FP_NO_FIELD)
		py->pthread_tid_off = pthread_tid_offset(pid, &maps);

	uint64_t head = 0;
	if (fp_mem_read_u64(&mem, py->runtime + (uint64_t)py->layout.runtime_interpreters_head,
			    &head) != 0) {
		rc = set_err(err, errlen, FP_PY_NO_ACCESS,
			     "process %d: reading the interpreter list at 0x%llx failed", (int)pid,
			     (unsigned long long)py->runtime);
		goto out;
	}
	if (!head) {
		rc = set_err(err, errlen, FP_PY_NOT_READY,
			     "process %d: the Python interpreter is not initialised (starting up "
			     "or shutting down); try again",
			     (int)pid);
		goto out;
	}
	rc = FP_PY_OK;
out:
	fp_mem_proc_close(&mp);
	fp_elf_close(elf);
	fp_maps_free(&maps);
	return rc;
}

/* threading._limbo and threading._active */

#define THREADS_MAX 4096

struct thread_walk {
	const struct fp_pyctx *c;
	fp_py_thread_fn fn;
	void *arg;
	size_t items; /* entries of the dict seen */
};

/* One Thread object; one that is half made (no ident yet, no name) is skipped. */
static int thread_item(void *arg, uint64_t key, uint64_t thread)
{
	(void)key;
	struct thread_walk *w = arg;
	w->items++;
	int64_t ident, native_id = 0;
	uint64_t obj;
	char name[64];
	if (fp_py_getattr(w->c, thread, "_ident", &obj) < 0 || !obj ||
	    fp_py_long(w->c, obj, &ident) < 0 || ident == 0 ||
	    fp_py_getattr(w->c, thread, "_name", &obj) < 0 || !obj ||
	    fp_py_str(w->c, obj, name, sizeof(name)) < 0)
		return 0;
	/* None until the thread asked the kernel, and absent before 3.8. */
	if (fp_py_getattr(w->c, thread, "_native_id", &obj) < 0 || !obj ||
	    fp_py_long(w->c, obj, &native_id) < 0)
		native_id = 0;
	w->fn(w->arg, (uint64_t)ident, native_id, name);
	return 0;
}

int fp_py_threads(const struct fp_pyctx *c, uint64_t interp, fp_py_thread_fn fn, void *arg)
{
	const struct fp_layout *l = c->l;
	uint64_t modules, mod, md_dict, dict;
	int r;
	if (l->interp_modules == FP_NO_FIELD || l->module_dict == FP_NO_FIELD)
		return -ENOTSUP;
	if ((r = fp_mem_read_u64(c->mem, interp + (uint64_t)l->interp_modules, &modules)) < 0 ||
	    (r = fp_py_dict_get_str(c, modules, "threading", &mod)) < 0)
		return r;
	if (!mod)
		return 0;
	char tn[16];
	if ((r = fp_py_type_name(c, mod, tn, sizeof(tn))) < 0)
		return r;
	if (strcmp(tn, "module") != 0)
		return -EINVAL;
	if ((r = fp_mem_read_u64(c->mem, mod + (uint64_t)l->module_dict, &md_dict)) < 0)
		return r;
	struct thread_walk w = {c, fn, arg, 0};
	/*
	 * _limbo first: a thread moves into _active before it leaves _limbo, so
	 * in this order a thread moving meanwhile is found in one or the other.
	 */
	static const char *const dicts[] = {"_limbo", "_active"};
	for (size_t i = 0; i < sizeof(dicts) / sizeof(dicts[0]); i++) {
		int64_t used;
		if ((r = fp_py_dict_get_str(c, md_dict, dicts[i], &dict)) < 0)
			return r;
		if (!dict)
			continue;
		if ((r = fp_mem_read(c->mem, dict + (uint64_t)l->dict_used, &used, sizeof(used))) <
			0 ||
		    (r = fp_py_dict_foreach(c, dict, THREADS_MAX, thread_item, &w)) < 0)
			return r;
		/*
		 * Entries fewer than the dict's count: its table was replaced (a
		 * resize) and the old one freed as we read it, which reads as
		 * nothing rather than as an error.
		 */
		if (used <= THREADS_MAX && w.items != (size_t)used)
			return -EAGAIN;
		w.items = 0;
	}
	return 0;
}
