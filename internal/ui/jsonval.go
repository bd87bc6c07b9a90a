package ui

import (
	"encoding/json"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

// plain turns a value read from a store into one encoding/json writes and
// a browser's JSON.parse reads: NaN and the infinities (which Sacred's
// records may hold) become the strings Python writes for them, times
// become RFC 3339 text in UTC, large integers stay exact.
func plain(v any) any {
	switch x := v.(type) {
	case float64:
		return plainFloat(x)
	case float32:
		return plainFloat(float64(x))
	case time.Time:
		if x.IsZero() {
			return nil
		}
		return x.UTC().Format(time.RFC3339Nano)
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = plain(e)
		}
		return m
	case []any:
		l := make([]any, len(x))
		for i, e := range x {
			l[i] = plain(e)
		}
		return l
	case []string:
		l := make([]any, len(x))
		for i, e := range x {
			l[i] = e
		}
		return l
	}
	return v
}

func plainFloat(f float64) any {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	}
	return f
}

// timeJSON is a time as RFC 3339 text, or nil when unset.
func timeJSON(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, `{"error":"encoding the answer failed"}`, http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// apiError answers with one line saying what is wrong, as JSON.
func apiError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

// isIdent tells whether a key can follow a dot in a field path.
func isIdent(s string) bool {
	for i, c := range s {
		letter := c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
		if !letter && (i == 0 || c < '0' || c > '9') {
			return false
		}
	}
	return s != ""
}

// pathJoin adds a key to a field path of the query language, in brackets
// when it is not an identifier: config["learning-rate"].
func pathJoin(prefix, key string) string {
	if isIdent(key) {
		return prefix + "." + key
	}
	q, _ := json.Marshal(key)
	return prefix + "[" + string(q) + "]"
}

// flatten lists the leaf paths of a nested object under prefix, up to a
// depth, in sorted order; a list is a leaf.
func flatten(prefix string, m map[string]any, depth int, into map[string]bool) {
	for k, v := range m {
		p := pathJoin(prefix, k)
		if sub, ok := v.(map[string]any); ok && depth > 1 && len(sub) > 0 {
			flatten(p, sub, depth-1, into)
			continue
		}
		into[p] = true
	}
}

// flatValues maps each leaf path of a nested object to its value.
func flatValues(prefix string, m map[string]any, into map[string]any) {
	for k, v := range m {
		p := pathJoin(prefix, k)
		if sub, ok := v.(map[string]any); ok && len(sub) > 0 {
			flatValues(p, sub, into)
			continue
		}
		into[p] = v
	}
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// splitList splits a comma-separated parameter, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// intParam reads a non-negative integer parameter with a default and a cap.
func intParam(s string, def, hi int) (int, bool) {
	if s == "" {
		return def, true
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, false
	}
	return min(n, hi), true
}

// cell is a value as text for CSV: strings as they are, other values as
// JSON.
func cell(v any, ok bool) string {
	if !ok || v == nil {
		return ""
	}
	switch x := plain(v).(type) {
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	default:
		b, _ := json.Marshal(x)
		return string(b)
	}
}
