/*
 * The shell's history: kept here rather than read back from libedit, so
 * that the file format is plain lines and `history` is testable.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

void cli_history_add(struct cli_history *h, const char *line)
{
	if (h->n && strcmp(h->lines[h->n - 1], line) == 0)
		return;
	char *copy = strdup(line);
	if (!copy)
		return;
	if (h->n == CLI_HISTORY_MAX) {
		free(h->lines[0]);
		memmove(h->lines, h->lines + 1, (h->n - 1) * sizeof(char *));
		h->n--;
	}
	if (h->n == h->cap) {
		size_t cap = h->cap ? h->cap * 2 : 64;
		char **l = realloc(h->lines, cap * sizeof(char *));
		if (!l) {
			free(copy);
			return;
		}
		h->lines = l;
		h->cap = cap;
	}
	h->lines[h->n++] = copy;
}

void cli_history_clear(struct cli_history *h)
{
	for (size_t i = 0; i < h->n; i++)
		free(h->lines[i]);
	free(h->lines);
	memset(h, 0, sizeof(*h));
}

int cli_history_load(struct cli_history *h, const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return errno == ENOENT ? 0 : -1;
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	while ((n = getline(&line, &cap, f)) >= 0) {
		while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			line[--n] = '\0';
		if (n > 0)
			cli_history_add(h, line);
	}
	free(line);
	fclose(f);
	return 0;
}

int cli_history_save(const struct cli_history *h, const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	FILE *f = fdopen(fd, "w");
	if (!f) {
		close(fd);
		return -1;
	}
	for (size_t i = 0; i < h->n; i++)
		fprintf(f, "%s\n", h->lines[i]);
	return fclose(f) == 0 ? 0 : -1;
}

void cli_history_print(const struct cli_history *h, FILE *f, long last)
{
	size_t from = last > 0 && (size_t)last < h->n ? h->n - (size_t)last : 0;
	for (size_t i = from; i < h->n; i++) {
		fprintf(f, "%5zu  ", i + 1);
		cli_put_safe(f, h->lines[i]);
		putc('\n', f);
	}
}
