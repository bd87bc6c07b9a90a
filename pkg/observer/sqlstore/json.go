package sqlstore

import (
	"bytes"
	"encoding/json"
	"math"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"
)

// The JSON columns (config, info, run_extra) are written as Python writes
// them, in two points where encoding/json cannot:
//
//   - NaN and the infinities are the bare tokens NaN, Infinity and
//     -Infinity, as Python's json.dumps writes them;
//   - a byte that is not part of valid UTF-8 (argv, a path or a config
//     value need not be UTF-8) is the escape \udc80 to \udcff, Python's
//     "surrogateescape" form of an undecodable byte (as in Python's own
//     sys.argv), so that no byte is lost: our reader turns it back into the
//     byte, and Python's json.loads reads it as a lone surrogate.
//
// Sentinel strings stand in for both while encoding/json does the rest; a
// sentinel starts with NUL, which no argv, path or environment string can
// hold.
const (
	sentPrefix = "\x00sacred:"
	sentNaN    = sentPrefix + "NaN\x00"
	sentInf    = sentPrefix + "Infinity\x00"
	sentNegInf = sentPrefix + "-Infinity\x00"
	// sentByte + two hex digits + "\x00" stands for one raw byte.
	sentByte = sentPrefix + "b"
)

var tokenOf = map[string]string{sentNaN: "NaN", sentInf: "Infinity", sentNegInf: "-Infinity"}

// marshal encodes v as JSON, writing non-finite numbers and raw bytes as
// described above. Strings in the structs of this package must have been
// passed through esc; maps and slices of JSON values are handled here.
func marshal(v any) (string, error) {
	if needsPrep(v) {
		v = prep(v)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	if !bytes.Contains(b, []byte(`\u0000sacred:`)) {
		return string(b), nil
	}
	return string(unsentinel(b)), nil
}

// esc returns s with each byte that is not part of valid UTF-8 replaced by
// its sentinel, for marshal.
func esc(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	for len(s) > 0 {
		r, n := utf8.DecodeRuneInString(s)
		if r == utf8.RuneError && n == 1 {
			b.WriteString(sentByte)
			b.WriteString(strconv.FormatUint(uint64(s[0])|0x100, 16)[1:])
			b.WriteByte(0)
		} else {
			b.WriteString(s[:n])
		}
		s = s[n:]
	}
	return b.String()
}

func escAll(ss []string) []string {
	if ss == nil {
		return nil
	}
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = esc(s)
	}
	return out
}

// needsPrep tells whether a JSON value holds a non-finite number or a
// string that is not valid UTF-8, so that the common case is encoded
// without a copy.
func needsPrep(v any) bool {
	switch x := v.(type) {
	case string:
		return !utf8.ValidString(x)
	case float64:
		return math.IsNaN(x) || math.IsInf(x, 0)
	case float32:
		return needsPrep(float64(x))
	case map[string]any:
		for k, e := range x {
			if !utf8.ValidString(k) || needsPrep(e) {
				return true
			}
		}
	case map[string]string:
		for k, e := range x {
			if !utf8.ValidString(k) || !utf8.ValidString(e) {
				return true
			}
		}
	case []any:
		for _, e := range x {
			if needsPrep(e) {
				return true
			}
		}
	case []float64:
		for _, e := range x {
			if needsPrep(e) {
				return true
			}
		}
	case []string:
		for _, e := range x {
			if !utf8.ValidString(e) {
				return true
			}
		}
	}
	return false
}

// prep returns a copy of a JSON value with sentinels in place of
// non-finite numbers and raw bytes. The value itself is not changed: it
// belongs to the event.
func prep(v any) any {
	switch x := v.(type) {
	case string:
		return esc(x)
	case float64:
		switch {
		case math.IsNaN(x):
			return sentNaN
		case math.IsInf(x, 1):
			return sentInf
		case math.IsInf(x, -1):
			return sentNegInf
		}
		return x
	case float32:
		return prep(float64(x))
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[esc(k)] = prep(e)
		}
		return m
	case map[string]string:
		m := make(map[string]string, len(x))
		for k, e := range x {
			m[esc(k)] = esc(e)
		}
		return m
	case []any:
		l := make([]any, len(x))
		for i, e := range x {
			l[i] = prep(e)
		}
		return l
	case []float64:
		l := make([]any, len(x))
		for i, e := range x {
			l[i] = prep(e)
		}
		return l
	case []string:
		return escAll(x)
	}
	return v
}

// unsentinel rewrites the sentinels in JSON written by encoding/json:
// a string that is a whole number sentinel becomes the bare token, a byte
// sentinel inside a string becomes \udcXX.
func unsentinel(b []byte) []byte {
	const byteEsc = `\u0000sacred:b` // then two hex digits and \u0000
	out := make([]byte, 0, len(b))
	inStr := false
	for i := 0; i < len(b); {
		c := b[i]
		if inStr {
			switch c {
			case '\\':
				rest := b[i:]
				if bytes.HasPrefix(rest, []byte(byteEsc)) && len(rest) >= len(byteEsc)+8 &&
					string(rest[len(byteEsc)+2:len(byteEsc)+8]) == `\u0000` {
					out = append(out, `\udc`...)
					out = append(out, rest[len(byteEsc):len(byteEsc)+2]...)
					i += len(byteEsc) + 8
					continue
				}
				out = append(out, b[i:min(i+2, len(b))]...)
				i += 2
				continue
			case '"':
				inStr = false
			}
			out = append(out, c)
			i++
			continue
		}
		if c == '"' {
			matched := false
			for sent, tok := range tokenOf {
				q, _ := json.Marshal(sent)
				if bytes.HasPrefix(b[i:], q) {
					out = append(out, tok...)
					i += len(q)
					matched = true
					break
				}
			}
			if matched {
				continue
			}
			inStr = true
		}
		out = append(out, c)
		i++
	}
	return out
}

