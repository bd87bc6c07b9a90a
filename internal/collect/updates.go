// Package collect gathers what a run records before its child starts: the
// config and seed (from `with` updates and config files), the experiment
// (name, sources, git repositories) and the host.
package collect

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"unicode"

	"gopkg.in/yaml.v3"

	"github.com/sacred-go/sacred/pkg/observer"
)

// ParseUpdates parses the tokens after `with`.
//
// A token PATH=VALUE (split at the first '=') sets the nested key a.b.c of
// PATH. VALUE is read as a JSON/YAML scalar or flow value: 1 → int64,
// 0.1 and 1e-3 → float64, true/false/True/False → bool, null/None → nil,
// [1,2] → []any, {a: 1} → map[string]any, "x y" or 'x y' → string; any
// other text is kept as the string itself (Sacred does the same when
// literal_eval fails). A VALUE that starts a list, a mapping or a quoted
// string but is not one (`[1,`, `"a" b`) is an error rather than text, so
// that a typo is not recorded as a string: quote it to mean the text.
// Whitespace around PATH and VALUE is stripped.
//
// Updates merge: the same key given twice keeps the later value, mappings
// merge key by key, and a key set both to a value and to a mapping (a=2
// with a.b.c=1, in either order) is an error.
//
// A token without '=' that names an existing .json, .yaml or .yml file is a
// config file. config is built from the files first, merged in the order
// given (later files win), then the updates are merged over it, so updates
// always win over files. updates holds the updates alone (Sacred's
// meta.config_updates); files lists the config files as given (Sacred's
// meta.named_configs).
//
// Any other token is an error that names it. config and updates are never
// nil when err is nil.
func ParseUpdates(tokens []string) (config map[string]any, updates map[string]any, files []string, err error) {
	config = map[string]any{}
	updates = map[string]any{}
	for _, tok := range tokens {
		eq := strings.IndexByte(tok, '=')
		if eq < 0 {
			if err := checkConfigFile(tok); err != nil {
				return nil, nil, nil, err
			}
			files = append(files, tok)
			continue
		}
		path := strings.TrimSpace(tok[:eq])
		parts, perr := splitPath(path)
		if perr != nil {
			return nil, nil, nil, fmt.Errorf("with: bad key in %q: %w; write a.b.c=VALUE", tok, perr)
		}
		v, verr := parseValue(strings.TrimSpace(tok[eq+1:]))
		if verr != nil {
			return nil, nil, nil, fmt.Errorf("with: %q: %w", tok, verr)
		}
		if err := mergeUpdate(updates, parts, v); err != nil {
			return nil, nil, nil, fmt.Errorf("with: %q: %w", tok, err)
		}
	}
	for _, f := range files {
		m, err := loadConfigFile(f)
		if err != nil {
			return nil, nil, nil, err
		}
		mergeInto(config, m)
	}
	mergeInto(config, observer.CloneValue(updates).(map[string]any))
	return config, updates, files, nil
}

