#include "json.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define DEPTH_MAX 32

struct cursor {
	const char *s;
	int depth;
};

static void skip_ws(struct cursor *c)
{
	while (*c->s == ' ' || *c->s == '\t' || *c->s == '\n' || *c->s == '\r')
		c->s++;
}

static struct json *node(enum json_type t)
{
	struct json *v = calloc(1, sizeof(*v));

	if (v != NULL)
		v->type = t;
	return v;
}

static int hexval(char h)
{
	if (h >= '0' && h <= '9')
		return h - '0';
	if (h >= 'a' && h <= 'f')
		return h - 'a' + 10;
	if (h >= 'A' && h <= 'F')
		return h - 'A' + 10;
	return -1;
}

static char *parse_string(struct cursor *c)
{
	const char *s = c->s + 1; /* after the quote */
	size_t cap = 16, n = 0;
	char *out = malloc(cap);

	while (out != NULL && *s != '"') {
		char ch = *s;

		if (ch == '\0' || (unsigned char)ch < 0x20)
			goto bad;
		if (ch == '\\') {
			s++;
			switch (*s) {
			case '"':
				ch = '"';
				break;
			case '\\':
				ch = '\\';
				break;
			case '/':
				ch = '/';
				break;
			case 'b':
				ch = '\b';
				break;
			case 'f':
				ch = '\f';
				break;
			case 'n':
				ch = '\n';
				break;
			case 'r':
				ch = '\r';
				break;
			case 't':
				ch = '\t';
				break;
			case 'u': {
				int v = 0;

				for (int i = 1; i <= 4; i++) {
					int h = hexval(s[i]);

					if (h < 0)
						goto bad;
					v = v * 16 + h;
				}
				ch = v < 0x80 ? (char)v : '?';
				s += 4;
				break;
			}
			default:
				goto bad;
			}
		}
		if (n + 2 > cap) {
			char *more = realloc(out, cap *= 2);

			if (more == NULL)
				goto bad;
			out = more;
		}
		out[n++] = ch;
		s++;
	}
	if (out == NULL)
		return NULL;
	out[n] = '\0';
	c->s = s + 1;
	return out;
bad:
	free(out);
	return NULL;
}

static struct json *parse_value(struct cursor *c);

static int push(struct json *v, char *key, struct json *item)
{
	struct json **items = realloc(v->items, (v->n + 1) * sizeof(*items));

	if (items == NULL)
		return -1;
	v->items = items;
	if (v->type == JSON_OBJ) {
		char **keys = realloc(v->keys, (v->n + 1) * sizeof(*keys));

		if (keys == NULL)
			return -1;
		v->keys = keys;
		keys[v->n] = key;
	}
	items[v->n++] = item;
	return 0;
}

static struct json *parse_container(struct cursor *c, enum json_type t)
{
	char close = t == JSON_OBJ ? '}' : ']';
	struct json *v = node(t);

	if (v == NULL || ++c->depth > DEPTH_MAX)
		goto bad;
	c->s++;
	skip_ws(c);
	if (*c->s == close) {
		c->s++;
		c->depth--;
		return v;
	}
	for (;;) {
		char *key = NULL;
		struct json *item;

		skip_ws(c);
		if (t == JSON_OBJ) {
			if (*c->s != '"' || (key = parse_string(c)) == NULL)
				goto bad;
			skip_ws(c);
			if (*c->s != ':') {
				free(key);
				goto bad;
			}
			c->s++;
		}
		item = parse_value(c);
		if (item == NULL || push(v, key, item) != 0) {
			free(key);
			json_free(item);
			goto bad;
		}
		skip_ws(c);
		if (*c->s == ',') {
			c->s++;
			continue;
		}
		if (*c->s != close)
			goto bad;
		c->s++;
		c->depth--;
		return v;
	}
bad:
	json_free(v);
	return NULL;
}

static struct json *parse_value(struct cursor *c)
{
	struct json *v;

	skip_ws(c);
	switch (*c->s) {
	case '{':
		return parse_container(c, JSON_OBJ);
	case '[':
		return parse_container(c, JSON_ARR);
	case '"': {
		char *s = parse_string(c);

		if (s == NULL || (v = node(JSON_STR)) == NULL) {
			free(s);
			return NULL;
		}
		v->str = s;
		return v;
	}
	case 't':
	case 'f':
	case 'n': {
		static const char *const words[] = {"true", "false", "null"};

		for (int i = 0; i < 3; i++) {
			size_t len = strlen(words[i]);

			if (strncmp(c->s, words[i], len) != 0)
				continue;
			c->s += len;
			v = node(i == 2 ? JSON_NULL : JSON_BOOL);
			if (v != NULL)
				v->num = i == 0;
			return v;
		}
		return NULL;
	}
	default: {
		char *end;
		double d;

		if (*c->s != '-' && (*c->s < '0' || *c->s > '9'))
			return NULL;
		d = strtod(c->s, &end);
		if (end == c->s || !isfinite(d))
			return NULL;
		c->s = end;
		v = node(JSON_NUM);
		if (v != NULL)
			v->num = d;
		return v;
	}
	}
}

struct json *json_parse(const char *text)
{
	struct cursor c = {text, 0};
	struct json *v = parse_value(&c);

	if (v == NULL)
		return NULL;
	skip_ws(&c);
	if (*c.s != '\0') {
		json_free(v);
		return NULL;
	}
	return v;
}

void json_free(struct json *v)
{
	if (v == NULL)
		return;
	for (size_t i = 0; i < v->n; i++) {
		if (v->keys != NULL)
			free(v->keys[i]);
		json_free(v->items[i]);
	}
	free(v->keys);
	free(v->items);
	free(v->str);
	free(v);
}

const struct json *json_get(const struct json *obj, const char *key)
{
	if (obj == NULL || obj->type != JSON_OBJ)
		return NULL;
	for (size_t i = 0; i < obj->n; i++)
		if (strcmp(obj->keys[i], key) == 0)
			return obj->items[i];
	return NULL;
}

const char *json_str(const struct json *obj, const char *key)
{
	const struct json *v = json_get(obj, key);

	return v != NULL && v->type == JSON_STR ? v->str : NULL;
}

unsigned long long json_u(const struct json *obj, const char *key, int *ok)
{
	const struct json *v = json_get(obj, key);
	int good = v != NULL && v->type == JSON_NUM && v->num >= 0 &&
	           v->num < 1.8e19 && floor(v->num) == v->num;

	if (ok != NULL)
		*ok = good;
	return good ? (unsigned long long)v->num : 0;
}
