/*
 * ELF symbols and properties through libelf.
 */
#include "elf.h"

#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <libelf.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "proc.h"

struct fp_elf {
	int fd;
	Elf *elf;
	GElf_Ehdr ehdr;
};

int fp_elf_open_fd(const char *path)
{
	/*
	 * The path comes from a target, whose owner may have swapped the file
	 * for a FIFO (an open that never returns) or a device since mapping
	 * it: only a regular file is read, and opening never waits.
	 */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return -1;
	struct stat st;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		errno = ENOEXEC;
		return -1;
	}
	return fd;
}

struct fp_elf *fp_elf_open(const char *path)
{
	if (elf_version(EV_CURRENT) == EV_NONE) {
		errno = ENOSYS;
		return NULL;
	}
	struct fp_elf *e = calloc(1, sizeof(*e));
	if (!e)
		return NULL;
	e->fd = fp_elf_open_fd(path);
	if (e->fd < 0)
		goto fail;
	e->elf = elf_begin(e->fd, ELF_C_READ_MMAP, NULL);
	if (!e->elf || elf_kind(e->elf) != ELF_K_ELF || !gelf_getehdr(e->elf, &e->ehdr)) {
		errno = ENOEXEC;
		goto fail;
	}
	return e;
fail:;
	int err = errno;
	fp_elf_close(e);
	errno = err;
	return NULL;
}

/*
 * m->path resolves through /proc/PID/root, where the target's owner may have
 * replaced the mapped file, since mapping it, by a symlink to anything root
 * can read (and an absolute symlink there resolves against fpd's root, not
 * the target's).  Only the device and inode the maps line names are
 * accepted, and the path is first opened with O_PATH so that nothing else
 * is ever really opened.  A file deleted or replaced since it was mapped, or
 * an overlay whose inode numbers differ, is read through map_files, which
 * is the mapping itself.
 */
struct fp_elf *fp_elf_open_mapped(pid_t pid, const struct fp_map *m)
{
	char path[PATH_MAX + 64];
	fp_proc_path(pid, m->path, path, sizeof(path));
	int pfd = open(path, O_PATH | O_CLOEXEC);
	if (pfd >= 0) {
		struct stat st;
		struct fp_elf *e = NULL;
		if (fstat(pfd, &st) == 0 && S_ISREG(st.st_mode) && st.st_ino == m->inode &&
		    st.st_dev == m->dev) {
			char self[64];
			snprintf(self, sizeof(self), "/proc/self/fd/%d", pfd);
			e = fp_elf_open(self);
		}
		close(pfd);
		if (e)
			return e;
	}
	snprintf(path, sizeof(path), "/proc/%d/map_files/%" PRIx64 "-%" PRIx64, (int)pid, m->start,
		 m->end);
	return fp_elf_open(path);
}

int fp_elf_fd(const struct fp_elf *e)
{
	return e->fd;
}

void fp_elf_close(struct fp_elf *e)
{
	if (!e)
		return;
	if (e->elf)
		elf_end(e->elf);
	if (e->fd >= 0)
		close(e->fd);
	free(e);
}

static Elf_Scn *find_section_type(struct fp_elf *e, Elf64_Word type)
{
	Elf_Scn *scn = NULL;
	GElf_Shdr sh;
	while ((scn = elf_nextscn(e->elf, scn)))
		if (gelf_getshdr(scn, &sh) && sh.sh_type == type)
			return scn;
	return NULL;
}

static int lookup_in(struct fp_elf *e, Elf64_Word type, const char *name, uint64_t *value,
		     uint64_t *size)
{
	Elf_Scn *scn = find_section_type(e, type);
	GElf_Shdr sh;
	if (!scn || !gelf_getshdr(scn, &sh) || sh.sh_entsize == 0)
		return -1;
	Elf_Data *data = elf_getdata(scn, NULL);
	if (!data)
		return -1;
	size_t n = sh.sh_size / sh.sh_entsize;
	for (size_t i = 0; i < n; i++) {
		GElf_Sym sym;
		if (!gelf_getsym(data, (int)i, &sym) || sym.st_shndx == SHN_UNDEF)
			continue;
		const char *s = elf_strptr(e->elf, sh.sh_link, sym.st_name);
		/* .dynsym names may carry no version suffix; .symtab ones never do. */
		if (s && strcmp(s, name) == 0) {
			*value = sym.st_value;
			if (size)
				*size = sym.st_size;
			return 0;
		}
	}
	return -1;
}

int fp_elf_sym(struct fp_elf *e, const char *name, uint64_t *value, uint64_t *size)
{
	if (lookup_in(e, SHT_SYMTAB, name, value, size) == 0)
		return 0;
	return lookup_in(e, SHT_DYNSYM, name, value, size);
}

int fp_elf_section(struct fp_elf *e, const char *name, uint64_t *addr, uint64_t *offset,
		   uint64_t *size)
{
	size_t shstrndx;
	if (elf_getshdrstrndx(e->elf, &shstrndx) != 0)
		return -1;
	Elf_Scn *scn = NULL;
	GElf_Shdr sh;
	while ((scn = elf_nextscn(e->elf, scn))) {
		if (!gelf_getshdr(scn, &sh))
			continue;
		const char *s = elf_strptr(e->elf, shstrndx, sh.sh_name);
		if (s && strcmp(s, name) == 0) {
			if (addr)
				*addr = sh.sh_addr;
			if (offset)
				*offset = sh.sh_offset;
			if (size)
				*size = sh.sh_size;
			return 0;
		}
	}
	return -1;
}

int fp_elf_read_vaddr(struct fp_elf *e, uint64_t vaddr, void *buf, size_t len)
{
	size_t n;
	if (elf_getphdrnum(e->elf, &n) != 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		GElf_Phdr ph;
		if (!gelf_getphdr(e->elf, (int)i, &ph) || ph.p_type != PT_LOAD)
			continue;
		if (vaddr < ph.p_vaddr || vaddr + len > ph.p_vaddr + ph.p_filesz)
			continue;
		ssize_t r = pread(e->fd, buf, len, (off_t)(ph.p_offset + (vaddr - ph.p_vaddr)));
		return r == (ssize_t)len ? 0 : -1;
	}
	return -1;
}

bool fp_elf_is_pie(struct fp_elf *e)
{
	return e->ehdr.e_type == ET_DYN;
}

bool fp_elf_has_symtab(struct fp_elf *e)
{
	return find_section_type(e, SHT_SYMTAB) != NULL;
}

bool fp_elf_has_debuginfo(struct fp_elf *e)
{
	return fp_elf_section(e, ".debug_info", NULL, NULL, NULL) == 0;
}

bool fp_elf_has_stapsdt(struct fp_elf *e)
{
	return fp_elf_section(e, ".note.stapsdt", NULL, NULL, NULL) == 0;
}

uint64_t fp_elf_first_load(struct fp_elf *e)
{
	size_t n;
	if (elf_getphdrnum(e->elf, &n) != 0)
		return 0;
	for (size_t i = 0; i < n; i++) {
		GElf_Phdr ph;
		if (gelf_getphdr(e->elf, (int)i, &ph) && ph.p_type == PT_LOAD)
			return ph.p_vaddr & ~(uint64_t)0xfff;
	}
	return 0;
}
