/* report: `forkshim report [--json | --svg FILE] DIR`.
 *
 * Reads every report-*.jsonl (the per-process reports, format in
 * shim/report.h) and audit-*.jsonl (the guard audit's records,
 * shim/audit.h) of one run and shows, per frozen region, its size, the
 * processes that mapped it, the pages each copied, what is still shared,
 * and the top writer call sites from the audit; regions sorted by the
 * memory their copies cost.  A file that is truncated, foreign or of a
 * newer format is skipped with a message naming it on stderr.
 *
 * Exit status: 0 shown, 1 no readable report in DIR, 2 bad usage or DIR
 * unreadable. */
#ifndef FORKSHIM_LAUNCHER_REPORT_H
#define FORKSHIM_LAUNCHER_REPORT_H

int report_main(int argc, char **argv);

#endif
