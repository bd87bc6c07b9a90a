// Package cli assembles sacred's commands and maps their errors to exit
// statuses.
package cli

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/sacred-go/sacred/internal/cli/logcmd"
	"github.com/sacred-go/sacred/internal/cli/runcmd"

	// The observers compiled into the binary register themselves.
	_ "github.com/sacred-go/sacred/pkg/observer/file"
	_ "github.com/sacred-go/sacred/pkg/observer/mongo"
	_ "github.com/sacred-go/sacred/pkg/observer/sqlstore"
	_ "github.com/sacred-go/sacred/pkg/observer/tinydb"
)

// Version is set at build time by the release tooling.
var Version = "dev"

// NewRoot returns the root command.
func NewRoot() *cobra.Command {
	root := &cobra.Command{
		Use:           "sacred",
		Short:         "Run any command as an observed, reproducible experiment run",
		Version:       Version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(runcmd.NewCmd(nil), logcmd.NewCmd())
	return root
}

// Main runs sacred with args and returns the exit status.
func Main(args []string) int {
	root := NewRoot()
	root.SetArgs(args)
	err := root.Execute()
	if err == nil {
		return 0
	}
	var exit *runcmd.ExitError
	if errors.As(err, &exit) {
		return exit.Code
	}
	var usage *runcmd.UsageError
	fmt.Fprintf(os.Stderr, "sacred: %v\n", err)
	if errors.As(err, &usage) {
		return 2
	}
	// cobra's own errors (unknown flag, unknown command) are usage errors.
	if isCobraUsage(err) {
		fmt.Fprintln(os.Stderr, "Run 'sacred --help' for usage.")
		return 2
	}
	return 1
}

func isCobraUsage(err error) bool {
	msg := err.Error()
	for _, p := range []string{"unknown flag", "unknown shorthand flag", "unknown command", "flag needs an argument", "invalid argument", "bad flag syntax"} {
		if strings.Contains(msg, p) {
			return true
		}
	}
	return false
}
