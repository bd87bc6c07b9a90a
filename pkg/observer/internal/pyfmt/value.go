package pyfmt

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/sacred-go/sacred/pkg/sacredjson"
)

// Tuple is a Python tuple: it prints with parentheses, as the
// (name, md5) pairs of Sacred's experiment sources do.
type Tuple []any

// Str returns Python's str(v).
func Str(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case time.Time:
		return DateTime(x)
	}
	return Repr(v)
}

// Repr returns Python's repr(v). Map keys are printed sorted, since a Go
// map keeps no insertion order.
func Repr(v any) string {
	var b strings.Builder
	writeRepr(&b, v)
	return b.String()
}

func writeRepr(b *strings.Builder, v any) {
	switch x := v.(type) {
	case nil:
		b.WriteString("None")
	case bool:
		if x {
			b.WriteString("True")
		} else {
			b.WriteString("False")
		}
	case string:
		b.WriteString(quote(x))
	case float64:
		b.WriteString(floatStr(x))
	case float32:
		b.WriteString(floatStr(float64(x)))
	case json.Number:
		if isIntText(string(x)) {
			b.WriteString(string(x))
		} else if f, err := x.Float64(); err == nil {
			b.WriteString(floatStr(f))
		} else {
			b.WriteString(string(x))
		}
	case time.Time:
		b.WriteString(dateTimeRepr(x))
	case []any:
		b.WriteByte('[')
		for i, e := range x {
			if i > 0 {
				b.WriteString(", ")
			}
			writeRepr(b, e)
		}
		b.WriteByte(']')
	case []string:
		b.WriteByte('[')
		for i, e := range x {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(quote(e))
		}
		b.WriteByte(']')
	case Tuple:
		b.WriteByte('(')
		for i, e := range x {
			if i > 0 {
				b.WriteString(", ")
			}
			writeRepr(b, e)
		}
		if len(x) == 1 {
			b.WriteByte(',')
		}
		b.WriteByte(')')
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		b.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(quote(k))
			b.WriteString(": ")
			writeRepr(b, x[k])
		}
		b.WriteByte('}')
	default:
		if i, ok := toInt(v); ok {
			b.WriteString(i)
			return
		}
		fmt.Fprint(b, v)
	}
}

// toInt returns the decimal text of a Go integer.
func toInt(v any) (string, bool) {
	switch x := v.(type) {
	case int:
		return strconv.Itoa(x), true
	case int8, int16, int32, int64:
		return fmt.Sprint(x), true
	case uint, uint8, uint16, uint32, uint64:
		return fmt.Sprint(x), true
	}
	return "", false
}

func isIntText(s string) bool {
	return isDigits(strings.TrimPrefix(s, "-"))
}

// floatStr is Python's repr(float): nan, inf and -inf for the special
// values, the shortest round-trip digits otherwise.
func floatStr(f float64) string {
	switch {
	case math.IsNaN(f):
		return "nan"
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	}
	return sacredjson.FormatFloat(f)
}

// quote is Python's repr(str): single quotes unless the text holds a
// single quote and no double quote; \\, \n, \r, \t and the quote escaped;
// other non-printable characters as \xhh, \uhhhh or \Uhhhhhhhh.
func quote(s string) string {
	q := byte('\'')
	if strings.IndexByte(s, '\'') >= 0 && strings.IndexByte(s, '"') < 0 {
		q = '"'
	}
	var b strings.Builder
	b.WriteByte(q)
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			// Not valid UTF-8: Python would hold a surrogate escape.
			fmt.Fprintf(&b, `\udc%02x`, s[i])
			i++
			continue
		}
		i += size
		switch {
		case r == rune(q) || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		case r < 0x80 || isPrintable(r):
			b.WriteRune(r)
		case r <= 0xff:
			fmt.Fprintf(&b, `\x%02x`, r)
		case r <= 0xffff:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			fmt.Fprintf(&b, `\U%08x`, r)
		}
	}
	b.WriteByte(q)
	return b.String()
}

// isPrintable approximates Python's str.isprintable for one character:
// letters, marks, numbers, punctuation, symbols and the ASCII space.
func isPrintable(r rune) bool {
	return unicode.In(r, unicode.L, unicode.M, unicode.N, unicode.P, unicode.S)
}

// ASCII is Python's ascii() applied to the text of a repr: every non-ASCII
// character escaped.
func ASCII(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r < 0x80:
			b.WriteRune(r)
		case r <= 0xff:
			fmt.Fprintf(&b, `\x%02x`, r)
		case r <= 0xffff:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			fmt.Fprintf(&b, `\U%08x`, r)
		}
	}
	return b.String()
}

// typeName is the Python type name of a value, for messages.
func typeName(v any) string {
	switch x := v.(type) {
	case nil:
		return "None"
	case bool:
		return "a bool"
	case string:
		return "a string"
	case float64, float32:
		return "a float"
	case json.Number:
		if isIntText(string(x)) {
			return "an int"
		}
		return "a float"
	case time.Time:
		return "a datetime"
	case []any, []string:
		return "a list"
	case Tuple:
		return "a tuple"
	case map[string]any:
		return "a dict"
	}
	if _, ok := toInt(v); ok {
		return "an int"
	}
	return fmt.Sprintf("%T", v)
}