// unmarshal decodes JSON as written by marshal or by Python Sacred into v,
// a pointer: bare NaN and infinities become numbers where v can hold any
// value, and \udc80 to \udcff escapes become the raw bytes they stand for.
func unmarshal(s string, v any) error {
	fixed, changed := sentinels(s)
	if err := json.Unmarshal([]byte(fixed), v); err != nil {
		return err
	}
	if changed {
		restore(reflect.ValueOf(v))
	}
	return nil
}

// sentinels turns bare NaN, Infinity and -Infinity outside strings into
// sentinel strings, and \udcXX escapes of raw bytes inside strings into
// byte sentinels.
func sentinels(s string) (string, bool) {
	if !strings.Contains(s, "NaN") && !strings.Contains(s, "Infinity") &&
		!strings.Contains(s, `\udc`) && !strings.Contains(s, `\uDC`) && !strings.Contains(s, `\uDc`) && !strings.Contains(s, `\udC`) {
		return s, false
	}
	var b strings.Builder
	inStr, changed := false, false
	for i := 0; i < len(s); {
		c := s[i]
		if inStr {
			switch c {
			case '\\':
				if r, ok := rawByteEscape(s[i:]); ok {
					q, _ := json.Marshal(sentByte + strconv.FormatUint(uint64(r)|0x100, 16)[1:] + "\x00")
					b.Write(q[1 : len(q)-1])
					i += 6
					changed = true
					continue
				}
				b.WriteString(s[i:min(i+2, len(s))])
				i += 2
				continue
			case '"':
				inStr = false
			}
			b.WriteByte(c)
			i++
			continue
		}
		if c == '"' {
			inStr = true
			b.WriteByte(c)
			i++
			continue
		}
		matched := false
		for sent, tok := range tokenOf {
			if strings.HasPrefix(s[i:], tok) {
				q, _ := json.Marshal(sent)
				b.Write(q)
				i += len(tok)
				matched, changed = true, true
				break
			}
		}
		if !matched {
			b.WriteByte(c)
			i++
		}
	}
	return b.String(), changed
}

// rawByteEscape reads a \udc80 to \udcff escape at the start of s and
// returns the byte it stands for.
func rawByteEscape(s string) (byte, bool) {
	if len(s) < 6 || s[1] != 'u' || !strings.EqualFold(s[2:4], "dc") {
		return 0, false
	}
	n, err := strconv.ParseUint(s[4:6], 16, 8)
	if err != nil || n < 0x80 {
		return 0, false
	}
	return byte(n), true
}

// restore undoes the sentinels of sentinels in a decoded value, in place:
// byte sentinels in every string (map keys too), number sentinels where
// the value is of any type.
func restore(v reflect.Value) {
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			restore(v.Elem())
		}
	case reflect.Interface:
		if v.IsNil() {
			return
		}
		switch e := v.Elem(); e.Kind() {
		case reflect.String:
			if r, ok := restoreAny(e.String()); ok && v.CanSet() {
				v.Set(reflect.ValueOf(r))
			}
		case reflect.Map, reflect.Slice:
			restore(e) // changed in place
		}
	case reflect.String:
		if s, ok := restoreBytes(v.String()); ok && v.CanSet() {
			v.SetString(s)
		}
	case reflect.Slice, reflect.Array:
		for i := 0; i < v.Len(); i++ {
			restore(v.Index(i))
		}
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).IsExported() {
				restore(v.Field(i))
			}
		}
	case reflect.Map:
		if v.IsNil() {
			return
		}
		type entry struct{ key, val reflect.Value }
		var changed []entry
		for it := v.MapRange(); it.Next(); {
			k, val := it.Key(), reflect.New(v.Type().Elem()).Elem()
			val.Set(it.Value())
			restore(val)
			changed = append(changed, entry{k, val})
		}
		for _, e := range changed {
			k := e.key
			if k.Kind() == reflect.String {
				if s, ok := restoreBytes(k.String()); ok {
					v.SetMapIndex(k, reflect.Value{})
					k = reflect.ValueOf(s).Convert(k.Type())
				}
			}
			v.SetMapIndex(k, e.val)
		}
	}
}

// restoreAny gives the value a sentinel string of a value of any type
// stands for.
func restoreAny(s string) (any, bool) {
	switch s {
	case sentNaN:
		return math.NaN(), true
	case sentInf:
		return math.Inf(1), true
	case sentNegInf:
		return math.Inf(-1), true
	}
	if r, ok := restoreBytes(s); ok {
		return r, true
	}
	return nil, false
}

// restoreBytes replaces the byte sentinels of s with the bytes.
func restoreBytes(s string) (string, bool) {
	if !strings.Contains(s, sentByte) {
		return s, false
	}
	var b strings.Builder
	for {
		i := strings.Index(s, sentByte)
		if i < 0 || len(s) < i+len(sentByte)+3 || s[i+len(sentByte)+2] != 0 {
			b.WriteString(s)
			return b.String(), true
		}
		n, err := strconv.ParseUint(s[i+len(sentByte):i+len(sentByte)+2], 16, 8)
		if err != nil {
			b.WriteString(s[:i+1])
			s = s[i+1:]
			continue
		}
		b.WriteString(s[:i])
		b.WriteByte(byte(n))
		s = s[i+len(sentByte)+3:]
	}
}
