/*
 * /proc readers.  Everything here treats the target as hostile and mortal:
 * files may vanish between two reads and contents may be anything.
 */
#include "proc.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysmacros.h>
#include <unistd.h>

/* Whole small /proc file into a NUL-terminated malloc'd buffer. */
static char *slurp(const char *path, size_t *len_out)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	size_t cap = 4096, len = 0;
	char *buf = malloc(cap);
	while (buf) {
		if (len + 1 >= cap) {
			char *nb = realloc(buf, cap * 2);
			if (!nb) {
				free(buf);
				buf = NULL;
				break;
			}
			buf = nb;
			cap *= 2;
		}
		ssize_t n = read(fd, buf + len, cap - len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n < 0) {
				int e = errno;
				free(buf);
				buf = NULL;
				errno = e;
			}
			break;
		}
		len += (size_t)n;
	}
	int e = errno;
	close(fd);
	errno = e;
	if (buf) {
		buf[len] = '\0';
		if (len_out)
			*len_out = len;
	}
	return buf;
}

static int parse_map_line(const char *line, size_t len, struct fp_map *m)
{
	char tmp[4096 + 256];
	if (len >= sizeof(tmp))
		return -1;
	memcpy(tmp, line, len);
	tmp[len] = '\0';
	unsigned long long start, end, off, inode;
	unsigned int major, minor;
	char perms[8];
	int path_at = -1;
	if (sscanf(tmp, "%llx-%llx %7s %llx %x:%x %llu %n", &start, &end, perms, &off, &major,
		   &minor, &inode, &path_at) < 7)
		return -1;
	if (end <= start || strlen(perms) != 4)
		return -1;
	memset(m, 0, sizeof(*m));
	m->start = start;
	m->end = end;
	m->offset = off;
	m->inode = inode;
	m->dev = makedev(major, minor);
	memcpy(m->perms, perms, 5);
	if (path_at > 0 && tmp[path_at] != '\0') {
		const char *p = tmp + path_at;
		while (*p == ' ')
			p++;
		if (*p) {
			m->path = strdup(p);
			if (!m->path)
				return -1;
		}
	}
	return 0;
}

int fp_maps_parse(const char *text, size_t len, struct fp_maps *out)
{
	out->v = NULL;
	out->n = 0;
	size_t cap = 0;
	const char *p = text, *end = text + len;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t ll = nl ? (size_t)(nl - p) : (size_t)(end - p);
		struct fp_map m;
		if (parse_map_line(p, ll, &m) == 0) {
			if (out->n == cap) {
				size_t ncap = cap ? cap * 2 : 64;
				struct fp_map *nv = realloc(out->v, ncap * sizeof(*nv));
				if (!nv) {
					free(m.path);
					fp_maps_free(out);
					return -ENOMEM;
				}
				out->v = nv;
				cap = ncap;
			}
			out->v[out->n++] = m;
		}
		p += ll + 1;
	}
	return 0;
}

int fp_maps_read(pid_t pid, struct fp_maps *out)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	size_t len;
	char *text = slurp(path, &len);
	if (!text)
		return -errno;
	int rc = fp_maps_parse(text, len, out);
	free(text);
	return rc;
}

void fp_maps_free(struct fp_maps *m)
{
	for (size_t i = 0; i < m->n; i++)
		free(m->v[i].path);
	free(m->v);
	m->v = NULL;
	m->n = 0;
}

const struct fp_map *fp_maps_find(const struct fp_maps *m, uint64_t addr)
{
	for (size_t i = 0; i < m->n; i++)
		if (addr >= m->v[i].start && addr < m->v[i].end)
			return &m->v[i];
	return NULL;
}

/* The value after "Key:" in a /proc status text, or NULL. */
static const char *status_field(const char *text, const char *key)
{
	size_t kl = strlen(key);
	for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
		if (strncmp(p, key, kl) == 0 && p[kl] == ':')
			return p + kl + 1;
	}
	return NULL;
}

/* Last number of a whitespace-separated list (NSpid: innermost namespace last). */
static long last_number(const char *s)
{
	long v = -1;
	while (s && *s && *s != '\n') {
		while (*s == ' ' || *s == '\t')
			s++;
		if (!isdigit((unsigned char)*s))
			break;
		v = strtol(s, (char **)&s, 10);
	}
	return v;
}

