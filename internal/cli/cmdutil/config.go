package cmdutil

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/spf13/pflag"
	"gopkg.in/yaml.v3"

	"github.com/sacred-go/sacred/pkg/observer"
)

// Config is what sacred.yaml and the SACRED_* variables say, before it is
// applied to a command's flags. Flags win over the environment, which wins
// over the file.
type Config struct {
	// File is the sacred.yaml that was read, "" when there is none.
	File string
	// keys are the file's entries in file order.
	keys []fileEntry
	// env holds the non-empty SACRED_* variables.
	env map[string]string
}

type fileEntry struct {
	key  string
	node *yaml.Node
}

// ConfigFileNames are looked for in the working directory, in this order;
// then sacred/sacred.yaml in the user config directory.
var ConfigFileNames = []string{"sacred.yaml", "sacred.yml"}

// LoadConfig reads sacred.yaml from cwd, else from the user config
// directory ($XDG_CONFIG_HOME/sacred/sacred.yaml), and the SACRED_*
// variables of environ. An empty variable counts as unset.
func LoadConfig(cwd string, environ []string) (*Config, error) {
	c := &Config{env: map[string]string{}}
	for _, e := range environ {
		k, v, ok := strings.Cut(e, "=")
		if ok && v != "" && strings.HasPrefix(k, "SACRED_") {
			c.env[k] = v
		}
	}
	var candidates []string
	for _, n := range ConfigFileNames {
		candidates = append(candidates, filepath.Join(cwd, n))
	}
	if d, err := userConfigDir(environ); err == nil {
		candidates = append(candidates, filepath.Join(d, "sacred", "sacred.yaml"))
	}
	for _, p := range candidates {
		data, err := os.ReadFile(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read config file %s: %w", p, err)
		}
		c.File = p
		return c, c.parse(data)
	}
	return c, nil
}

// userConfigDir is os.UserConfigDir read from environ rather than from the
// process, so that a test's environment decides.
func userConfigDir(environ []string) (string, error) {
	get := func(k string) string {
		for i := len(environ) - 1; i >= 0; i-- {
			if v, ok := strings.CutPrefix(environ[i], k+"="); ok {
				return v
			}
		}
		return ""
	}
	if d := get("XDG_CONFIG_HOME"); d != "" && filepath.IsAbs(d) {
		return d, nil
	}
	if h := get("HOME"); h != "" {
		return filepath.Join(h, ".config"), nil
	}
	return os.UserConfigDir()
}

func (c *Config) parse(data []byte) error {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return fmt.Errorf("config file %s is not valid YAML: %s", c.File, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	if len(doc.Content) == 0 { // an empty file
		return nil
	}
	top := doc.Content[0]
	if top.Kind != yaml.MappingNode {
		return fmt.Errorf("config file %s: want a mapping of settings (key: value), not %s", c.File, nodeKind(top))
	}
	for i := 0; i+1 < len(top.Content); i += 2 {
		k := top.Content[i]
		if k.Kind != yaml.ScalarNode {
			return fmt.Errorf("config file %s line %d: a key must be a name", c.File, k.Line)
		}
		c.keys = append(c.keys, fileEntry{key: k.Value, node: top.Content[i+1]})
	}
	return nil
}

func nodeKind(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	}
	if n.Tag == "!!null" {
		return "an empty value"
	}
	return "a single value"
}

// Sources tells where each flag that Apply set got its value: a variable
// ("SACRED_TIMEOUT") or a file key ("/home/u/sacred.yaml: timeout").
type Sources map[string]string

// Apply sets every configurable flag of fs (see MarkConfigurable) that was
// not given on the command line, from its SACRED_* variable or else from
// its key in the file. Each value goes through the flag's own Set, so it is
// checked exactly as on the command line; an error names the variable or
// the file and key. A key of the file that is no configurable flag is an
// error, so that a typo does not pass silently. Keys and variables accept
// both spellings of a name (enforce_clean, enforce-clean).
func (c *Config) Apply(fs *pflag.FlagSet) (Sources, error) { return c.apply(fs, true) }

// ApplyKnown is Apply for a command that takes only some of the settings
// (`sacred ls` takes the observers, not the run's beat interval): keys of
// the file that are no flag of fs are left to the commands they belong
// to, and `sacred run` still refuses a typo.
func (c *Config) ApplyKnown(fs *pflag.FlagSet) (Sources, error) { return c.apply(fs, false) }

func (c *Config) apply(fs *pflag.FlagSet, strict bool) (Sources, error) {
	src := Sources{}
	fromFile := map[string]fileEntry{}
	for _, e := range c.keys {
		fl := fs.Lookup(e.key)
		if (fl == nil || !IsConfigurable(fl)) && !strict {
			continue
		}
		if fl == nil || !IsConfigurable(fl) {
			return nil, fmt.Errorf("config file %s: unknown key %q (known: %s)", c.File, e.key, strings.Join(configurableNames(fs), ", "))
		}
		if prev, dup := fromFile[fl.Name]; dup {
			return nil, fmt.Errorf("config file %s: %q and %q set the same setting; keep one", c.File, prev.key, e.key)
		}
		fromFile[fl.Name] = e
	}
	var err error
	fs.VisitAll(func(fl *pflag.Flag) {
		if err != nil || fl.Changed || !IsConfigurable(fl) {
			return
		}
		if v, ok := c.env[observer.EnvVar(fl.Name)]; ok {
			name := observer.EnvVar(fl.Name)
			if serr := fl.Value.Set(v); serr != nil {
				err = fmt.Errorf("%s=%s: %w", name, quoteValue(fl, v), serr)
				return
			}
			src[fl.Name] = name
			return
		}
		if e, ok := fromFile[fl.Name]; ok {
			where := fmt.Sprintf("%s: %s", c.File, e.key)
			if serr := setFromNode(fl, e.node); serr != nil {
				err = fmt.Errorf("config file %s line %d: %s: %w", c.File, e.node.Line, e.key, serr)
				return
			}
			src[fl.Name] = where
		}
	})
	if err != nil {
		return nil, err
	}
	return src, nil
}

// setFromNode sets fl from a YAML value: a single value, or a list for a
// repeatable flag.
func setFromNode(fl *pflag.Flag, n *yaml.Node) error {
	_, repeatable := fl.Value.(pflag.SliceValue)
	want := "want one " + fl.Value.Type() + " value"
	if repeatable {
		want = "want one " + fl.Value.Type() + " value or a list of them"
	}
	set := func(n *yaml.Node) error {
		if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
			return fmt.Errorf("%s is not allowed here; %s", nodeKind(n), want)
		}
		if err := fl.Value.Set(n.Value); err != nil {
			return fmt.Errorf("%s: %w", quoteValue(fl, n.Value), err)
		}
		return nil
	}
	if n.Kind == yaml.SequenceNode && repeatable {
		if len(n.Content) == 0 {
			return fmt.Errorf("the list is empty; %s", want)
		}
		for _, item := range n.Content {
			if err := set(item); err != nil {
				return err
			}
		}
		return nil
	}
	return set(n)
}

func configurableNames(fs *pflag.FlagSet) []string {
	var names []string
	fs.VisitAll(func(fl *pflag.Flag) {
		if IsConfigurable(fl) {
			names = append(names, fl.Name)
		}
	})
	sort.Strings(names)
	return names
}

// ConfigurableVars lists the SACRED_* variables that set fs's flags.
func ConfigurableVars(fs *pflag.FlagSet) []string {
	names := configurableNames(fs)
	for i, n := range names {
		names[i] = observer.EnvVar(n)
	}
	return names
}
