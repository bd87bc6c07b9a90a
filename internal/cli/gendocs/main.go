// Command gendocs writes sacred's man pages and its shell completion
// scripts (bash, zsh, fish, PowerShell), generated from the commands and
// the observer kinds built in. `make docs` and the release run it:
//
//	go run ./internal/cli/gendocs -man dist/man -completions dist/completions
//
// The completion scripts ask the sacred binary for the words to offer
// (cobra's __complete), so they follow whatever observers the installed
// binary has.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"

	"github.com/sacred-go/sacred/internal/cli"
	"github.com/sacred-go/sacred/internal/cli/cmdutil"
)

func main() { os.Exit(run(os.Args[1:], os.Stderr)) }

func run(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("gendocs", flag.ContinueOnError)
	fs.SetOutput(stderr)
	manDir := fs.String("man", "", "write the man pages (section 1) into `DIR`")
	complDir := fs.String("completions", "", "write the completion scripts into `DIR`")
	if err := fs.Parse(args); err != nil {
		return cmdutil.ExitUsage
	}
	if (*manDir == "" && *complDir == "") || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "gendocs: give -man DIR, -completions DIR or both")
		return cmdutil.ExitUsage
	}
	root := cli.NewCmdRoot(cmdutil.New(cli.Version))
	if err := generate(root, *manDir, *complDir); err != nil {
		fmt.Fprintf(stderr, "gendocs: %v\n", err)
		return cmdutil.ExitFailure
	}
	return cmdutil.ExitOK
}

// generate writes the man pages into manDir and the completion scripts
// into complDir; an empty directory skips that part.
func generate(root *cobra.Command, manDir, complDir string) error {
	root.DisableAutoGenTag = true // no generation date: the pages depend on the code alone
	if manDir != "" {
		if err := os.MkdirAll(manDir, 0o755); err != nil {
			return err
		}
		header := &doc.GenManHeader{Title: "SACRED", Section: "1", Source: "sacred " + root.Version, Manual: "sacred manual"}
		if err := doc.GenManTree(root, header, manDir); err != nil {
			return fmt.Errorf("man pages: %w", err)
		}
	}
	if complDir == "" {
		return nil
	}
	if err := os.MkdirAll(complDir, 0o755); err != nil {
		return err
	}
	for _, c := range []struct {
		file string
		gen  func(io.Writer) error
	}{
		{"sacred.bash", func(w io.Writer) error { return root.GenBashCompletionV2(w, true) }},
		{"_sacred", root.GenZshCompletion}, // zsh finds it by this name on its fpath
		{"sacred.fish", func(w io.Writer) error { return root.GenFishCompletion(w, true) }},
		{"sacred.ps1", root.GenPowerShellCompletionWithDesc},
	} {
		if err := writeFile(filepath.Join(complDir, c.file), c.gen); err != nil {
			return fmt.Errorf("completion %s: %w", c.file, err)
		}
	}
	return nil
}

func writeFile(path string, gen func(io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := gen(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