/*
 * State letter and command name from /proc/.../stat: comm is between the
 * first '(' and the last ')' since it may itself hold anything, parentheses
 * included.  *gone when the file cannot be read: the task has exited.
 */
static char stat_state(const char *statpath, char *comm, size_t cap, bool *gone)
{
	char *text = slurp(statpath, NULL);
	*gone = !text;
	if (!text)
		return '?';
	char *lp = strchr(text, '(');
	char *rp = strrchr(text, ')');
	char st = (rp && rp[1] == ' ' && rp[2]) ? rp[2] : '?';
	if (comm && lp && rp > lp)
		snprintf(comm, cap, "%.*s", (int)(rp - lp - 1), lp + 1);
	free(text);
	return st;
}

int fp_proc_info(pid_t pid, struct fp_proc_info *out)
{
	char path[64];
	memset(out, 0, sizeof(*out));
	out->pid = pid;
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	char *st = slurp(path, NULL);
	if (!st)
		return errno == ENOENT || errno == ESRCH ? -ENOENT : -errno;
	const char *uid = status_field(st, "Uid");
	out->uid = uid ? (uid_t)strtoul(uid, NULL, 10) : (uid_t)-1;
	const char *ns = status_field(st, "NSpid");
	long nspid = ns ? last_number(ns) : -1;
	out->nspid = nspid > 0 ? (pid_t)nspid : pid;
	free(st);

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	bool gone;
	out->state = stat_state(path, out->comm, sizeof(out->comm), &gone);
	snprintf(path, sizeof(path), "/proc/%d/exe", (int)pid);
	ssize_t n = readlink(path, out->exe, sizeof(out->exe) - 1);
	out->exe[n > 0 ? n : 0] = '\0';
	return 0;
}

void fp_proc_path(pid_t pid, const char *path, char *out, size_t cap)
{
	snprintf(out, cap, "/proc/%d/root%s%s", (int)pid, path[0] == '/' ? "" : "/", path);
}

int fp_proc_tasks(pid_t pid, struct fp_task **out, size_t *n)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	*out = NULL;
	*n = 0;
	DIR *d = opendir(path);
	if (!d)
		return -errno;
	size_t cap = 0;
	struct dirent *de;
	int rc = 0;
	while ((de = readdir(d))) {
		if (!isdigit((unsigned char)de->d_name[0]))
			continue;
		if (*n == cap) {
			size_t ncap = cap ? cap * 2 : 32;
			struct fp_task *nv = realloc(*out, ncap * sizeof(*nv));
			if (!nv) {
				rc = -ENOMEM;
				break;
			}
			*out = nv;
			cap = ncap;
		}
		struct fp_task *t = &(*out)[*n];
		memset(t, 0, sizeof(*t));
		t->tid = (pid_t)atoi(de->d_name);
		t->nstid = t->tid;
		char p[96];
		snprintf(p, sizeof(p), "/proc/%d/task/%d/status", (int)pid, (int)t->tid);
		char *st = slurp(p, NULL);
		if (!st)
			continue; /* the thread exited meanwhile */
		const char *ns = status_field(st, "NSpid");
		long v = ns ? last_number(ns) : -1;
		if (v > 0)
			t->nstid = (pid_t)v;
		free(st);
		snprintf(p, sizeof(p), "/proc/%d/task/%d/stat", (int)pid, (int)t->tid);
		bool gone;
		t->state = stat_state(p, t->comm, sizeof(t->comm), &gone);
		if (gone)
			continue; /* it exited between its two files: no name, no state to give */
		(*n)++;
	}
	closedir(d);
	if (rc) {
		free(*out);
		*out = NULL;
		*n = 0;
	}
	return rc;
}

int fp_proc_syscall(pid_t pid, pid_t tid, struct fp_syscall *out)
{
	char path[96];
	snprintf(path, sizeof(path), "/proc/%d/task/%d/syscall", (int)pid, (int)tid);
	memset(out, 0, sizeof(*out));
	out->nr = -2;
	char *text = slurp(path, NULL);
	if (!text)
		return -errno;
	if (strncmp(text, "running", 7) == 0) {
		out->nr = -1;
	} else {
		char *p = text;
		long nr = strtol(p, &p, 10);
		if (p != text) {
			out->nr = nr;
			for (int i = 0; i < 6; i++) {
				while (*p == ' ')
					p++;
				if (!*p || *p == '\n')
					break;
				out->args[i] = strtoull(p, &p, 16);
			}
		}
	}
	free(text);
	return 0;
}
