/* fuzz_report: the launcher's report reader, whole files to output.
 *
 * The input is up to four files separated by NUL bytes (which no line of a
 * report can hold): report-1.jsonl, report-2.jsonl, audit-1.jsonl,
 * audit-2.jsonl, written into a directory of this process's own; then
 * report_render() reads the directory as `forkshim report` does and
 * renders it three ways (table, --json, --svg), into memory.  Besides the
 * sanitizers' findings, the output must keep its promises (report.h,
 * escape.h): no control byte but the newline in any of the three, and
 * --json one JSON value that jansson reads strictly (valid UTF-8, no
 * duplicate keys), with "processes" and "regions". */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../inject/launcher/report.h"

static char dir[64];
static FILE *devnull;

static const char *const names[] = {"report-1.jsonl", "report-2.jsonl",
                                    "audit-1.jsonl", "audit-2.jsonl"};

static void cleanup(void)
{
	char path[128];

	for (size_t i = 0; i < 4; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		unlink(path);
	}
	rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	snprintf(dir, sizeof(dir), "/tmp/fuzz-report-XXXXXX");
	if (mkdtemp(dir) == NULL) {
		perror("fuzz_report: mkdtemp");
		abort();
	}
	devnull = fopen("/dev/null", "w");
	if (devnull == NULL)
		abort();
	atexit(cleanup);
	return 0;
}

static void put(size_t i, const uint8_t *data, size_t len)
{
	char path[128];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
	f = fopen(path, "w");
	if (f == NULL || (len && fwrite(data, 1, len, f) != len) ||
	    fclose(f) != 0)
		abort();
}

struct memout {
	FILE *f;
	char *text;
	size_t len;
};

static void open_out(struct memout *m)
{
	m->text = NULL;
	m->len = 0;
	m->f = open_memstream(&m->text, &m->len);
	if (m->f == NULL)
		abort();
}

static void no_controls(const char *what, const struct memout *m)
{
	for (size_t i = 0; i < m->len; i++) {
		unsigned char c = (unsigned char)m->text[i];

		if ((c < 0x20 && c != '\n') || c == 0x7f) {
			fprintf(stderr, "fuzz_report: %s: byte 0x%02x at %zu\n",
			        what, c, i);
			abort();
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct memout table, json, svg;
	size_t start = 0, n = 0;
	int rc;

	for (size_t i = 0; i <= size && n < 4; i++)
		if (i == size || data[i] == '\0') {
			put(n++, data + start, i - start);
			start = i + 1;
		}
	for (; n < 4; n++) {
		char path[128];

		snprintf(path, sizeof(path), "%s/%s", dir, names[n]);
		unlink(path);
	}

	open_out(&table);
	open_out(&json);
	open_out(&svg);
	rc = report_render(dir, table.f, json.f, svg.f, devnull);
	if (rc < 0 || fclose(table.f) != 0 || fclose(json.f) != 0 ||
	    fclose(svg.f) != 0)
		abort();
	no_controls("table", &table);
	no_controls("json", &json);
	no_controls("svg", &svg);
	if (rc == 1) {
		json_error_t error;
		json_t *v = json_loadb(json.text, json.len,
		                       JSON_REJECT_DUPLICATES, &error);

		if (v == NULL ||
		    !json_is_integer(json_object_get(v, "processes")) ||
		    !json_is_array(json_object_get(v, "regions"))) {
			fprintf(stderr, "fuzz_report: --json: %s\n%.*s\n",
			        v ? "fields missing" : error.text,
			        (int)json.len, json.text);
			abort();
		}
		json_decref(v);
	}
	free(table.text);
	free(json.text);
	free(svg.text);
	return 0;
}
