// Package sacredjson reads and writes JSON bytes exactly as Python Sacred
// does. It is public so that every store on Sacred's file-storage layout
// (file, S3, GCS, an observer of your own) writes the same bytes.
//
// Marshal produces the bytes of Python's
//
//	json.dump(obj, fp, sort_keys=True, indent=2)   # ensure_ascii=True
//
// which is what Sacred's FileStorageObserver (and S3/GCS) write:
//
//   - object keys sorted by code point, two-space indent, items separated by
//     "," and a newline, ": " between key and value, "{}" and "[]" for empty
//     containers, no trailing newline;
//   - strings are ASCII only: every non-ASCII character is a lowercase
//     \uXXXX escape (astral characters as a surrogate pair), \n \r \t \b \f
//     \" and \\ use the short escapes, other control characters and DEL
//     (0x7F) are \u00XX, and "/" is not escaped;
//   - floats use Python's repr (see AppendFloat), NaN and infinities are the
//     bare tokens NaN, Infinity and -Infinity (not strict JSON, as Python);
//   - integers of any size are written exactly.
//
// Go strings need not be valid UTF-8 where Python strings always are: each
// byte that is not part of a valid UTF-8 sequence is written as U+FFFD
// (\ufffd), one per byte, the same rule as ranging over a Go string.
//
// Unmarshal reads such files back (including NaN and Infinity), and
// FormatTime/ParseTime convert times to and from Python's naive-UTC
// isoformat().
package sacredjson

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"
	"unicode/utf8"
)

// Marshal returns v encoded as Python's json.dump(v, sort_keys=True,
// indent=2) would write it, without a trailing newline.
//
// Supported: nil, bool, string, all Go integer types, *big.Int, float32 and
// float64, json.Number, time.Time (as FormatTime), maps with string (or
// integer) keys, slices and arrays, pointers to these, []byte (base64, as
// encoding/json does), and anything else encoding/json can marshal (structs
// with json tags, json.Marshaler, json.RawMessage), which is converted
// through encoding/json and then written with the rules above.
func Marshal(v any) ([]byte, error) {
	return AppendValue(nil, v, 0)
}

// AppendValue appends the encoding of v to dst as if v were nested depth
// levels deep: lines inside containers are indented by 2*(depth+1) spaces
// and the closing bracket by 2*depth. The first line is not indented.
func AppendValue(dst []byte, v any, depth int) ([]byte, error) {
	e := encoder{buf: dst}
	if err := e.value(v, depth); err != nil {
		return dst, err
	}
	return e.buf, nil
}

// Indent appends the newline-and-indent that starts an item at the given
// depth (2 spaces per level).
func Indent(dst []byte, depth int) []byte {
	dst = append(dst, '\n')
	for range depth {
		dst = append(dst, ' ', ' ')
	}
	return dst
}

type encoder struct {
	buf []byte
	// depth counts nested calls, to stop on cyclic pointers.
	depth int
}

const maxDepth = 10000

var jsonMarshalerType = reflect.TypeFor[json.Marshaler]()