// LooksLikeUpdate reports whether tok is meant as an update after `with`:
// a word with '=' whose part before it could be a key (no '/', not
// starting with '-'), or a word naming a .json, .yaml or .yml file. The
// CLI uses it to find where the command starts when there is no `--`;
// ParseUpdates then refuses the malformed ones (`=3`, `.=1`, a config
// file that does not exist) instead of letting them become the command.
func LooksLikeUpdate(tok string) bool {
	if key, _, ok := strings.Cut(tok, "="); ok {
		return !strings.ContainsAny(key, `/\`) && !strings.HasPrefix(strings.TrimSpace(key), "-")
	}
	return hasConfigExt(tok)
}

func hasConfigExt(tok string) bool {
	switch strings.ToLower(filepath.Ext(tok)) {
	case ".json", ".yaml", ".yml":
		return true
	}
	return false
}

// checkConfigFile checks a token without '=': it must name an existing
// config file.
func checkConfigFile(tok string) error {
	if !hasConfigExt(tok) {
		return fmt.Errorf("with: %q is neither KEY=VALUE nor a .json/.yaml/.yml config file", tok)
	}
	fi, err := os.Stat(tok)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("with: config file %s does not exist", tok)
	case err != nil:
		return fmt.Errorf("with: config file %s: %w", tok, err)
	case !fi.Mode().IsRegular():
		return fmt.Errorf("with: config file %s is not a regular file", tok)
	}
	return nil
}

// splitPath checks a dotted key path. Parts are restricted to letters,
// digits, '_' and '-' (not leading) so that a command such as `./x=1` or
// `--opt=1` is never mistaken for an update, and so that keys stay valid
// for every store ('.' and a leading '$' are refused by MongoDB).
func splitPath(path string) ([]string, error) {
	if path == "" {
		return nil, fmt.Errorf("empty key")
	}
	parts := strings.Split(path, ".")
	for i, p := range parts {
		p = strings.TrimSpace(p)
		parts[i] = p
		if p == "" {
			return nil, fmt.Errorf("empty part in %q", path)
		}
		for j, r := range p {
			ok := r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r) || (j > 0 && r == '-')
			if !ok {
				return nil, fmt.Errorf("character %q not allowed in key %q", r, p)
			}
		}
	}
	return parts, nil
}

// mergeUpdate merges the value v at the key path parts into m: a key set
// again keeps the later value, mappings merge key by key, and a key that
// holds a mapping on one side and a value on the other is an error
// whatever the order.
func mergeUpdate(m map[string]any, parts []string, v any) error {
	cur := m
	for i, p := range parts {
		old, exists := cur[p]
		oldMap, oldIsMap := old.(map[string]any)
		newMap, newIsMap := v.(map[string]any)
		last := i == len(parts)-1
		switch {
		case !exists && last:
			cur[p] = v
			return nil
		case !exists:
			nm := map[string]any{}
			cur[p] = nm
			cur = nm
		case !last && oldIsMap:
			cur = oldMap
		case last && oldIsMap && newIsMap:
			for k, x := range newMap {
				if err := mergeUpdate(oldMap, []string{k}, x); err != nil {
					return err
				}
			}
			return nil
		case last && !oldIsMap && !newIsMap:
			cur[p] = v
			return nil
		default:
			return fmt.Errorf("%s is set both to a value and to a mapping of keys; give one of them", strings.Join(parts[:i+1], "."))
		}
	}
	return nil
}

// mergeInto merges src into dst recursively: mappings merge key by key,
// anything else in src replaces what dst holds.
func mergeInto(dst, src map[string]any) {
	for k, v := range src {
		sm, sok := v.(map[string]any)
		dm, dok := dst[k].(map[string]any)
		if sok && dok {
			mergeInto(dm, sm)
			continue
		}
		dst[k] = v
	}
}

// The number patterns of plainScalar, compiled on first use: most runs
// have no config update to read.
var (
	intRe   = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[-+]?(0|[1-9][0-9_]*)$`) })
	radixRe = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[-+]?0[xXoObB][0-9a-fA-F_]+$`) })
	floatRe = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`^[-+]?([0-9][0-9_]*\.[0-9_]*|\.[0-9][0-9_]*|[0-9][0-9_]*)([eE][-+]?[0-9]+)?$`)
	})
)

// parseValue reads one VALUE; see ParseUpdates.
func parseValue(s string) (any, error) {
	if s == "" {
		return s, nil
	}
	switch s[0] {
	case '"', '\'':
		if v, ok := quoted(s); ok {
			return v, nil
		}
		return nil, fmt.Errorf(`%s is not one quoted string; to keep the quotes as text, quote the whole value, e.g. '"%s"'`, s, strings.ReplaceAll(s, `"`, `\"`))
	case '[', '{':
		if v, ok := parseFlow(s); ok {
			return v, nil
		}
		return nil, fmt.Errorf(`%s is not a complete list or mapping such as [1, 2] or {a: 1}; to keep it as text, quote it, e.g. '"%s"'`, s, strings.ReplaceAll(s, `"`, `\"`))
	}
	return plainScalar(s), nil
}

// plainScalar reads an unquoted scalar the way Python's literal_eval and
// YAML/JSON agree on; anything else stays the string itself. Leading zeros
// ("007") stay strings, as in Python, which keeps ids and zip codes intact.
func plainScalar(s string) any {
	switch s {
	case "true", "True", "TRUE":
		return true
	case "false", "False", "FALSE":
		return false
	case "null", "Null", "NULL", "None":
		return nil
	}
	if intRe().MatchString(s) || radixRe().MatchString(s) {
		if n, err := strconv.ParseInt(s, 0, 64); err == nil {
			return n
		}
		return s // too large for int64: keep the digits rather than lose them
	}
	if floatRe().MatchString(s) && strings.ContainsAny(s, ".eE") {
		if f, err := strconv.ParseFloat(strings.ReplaceAll(s, "_", ""), 64); err == nil && !math.IsInf(f, 0) {
			return f
		}
	}
	return s
}

// quoted reads a whole "..." or '...' string with Go/Python backslash
// escapes; ok is false when anything follows the closing quote.
func quoted(s string) (string, bool) {
	if len(s) < 2 || s[len(s)-1] != s[0] {
		return "", false
	}
	if s[0] == '"' {
		u, err := strconv.Unquote(s)
		return u, err == nil
	}
	// Rewrite '...' as "..." so strconv.Unquote applies the same escapes.
	var b strings.Builder
	b.WriteByte('"')
	inner := s[1 : len(s)-1]
	for i := 0; i < len(inner); i++ {
		c := inner[i]
		switch {
		case c == '\\' && i+1 < len(inner):
			if inner[i+1] == '\'' {
				b.WriteByte('\'')
			} else {
				b.WriteByte(c)
				b.WriteByte(inner[i+1])
			}
			i++
		case c == '\'':
			return "", false // an unescaped quote ends the string early
		case c == '"':
			b.WriteString(`\"`)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	u, err := strconv.Unquote(b.String())
	return u, err == nil
}

// parseFlow reads a YAML flow collection; ok is false when s is not exactly
// one such value (trailing text, comments, anchors).
func parseFlow(s string) (any, bool) {
	if !closesAtEnd(s) {
		return nil, false
	}
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(s), &doc); err != nil || doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		return nil, false
	}
	n := doc.Content[0]
	if n.HeadComment != "" || n.LineComment != "" || n.FootComment != "" || doc.FootComment != "" {
		return nil, false
	}
	if (n.Kind != yaml.SequenceNode && n.Kind != yaml.MappingNode) || n.Style&yaml.FlowStyle == 0 {
		return nil, false
	}
	return nodeValue(n)
}

