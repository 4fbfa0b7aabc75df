/* escape: strings from report files, made safe for where they go.
 *
 * Report and audit files may be written by anyone who can write into the
 * report directory: their strings (and the files' names) are never
 * printed as they are.  All three take any bytes, valid UTF-8 or not.
 *
 * escape_term(): for a terminal.  Printable ASCII and printable UTF-8 go
 * through; a backslash and a double quote get a backslash; \n, \r, \t are
 * shown so; other C0 bytes, DEL and bytes that are not part of valid UTF-8
 * as \xNN; C1 controls (U+0080..U+009F) and the invisible format and
 * direction characters (U+200B..U+200F, U+2028..U+202E, U+2060..U+206F,
 * U+FEFF, U+FFF9..U+FFFB, U+FFFE, U+FFFF) as \uXXXX.  The result holds no byte
 * a terminal acts on and no line break.
 *
 * escape_json(): the inside of a JSON string (no quotes): valid JSON
 * whatever the input; controls, C1 and the characters above as \uXXXX,
 * a byte that is not valid UTF-8 as U+FFFD.
 *
 * escape_xml(): XML 1.0 character data or attribute text: escape_term()'s
 * text with &, <, >, " and ' as entities. */
#ifndef FORKSHIM_LAUNCHER_ESCAPE_H
#define FORKSHIM_LAUNCHER_ESCAPE_H

#include <stddef.h>
#include <stdio.h>

/* Each returns the bytes it wrote. */
size_t escape_term(FILE *out, const char *s);
size_t escape_json(FILE *out, const char *s);
size_t escape_xml(FILE *out, const char *s);

#endif