func (e *encoder) value(v any, depth int) error {
	e.depth++
	defer func() { e.depth-- }()
	if e.depth > maxDepth {
		return fmt.Errorf("sacredjson: value nested deeper than %d levels (cycle?)", maxDepth)
	}
	switch x := v.(type) {
	case nil:
		e.buf = append(e.buf, "null"...)
	case bool:
		if x {
			e.buf = append(e.buf, "true"...)
		} else {
			e.buf = append(e.buf, "false"...)
		}
	case string:
		e.buf = AppendString(e.buf, x)
	case int:
		e.buf = strconv.AppendInt(e.buf, int64(x), 10)
	case int64:
		e.buf = strconv.AppendInt(e.buf, x, 10)
	case int32:
		e.buf = strconv.AppendInt(e.buf, int64(x), 10)
	case uint64:
		e.buf = strconv.AppendUint(e.buf, x, 10)
	case uint:
		e.buf = strconv.AppendUint(e.buf, uint64(x), 10)
	case float64:
		e.buf = AppendFloat(e.buf, x)
	case float32:
		// Python has no float32: a numpy float32 becomes the float64 of
		// the same value, so write that.
		e.buf = AppendFloat(e.buf, float64(x))
	case json.Number:
		return e.number(x)
	case *big.Int:
		if x == nil {
			e.buf = append(e.buf, "null"...)
		} else {
			e.buf = x.Append(e.buf, 10)
		}
	case time.Time:
		e.buf = AppendString(e.buf, FormatTime(x))
	case map[string]any:
		return e.mapAny(x, depth)
	case []any:
		e.buf = append(e.buf, '[')
		for i, item := range x {
			if i > 0 {
				e.buf = append(e.buf, ',')
			}
			e.buf = Indent(e.buf, depth+1)
			if err := e.value(item, depth+1); err != nil {
				return err
			}
		}
		e.closeList(len(x), depth)
	case []string:
		e.buf = append(e.buf, '[')
		for i, item := range x {
			if i > 0 {
				e.buf = append(e.buf, ',')
			}
			e.buf = Indent(e.buf, depth+1)
			e.buf = AppendString(e.buf, item)
		}
		e.closeList(len(x), depth)
	case map[string]string:
		keys := sortedKeys(x)
		e.buf = append(e.buf, '{')
		for i, k := range keys {
			if i > 0 {
				e.buf = append(e.buf, ',')
			}
			e.buf = Indent(e.buf, depth+1)
			e.buf = AppendString(e.buf, k.clean)
			e.buf = append(e.buf, ": "...)
			e.buf = AppendString(e.buf, x[k.orig])
		}
		e.closeObject(len(keys), depth)
	default:
		return e.reflectValue(reflect.ValueOf(v), depth)
	}
	return nil
}

func (e *encoder) closeList(n, depth int) {
	if n > 0 {
		e.buf = Indent(e.buf, depth)
	}
	e.buf = append(e.buf, ']')
}

func (e *encoder) closeObject(n, depth int) {
	if n > 0 {
		e.buf = Indent(e.buf, depth)
	}
	e.buf = append(e.buf, '}')
}

