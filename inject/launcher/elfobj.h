/* elfobj: what forkshim doctor needs to know about one ELF file, read with
 * libelf/gelf.
 *
 * elfobj_read() fills a struct elf_obj from the program headers (PT_INTERP,
 * PT_DYNAMIC and the dynamic entries it points to), and from the section
 * headers when there are any (.dynsym imports, Go's marker sections).  The
 * caller names the symbols it cares about; bit i of `imports` is set when
 * names[i] is an undefined (imported) symbol of the file's .dynsym. */
#ifndef FORKSHIM_ELFOBJ_H
#define FORKSHIM_ELFOBJ_H

#include <stdbool.h>
#include <stddef.h>

#define ELFOBJ_MAX_NAMES 32

struct elf_obj {
	char *path;   /* as given */
	char *real;   /* realpath() of it */
	int elfclass; /* ELFCLASS32, ELFCLASS64 */
	int machine;  /* e_machine, EM_* */
	int type;     /* e_type, ET_* */
	char *interp; /* PT_INTERP, or NULL: statically linked */
	bool dynamic; /* has PT_DYNAMIC */
	char **needed;
	size_t n_needed;
	char *soname, *runpath, *rpath; /* NULL when absent */
	bool nodeflib;                  /* DF_1_NODEFLIB */
	bool has_dynsym;                /* imports below are known */
	bool go;                        /* built by the Go toolchain */
	unsigned imports;               /* bit i: names[i] is imported */
};

enum elfobj_status {
	ELFOBJ_OK = 0,
	ELFOBJ_NOT_ELF = -1, /* readable, but not an ELF file */
	ELFOBJ_ERROR = -2,   /* cannot open, or a broken ELF file */
};

/* Reads `path`.  On failure `why` holds a message (no trailing newline) and
 * *out holds nothing to free. */
enum elfobj_status elfobj_read(const char *path, const char *const *names,
                               size_t n_names, struct elf_obj *out, char *why,
                               size_t why_len);
void elfobj_free(struct elf_obj *obj);

/* "64-bit x86-64", "32-bit Intel 80386", ... into buf. */
const char *elfobj_describe(const struct elf_obj *obj, char *buf, size_t len);

#endif
