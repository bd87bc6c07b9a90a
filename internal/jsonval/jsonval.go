// Package jsonval makes decoded values comparable whatever store they
// were read from: one store gives a number back as int64, another as
// float64 or json.Number, a third-party reader as int or uint32. The
// query language, `sacred compare` and the conformance suite all see
// numbers as float64.
package jsonval

import "encoding/json"

// Number returns a number of any Go numeric type, or a json.Number, as a
// float64; a json.Number that float64 cannot hold as its text. Any other
// value is returned as it is.
func Number(v any) any {
	n, _ := number(v)
	return n
}

// number is Number, and whether v is a number.
func number(v any) (any, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case float32:
		return float64(x), true
	case int:
		return float64(x), true
	case int8:
		return float64(x), true
	case int16:
		return float64(x), true
	case int32:
		return float64(x), true
	case int64:
		return float64(x), true
	case uint:
		return float64(x), true
	case uint8:
		return float64(x), true
	case uint16:
		return float64(x), true
	case uint32:
		return float64(x), true
	case uint64:
		return float64(x), true
	case json.Number:
		f, err := x.Float64()
		if err != nil {
			return x.String(), true
		}
		return f, true
	}
	return v, false
}

// Floats returns a copy of v with every number as Number gives it, maps
// (map[string]any) and arrays ([]any) copied all the way down. other,
// when not nil, is given every value that is none of decoded JSON's types
// (nil, bool, string, a number, map[string]any, []any) and returns what
// stands for it; a nil other leaves such values as they are.
func Floats(v any, other func(any) any) any {
	switch x := v.(type) {
	case nil, bool, string:
		return x
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = Floats(e, other)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = Floats(e, other)
		}
		return out
	}
	if n, ok := number(v); ok {
		return n
	}
	if other != nil {
		return other(v)
	}
	return v
}
