// Package logcmd implements `sacred log`, the child API client for shell
// scripts: each call sends one message to the run it is inside of and
// returns once the wrapper has processed it.
package logcmd

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/sacred-go/sacred/internal/childapi"
	"github.com/sacred-go/sacred/internal/cli/cmdutil"
)

// LogOptions are the parsed arguments of one `sacred log` call.
type LogOptions struct {
	// Kind is metric, info, result, artifact, resource or stream.
	Kind string
	// Args are the positional arguments after the kind.
	Args []string
	// Step is the metric step; HasStep tells whether --step was given.
	Step    int64
	HasStep bool
	// Name and ContentType are the artifact's --name and --content-type.
	Name        string
	ContentType string
	// Socket is the run's socket ($SACRED_SOCKET); empty outside a run.
	Socket string
	// Cwd resolves relative paths ("" = the process's working directory).
	Cwd string
	// Stdin is read by the stream kind.
	Stdin io.Reader
}

// subcommand describes one `sacred log KIND`.
type subcommand struct {
	kind, use, short, long string
	args                   []string // names of the positional arguments
	flags                  func(*pflag.FlagSet, *LogOptions)
}

var subcommands = []subcommand{
	{kind: "metric", use: "metric NAME VALUE [--step N]", short: "Log one point of a metric (step: last step + 1 unless given)", args: []string{"NAME", "VALUE"},
		flags: func(fs *pflag.FlagSet, o *LogOptions) {
			fs.Int64Var(&o.Step, "step", 0, "step `N` of the point, an integer >= 0")
		}},
	{kind: "info", use: "info KEY JSON", short: "Set info[KEY] (dotted: a.b.c) to a JSON value, e.g. '\"text\"' or '{\"a\": 1}'", args: []string{"KEY", "JSON"}},
	{kind: "result", use: "result JSON", short: "Set the run's result to a JSON value", args: []string{"JSON"}},
	{kind: "artifact", use: "artifact PATH [--name NAME]", short: "Store a file the run produced (copied now)", args: []string{"PATH"},
		flags: func(fs *pflag.FlagSet, o *LogOptions) {
			fs.StringVar(&o.Name, "name", "", "`NAME` in the run (default: the file's base name)")
			fs.StringVar(&o.ContentType, "content-type", "", "MIME `TYPE` of the artifact")
		}},
	{kind: "resource", use: "resource PATH", short: "Record a file the run read (with its md5)", args: []string{"PATH"}},
	{kind: "stream", use: "stream", short: "Forward JSON lines from stdin to the run (for languages without Unix sockets, e.g. R's pipe())",
		long: "Forward protocol lines (see docs/child-api.md) from stdin to the run unchanged.\n" +
			"At the end of input it returns once the run has processed every line.\n" +
			"Bad lines are reported by the run on its stderr."},
}

// NewCmdLog returns the `log` command with its subcommands. runF sends
// the message of complete options; nil means the real client. Tests pass
// their own to inspect the options.
func NewCmdLog(f *cmdutil.Factory, runF func(*LogOptions) error) *cobra.Command {
	if runF == nil {
		runF = logRun
	}
	cmd := &cobra.Command{
		Use:   "log",
		Short: "Report a metric, info, result, artifact or resource to the current run",
		Long: "Report to the sacred run this process is part of (through $SACRED_SOCKET).\n" +
			"Each call returns once the run has processed the message, so a file\n" +
			"reported as an artifact may be deleted right after.",
		Args: cobra.ArbitraryArgs,
		// A word that is no subcommand is a usage error, never the help
		// on stdout: that stdout is usually a run's captured output.
		RunE: cmdutil.UnknownSubcommand,
	}
	for _, sc := range subcommands {
		o := &LogOptions{Kind: sc.kind}
		c := &cobra.Command{
			Use:   sc.use,
			Short: sc.short,
			Long:  sc.long,
			Args:  exactArgs(sc.args),
			RunE: func(c *cobra.Command, args []string) error {
				o.Args = args
				o.HasStep = c.Flags().Changed("step")
				o.Socket = f.Getenv(childapi.EnvSocket)
				o.Stdin = f.IOStreams.In
				return runF(o)
			},
		}
		if sc.flags != nil {
			sc.flags(c.Flags(), o)
		}
		cmd.AddCommand(c)
	}
	return cmd
}

// exactArgs asks for the named arguments, as a usage error.
func exactArgs(names []string) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		if len(args) == len(names) {
			return nil
		}
		if len(names) == 0 {
			return cmdutil.FlagErrorf("%s takes no arguments, got %q", c.CommandPath(), args)
		}
		return cmdutil.FlagErrorf("%s needs %s, got %d argument(s)", c.CommandPath(), strings.Join(names, " "), len(args))
	}
}

