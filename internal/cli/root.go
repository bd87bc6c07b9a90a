// Package cli assembles sacred's commands (one package per command, in
// gh's shape) and runs them.
package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/sacred-go/sacred/internal/cli/cmdutil"
	"github.com/sacred-go/sacred/internal/cli/comparecmd"
	"github.com/sacred-go/sacred/internal/cli/filescmd"
	"github.com/sacred-go/sacred/internal/cli/logcmd"
	"github.com/sacred-go/sacred/internal/cli/lscmd"
	"github.com/sacred-go/sacred/internal/cli/reapcmd"
	"github.com/sacred-go/sacred/internal/cli/reruncmd"
	"github.com/sacred-go/sacred/internal/cli/runcmd"
	"github.com/sacred-go/sacred/internal/cli/showcmd"
	"github.com/sacred-go/sacred/internal/cli/storeflags"
	"github.com/sacred-go/sacred/internal/cli/synccmd"
	"github.com/sacred-go/sacred/internal/cli/uicmd"
	"github.com/sacred-go/sacred/pkg/observer"

	// The observers compiled into the binary register themselves.
	_ "github.com/sacred-go/sacred/pkg/observer/exec"
	_ "github.com/sacred-go/sacred/pkg/observer/file"
	_ "github.com/sacred-go/sacred/pkg/observer/gcs"
	_ "github.com/sacred-go/sacred/pkg/observer/mongo"
	_ "github.com/sacred-go/sacred/pkg/observer/s3"
	_ "github.com/sacred-go/sacred/pkg/observer/slack"
	_ "github.com/sacred-go/sacred/pkg/observer/sqlstore"
	_ "github.com/sacred-go/sacred/pkg/observer/telegram"
	_ "github.com/sacred-go/sacred/pkg/observer/tinydb"
	_ "github.com/sacred-go/sacred/pkg/observer/webhook"
)

// Version is set at build time by the release tooling.
var Version = "dev"

// NewCmdRoot returns the root command with every subcommand, its flags
// generated from the observer kinds registered now.
func NewCmdRoot(f *cmdutil.Factory) *cobra.Command {
	return newRoot(f, runcmd.NewCmdRun(f, nil), logcmd.NewCmdLog(f, nil), synccmd.NewCmdSync(f, nil),
		lscmd.NewCmdLs(f, nil), showcmd.NewCmdShow(f, nil), filescmd.NewCmdFiles(f, nil),
		comparecmd.NewCmdCompare(f, nil), uicmd.NewCmdUI(f, nil), reapcmd.NewCmdReap(f, nil), reruncmd.NewCmdRerun(f, nil))
}

// newCmdRootFor returns the root command for args: all of it, except for
// `sacred log`, which scripts call once per metric point, and `sacred run`,
// whose child waits for it: each builds only its own command (issue 8
// item 38).
func newCmdRootFor(f *cmdutil.Factory, args []string) *cobra.Command {
	if len(args) > 0 {
		switch args[0] {
		case "log":
			return newRoot(f, logcmd.NewCmdLog(f, nil))
		case "run":
			return newRoot(f, runcmd.NewCmdRun(f, nil))
		}
	}
	return NewCmdRoot(f)
}

func newRoot(f *cmdutil.Factory, cmds ...*cobra.Command) *cobra.Command {
	root := &cobra.Command{
		Use:     "sacred",
		Short:   "Run any command as an observed, reproducible experiment run",
		Long:    rootLong(f.Kinds()),
		Version: f.Version,
		Example: `  sacred run -F runs -- python3 train.py --lr 0.1
  sacred log metric loss 0.25          # inside a run
  sacred ls --where 'config.lr > 0.01' --sort -result
  sacred show -1
  sacred completion bash > /etc/bash_completion.d/sacred`,
		Args:          cobra.ArbitraryArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(c *cobra.Command, args []string) error {
			if len(args) == 0 {
				return c.Help()
			}
			return cmdutil.UnknownSubcommand(c, args)
		},
	}
	root.SetIn(f.IOStreams.In)
	root.SetOut(f.IOStreams.Out)
	root.SetErr(f.IOStreams.ErrOut)
	root.SetFlagErrorFunc(cmdutil.FlagErrorFunc)
	root.AddCommand(cmds...)
	cmdutil.NormalizeFlags(root)
	cmdutil.PlainBools(root)
	return root
}

// rootLong lists the observers of this build, so that `sacred --help`
// says what a binary can record to.
func rootLong(kinds []observer.Kind) string {
	var b strings.Builder
	b.WriteString("Run any command as an observed experiment run, recorded the way Python's Sacred\n")
	b.WriteString("records its runs, and report metrics and files to it from any language.\n\n")
	b.WriteString("Observers in this build (flags of sacred run):\n")
	if len(kinds) == 0 {
		b.WriteString("  none\n")
	}
	for _, k := range kinds {
		flag := "    --" + k.Option
		if k.Short != "" {
			flag = "-" + k.Short + ", --" + k.Option
		}
		fmt.Fprintf(&b, "  %-24s %s\n", flag+" "+k.Arg, k.Title)
	}
	return strings.TrimRight(b.String(), "\n")
}

// Main runs sacred with args and returns the exit status.
func Main(args []string) int {
	f := cmdutil.New(Version)
	root := newCmdRootFor(f, args)
	// `sacred show -1`: a negative index is a run, not a flag.
	root.SetArgs(storeflags.PositionalNumbers(root, args))
	cmd, err := root.ExecuteC()
	return cmdutil.HandleError(f.IOStreams.ErrOut, cmd, err)
}
