#include "escape.h"

#include <stdint.h>
#include <string.h>

/* The code point of the UTF-8 sequence at s and its length, or -1 with
 * length 1 when s does not start a valid one (overlong, surrogate, past
 * U+10FFFF, cut short). */
static int32_t decode(const unsigned char *s, int *len)
{
	int32_t cp;
	int n;

	*len = 1;
	if (s[0] < 0x80)
		return s[0];
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		n = 2;
		cp = s[0] & 0x1f;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		n = 3;
		cp = s[0] & 0x0f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		n = 4;
		cp = s[0] & 0x07;
	} else {
		return -1;
	}
	for (int i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80) /* also the terminating NUL */
			return -1;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
	    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
		return -1;
	*len = n;
	return cp;
}

static long put(FILE *out, const char *s)
{
	return (long)fwrite(s, 1, strlen(s), out);
}

/* The length of the run at s of printable ASCII that needs no escape
 * (special: the further characters that do). */
static size_t plain_run(const unsigned char *s, const char *special)
{
	size_t n = 0;

	while (s[n] >= 0x20 && s[n] < 0x7f && strchr(special, s[n]) == NULL)
		n++;
	return n;
}

/* C1 controls and the characters that change what text around them looks
 * like without showing themselves. */
static int invisible(int32_t cp)
{
	return (cp >= 0x80 && cp <= 0x9f) || (cp >= 0x200b && cp <= 0x200f) ||
	       (cp >= 0x2028 && cp <= 0x202e) ||
	       (cp >= 0x2060 && cp <= 0x206f) || cp == 0xfeff ||
	       (cp >= 0xfff9 && cp <= 0xfffb) || cp == 0xfffe || cp == 0xffff;
}

enum mode { TERM, JSON, XML };

/* What one character that is not plain ASCII becomes (s: its bytes, cp
 * its code point or -1, len its length). */
static long escape_one(FILE *out, const unsigned char *s, int32_t cp, int len,
                       enum mode m)
{
	if (m == XML) {
		switch (cp) {
		case '&':
			return put(out, "&amp;");
		case '<':
			return put(out, "&lt;");
		case '>':
			return put(out, "&gt;");
		case '"':
			return put(out, "&quot;");
		case '\'':
			return put(out, "&apos;");
		case '\\':
			return put(out, "\\\\");
		}
	} else if (cp == '\\' || cp == '"') {
		return fprintf(out, "\\%c", (char)cp);
	}
	if (cp == '\n')
		return put(out, "\\n");
	if (cp == '\r')
		return put(out, "\\r");
	if (cp == '\t')
		return put(out, "\\t");
	if (m == JSON) {
		if (cp < 0)
			return put(out, "\\ufffd");
		if (cp < 0x20 || cp == 0x7f || invisible(cp))
			return fprintf(out, "\\u%04x", (unsigned)cp);
	} else {
		if (cp < 0x20 || cp == 0x7f) /* also not valid UTF-8 */
			return fprintf(out, "\\x%02x", *s);
		if (invisible(cp))
			return fprintf(out, "\\u%04x", (unsigned)cp);
	}
	return (long)fwrite(s, 1, (size_t)len, out);
}

static size_t escape(FILE *out, const char *str, enum mode m)
{
	const char *special = m == XML ? "&<>\"'\\" : "\\\"";
	const unsigned char *s = (const unsigned char *)str;
	long n = 0;
	int len;

	while (*s) {
		size_t run = plain_run(s, special);

		if (run > 0) {
			n += (long)fwrite(s, 1, run, out);
			s += run;
			continue;
		}
		int32_t cp = decode(s, &len);

		n += escape_one(out, s, cp, len, m);
		s += len;
	}
	return n > 0 ? (size_t)n : 0;
}

size_t escape_term(FILE *out, const char *s)
{
	return escape(out, s, TERM);
}

size_t escape_json(FILE *out, const char *s)
{
	return escape(out, s, JSON);
}

size_t escape_xml(FILE *out, const char *s)
{
	return escape(out, s, XML);
}
