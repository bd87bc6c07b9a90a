package runcmd

// meta.options as Python Sacred writes it: every option of Sacred's
// command line keyed by its long flag, false or null when not given, the
// given values as strings; plus docopt's COMMAND, UPDATE, help and with.
// Our own flags are added when given. Observer values and --ping are
// redacted.

import (
	"github.com/spf13/pflag"

	"github.com/sacred-go/sacred/pkg/observer"
)

// sacredOptions are Sacred 0.8.7's options other than the observers' (see
// observer.SacredOptions), with the name of our flag ("" for none).
var sacredOptions = []struct{ key, flag string }{
	{"--beat-interval", "beat-interval"},
	{"--capture", "capture"},
	{"--comment", "comment"},
	{"--debug", "debug"},
	{"--enforce_clean", "enforce_clean"},
	{"--force", "force"},
	{"--help", ""},
	{"--id", "id"},
	{"--loglevel", "loglevel"},
	{"--name", "name"},
	{"--pdb", ""},
	{"--print-config", "print-config"},
	{"--priority", "priority"},
	{"--queue", "queue"},
	{"--unobserved", "unobserved"},
}

// sacredBools are Sacred's options that are flags without a value.
var sacredBools = map[string]bool{"--debug": true, "--enforce_clean": true, "--force": true, "--help": true, "--pdb": true, "--print-config": true, "--queue": true, "--unobserved": true}

// metaOptions builds meta.options.
func (o *RunOptions) metaOptions() map[string]any {
	m := map[string]any{}
	for _, so := range sacredOptions {
		if sacredBools[so.key] {
			m[so.key] = false
		} else {
			m[so.key] = nil
		}
	}
	for _, opt := range observer.SacredOptions {
		m["--"+opt] = nil
	}
	for _, fl := range o.given {
		m["--"+fl.Name] = o.optionValue(fl)
	}
	m["UPDATE"] = append([]string{}, o.Updates...)
	m["with"] = len(o.Updates) > 0
	m["COMMAND"] = nil
	m["help"] = false
	return m
}

// redactor is a flag value that holds secrets (--ping).
type redactor interface{ Redact(string) string }

// optionValue is the recorded form of a flag given on the command line:
// true/false for a boolean; for a repeatable flag a string when given once
// and a list of strings when given several times; otherwise the string.
// Observer values are redacted.
func (o *RunOptions) optionValue(fl *pflag.Flag) any {
	if fl.Value.Type() == "bool" {
		return fl.Value.String() == "true"
	}
	redact := func(s string) string { return s }
	if _, isObserver := o.observerVals[fl.Name]; isObserver {
		redact = func(s string) string { return observer.RedactValue(fl.Name, s) }
	} else if r, ok := fl.Value.(redactor); ok {
		redact = r.Redact
	}
	if sv, ok := fl.Value.(pflag.SliceValue); ok {
		vals := sv.GetSlice()
		if len(vals) == 1 {
			return redact(vals[0])
		}
		out := make([]any, len(vals))
		for i, s := range vals {
			out[i] = redact(s)
		}
		return out
	}
	return redact(fl.Value.String())
}