// closesAtEnd reports whether the bracket opened by s[0] is closed by the
// last byte of s; yaml.v3 silently ignores text after a flow collection.
func closesAtEnd(s string) bool {
	depth := 0
	var quote byte
	prev := byte(' ')
	for i := 0; i < len(s); i++ {
		c := s[i]
		if quote != 0 {
			switch {
			case quote == '"' && c == '\\':
				i++
			case c == quote && quote == '\'' && i+1 < len(s) && s[i+1] == '\'':
				i++ // '' is an escaped quote in YAML
			case c == quote:
				quote = 0
			}
			prev = c
			continue
		}
		switch c {
		case '"', '\'':
			if strings.IndexByte("[{,: \t", prev) >= 0 {
				quote = c
			}
		case '[', '{':
			depth++
		case ']', '}':
			depth--
			if depth == 0 {
				return i == len(s)-1
			}
		}
		prev = c
	}
	return false
}

func nodeValue(n *yaml.Node) (any, bool) {
	switch n.Kind {
	case yaml.ScalarNode:
		if n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle|yaml.LiteralStyle|yaml.FoldedStyle) != 0 {
			return n.Value, true
		}
		return plainScalar(n.Value), true
	case yaml.SequenceNode:
		s := make([]any, 0, len(n.Content))
		for _, c := range n.Content {
			v, ok := nodeValue(c)
			if !ok {
				return nil, false
			}
			s = append(s, v)
		}
		return s, true
	case yaml.MappingNode:
		m := make(map[string]any, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if k.Kind != yaml.ScalarNode {
				return nil, false
			}
			v, ok := nodeValue(n.Content[i+1])
			if !ok {
				return nil, false
			}
			m[k.Value] = v
		}
		return m, true
	default: // aliases and the like: not a plain value
		return nil, false
	}
}

// loadConfigFile reads a .json/.yaml/.yml config file whose top level must
// be a mapping. Numbers come out as int64 or float64.
func loadConfigFile(path string) (map[string]any, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config file: %w", err)
	}
	var raw any
	if strings.ToLower(filepath.Ext(path)) == ".json" {
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		if err := dec.Decode(&raw); err != nil {
			return nil, fmt.Errorf("config file %s is not valid JSON: %w", path, err)
		}
	} else if err := yaml.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("config file %s is not valid YAML: %w", path, err)
	}
	if raw == nil { // an empty file is an empty config
		return map[string]any{}, nil
	}
	v, err := normalize(raw, "")
	if err != nil {
		return nil, fmt.Errorf("config file %s: %w", path, err)
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("config file %s: top level must be a mapping of names to values, not %T", path, raw)
	}
	return m, nil
}

// normalize turns decoded JSON/YAML into the value types used everywhere
// in a config (int64, float64, map[string]any, []any) and checks keys.
func normalize(v any, at string) (any, error) {
	switch x := v.(type) {
	case json.Number:
		if n, err := x.Int64(); err == nil {
			return n, nil
		}
		f, err := x.Float64()
		if err != nil {
			return nil, fmt.Errorf("number %s at %q: %w", x, at, err)
		}
		return f, nil
	case int:
		return int64(x), nil
	case uint64:
		if x <= math.MaxInt64 {
			return int64(x), nil
		}
		return float64(x), nil
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			if err := checkKey(k, at); err != nil {
				return nil, err
			}
			n, err := normalize(e, join(at, k))
			if err != nil {
				return nil, err
			}
			m[k] = n
		}
		return m, nil
	case map[any]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			ks := fmt.Sprint(k)
			if err := checkKey(ks, at); err != nil {
				return nil, err
			}
			n, err := normalize(e, join(at, ks))
			if err != nil {
				return nil, err
			}
			m[ks] = n
		}
		return m, nil
	case []any:
		s := make([]any, len(x))
		for i, e := range x {
			n, err := normalize(e, fmt.Sprintf("%s[%d]", at, i))
			if err != nil {
				return nil, err
			}
			s[i] = n
		}
		return s, nil
	default:
		return v, nil
	}
}

func join(at, k string) string {
	if at == "" {
		return k
	}
	return at + "." + k
}

// checkKey refuses the keys Sacred refuses in a config: they cannot be
// stored in MongoDB and cannot be addressed with a dotted path.
func checkKey(k, at string) error {
	if strings.Contains(k, ".") || strings.HasPrefix(k, "$") || strings.Contains(k, "=") {
		return fmt.Errorf("key %q at %q must not contain '.' or '=' nor start with '$'", k, at)
	}
	return nil
}