// number writes a json.Number the way Python would write the value it
// parses to: integer literals exactly (Python ints are unbounded), anything
// else as the float it denotes.
func (e *encoder) number(n json.Number) error {
	s := string(n)
	if isIntLiteral(s) {
		e.buf = append(e.buf, s...)
		return nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil && !isRangeErr(err) {
		return fmt.Errorf("sacredjson: invalid number %q", s)
	}
	e.buf = AppendFloat(e.buf, f)
	return nil
}

// isRangeErr tells an out-of-range number (which ParseFloat returns as
// ±Inf, as Python does) from a malformed one.
func isRangeErr(err error) bool {
	return errors.Is(err, strconv.ErrRange)
}

func isIntLiteral(s string) bool {
	if s == "" {
		return false
	}
	i := 0
	if s[0] == '-' {
		i = 1
	}
	if i == len(s) {
		return false
	}
	for ; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

type key struct{ clean, orig string }

// sortedKeys returns the keys of m made valid UTF-8 and sorted by code
// point, which for valid UTF-8 is byte order.
func sortedKeys[V any](m map[string]V) []key {
	keys := make([]key, 0, len(m))
	for k := range m {
		keys = append(keys, key{clean: validUTF8(k), orig: k})
	}
	slices.SortFunc(keys, func(a, b key) int {
		if c := strings.Compare(a.clean, b.clean); c != 0 {
			return c
		}
		return strings.Compare(a.orig, b.orig)
	})
	return keys
}

// validUTF8 replaces each byte of s that is not part of a valid UTF-8
// sequence by U+FFFD.
func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	for _, r := range s { // invalid bytes come out as RuneError, one per byte
		b.WriteRune(r)
	}
	return b.String()
}

func (e *encoder) mapAny(m map[string]any, depth int) error {
	keys := sortedKeys(m)
	e.buf = append(e.buf, '{')
	for i, k := range keys {
		if i > 0 {
			e.buf = append(e.buf, ',')
		}
		e.buf = Indent(e.buf, depth+1)
		e.buf = AppendString(e.buf, k.clean)
		e.buf = append(e.buf, ": "...)
		if err := e.value(m[k.orig], depth+1); err != nil {
			return err
		}
	}
	e.closeObject(len(keys), depth)
	return nil
}

func (e *encoder) reflectValue(rv reflect.Value, depth int) error {
	if !rv.IsValid() {
		e.buf = append(e.buf, "null"...)
		return nil
	}
	t := rv.Type()
	if t.Implements(jsonMarshalerType) && !(rv.Kind() == reflect.Pointer && rv.IsNil()) {
		return e.viaEncodingJSON(rv.Interface(), depth)
	}
	switch rv.Kind() {
	case reflect.Pointer, reflect.Interface:
		if rv.IsNil() {
			e.buf = append(e.buf, "null"...)
			return nil
		}
		return e.value(rv.Elem().Interface(), depth)
	case reflect.Bool:
		return e.value(rv.Bool(), depth)
	case reflect.String:
		e.buf = AppendString(e.buf, rv.String())
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		e.buf = strconv.AppendInt(e.buf, rv.Int(), 10)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		e.buf = strconv.AppendUint(e.buf, rv.Uint(), 10)
	case reflect.Float32, reflect.Float64:
		e.buf = AppendFloat(e.buf, rv.Float())
	case reflect.Map:
		return e.reflectMap(rv, depth)
	case reflect.Slice:
		if rv.IsNil() {
			// encoding/json writes a nil slice as null; Python has no
			// such thing, and every list Sacred writes is a list.
			e.buf = append(e.buf, "[]"...)
			return nil
		}
		if t.Elem().Kind() == reflect.Uint8 {
			e.buf = AppendString(e.buf, base64.StdEncoding.EncodeToString(rv.Bytes()))
			return nil
		}
		fallthrough
	case reflect.Array:
		n := rv.Len()
		e.buf = append(e.buf, '[')
		for i := range n {
			if i > 0 {
				e.buf = append(e.buf, ',')
			}
			e.buf = Indent(e.buf, depth+1)
			if err := e.value(rv.Index(i).Interface(), depth+1); err != nil {
				return err
			}
		}
		e.closeList(n, depth)
	case reflect.Struct:
		return e.viaEncodingJSON(rv.Interface(), depth)
	default:
		return fmt.Errorf("sacredjson: cannot encode a value of type %s", t)
	}
	return nil
}

func (e *encoder) reflectMap(rv reflect.Value, depth int) error {
	if rv.IsNil() {
		e.buf = append(e.buf, "{}"...)
		return nil
	}
	type entry struct {
		k string
		v reflect.Value
	}
	entries := make([]entry, 0, rv.Len())
	iter := rv.MapRange()
	for iter.Next() {
		k := iter.Key()
		var ks string
		switch k.Kind() {
		case reflect.String:
			ks = validUTF8(k.String())
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
			ks = strconv.FormatInt(k.Int(), 10)
		case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
			ks = strconv.FormatUint(k.Uint(), 10)
		default:
			return fmt.Errorf("sacredjson: map key of type %s is not supported", k.Type())
		}
		entries = append(entries, entry{ks, iter.Value()})
	}
	slices.SortFunc(entries, func(a, b entry) int { return strings.Compare(a.k, b.k) })
	e.buf = append(e.buf, '{')
	for i, en := range entries {
		if i > 0 {
			e.buf = append(e.buf, ',')
		}
		e.buf = Indent(e.buf, depth+1)
		e.buf = AppendString(e.buf, en.k)
		e.buf = append(e.buf, ": "...)
		if err := e.value(en.v.Interface(), depth+1); err != nil {
			return err
		}
	}
	e.closeObject(len(entries), depth)
	return nil
}

// viaEncodingJSON encodes values only encoding/json knows (structs with
// tags, json.Marshaler) by letting it marshal them and re-encoding the
// result with Python's rules.
func (e *encoder) viaEncodingJSON(v any, depth int) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("sacredjson: %w", err)
	}
	decoded, err := Unmarshal(raw)
	if err != nil {
		return fmt.Errorf("sacredjson: re-reading %T: %w", v, err)
	}
	return e.value(decoded, depth)
}

const hexDigits = "0123456789abcdef"

