/*
 * Symbols and properties of an ELF file (libelf).  Opened once per binary and
 * cached by the caller.
 */
#ifndef FP_ELF_H
#define FP_ELF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct fp_elf;
struct fp_map;

/* Opens path (already resolved through /proc/PID/root).  NULL with errno set. */
struct fp_elf *fp_elf_open(const char *path);
void fp_elf_close(struct fp_elf *e);
/*
 * A read-only fd of path when it is a regular file (never blocks on a FIFO
 * a target's owner put there); -1 with errno set.
 */
int fp_elf_open_fd(const char *path);

/*
 * The file process pid mapped at m, and never another one: through
 * /proc/PID/root when that path still names the mapped inode, else through
 * /proc/PID/map_files.  NULL with errno set.
 */
struct fp_elf *fp_elf_open_mapped(pid_t pid, const struct fp_map *m);

/* The open file behind e, for reading what libelf does not (pread). */
int fp_elf_fd(const struct fp_elf *e);

/* Looks name up in .symtab, then .dynsym.  Returns 0 and the value/size, or -1. */
int fp_elf_sym(struct fp_elf *e, const char *name, uint64_t *value, uint64_t *size);
/* Virtual address and file offset of a named section; -1 when absent. */
int fp_elf_section(struct fp_elf *e, const char *name, uint64_t *addr, uint64_t *offset,
		   uint64_t *size);
/* Reads len bytes at a virtual address from the file's loadable segments. */
int fp_elf_read_vaddr(struct fp_elf *e, uint64_t vaddr, void *buf, size_t len);

bool fp_elf_is_pie(struct fp_elf *e);	  /* ET_DYN */
bool fp_elf_has_symtab(struct fp_elf *e); /* not stripped */
bool fp_elf_has_debuginfo(struct fp_elf *e);
bool fp_elf_has_stapsdt(struct fp_elf *e); /* built with dtrace */
/* Page-aligned vaddr of the first PT_LOAD: load bias = offset-0 mapping start - this. */
uint64_t fp_elf_first_load(struct fp_elf *e);

#endif
