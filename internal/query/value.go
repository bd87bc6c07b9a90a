package query

import (
	"math"
	"reflect"
	"strings"
	"time"

	"github.com/sacred-go/sacred/internal/jsonval"
)

// class is the type of a value as the language sees it.
type class int

// The order of the classes is the sort order across types.
const (
	cNull class = iota
	cNumber
	cString
	cTime
	cBool
	cObject
	cArray
	cOther
)

// norm turns a value read from any store into the language's types:
// float64, string, bool, nil, time.Time, map[string]any, []any.
func norm(v any) any {
	switch x := v.(type) {
	case nil, float64, string, bool, time.Time, map[string]any, []any:
		return x
	case []string:
		l := make([]any, len(x))
		for i, s := range x {
			l[i] = s
		}
		return l
	case map[string]string:
		m := make(map[string]any, len(x))
		for k, s := range x {
			m[k] = s
		}
		return m
	}
	return jsonval.Number(v)
}

func classOf(v any) class {
	switch v.(type) {
	case nil:
		return cNull
	case float64:
		return cNumber
	case string:
		return cString
	case time.Time:
		return cTime
	case bool:
		return cBool
	case map[string]any:
		return cObject
	case []any:
		return cArray
	}
	return cOther
}

// timeLayouts are the ISO 8601 forms a string may take to compare with a
// time: a date, or a date and time with optional fraction and offset.
var timeLayouts = []string{
	"2006-01-02T15:04:05.999999999Z07:00",
	"2006-01-02T15:04:05.999999999",
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999",
	"2006-01-02T15:04Z07:00",
	"2006-01-02T15:04",
	"2006-01-02 15:04",
	"2006-01-02",
}

// parseTime reads an ISO 8601 string as a UTC time, to the microsecond
// (the finest any store keeps). A time without an offset is UTC, as
// Sacred's naive times are.
func parseTime(s string) (time.Time, bool) {
	s = strings.TrimSpace(s)
	if len(s) < 10 {
		return time.Time{}, false
	}
	for _, l := range timeLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t.UTC().Truncate(time.Microsecond), true
		}
	}
	return time.Time{}, false
}

// equal is == of the language: same class and same value; a time and a
// string are compared as times.
func equal(a, b any) bool {
	ca, cb := classOf(a), classOf(b)
	if ca == cTime && cb == cString {
		t, ok := parseTime(b.(string))
		return ok && a.(time.Time).Equal(t)
	}
	if ca == cString && cb == cTime {
		return equal(b, a)
	}
	if ca != cb {
		return false
	}
	switch ca {
	case cNull:
		return true
	case cNumber:
		return a.(float64) == b.(float64)
	case cString:
		return a.(string) == b.(string)
	case cBool:
		return a.(bool) == b.(bool)
	case cTime:
		return a.(time.Time).Equal(b.(time.Time))
	case cObject:
		ma, mb := a.(map[string]any), b.(map[string]any)
		if len(ma) != len(mb) {
			return false
		}
		for k, va := range ma {
			vb, ok := mb[k]
			if !ok || !equal(norm(va), norm(vb)) {
				return false
			}
		}
		return true
	case cArray:
		la, lb := a.([]any), b.([]any)
		if len(la) != len(lb) {
			return false
		}
		for i := range la {
			if !equal(norm(la[i]), norm(lb[i])) {
				return false
			}
		}
		return true
	}
	return reflect.DeepEqual(a, b)
}

// order compares a and b for <, <=, >, >=: numbers, strings (by code
// point) and times (a string against a time is read as a time). ok is
// false for anything else, and for NaN.
func order(a, b any) (c int, ok bool) {
	ca, cb := classOf(a), classOf(b)
	if ca == cTime && cb == cString {
		t, ok := parseTime(b.(string))
		if !ok {
			return 0, false
		}
		return a.(time.Time).Compare(t), true
	}
	if ca == cString && cb == cTime {
		c, ok := order(b, a)
		return -c, ok
	}
	if ca != cb {
		return 0, false
	}
	switch ca {
	case cNumber:
		x, y := a.(float64), b.(float64)
		if math.IsNaN(x) || math.IsNaN(y) {
			return 0, false
		}
		switch {
		case x < y:
			return -1, true
		case x > y:
			return 1, true
		}
		return 0, true
	case cString:
		return strings.Compare(a.(string), b.(string)), true
	case cTime:
		return a.(time.Time).Compare(b.(time.Time)), true
	}
	return 0, false
}

// sortCompare is the total order of --sort: missing and null first, then
// numbers, strings, times, booleans (false first), objects, arrays, other;
// NaN before the other numbers; objects and arrays all tie.
func sortCompare(a any, aok bool, b any, bok bool) int {
	if !aok {
		a = nil
	}
	if !bok {
		b = nil
	}
	ca, cb := classOf(a), classOf(b)
	if ca != cb {
		return int(ca) - int(cb)
	}
	switch ca {
	case cNumber:
		x, y := a.(float64), b.(float64)
		xn, yn := math.IsNaN(x), math.IsNaN(y)
		switch {
		case xn && yn:
			return 0
		case xn:
			return -1
		case yn:
			return 1
		case x < y:
			return -1
		case x > y:
			return 1
		}
		return 0
	case cString:
		return strings.Compare(a.(string), b.(string))
	case cTime:
		return a.(time.Time).Compare(b.(time.Time))
	case cBool:
		x, y := a.(bool), b.(bool)
		if x == y {
			return 0
		}
		if !x {
			return -1
		}
		return 1
	}
	return 0
}
