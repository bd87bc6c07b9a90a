package cmdutil

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// The flag values below check what they are given in Set. The command line,
// sacred.yaml and SACRED_* all go through Set (see Config.Apply), so a value
// is refused in the same way and with the same words wherever it came from.
// Their Type is the name of the value in help ("DURATION", "DIR").

// boolValue is a boolean flag. It has no IsBoolFlag method on purpose:
// pflag prints "[=true|false]" after flags that do; NoOptDefVal "true"
// still lets --flag stand alone.
type boolValue struct{ p *bool }

func (b *boolValue) Set(s string) error {
	v, err := strconv.ParseBool(s)
	if err != nil {
		return errors.New("want true or false")
	}
	*b.p = v
	return nil
}
func (b *boolValue) String() string { return strconv.FormatBool(*b.p) }
func (b *boolValue) Type() string   { return "bool" }

// BoolVarP defines a boolean flag.
func BoolVarP(fs *pflag.FlagSet, p *bool, name, short string, value bool, usage string) *pflag.Flag {
	*p = value
	fl := fs.VarPF(&boolValue{p}, name, short, usage)
	fl.NoOptDefVal = "true"
	return fl
}

// funcValue is a flag of any type with its own parser.
type funcValue[T any] struct {
	p      *T
	parse  func(string) (T, error)
	format func(T) string
	arg    string
}

func (v *funcValue[T]) Set(s string) error {
	x, err := v.parse(s)
	if err != nil {
		return err
	}
	*v.p = x
	return nil
}
func (v *funcValue[T]) String() string { return v.format(*v.p) }
func (v *funcValue[T]) Type() string   { return v.arg }

func varP[T any](fs *pflag.FlagSet, p *T, name, short string, value T, arg, usage string, parse func(string) (T, error), format func(T) string) *pflag.Flag {
	*p = value
	return fs.VarPF(&funcValue[T]{p: p, parse: parse, format: format, arg: arg}, name, short, usage)
}

// StringVarP defines a string flag; check (may be nil) refuses bad values.
func StringVarP(fs *pflag.FlagSet, p *string, name, short, value, arg, usage string, check func(string) error) *pflag.Flag {
	parse := func(s string) (string, error) {
		if check != nil {
			if err := check(s); err != nil {
				return "", err
			}
		}
		return s, nil
	}
	return varP(fs, p, name, short, value, arg, usage, parse, func(s string) string { return s })
}

// DurationVarP defines a duration flag (90s, 2h, 1h30m); min is the
// smallest value allowed and positive asks for more than zero.
func DurationVarP(fs *pflag.FlagSet, p *time.Duration, name, short string, value time.Duration, usage string, positive bool) *pflag.Flag {
	parse := func(s string) (time.Duration, error) {
		d, err := time.ParseDuration(strings.TrimSpace(s))
		if err != nil {
			return 0, errors.New("want a duration such as 90s, 10m or 2h")
		}
		switch {
		case positive && d <= 0:
			return 0, errors.New("must be positive, e.g. 30s")
		case d < 0:
			return 0, errors.New("must not be negative (0 means none)")
		}
		return d, nil
	}
	format := func(d time.Duration) string {
		if d == 0 {
			return "0"
		}
		return d.String()
	}
	return varP(fs, p, name, short, value, "DURATION", usage, parse, format)
}

// FloatVarP defines a finite number flag.
func FloatVarP(fs *pflag.FlagSet, p *float64, name, short string, value float64, arg, usage string) *pflag.Flag {
	parse := func(s string) (float64, error) {
		f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return 0, errors.New("want a number, e.g. 10 or 0.5")
		}
		return f, nil
	}
	return varP(fs, p, name, short, value, arg, usage, parse, func(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) })
}

// SizeVarP defines a size in bytes: a whole number with an optional unit
// (B, K/KB/KiB, M/MB/MiB, G/GB/GiB; all powers of 1024); positive asks
// for more than zero.
func SizeVarP(fs *pflag.FlagSet, p *int64, name, short string, value int64, usage string, positive bool) *pflag.Flag {
	parse := func(s string) (int64, error) {
		n, err := ParseSize(s)
		if err == nil && positive && n <= 0 {
			return 0, errors.New("must be positive, e.g. 10MiB")
		}
		return n, err
	}
	return varP(fs, p, name, short, value, "SIZE", usage, parse, FormatSize)
}

// ParseSize reads a size such as 10MiB, 512k or 1048576.
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && t[i] >= '0' && t[i] <= '9' {
		i++
	}
	n, err := strconv.ParseInt(t[:i], 10, 64)
	if err != nil {
		return 0, errors.New("want a size such as 10MiB, 512KiB or 1048576 (bytes)")
	}
	var shift uint
	switch strings.ToLower(strings.TrimSpace(t[i:])) {
	case "", "b":
	case "k", "kb", "kib":
		shift = 10
	case "m", "mb", "mib":
		shift = 20
	case "g", "gb", "gib":
		shift = 30
	default:
		return 0, errors.New("want a size such as 10MiB, 512KiB or 1048576 (bytes)")
	}
	if n > math.MaxInt64>>shift {
		return 0, errors.New("size too large")
	}
	return n << shift, nil
}