// message builds the protocol message for opts, checking it as the server
// would, so that a script gets its error (and exit status 1) right here.
func message(o *LogOptions) (map[string]any, error) {
	switch o.Kind {
	case "metric":
		name, val := o.Args[0], o.Args[1]
		if name == "" {
			return nil, errors.New("metric NAME is empty")
		}
		v, err := strconv.ParseFloat(val, 64)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("metric %q: VALUE %q is not a finite number", name, val)
		}
		m := map[string]any{"kind": "metric", "name": name, "value": v}
		if o.HasStep {
			if o.Step < 0 {
				return nil, fmt.Errorf("metric %q: --step %d is negative; give an integer >= 0", name, o.Step)
			}
			m["step"] = o.Step
		}
		return m, nil
	case "info":
		key, val := o.Args[0], o.Args[1]
		if !json.Valid([]byte(val)) {
			return nil, fmt.Errorf("info %q: %q is not JSON; quote strings, e.g. '\"%s\"'", key, val, val)
		}
		return map[string]any{"kind": "info", "key": key, "value": json.RawMessage(val)}, nil
	case "result":
		if !json.Valid([]byte(o.Args[0])) {
			return nil, fmt.Errorf("result %q is not JSON; quote strings, e.g. '\"%s\"'", o.Args[0], o.Args[0])
		}
		return map[string]any{"kind": "result", "value": json.RawMessage(o.Args[0])}, nil
	case "artifact", "resource":
		p, err := absPath(o.Cwd, o.Args[0])
		if err != nil {
			return nil, err
		}
		st, err := os.Stat(p)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil, fmt.Errorf("%s %s does not exist", o.Kind, p)
			}
			return nil, fmt.Errorf("%s: %w", o.Kind, err)
		}
		if !st.Mode().IsRegular() {
			return nil, fmt.Errorf("%s %s is not a regular file", o.Kind, p)
		}
		m := map[string]any{"kind": o.Kind, "path": p}
		if o.Kind == "artifact" {
			name := o.Name
			if name == "" {
				name = filepath.Base(p)
			}
			if err := childapi.CheckArtifactName(name); err != nil {
				return nil, err
			}
			m["name"] = name
			if o.ContentType != "" {
				m["content_type"] = o.ContentType
			}
		}
		return m, nil
	}
	return nil, fmt.Errorf("unknown kind %q", o.Kind)
}

// absPath resolves p against cwd, since the wrapper resolves relative paths
// against the child's start directory, not the caller's.
func absPath(cwd, p string) (string, error) {
	if filepath.IsAbs(p) {
		return filepath.Clean(p), nil
	}
	if cwd == "" {
		wd, err := os.Getwd()
		if err != nil {
			return "", fmt.Errorf("working directory: %w", err)
		}
		cwd = wd
	}
	return filepath.Join(cwd, p), nil
}

// logRun sends the message of o to the run and waits until it was
// processed.
func logRun(o *LogOptions) error {
	if o.Kind == "stream" {
		return stream(o)
	}
	msg, err := message(o)
	if err != nil {
		return err
	}
	if o.Socket == "" {
		return childapi.ErrNotInRun
	}
	c, err := childapi.DialPath(o.Socket)
	if err != nil {
		return err
	}
	if err := c.Send(msg); err != nil {
		c.Close()
		return err
	}
	return c.Close()
}

// stream copies stdin to the socket as it comes (no line buffering, so a
// long-running producer's metrics reach the run's heartbeats in time).
func stream(o *LogOptions) error {
	if o.Socket == "" {
		return childapi.ErrNotInRun
	}
	c, err := childapi.DialPath(o.Socket)
	if err != nil {
		return err
	}
	w := &lastByte{w: c.Writer()}
	_, err = io.Copy(w, o.Stdin)
	if err == nil && w.n > 0 && w.last != '\n' {
		// Input that ends without a newline still ends its last line.
		_, err = w.Write([]byte{'\n'})
	}
	if err != nil {
		c.Close()
		return fmt.Errorf("stream: %w", err)
	}
	return c.Close()
}

// lastByte remembers the last byte written through it.
type lastByte struct {
	w    io.Writer
	n    int64
	last byte
}

func (l *lastByte) Write(p []byte) (int, error) {
	n, err := l.w.Write(p)
	if n > 0 {
		l.n += int64(n)
		l.last = p[n-1]
	}
	return n, err
}
