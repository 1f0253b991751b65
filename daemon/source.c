/*
 * Source lines for tracebacks, read the way the requesting user could read
 * them: through /proc/PID/root (the target's mount namespace) and with the
 * requester's filesystem uid/gid, so that a user cannot make fpd (root) show
 * lines of files that user may not read by naming them in a code object.
 */
#include "source.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "proc.h"

/* Source files above this size are not shown (generated code, data files). */
#define SOURCE_MAX_BYTES (16u << 20)
#define SOURCE_MAX_FILES 256

struct source_file {
	char *name;
	char *text; /* NULL when unreadable */
	size_t len;
	uint32_t *lines; /* offsets of line starts */
	size_t nlines;
};

struct fp_sources {
	pid_t pid;
	uid_t uid;
	gid_t gid;
	struct source_file files[SOURCE_MAX_FILES];
	size_t n;
	char line[512];
};

struct fp_sources *fp_sources_new(pid_t pid, uid_t uid, gid_t gid)
{
	struct fp_sources *s = calloc(1, sizeof(*s));
	if (s) {
		s->pid = pid;
		s->uid = uid;
		s->gid = gid;
	}
	return s;
}

void fp_sources_free(struct fp_sources *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n; i++) {
		free(s->files[i].name);
		free(s->files[i].text);
		free(s->files[i].lines);
	}
	free(s);
}

/*
 * setfsuid/setfsgid act on the calling thread only (the raw system calls do;
 * glibc does not broadcast them), which is what a multi-threaded daemon needs.
 */
static int open_as(const char *path, uid_t uid, gid_t gid)
{
	if (uid == 0)
		return open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	syscall(SYS_setfsgid, gid);
	syscall(SYS_setfsuid, uid);
	/*
	 * Both calls answer with the previous value, even when they fail (no
	 * CAP_SETUID/CAP_SETGID): asking again tells whether they took effect.
	 * If not, the file is not read at all rather than read as root.
	 */
	int fd = -1, err = EPERM;
	if ((uid_t)syscall(SYS_setfsuid, uid) == uid && (gid_t)syscall(SYS_setfsgid, gid) == gid) {
		fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
		err = errno;
	}
	syscall(SYS_setfsuid, 0);
	syscall(SYS_setfsgid, 0);
	errno = err;
	return fd;
}

static void load(struct fp_sources *s, struct source_file *f)
{
	if (f->name[0] != '/')
		return; /* "<string>", "<frozen ...>", relative paths: nothing to read */
	char path[PATH_MAX + 64];
	fp_proc_path(s->pid, f->name, path, sizeof(path));
	int fd = open_as(path, s->uid, s->gid);
	if (fd < 0)
		return;
	struct stat st;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > SOURCE_MAX_BYTES) {
		close(fd);
		return;
	}
	f->text = malloc((size_t)st.st_size + 1);
	if (f->text) {
		ssize_t n = pread(fd, f->text, (size_t)st.st_size, 0);
		f->len = n > 0 ? (size_t)n : 0;
		f->text[f->len] = '\0';
	}
	close(fd);
	if (!f->text)
		return;
	size_t cap = 256;
	f->lines = malloc(cap * sizeof(*f->lines));
	if (!f->lines)
		return;
	f->lines[f->nlines++] = 0;
	for (size_t i = 0; i < f->len; i++) {
		if (f->text[i] != '\n' || i + 1 >= f->len)
			continue;
		if (f->nlines == cap) {
			uint32_t *nl = realloc(f->lines, cap * 2 * sizeof(*nl));
			if (!nl)
				return;
			f->lines = nl;
			cap *= 2;
		}
		f->lines[f->nlines++] = (uint32_t)(i + 1);
	}
}

const char *fp_sources_line(struct fp_sources *s, const char *file, int line)
{
	if (!s || !file || line <= 0)
		return NULL;
	struct source_file *f = NULL;
	for (size_t i = 0; i < s->n && !f; i++)
		if (strcmp(s->files[i].name, file) == 0)
			f = &s->files[i];
	if (!f) {
		if (s->n == SOURCE_MAX_FILES)
			return NULL;
		f = &s->files[s->n];
		f->name = strdup(file);
		if (!f->name)
			return NULL;
		s->n++;
		load(s, f);
	}
	if (!f->text || !f->lines || (size_t)line > f->nlines)
		return NULL;
	const char *p = f->text + f->lines[line - 1];
	const char *end = f->text + f->len;
	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	size_t n = 0;
	while (p + n < end && p[n] != '\n' && p[n] != '\r')
		n++;
	while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
		n--;
	if (n >= sizeof(s->line))
		n = sizeof(s->line) - 1;
	memcpy(s->line, p, n);
	s->line[n] = '\0';
	return s->line;
}
