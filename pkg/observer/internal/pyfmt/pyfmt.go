// Package pyfmt fills message templates the way Python's str.format(**vars)
// does, so that the texts users wrote for Python Sacred's Slack and
// Telegram observers give the same messages here.
//
// Supported: literal text with {{ and }}, fields named by a variable
// followed by any number of [key] or [index] lookups ({experiment[name]},
// {config[layers][0]}), the conversions !s, !r and !a, and a format spec
// (the mini-language for strings, integers and floats, strftime codes for
// datetimes). Values are decoded JSON (nil, bool, int64, float64,
// json.Number, string, []any, map[string]any), Tuple and time.Time; they
// print as Python's str() and repr() print the same values.
//
// Not supported, and refused when the template is parsed: positional
// fields ({} and {0}), attribute access ({start_time.year}) and fields
// nested in a format spec ({x:{width}}).
package pyfmt

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Template is a parsed format string.
type Template struct {
	src   string
	parts []part
}

// part is literal text (field == nil) or a replacement field.
type part struct {
	lit   string
	field *Field
}

// Field is one replacement field, e.g. {config[lr]:.3f}.
type Field struct {
	Text string   // as written, with the braces
	Name string   // the variable, e.g. "config"
	Keys []string // the lookups, e.g. ["lr"]; digits index a list
	Conv byte     // 0, 's', 'r' or 'a'
	Spec string   // the format spec, e.g. ".3f"
}

// Parse parses a format string as Python's str.format reads it.
func Parse(src string) (*Template, error) {
	t := &Template{src: src}
	var lit strings.Builder
	for i := 0; i < len(src); {
		c := src[i]
		switch {
		case c == '{' && i+1 < len(src) && src[i+1] == '{':
			lit.WriteByte('{')
			i += 2
		case c == '}' && i+1 < len(src) && src[i+1] == '}':
			lit.WriteByte('}')
			i += 2
		case c == '}':
			return nil, fmt.Errorf("single '}' at byte %d: write '}}' for a literal brace", i)
		case c == '{':
			end, err := fieldEnd(src, i)
			if err != nil {
				return nil, err
			}
			f, err := parseField(src[i : end+1])
			if err != nil {
				return nil, err
			}
			if lit.Len() > 0 {
				t.parts = append(t.parts, part{lit: lit.String()})
				lit.Reset()
			}
			t.parts = append(t.parts, part{field: f})
			i = end + 1
		default:
			lit.WriteByte(c)
			i++
		}
	}
	if lit.Len() > 0 {
		t.parts = append(t.parts, part{lit: lit.String()})
	}
	return t, nil
}

// fieldEnd returns the index of the '}' closing the field opened at
// src[start]. Brackets are skipped as Python's parser skips them, so that
// a key may hold ':' or '!'.
func fieldEnd(src string, start int) (int, error) {
	inKey := false
	for i := start + 1; i < len(src); i++ {
		switch c := src[i]; {
		case inKey:
			if c == ']' {
				inKey = false
			}
		case c == '[':
			inKey = true
		case c == '{':
			return 0, fmt.Errorf("%s...: expected '}' before '{' (a field inside a field, such as {x:{width}}, is not supported)", src[start:i])
		case c == '}':
			return i, nil
		}
	}
	return 0, fmt.Errorf("%q: expected '}' before the end of the text", src[start:])
}

