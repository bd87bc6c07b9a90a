package sqlstore

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"strings"
)

// Python's json.dumps writes NaN and the infinities as bare tokens, and
// Sacred's columns may hold them; encoding/json refuses both ways. These
// strings stand in for them while encoding/json does the rest.
const (
	sentNaN    = "\x00sacred:NaN\x00"
	sentInf    = "\x00sacred:Infinity\x00"
	sentNegInf = "\x00sacred:-Infinity\x00"
)

var tokenOf = map[string]string{sentNaN: "NaN", sentInf: "Infinity", sentNegInf: "-Infinity"}

// marshal encodes v as JSON, writing non-finite numbers as Python does.
func marshal(v any) (string, error) {
	b, err := json.Marshal(v)
	var uv *json.UnsupportedValueError
	if err == nil || !errors.As(err, &uv) {
		return string(b), err
	}
	b, err = json.Marshal(replaceFloats(v))
	if err != nil {
		return "", err
	}
	for sent, tok := range tokenOf {
		q, _ := json.Marshal(sent)
		b = bytes.ReplaceAll(b, q, []byte(tok))
	}
	return string(b), nil
}

func replaceFloats(v any) any {
	switch x := v.(type) {
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
		return replaceFloats(float64(x))
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = replaceFloats(e)
		}
		return m
	case []any:
		l := make([]any, len(x))
		for i, e := range x {
			l[i] = replaceFloats(e)
		}
		return l
	case []float64:
		l := make([]any, len(x))
		for i, e := range x {
			l[i] = replaceFloats(e)
		}
		return l
	}
	return v
}

// unmarshal decodes JSON as written by marshal or by Python Sacred.
func unmarshal(s string, v any) error {
	err := json.Unmarshal([]byte(s), v)
	if err == nil {
		return nil
	}
	fixed, changed := replaceTokens(s)
	if !changed {
		return err
	}
	var generic any
	if err2 := json.Unmarshal([]byte(fixed), &generic); err2 != nil {
		return err
	}
	generic = restoreFloats(generic)
	b, err2 := json.Marshal(replaceFloats(generic))
	if err2 != nil {
		return err
	}
	// Only generic targets can hold the restored floats.
	if p, ok := v.(*any); ok {
		*p = generic
		return nil
	}
	if p, ok := v.(*map[string]any); ok {
		m, _ := generic.(map[string]any)
		*p = m
		return nil
	}
	return json.Unmarshal(b, v)
}

// replaceTokens turns bare NaN, Infinity and -Infinity outside strings
// into sentinel strings.
func replaceTokens(s string) (string, bool) {
	var b strings.Builder
	inStr, esc, changed := false, false, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if inStr {
			b.WriteByte(c)
			switch {
			case esc:
				esc = false
			case c == '\\':
				esc = true
			case c == '"':
				inStr = false
			}
			continue
		}
		if c == '"' {
			inStr = true
			b.WriteByte(c)
			continue
		}
		matched := false
		for sent, tok := range tokenOf {
			if strings.HasPrefix(s[i:], tok) {
				q, _ := json.Marshal(sent)
				b.Write(q)
				i += len(tok) - 1
				matched, changed = true, true
				break
			}
		}
		if !matched {
			b.WriteByte(c)
		}
	}
	return b.String(), changed
}

func restoreFloats(v any) any {
	switch x := v.(type) {
	case string:
		switch x {
		case sentNaN:
			return math.NaN()
		case sentInf:
			return math.Inf(1)
		case sentNegInf:
			return math.Inf(-1)
		}
	case map[string]any:
		for k, e := range x {
			x[k] = restoreFloats(e)
		}
	case []any:
		for i, e := range x {
			x[i] = restoreFloats(e)
		}
	}
	return v
}
