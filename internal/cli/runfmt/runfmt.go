// Package runfmt writes run values for people and for programs, the same
// way in `sacred ls`, `show`, `files` and `compare`: cells of an aligned
// table on a terminal, tab-separated or CSV cells in a pipe, and compact
// JSON (NaN and Infinity as Python's json writes them, which jq reads).
package runfmt

import (
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sacred-go/sacred/pkg/sacredjson"
)

// TimeLayout is how a terminal shows a time (UTC, as Sacred records
// times).
const TimeLayout = "2006-01-02 15:04:05"

// Cell formats a value for a table. human is true on a terminal: floats
// to 6 significant digits, times to the second, durations as 1h02m03s
// (a duration is given as seconds by the caller through Duration).
// Otherwise values are exact: floats in their shortest form, times in
// RFC 3339 with microseconds. Objects and arrays are compact JSON; an
// absent value is "" (a terminal shows "-").
func Cell(v any, ok, human bool) string {
	if !ok {
		if human {
			return "-"
		}
		return ""
	}
	switch x := v.(type) {
	case nil:
		return "null"
	case string:
		return x
	case bool:
		return strconv.FormatBool(x)
	case float64:
		return Float(x, human)
	case int64:
		return strconv.FormatInt(x, 10)
	case int:
		return strconv.Itoa(x)
	case time.Time:
		return Time(x, human)
	case json.Number:
		return string(x)
	}
	return string(JSON(v))
}

// Float writes a number: shortest exact form, or 6 significant digits for
// people.
func Float(f float64, human bool) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	}
	if human {
		return strconv.FormatFloat(f, 'g', 6, 64)
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}

// Time writes a time in UTC; "" for the zero time.
func Time(t time.Time, human bool) string {
	if t.IsZero() {
		return ""
	}
	if human {
		return t.UTC().Format(TimeLayout)
	}
	return t.UTC().Format("2006-01-02T15:04:05.000000Z")
}

// Duration writes seconds as 1h02m03s (people) or as a number of seconds.
func Duration(seconds float64, human bool) string {
	if !human {
		return strconv.FormatFloat(seconds, 'f', -1, 64)
	}
	d := time.Duration(seconds * float64(time.Second))
	switch {
	case d < time.Second:
		return fmt.Sprintf("%dms", d.Milliseconds())
	case d < time.Minute:
		return fmt.Sprintf("%.1fs", d.Seconds())
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	}
	return fmt.Sprintf("%dh%02dm%02ds", int(d.Hours()), int(d.Minutes())%60, int(d.Seconds())%60)
}

// JSON encodes a value compactly: objects with sorted keys, times as RFC
// 3339 strings in UTC, NaN and the infinities as Python's json writes
// them (jq reads them).
func JSON(v any) []byte { return AppendJSON(nil, v) }

// AppendJSON appends the compact encoding of v.
func AppendJSON(dst []byte, v any) []byte {
	switch x := v.(type) {
	case nil:
		return append(dst, "null"...)
	case bool:
		return strconv.AppendBool(dst, x)
	case string:
		return sacredjson.AppendString(dst, x)
	case float64:
		return sacredjson.AppendFloat(dst, x)
	case float32:
		return sacredjson.AppendFloat(dst, float64(x))
	case int:
		return strconv.AppendInt(dst, int64(x), 10)
	case int32:
		return strconv.AppendInt(dst, int64(x), 10)
	case int64:
		return strconv.AppendInt(dst, x, 10)
	case uint64:
		return strconv.AppendUint(dst, x, 10)
	case json.Number:
		return append(dst, x...)
	case *big.Int:
		return x.Append(dst, 10)
	case time.Time:
		return sacredjson.AppendString(dst, x.UTC().Format(time.RFC3339Nano))
	case []byte:
		return sacredjson.AppendString(dst, string(x))
	case []string:
		dst = append(dst, '[')
		for i, s := range x {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = sacredjson.AppendString(dst, s)
		}
		return append(dst, ']')
	case []any:
		dst = append(dst, '[')
		for i, e := range x {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = AppendJSON(dst, e)
		}
		return append(dst, ']')
	case map[string]string:
		m := make(map[string]any, len(x))
		for k, s := range x {
			m[k] = s
		}
		return AppendJSON(dst, m)
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		dst = append(dst, '{')
		for i, k := range keys {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = sacredjson.AppendString(dst, k)
			dst = append(dst, ':')
			dst = AppendJSON(dst, x[k])
		}
		return append(dst, '}')
	case Object:
		return x.append(dst)
	}
	// Anything else (a struct of the record types): through sacredjson,
	// whose indented output is compacted outside strings.
	b, err := sacredjson.Marshal(v)
	if err != nil {
		return sacredjson.AppendString(dst, fmt.Sprint(v))
	}
	return append(dst, compact(b)...)
}

// Object is a JSON object whose keys keep the order they were added in.
type Object struct {
	keys []string
	vals []any
}

// Set adds a key (or replaces its value).
func (o *Object) Set(k string, v any) {
	if i := slices.Index(o.keys, k); i >= 0 {
		o.vals[i] = v
		return
	}
	o.keys = append(o.keys, k)
	o.vals = append(o.vals, v)
}

func (o Object) append(dst []byte) []byte {
	dst = append(dst, '{')
	for i, k := range o.keys {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = sacredjson.AppendString(dst, k)
		dst = append(dst, ':')
		dst = AppendJSON(dst, o.vals[i])
	}
	return append(dst, '}')
}

// compact removes the layout whitespace of indented JSON.
func compact(b []byte) []byte {
	out := make([]byte, 0, len(b))
	inStr, esc := false, false
	for _, c := range b {
		switch {
		case inStr:
			out = append(out, c)
			if esc {
				esc = false
			} else if c == '\\' {
				esc = true
			} else if c == '"' {
				inStr = false
			}
		case c == '"':
			inStr = true
			out = append(out, c)
		case c == ' ' || c == '\n' || c == '\t' || c == '\r':
		default:
			out = append(out, c)
		}
	}
	return out
}

// Escape keeps a cell on one line of a tab-separated table.
func Escape(s string) string {
	if !strings.ContainsAny(s, "\t\n\r\\") {
		return s
	}
	return strings.NewReplacer("\\", `\\`, "\t", `\t`, "\n", `\n`, "\r", `\r`).Replace(s)
}