// parseField parses "{name[key]...!c:spec}".
func parseField(text string) (*Field, error) {
	f := &Field{Text: text}
	body := text[1 : len(text)-1]
	// The name with its lookups ends at the first '!' or ':' outside
	// brackets.
	end := len(body)
	inKey := false
	for i := 0; i < len(body); i++ {
		c := body[i]
		if inKey {
			inKey = c != ']'
			continue
		}
		if c == '[' {
			inKey = true
		} else if c == '!' || c == ':' {
			end = i
			break
		}
	}
	name, rest := body[:end], body[end:]
	if strings.HasPrefix(rest, "!") {
		if len(rest) < 2 || (len(rest) > 2 && rest[2] != ':') {
			return nil, fmt.Errorf("%s: a conversion is one letter after '!' (!s, !r or !a)", text)
		}
		switch rest[1] {
		case 's', 'r', 'a':
			f.Conv = rest[1]
		default:
			return nil, fmt.Errorf("%s: unknown conversion !%c (use !s, !r or !a)", text, rest[1])
		}
		rest = rest[2:]
	}
	if strings.HasPrefix(rest, ":") {
		// The spec is checked against the value: a datetime takes
		// strftime codes, everything else the mini-language.
		f.Spec = rest[1:]
	}
	i := strings.IndexAny(name, "[.")
	if i < 0 {
		i = len(name)
	}
	f.Name = name[:i]
	switch {
	case f.Name == "" || isDigits(f.Name):
		return nil, fmt.Errorf("%s: positional fields are not available; name a value, e.g. {experiment[name]}", text)
	case !isIdentifier(f.Name):
		return nil, fmt.Errorf("%s: %q is not a name", text, f.Name)
	}
	for rest := name[i:]; rest != ""; {
		if rest[0] == '.' {
			return nil, fmt.Errorf("%s: attribute access (.%s) is not supported; use [key]", text, strings.TrimPrefix(rest, "."))
		}
		// rest[0] == '['
		j := strings.IndexByte(rest, ']')
		if j < 0 {
			return nil, fmt.Errorf("%s: missing ']'", text)
		}
		key := rest[1:j]
		if key == "" {
			return nil, fmt.Errorf("%s: empty []", text)
		}
		f.Keys = append(f.Keys, key)
		rest = rest[j+1:]
		if rest != "" && rest[0] != '[' && rest[0] != '.' {
			return nil, fmt.Errorf("%s: only '.' or '[' may follow ']'", text)
		}
	}
	return f, nil
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func isIdentifier(s string) bool {
	for i, r := range s {
		ok := r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r > 0x7f || i > 0 && r >= '0' && r <= '9'
		if !ok {
			return false
		}
	}
	return s != ""
}

// String returns the format string as given.
func (t *Template) String() string { return t.src }

// Fields returns the replacement fields in order.
func (t *Template) Fields() []*Field {
	var out []*Field
	for _, p := range t.parts {
		if p.field != nil {
			out = append(out, p.field)
		}
	}
	return out
}

// ErrMissing is matched (errors.Is) by the errors of a field whose
// variable, key or index does not exist.
var ErrMissing = errors.New("no such value")

// missing is an error text that matches ErrMissing.
type missing string

func (m missing) Error() string      { return string(m) }
func (missing) Is(target error) bool { return target == ErrMissing }

// Format fills the template with vars, as Python's t.format(**vars).
func (t *Template) Format(vars map[string]any) (string, error) {
	var b strings.Builder
	for _, p := range t.parts {
		if p.field == nil {
			b.WriteString(p.lit)
			continue
		}
		s, err := p.field.Format(vars)
		if err != nil {
			return "", err
		}
		b.WriteString(s)
	}
	return b.String(), nil
}

// Lookup resolves the field's variable and keys in vars.
func (f *Field) Lookup(vars map[string]any) (any, error) {
	v, ok := vars[f.Name]
	if !ok {
		return nil, missing(fmt.Sprintf("%s: there is no value %q", f.Text, f.Name))
	}
	path := f.Name
	for _, k := range f.Keys {
		var err error
		if v, err = index(v, k); err != nil {
			return nil, fmt.Errorf("%s: %s%w", f.Text, path, err)
		}
		path += "[" + k + "]"
	}
	return v, nil
}

// index is Python's v[k] where k is an int when it is all digits, else a
// string, as str.format passes it.
func index(v any, k string) (any, error) {
	switch x := v.(type) {
	case map[string]any:
		if isDigits(k) {
			// Python looks up the int k, which a JSON object (string
			// keys only) never holds.
			return nil, fmt.Errorf(" has no key %s (an integer; str.format cannot look up the text %q)", k, k)
		}
		e, ok := x[k]
		if !ok {
			return nil, missing(" has no key " + Repr(k))
		}
		return e, nil
	case []any, Tuple:
		list, _ := x.([]any)
		if tup, ok := x.(Tuple); ok {
			list = tup
		}
		if !isDigits(k) {
			return nil, fmt.Errorf(" is a list: index it with a number, not %q", k)
		}
		i, err := strconv.Atoi(k)
		if err != nil || i >= len(list) {
			return nil, missing(fmt.Sprintf(" has no item %s (it has %d)", k, len(list)))
		}
		return list[i], nil
	case string:
		if !isDigits(k) {
			return nil, fmt.Errorf(" is a string: index it with a number, not %q", k)
		}
		r := []rune(x)
		i, err := strconv.Atoi(k)
		if err != nil || i >= len(r) {
			return nil, missing(" has no character " + k)
		}
		return string(r[i]), nil
	default:
		return nil, fmt.Errorf(" is %s, which cannot be indexed with [%s]", typeName(v), k)
	}
}

// Format resolves the field in vars and formats the value.
func (f *Field) Format(vars map[string]any) (string, error) {
	v, err := f.Lookup(vars)
	if err != nil {
		return "", err
	}
	s, err := f.FormatValue(v)
	if err != nil {
		return "", fmt.Errorf("%s: %w", f.Text, err)
	}
	return s, nil
}

// FormatValue applies the field's conversion and format spec to v.
func (f *Field) FormatValue(v any) (string, error) {
	switch f.Conv {
	case 's':
		v = Str(v)
	case 'r':
		v = Repr(v)
	case 'a':
		v = ASCII(Repr(v))
	}
	return FormatSpec(v, f.Spec)
}