// FormatSize writes a size the way ParseSize reads it.
func FormatSize(n int64) string {
	for _, u := range []struct {
		shift uint
		name  string
	}{{30, "GiB"}, {20, "MiB"}, {10, "KiB"}} {
		if n != 0 && n%(1<<u.shift) == 0 {
			return strconv.FormatInt(n>>u.shift, 10) + u.name
		}
	}
	return strconv.FormatInt(n, 10)
}

// arrayValue is a repeatable flag: each use adds a value. Values from
// sacred.yaml or SACRED_* replace the default; the command line replaces
// those (Config.Apply does not touch flags given on the command line).
type arrayValue struct {
	p       *[]string
	changed bool
	check   func(string) error
	arg     string
}

func (a *arrayValue) Set(s string) error {
	if a.check != nil {
		if err := a.check(s); err != nil {
			return err
		}
	}
	if !a.changed {
		*a.p = nil
		a.changed = true
	}
	*a.p = append(*a.p, s)
	return nil
}
func (a *arrayValue) String() string {
	if len(*a.p) == 0 {
		return ""
	}
	return "[" + strings.Join(*a.p, ",") + "]"
}
func (a *arrayValue) Type() string { return a.arg }

// Append, Replace and GetSlice make it a pflag.SliceValue, which is how
// Config.Apply knows that a list is allowed.
func (a *arrayValue) Append(s string) error { return a.Set(s) }
func (a *arrayValue) Replace(vals []string) error {
	*a.p, a.changed = nil, false
	for _, s := range vals {
		if err := a.Set(s); err != nil {
			return err
		}
	}
	return nil
}
func (a *arrayValue) GetSlice() []string { return append([]string(nil), *a.p...) }

// ArrayVarP defines a repeatable flag; check (may be nil) refuses bad
// values.
func ArrayVarP(fs *pflag.FlagSet, p *[]string, name, short, arg, usage string, check func(string) error) *pflag.Flag {
	*p = nil
	return fs.VarPF(&arrayValue{p: p, check: check, arg: arg}, name, short, usage)
}

// annotConfig marks a flag that sacred.yaml and SACRED_* may set.
const annotConfig = "sacred-configurable"

// MarkConfigurable lets sacred.yaml and SACRED_* variables set the flags.
func MarkConfigurable(fs *pflag.FlagSet, names ...string) {
	for _, n := range names {
		if err := fs.SetAnnotation(n, annotConfig, []string{"true"}); err != nil {
			panic(fmt.Sprintf("cmdutil: MarkConfigurable: %v", err))
		}
	}
}

// IsConfigurable reports whether sacred.yaml and SACRED_* may set fl.
func IsConfigurable(fl *pflag.Flag) bool { return len(fl.Annotations[annotConfig]) > 0 }

// NormalizeFlags makes every flag of cmd and its subcommands answer to both
// spellings of its name: Sacred's underscores (--enforce_clean,
// --beat_interval) and cobra's dashes (--enforce-clean, --beat-interval).
// Help shows the name as it was defined. Call it once all flags exist.
func NormalizeFlags(cmd *cobra.Command) {
	underscored := map[string]string{}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for _, fs := range []*pflag.FlagSet{c.PersistentFlags(), c.Flags()} {
			fs.VisitAll(func(fl *pflag.Flag) {
				if strings.Contains(fl.Name, "_") {
					underscored[dashed(fl.Name)] = fl.Name
				}
			})
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(cmd)
	cmd.SetGlobalNormalizationFunc(func(_ *pflag.FlagSet, name string) pflag.NormalizedName {
		d := dashed(name)
		if u, ok := underscored[d]; ok {
			return pflag.NormalizedName(u)
		}
		return pflag.NormalizedName(d)
	})
}

func dashed(name string) string { return strings.ReplaceAll(name, "_", "-") }

// plainBool hides the IsBoolFlag method of pflag's own boolean values, so
// that help does not print "[=true|false]" after them; NoOptDefVal keeps
// --flag working alone.
type plainBool struct{ pflag.Value }

// PlainBools gives every boolean flag a plain line in help, "--strict"
// rather than "--strict[=true|false]", cobra's own --help and --version
// included. It hooks cmd's help and usage, so the work is done only for the
// command whose help is shown.
func PlainBools(cmd *cobra.Command) {
	help, usage := cmd.HelpFunc(), cmd.UsageFunc()
	cmd.SetHelpFunc(func(c *cobra.Command, args []string) {
		PlainBoolsOf(c)
		help(c, args)
	})
	cmd.SetUsageFunc(func(c *cobra.Command) error {
		PlainBoolsOf(c)
		return usage(c)
	})
}

// PlainBoolsOf does what PlainBools does, now, for the flags of c alone
// (for generated docs, which do not go through help).
func PlainBoolsOf(c *cobra.Command) {
	c.InitDefaultHelpFlag()
	c.InitDefaultVersionFlag()
	for _, fs := range []*pflag.FlagSet{c.Flags(), c.PersistentFlags()} {
		fs.VisitAll(func(fl *pflag.Flag) {
			if bf, ok := fl.Value.(interface{ IsBoolFlag() bool }); ok && bf.IsBoolFlag() {
				fl.Value = plainBool{fl.Value}
			}
		})
	}
}
