/* doctor: `forkshim doctor COMMAND`, whether the shim can work in a program.
 *
 * Reads the program's ELF file (through #! interpreters) and the libraries
 * the loader would load with it, and prints one verdict line:
 *   forkshim doctor: ok: ...       exit 0: the shim loads, and fork()
 *                                  children are seen by visible()
 *   forkshim doctor: limited: ...  exit 0: the shim loads, children work,
 *                                  but visible() cannot see them
 *   forkshim doctor: cannot: ...   exit 1: LD_PRELOAD cannot bring the shim
 *                                  into this program
 *   forkshim doctor: error: ...    exit 2: bad usage, or nothing to examine
 * then the details, one indented line each. */
#ifndef FORKSHIM_DOCTOR_H
#define FORKSHIM_DOCTOR_H

#define DOCTOR_OK 0
#define DOCTOR_CANNOT 1
#define DOCTOR_ERROR 2

/* argv[0] is "doctor". */
int doctor_main(int argc, char **argv);

#endif
