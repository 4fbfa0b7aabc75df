#include "elfobj.h"

#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef DF_1_NODEFLIB
#define DF_1_NODEFLIB 0x800
#endif

static char *xstrdup(const char *s)
{
	char *d = strdup(s);

	if (d == NULL) {
		fputs("forkshim: out of memory\n", stderr);
		exit(2);
	}
	return d;
}

static void *xrealloc(void *p, size_t n)
{
	p = realloc(p, n);
	if (p == NULL) {
		fputs("forkshim: out of memory\n", stderr);
		exit(2);
	}
	return p;
}

/* The file offset of virtual address `vaddr`, through the PT_LOAD that
 * maps it: the dynamic entries give addresses, not offsets. */
static int vaddr_to_offset(Elf *elf, size_t phnum, GElf_Addr vaddr,
                           GElf_Off *off)
{
	for (size_t i = 0; i < phnum; i++) {
		GElf_Phdr ph;

		if (gelf_getphdr(elf, (int)i, &ph) == NULL ||
		    ph.p_type != PT_LOAD)
			continue;
		if (vaddr >= ph.p_vaddr && vaddr - ph.p_vaddr < ph.p_filesz) {
			*off = ph.p_offset + (vaddr - ph.p_vaddr);
			return 0;
		}
	}
	return -1;
}

static char *string_at(Elf_Data *strtab, GElf_Xword idx)
{
	const char *s;

	if (strtab == NULL || idx >= strtab->d_size)
		return NULL;
	s = (const char *)strtab->d_buf + idx;
	if (memchr(s, '\0', strtab->d_size - idx) == NULL)
		return NULL;
	return xstrdup(s);
}

static void read_interp(Elf *elf, const GElf_Phdr *ph, struct elf_obj *out)
{
	Elf_Data *d = elf_getdata_rawchunk(elf, (int64_t)ph->p_offset,
	                                   ph->p_filesz, ELF_T_BYTE);

	if (d == NULL || d->d_size == 0)
		out->interp = xstrdup("?");
	else
		out->interp = strndup(d->d_buf, d->d_size);
}

/* DT_NEEDED, DT_SONAME, DT_RUNPATH, DT_RPATH and DF_1_NODEFLIB from the
 * segment the loader itself reads. */
static void read_dynamic(Elf *elf, size_t phnum, const GElf_Phdr *ph,
                         struct elf_obj *out)
{
	Elf_Data *dyn = elf_getdata_rawchunk(elf, (int64_t)ph->p_offset,
	                                     ph->p_filesz, ELF_T_DYN);
	GElf_Addr strtab_addr = 0;
	GElf_Xword strsz = 0;
	Elf_Data *strtab = NULL;
	GElf_Off off;
	size_t n;

	if (dyn == NULL)
		return;
	n = dyn->d_size / gelf_fsize(elf, ELF_T_DYN, 1, EV_CURRENT);
	for (size_t i = 0; i < n; i++) {
		GElf_Dyn d;

		if (gelf_getdyn(dyn, (int)i, &d) == NULL || d.d_tag == DT_NULL)
			break;
		if (d.d_tag == DT_STRTAB)
			strtab_addr = d.d_un.d_ptr;
		else if (d.d_tag == DT_STRSZ)
			strsz = d.d_un.d_val;
		else if (d.d_tag == DT_FLAGS_1 &&
		         (d.d_un.d_val & DF_1_NODEFLIB))
			out->nodeflib = true;
	}
	if (strtab_addr == 0 ||
	    vaddr_to_offset(elf, phnum, strtab_addr, &off) < 0)
		return;
	strtab = elf_getdata_rawchunk(elf, (int64_t)off, strsz, ELF_T_BYTE);
	for (size_t i = 0; i < n; i++) {
		GElf_Dyn d;
		char *s;

		if (gelf_getdyn(dyn, (int)i, &d) == NULL || d.d_tag == DT_NULL)
			break;
		if (d.d_tag != DT_NEEDED && d.d_tag != DT_SONAME &&
		    d.d_tag != DT_RUNPATH && d.d_tag != DT_RPATH)
			continue;
		s = string_at(strtab, d.d_un.d_val);
		if (s == NULL)
			continue;
		if (d.d_tag == DT_NEEDED) {
			out->needed = xrealloc(
			    out->needed, (out->n_needed + 1) * sizeof(char *));
			out->needed[out->n_needed++] = s;
		} else if (d.d_tag == DT_SONAME && out->soname == NULL) {
			out->soname = s;
		} else if (d.d_tag == DT_RUNPATH && out->runpath == NULL) {
			out->runpath = s;
		} else if (d.d_tag == DT_RPATH && out->rpath == NULL) {
			out->rpath = s;
		} else {
			free(s);
		}
	}
}

static void read_dynsym(Elf *elf, Elf_Scn *scn, const GElf_Shdr *sh,
                        const char *const *names, size_t n_names,
                        struct elf_obj *out)
{
	Elf_Data *data = elf_getdata(scn, NULL);
	size_t n;