// AppendString appends s as a Python ensure_ascii JSON string.
func AppendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0 // start of the run of bytes copied as they are
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c < 0x7f && c != '"' && c != '\\' {
			i++
			continue
		}
		dst = append(dst, s[start:i]...)
		if c < utf8.RuneSelf {
			switch c {
			case '"':
				dst = append(dst, '\\', '"')
			case '\\':
				dst = append(dst, '\\', '\\')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			default: // other control characters and DEL
				dst = appendU(dst, rune(c))
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r > 0xffff {
			r1, r2 := utf16.EncodeRune(r)
			dst = appendU(appendU(dst, r1), r2)
		} else {
			// An invalid byte decodes as RuneError (U+FFFD) of size 1.
			dst = appendU(dst, r)
		}
		i += size
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

func appendU(dst []byte, r rune) []byte {
	return append(dst, '\\', 'u',
		hexDigits[(r>>12)&0xf], hexDigits[(r>>8)&0xf], hexDigits[(r>>4)&0xf], hexDigits[r&0xf])
}

// AppendFloat appends f as Python's repr(float) writes it: the shortest
// digits that round-trip; exponent form when the decimal exponent is below
// -4 or at least 16 ("1e-05", "1e+16", "1.2345678901234568e+17"), positional
// otherwise, always with a fraction ("1.0", "1000000000000000.0", "-0.0");
// NaN, Infinity and -Infinity as bare tokens.
func AppendFloat(dst []byte, f float64) []byte {
	switch {
	case math.IsNaN(f):
		return append(dst, "NaN"...)
	case math.IsInf(f, 1):
		return append(dst, "Infinity"...)
	case math.IsInf(f, -1):
		return append(dst, "-Infinity"...)
	case f == 0:
		if math.Signbit(f) {
			return append(dst, "-0.0"...)
		}
		return append(dst, "0.0"...)
	}
	var scratch [40]byte
	b := strconv.AppendFloat(scratch[:0], f, 'e', -1, 64) // [-]d[.ddd]e±dd
	if b[0] == '-' {
		dst = append(dst, '-')
		b = b[1:]
	}
	ei := bytes.IndexByte(b, 'e')
	exp, _ := strconv.Atoi(string(b[ei+1:]))
	var digitBuf [24]byte
	digits := append(digitBuf[:0], b[0])
	if ei > 1 {
		digits = append(digits, b[2:ei]...)
	}
	if exp < -4 || exp >= 16 {
		dst = append(dst, digits[0])
		if len(digits) > 1 {
			dst = append(dst, '.')
			dst = append(dst, digits[1:]...)
		}
		dst = append(dst, 'e')
		if exp < 0 {
			dst = append(dst, '-')
			exp = -exp
		} else {
			dst = append(dst, '+')
		}
		if exp < 10 {
			dst = append(dst, '0')
		}
		return strconv.AppendInt(dst, int64(exp), 10)
	}
	decpt := exp + 1 // value = 0.<digits> × 10^decpt
	switch {
	case decpt <= 0:
		dst = append(dst, '0', '.')
		for range -decpt {
			dst = append(dst, '0')
		}
		dst = append(dst, digits...)
	case decpt >= len(digits):
		dst = append(dst, digits...)
		for range decpt - len(digits) {
			dst = append(dst, '0')
		}
		dst = append(dst, '.', '0')
	default:
		dst = append(dst, digits[:decpt]...)
		dst = append(dst, '.')
		dst = append(dst, digits[decpt:]...)
	}
	return dst
}

// FormatFloat returns AppendFloat's text as a string.
func FormatFloat(f float64) string { return string(AppendFloat(nil, f)) }

// isoLayout is Python's naive isoformat() with microseconds.
const isoLayout = "2006-01-02T15:04:05.000000"

// FormatTime returns t in UTC as Python's naive datetime.isoformat() writes
// it, e.g. "2026-11-27T03:07:12.269319", truncated to microseconds.
//
// Deviation from Python: the ".ffffff" part is always written, also when
// the microseconds are 0 (Python leaves it out then). Sacredboard parses
// times with "%Y-%m-%dT%H:%M:%S.%f" and crashes on the short form, and
// every reader of the long form (Python's fromisoformat, Incense, Omniboard)
// also reads it; the cost is byte parity in one case per million.
func FormatTime(t time.Time) string {
	var b [len(isoLayout) + 8]byte
	return string(t.UTC().AppendFormat(b[:0], isoLayout))
}

// ParseTime reads a time written by FormatTime or by Python's isoformat():
// naive (taken as UTC), with or without fractional seconds, with "T" or a
// space between date and time; an explicit offset or "Z" is honoured. The
// result is in UTC.
func ParseTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	norm := s
	if len(norm) > 10 && norm[10] == ' ' {
		norm = norm[:10] + "T" + norm[11:]
	}
	if t, err := time.Parse("2006-01-02T15:04:05", norm); err == nil {
		return t.UTC(), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, norm); err == nil {
		return t.UTC(), nil
	}
	if t, err := time.Parse("2006-01-02", norm); err == nil {
		return t.UTC(), nil
	}
	return time.Time{}, fmt.Errorf("sacredjson: not an isoformat time: %q", s)
}
