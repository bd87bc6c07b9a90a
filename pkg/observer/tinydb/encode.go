package tinydb

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sacred-go/sacred/pkg/sacredjson"
)

// TinyDB's JSONStorage writes json.dumps(data): separators ", " and ": ",
// no indent, ensure_ascii, keys in insertion order. appendJSON writes a
// value that way; strings and floats use the same rules as the file store
// (pyjson). Go maps have no insertion order, so their keys are sorted.

// dateTag and fileTag are tinydb-serialization's tags: a tagged value is
// the string tag + encoded form.
const (
	dateTag = "{TinyDate}:"
	fileTag = "{TinyFile}:"
)

// dateLayout is Sacred's DateTimeSerializer format, %Y-%m-%dT%H:%M:%S.%f:
// always six fractional digits.
const dateLayout = "2006-01-02T15:04:05.000000"

// appendDate appends t (in UTC) as a TinyDate string.
func appendDate(dst []byte, t time.Time) []byte {
	dst = append(dst, '"')
	dst = append(dst, dateTag...)
	dst = t.UTC().AppendFormat(dst, dateLayout)
	return append(dst, '"')
}

// appendFile appends a TinyFile reference to the hashfs file with id
// (its md5): the tag followed by json.dumps(id), quotes included.
func appendFile(dst []byte, id string) []byte {
	return sacredjson.AppendString(dst, fileTag+`"`+id+`"`)
}

// parseDate reads a TinyDate string (or a plain isoformat time).
func parseDate(s string) (time.Time, bool) {
	s = strings.TrimPrefix(s, dateTag)
	if t, err := time.Parse(dateLayout, s); err == nil {
		return t.UTC(), true
	}
	if t, err := sacredjson.ParseTime(s); err == nil {
		return t, true
	}
	return time.Time{}, false
}

// fileID reads the hashfs id out of a TinyFile string; "" when s is not
// one.
func fileID(s string) string {
	rest, ok := strings.CutPrefix(s, fileTag)
	if !ok {
		return ""
	}
	v, err := sacredjson.Unmarshal([]byte(rest))
	if err != nil {
		return ""
	}
	id, _ := v.(string)
	return id
}

// maxNesting bounds the nesting of values we write: deeper values come
// from a cycle.
const maxNesting = 1000

// appendJSON appends v as json.dumps writes it.
func appendJSON(dst []byte, v any) ([]byte, error) {
	return appendValue(dst, v, 0)
}

func appendValue(dst []byte, v any, depth int) ([]byte, error) {
	if depth > maxNesting {
		return dst, fmt.Errorf("value nested deeper than %d levels", maxNesting)
	}
	switch x := v.(type) {
	case nil:
		return append(dst, "null"...), nil
	case bool:
		return strconv.AppendBool(dst, x), nil
	case string:
		return sacredjson.AppendString(dst, x), nil
	case int:
		return strconv.AppendInt(dst, int64(x), 10), nil
	case int64:
		return strconv.AppendInt(dst, x, 10), nil
	case int32:
		return strconv.AppendInt(dst, int64(x), 10), nil
	case uint64:
		return strconv.AppendUint(dst, x, 10), nil
	case uint:
		return strconv.AppendUint(dst, uint64(x), 10), nil
	case float64:
		return sacredjson.AppendFloat(dst, x), nil
	case float32:
		return sacredjson.AppendFloat(dst, float64(x)), nil
	case json.Number:
		return appendNumber(dst, x)
	case *big.Int:
		if x == nil {
			return append(dst, "null"...), nil
		}
		return x.Append(dst, 10), nil
	case time.Time:
		// What Sacred's serializer does with a datetime anywhere.
		return appendDate(dst, x), nil
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		dst = append(dst, '{')
		for i, k := range keys {
			if i > 0 {
				dst = append(dst, ", "...)
			}
			dst = sacredjson.AppendString(dst, k)
			dst = append(dst, ": "...)
			var err error
			if dst, err = appendValue(dst, x[k], depth+1); err != nil {
				return dst, err
			}
		}
		return append(dst, '}'), nil
	case []any:
		dst = append(dst, '[')
		for i, e := range x {
			if i > 0 {
				dst = append(dst, ", "...)
			}
			var err error
			if dst, err = appendValue(dst, e, depth+1); err != nil {
				return dst, err
			}
		}
		return append(dst, ']'), nil
	case []string:
		dst = append(dst, '[')
		for i, e := range x {
			if i > 0 {
				dst = append(dst, ", "...)
			}
			dst = sacredjson.AppendString(dst, e)
		}
		return append(dst, ']'), nil
	case map[string]string:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = e
		}
		return appendValue(dst, m, depth)
	}
	// Anything else (structs, typed maps and slices): through pyjson,
	// which knows encoding/json's rules, back to plain values.
	raw, err := sacredjson.Marshal(v)
	if err != nil {
		return dst, err
	}
	plain, err := sacredjson.Unmarshal(raw)
	if err != nil {
		return dst, err
	}
	return appendValue(dst, plain, depth+1)
}

// appendNumber writes a json.Number as Python writes the value it parses
// to: integers exactly, anything else as a float.
func appendNumber(dst []byte, n json.Number) ([]byte, error) {
	s := string(n)
	if _, ok := new(big.Int).SetString(s, 10); ok {
		return append(dst, s...), nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return dst, fmt.Errorf("invalid number %q", s)
	}
	return sacredjson.AppendFloat(dst, f), nil
}
