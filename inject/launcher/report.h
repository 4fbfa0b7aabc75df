/* report: `forkshim report [--json | --svg FILE] DIR`.
 *
 * Reads every report-*.jsonl (the per-process reports, format in
 * shim/report.h) and audit-*.jsonl (the guard audit's records,
 * shim/audit.h) of one run and shows, per frozen region, its size, the
 * processes that mapped it, the pages each copied, what is still shared,
 * and the top writer call sites from the audit; regions sorted by the
 * memory their copies cost.  Lines are parsed with jansson (strict UTF-8,
 * no NUL in strings, duplicate keys refused).
 *
 * Nothing in DIR is trusted: another user may have written it.  A file is
 * opened O_NOFOLLOW|O_NONBLOCK and read only when it is a regular file of
 * at most 1 GiB with lines of at most 1 MiB (memory stays a small multiple
 * of what is kept, never of a line or a file); a file that is truncated,
 * foreign, of a newer format, or outside those bounds is skipped with a
 * message naming it on stderr.  A region line whose figures cannot be
 * (shared + exclusive above resident, resident above pages, pages that do
 * not cover its size, a size no address space has, totals past 64 bits,
 * another report of the same region with other sizes) is skipped with a
 * message naming the file and the region: no percent shown is outside
 * 0..100.  Every string from a file, and every file name, is printed
 * escaped (escape.h).  Regions, sites and symbols are found through hash
 * tables: the time is linear in the size of the files (plus the sorts).
 *
 * Exit status: 0 shown, 1 no readable report in DIR, 2 bad usage or DIR
 * unreadable. */
#ifndef FORKSHIM_LAUNCHER_REPORT_H
#define FORKSHIM_LAUNCHER_REPORT_H

#include <stdio.h>

int report_main(int argc, char **argv);

/* The report of dir read once, then shown as the table on table, as JSON
 * on json and drawn on svg (each may be NULL); messages on err.  1 shown,
 * 0 no readable report, -1 dir unreadable.  (The fuzz target's way in.) */
int report_render(const char *dir, FILE *table, FILE *json, FILE *svg,
                  FILE *err);

#endif
