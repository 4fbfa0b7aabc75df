#include "escape.h"

#include <stdint.h>

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

/* C1 controls and the characters that change what text around them looks
 * like without showing themselves. */
static int invisible(int32_t cp)
{
	return (cp >= 0x80 && cp <= 0x9f) || (cp >= 0x200b && cp <= 0x200f) ||
	       (cp >= 0x2028 && cp <= 0x202e) ||
	       (cp >= 0x2060 && cp <= 0x206f) || cp == 0xfeff ||
	       (cp >= 0xfff9 && cp <= 0xfffb) || cp == 0xfffe || cp == 0xffff;
}

void escape_term(FILE *out, const char *str)
{
	const unsigned char *s = (const unsigned char *)str;
	int len;

	while (*s) {
		int32_t cp = decode(s, &len);

		if (cp == '\\' || cp == '"')
			fprintf(out, "\\%c", (char)cp);
		else if (cp == '\n')
			fputs("\\n", out);
		else if (cp == '\r')
			fputs("\\r", out);
		else if (cp == '\t')
			fputs("\\t", out);
		else if (cp < 0 || cp < 0x20 || cp == 0x7f)
			fprintf(out, "\\x%02x", *s);
		else if (invisible(cp))
			fprintf(out, "\\u%04x", (unsigned)cp);
		else
			fwrite(s, 1, (size_t)len, out);
		s += len;
	}
}

void escape_json(FILE *out, const char *str)
{
	const unsigned char *s = (const unsigned char *)str;
	int len;

	while (*s) {
		int32_t cp = decode(s, &len);

		if (cp == '\\' || cp == '"')
			fprintf(out, "\\%c", (char)cp);
		else if (cp == '\n')
			fputs("\\n", out);
		else if (cp == '\r')
			fputs("\\r", out);
		else if (cp == '\t')
			fputs("\\t", out);
		else if (cp < 0)
			fputs("\\ufffd", out);
		else if (cp < 0x20 || cp == 0x7f || invisible(cp))
			fprintf(out, "\\u%04x", (unsigned)cp);
		else
			fwrite(s, 1, (size_t)len, out);
		s += len;
	}
}

void escape_xml(FILE *out, const char *str)
{
	const unsigned char *s = (const unsigned char *)str;
	int len;

	while (*s) {
		int32_t cp = decode(s, &len);

		if (cp == '&')
			fputs("&amp;", out);
		else if (cp == '<')
			fputs("&lt;", out);
		else if (cp == '>')
			fputs("&gt;", out);
		else if (cp == '"')
			fputs("&quot;", out);
		else if (cp == '\'')
			fputs("&apos;", out);
		else if (cp == '\\')
			fputs("\\\\", out);
		else if (cp == '\n')
			fputs("\\n", out);
		else if (cp == '\r')
			fputs("\\r", out);
		else if (cp == '\t')
			fputs("\\t", out);
		else if (cp < 0 || cp < 0x20 || cp == 0x7f)
			fprintf(out, "\\x%02x", *s);
		else if (invisible(cp))
			fprintf(out, "\\u%04x", (unsigned)cp);
		else
			fwrite(s, 1, (size_t)len, out);
		s += len;
	}
}
