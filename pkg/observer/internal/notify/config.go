package notify

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/sacred-go/sacred/pkg/sacredjson"
)

// LoadFile reads a notifier's config file as Sacred's load_config_file
// does, by its extension: .json, or .yaml/.yml. Its top level must be a
// mapping. Pickle files (Sacred's third form) are refused with a hint.
func LoadFile(path string) (map[string]any, error) {
	ext := strings.ToLower(filepath.Ext(path))
	switch ext {
	case ".json", ".yaml", ".yml":
	case ".pickle", ".pkl":
		return nil, fmt.Errorf("%s: pickle files are not supported; write the settings as JSON or YAML", path)
	default:
		return nil, fmt.Errorf("%s: unknown config file type %q (use .json, .yaml or .yml)", path, ext)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err // *PathError names the file
	}
	var v any
	if ext == ".json" {
		v, err = sacredjson.Unmarshal(data)
		if err != nil {
			return nil, fmt.Errorf("%s is not valid JSON: %w", path, err)
		}
	} else if err := yaml.Unmarshal(data, &v); err != nil {
		return nil, fmt.Errorf("%s is not valid YAML: %w", path, err)
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%s: the settings must be a mapping of names to values", path)
	}
	return m, nil
}

// Settings reads typed values from a loaded config file and remembers the
// keys it read, so that the keys nobody read can be reported.
type Settings struct {
	Path string
	m    map[string]any
	read map[string]bool
}

// NewSettings wraps a loaded config file.
func NewSettings(path string, m map[string]any) *Settings {
	return &Settings{Path: path, m: m, read: map[string]bool{}}
}

// Has reports whether key is in the file (null included).
func (s *Settings) Has(key string) bool {
	_, ok := s.m[key]
	return ok
}

// String returns a text value; present is false when the key is absent or
// null. A value of another type is an error; the error never quotes the
// value, which may be a secret.
func (s *Settings) String(key string) (value string, present bool, err error) {
	s.read[key] = true
	v, ok := s.m[key]
	if !ok || v == nil {
		return "", false, nil
	}
	str, ok := v.(string)
	if !ok {
		return "", false, fmt.Errorf("%s: %s must be a text, not %s", s.Path, key, kindOf(v))
	}
	return str, true, nil
}

// Bool returns a boolean value, def when absent or null.
func (s *Settings) Bool(key string, def bool) (bool, error) {
	s.read[key] = true
	v, ok := s.m[key]
	if !ok || v == nil {
		return def, nil
	}
	b, ok := v.(bool)
	if !ok {
		return false, fmt.Errorf("%s: %s must be true or false, not %s", s.Path, key, kindOf(v))
	}
	return b, nil
}

// Int returns an integer value, def when absent or null. A whole float
// (10.0) is accepted.
func (s *Settings) Int(key string, def int) (int, error) {
	s.read[key] = true
	v, ok := s.m[key]
	if !ok || v == nil {
		return def, nil
	}
	switch x := v.(type) {
	case int:
		return x, nil
	case int64:
		return int(x), nil
	case float64:
		if x == float64(int(x)) {
			return int(x), nil
		}
	}
	return 0, fmt.Errorf("%s: %s must be a whole number, not %s", s.Path, key, kindOf(v))
}

// Raw returns a value as decoded.
func (s *Settings) Raw(key string) (any, bool) {
	s.read[key] = true
	v, ok := s.m[key]
	return v, ok
}

// Unread lists the keys no getter asked for, sorted.
func (s *Settings) Unread() []string {
	var out []string
	for k := range s.m {
		if !s.read[k] {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

func kindOf(v any) string {
	switch v.(type) {
	case string:
		return "a text"
	case bool:
		return "a boolean"
	case int, int64, float64:
		return "a number"
	case []any:
		return "a list"
	case map[string]any:
		return "a mapping"
	}
	return fmt.Sprintf("%T", v)
}

// FromEnv returns the value of the environment variable name when it is
// set and not empty, else fileValue: the environment wins over the file,
// as SACRED_* variables win over sacred.yaml.
func FromEnv(name, fileValue string) (value string, fromEnv bool) {
	if v := os.Getenv(name); v != "" {
		return v, true
	}
	return fileValue, false
}
