/* json: a small reader of one JSON value (a line of a report file).
 *
 * json_parse() returns a tree (malloc; json_free() releases it) or NULL
 * when the text is not exactly one JSON value.  Strings are decoded
 * (\uXXXX below 0x80 as the byte, others as '?'), numbers kept as double.
 * Depth is limited to 32.  Nothing here trusts its input. */
#ifndef FORKSHIM_JSON_H
#define FORKSHIM_JSON_H

#include <stddef.h>

enum json_type { JSON_NULL, JSON_BOOL, JSON_NUM, JSON_STR, JSON_ARR, JSON_OBJ };

struct json {
	enum json_type type;
	double num;  /* JSON_NUM, JSON_BOOL (0/1) */
	char *str;   /* JSON_STR */
	size_t n;    /* JSON_ARR, JSON_OBJ: items */
	char **keys; /* JSON_OBJ */
	struct json **items;
};

struct json *json_parse(const char *text);
void json_free(struct json *v);
/* The member named key of an object, or NULL. */
const struct json *json_get(const struct json *obj, const char *key);
/* The member's string, or NULL when absent or not a string. */
const char *json_str(const struct json *obj, const char *key);
/* The member as a non-negative integer: 0 and *ok = 0 when absent or not
 * one (ok may be NULL). */
unsigned long long json_u(const struct json *obj, const char *key, int *ok);

#endif
