package sqlstore

import (
	"bytes"
	"strings"
	"unicode/utf8"
)

// Text columns (VARCHAR, TEXT) of PostgreSQL and MySQL refuse bytes that
// are not valid UTF-8 ("invalid byte sequence for encoding UTF8",
// "Incorrect string value"), and PostgreSQL refuses NUL. A command line,
// a path or a metric name may hold either, so every text value goes
// through cleanText or fit: invalid bytes and NUL become U+FFFD, as
// Python's errors="replace" does. JSON columns keep the bytes instead
// (see marshal); BLOB columns keep everything.

// decodeText decodes bytes as UTF-8, replacing each invalid byte, and NUL,
// with U+FFFD.
func decodeText(b []byte) string {
	if utf8.Valid(b) && bytes.IndexByte(b, 0) < 0 {
		return string(b)
	}
	var sb strings.Builder
	sb.Grow(len(b))
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		if r == 0 {
			r = utf8.RuneError
		}
		sb.WriteRune(r)
		b = b[n:]
	}
	return sb.String()
}

// cleanText makes s storable in a text column of every dialect.
func cleanText(s string) string {
	if utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 {
		return s
	}
	return decodeText([]byte(s))
}

// fit makes s storable in a VARCHAR(n) column of Sacred's schema: clean
// text of at most n characters (PostgreSQL and MySQL refuse longer
// values).
func fit(s string, n int) string {
	s = cleanText(s)
	if len(s) <= n {
		return s
	}
	i := 0
	for j := range s {
		if i == n {
			return s[:j]
		}
		i++
	}
	return s
}