	if (data == NULL || sh->sh_entsize == 0)
		return;
	out->has_dynsym = true;
	n = sh->sh_size / sh->sh_entsize;
	for (size_t i = 1; i < n; i++) {
		GElf_Sym sym;
		const char *name;

		if (gelf_getsym(data, (int)i, &sym) == NULL)
			break;
		if (sym.st_shndx != SHN_UNDEF || sym.st_name == 0)
			continue;
		name = elf_strptr(elf, sh->sh_link, sym.st_name);
		if (name == NULL)
			continue;
		for (size_t k = 0; k < n_names; k++)
			if (strcmp(name, names[k]) == 0)
				out->imports |= 1u << k;
	}
}

static void read_sections(Elf *elf, const char *const *names, size_t n_names,
                          struct elf_obj *out)
{
	size_t shstrndx;
	Elf_Scn *scn = NULL;

	if (elf_getshdrstrndx(elf, &shstrndx) != 0)
		shstrndx = SHN_UNDEF;
	while ((scn = elf_nextscn(elf, scn)) != NULL) {
		GElf_Shdr sh;
		const char *name = NULL;

		if (gelf_getshdr(scn, &sh) == NULL)
			continue;
		if (sh.sh_type == SHT_DYNSYM)
			read_dynsym(elf, scn, &sh, names, n_names, out);
		if (shstrndx != SHN_UNDEF)
			name = elf_strptr(elf, shstrndx, sh.sh_name);
		if (name != NULL && (strcmp(name, ".note.go.buildid") == 0 ||
		                     strcmp(name, ".go.buildinfo") == 0))
			out->go = true;
	}
}

enum elfobj_status elfobj_read(const char *path, const char *const *names,
                               size_t n_names, struct elf_obj *out, char *why,
                               size_t why_len)
{
	enum elfobj_status status = ELFOBJ_ERROR;
	char real[PATH_MAX];
	GElf_Ehdr eh;
	size_t phnum;
	Elf *elf;
	int fd;

	memset(out, 0, sizeof(*out));
	if (n_names > ELFOBJ_MAX_NAMES)
		n_names = ELFOBJ_MAX_NAMES;
	if (elf_version(EV_CURRENT) == EV_NONE) {
		snprintf(why, why_len, "libelf: %s", elf_errmsg(-1));
		return ELFOBJ_ERROR;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(why, why_len, "%s: %s", path, strerror(errno));
		return ELFOBJ_ERROR;
	}
	elf = elf_begin(fd, ELF_C_READ_MMAP, NULL);
	if (elf == NULL || elf_kind(elf) != ELF_K_ELF) {
		snprintf(why, why_len, "%s: not an ELF file", path);
		status = ELFOBJ_NOT_ELF;
		goto out;
	}
	if (gelf_getehdr(elf, &eh) == NULL ||
	    elf_getphdrnum(elf, &phnum) != 0) {
		snprintf(why, why_len, "%s: broken ELF file: %s", path,
		         elf_errmsg(-1));
		goto out;
	}
	out->path = xstrdup(path);
	out->real = xstrdup(realpath(path, real) ? real : path);
	out->elfclass = gelf_getclass(elf);
	out->machine = eh.e_machine;
	out->type = eh.e_type;
	for (size_t i = 0; i < phnum; i++) {
		GElf_Phdr ph;

		if (gelf_getphdr(elf, (int)i, &ph) == NULL)
			continue;
		if (ph.p_type == PT_INTERP && out->interp == NULL)
			read_interp(elf, &ph, out);
		else if (ph.p_type == PT_DYNAMIC && !out->dynamic) {
			out->dynamic = true;
			read_dynamic(elf, phnum, &ph, out);
		}
	}
	read_sections(elf, names, n_names, out);
	status = ELFOBJ_OK;
out:
	if (elf != NULL)
		elf_end(elf);
	close(fd);
	return status;
}

void elfobj_free(struct elf_obj *obj)
{
	for (size_t i = 0; i < obj->n_needed; i++)
		free(obj->needed[i]);
	free(obj->needed);
	free(obj->path);
	free(obj->real);
	free(obj->interp);
	free(obj->soname);
	free(obj->runpath);
	free(obj->rpath);
	memset(obj, 0, sizeof(*obj));
}

const char *elfobj_describe(const struct elf_obj *obj, char *buf, size_t len)
{
	static const struct {
		int machine;
		const char *name;
	} machines[] = {
	    {EM_X86_64, "x86-64"},   {EM_386, "Intel 80386"},
	    {EM_AARCH64, "AArch64"}, {EM_ARM, "ARM"},
	    {EM_RISCV, "RISC-V"},    {EM_PPC64, "PowerPC64"},
	    {EM_S390, "IBM S/390"},  {EM_MIPS, "MIPS"},
	};
	const char *name = NULL;

	for (size_t i = 0; i < sizeof(machines) / sizeof(machines[0]); i++)
		if (machines[i].machine == obj->machine)
			name = machines[i].name;
	if (name != NULL)
		snprintf(buf, len, "%s %s",
		         obj->elfclass == ELFCLASS64 ? "64-bit" : "32-bit",
		         name);
	else
		snprintf(buf, len, "%s machine %d",
		         obj->elfclass == ELFCLASS64 ? "64-bit" : "32-bit",
		         obj->machine);
	return buf;
}
