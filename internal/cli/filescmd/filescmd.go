// Package filescmd implements `sacred files`: the source files, resources
// and artifacts of a run, listed, printed or written out into a
// directory.
package filescmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/sacred-go/sacred/internal/cli/cmdutil"
	"github.com/sacred-go/sacred/internal/cli/runfmt"
	"github.com/sacred-go/sacred/internal/cli/storeflags"
	"github.com/sacred-go/sacred/internal/readback"
	"github.com/sacred-go/sacred/pkg/observer"
)

// FilesOptions are the settings of one `sacred files`.
type FilesOptions struct {
	IO     *cmdutil.IOStreams
	Stores []storeflags.Store
	// Run names the run: an id, or -N for an index from the latest.
	Run string
	// Names select files; none means all.
	Names []string
	// Out is the directory to write into; "" lists (or prints one file).
	Out string
	// Force lets files in Out be replaced.
	Force bool
}

// NewCmdFiles returns the `files` command. runF works with complete
// options; nil means the real command.
func NewCmdFiles(f *cmdutil.Factory, runF func(*FilesOptions) error) *cobra.Command {
	o := &FilesOptions{IO: f.IOStreams}
	var stores *storeflags.Flags
	cmd := &cobra.Command{
		Use:   "files [STORE] ID|-1 [NAME...] [--out DIR]",
		Short: "List or write out the sources, resources and artifacts of a run",
		Long: `List the source files, resources and artifacts of a run (kind, name, md5).

With one NAME and no --out, that file's content goes to standard output. With
--out DIR, the files named (all of them when no NAME is given) are written into
DIR: an artifact as its name, a source as its path relative to the experiment's
base directory, a resource as its base name. A name that would land outside DIR
is refused, and so is a file that exists already unless --force is given;
nothing is written unless every file can be. A NAME may start with source:,
resource: or artifact: to pick among files of the same name.

STORE is named as for sacred ls (default ./runs). ` + storeflags.RunArgsUsage,
		Example: `  sacred files -1
  sacred files -1 model.pt > model.pt
  sacred files -F runs 7 --out restored/`,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) == 0 {
				return cmdutil.FlagErrorf("sacred files needs a run: its id, or -1 for the latest")
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			o.Run, o.Names = args[0], args[1:]
			return stores.Use(f, c, func(opened []storeflags.Store) error {
				o.Stores = opened
				if runF != nil {
					return runF(o)
				}
				return Files(context.Background(), o)
			})
		},
	}
	fs := cmd.Flags()
	cmdutil.StringVarP(fs, &o.Out, "out", "", "", "DIR", "write the files into this directory (created when missing)", nil)
	cmdutil.BoolVarP(fs, &o.Force, "force", "f", false, "replace files that exist in --out")
	stores = storeflags.Define(fs, f.Kinds())
	storeflags.MarkRunArgs(cmd)
	return cmd
}

// file is one file of a run.
type file struct {
	kind string // source, resource or artifact
	name string // as the run names it
	md5  string
	// target is where --out puts it, slash-separated, relative.
	target  string
	omitted bool
}

func filesOf(r *observer.Run) []file {
	var out []file
	for _, s := range r.Experiment.Sources {
		out = append(out, file{kind: "source", name: s.Name, md5: s.MD5, target: filepath.ToSlash(s.Name), omitted: s.Omitted})
	}
	for _, x := range r.Resources {
		out = append(out, file{kind: "resource", name: x.Path, md5: x.MD5, target: path.Base(filepath.ToSlash(x.Path))})
	}
	seen := map[string]bool{}
	for _, a := range r.Artifacts {
		if seen[a] { // stored twice: one file, its latest content
			continue
		}
		seen[a] = true
		out = append(out, file{kind: "artifact", name: a, target: a})
	}
	return out
}

// Files lists, prints or writes out the files of a run.
func Files(ctx context.Context, o *FilesOptions) error {
	st, run, err := storeflags.FindRun(ctx, o.Stores, o.Run)
	if err != nil {
		return err
	}
	all := filesOf(run)
	sel, err := selectFiles(run.ID, all, o.Names)
	if err != nil {
		return err
	}
	switch {
	case o.Out != "":
		return writeOut(ctx, st.Reader, run.ID, sel, o)
	case len(o.Names) == 1:
		rc, err := open(ctx, st.Reader, run.ID, sel[0])
		if err != nil {
			return err
		}
		defer rc.Close()
		if _, err := io.Copy(o.IO.Out, rc); err != nil {
			return fmt.Errorf("%s %s of run %s: %w", sel[0].kind, sel[0].name, run.ID, err)
		}
		return nil
	case len(o.Names) > 1:
		return cmdutil.FlagErrorf("%d files asked for: give --out DIR to write them, or one NAME to print it", len(o.Names))
	}
	human := o.IO.IsStdoutTTY()
	t := &runfmt.Table{Keep: map[int]bool{0: true, 2: true}}
	if human {
		t.Add("KIND", "NAME", "MD5")
	} else {
		t.Add("kind", "name", "md5")
	}
	for _, f := range sel {
		md5 := f.md5
		if f.omitted {
			md5 += " (content not recorded)"
		}
		t.Add(f.kind, f.name, md5)
	}
	if human {
		if len(sel) == 0 {
			fmt.Fprintf(o.IO.ErrOut, "run %s has no files\n", run.ID)
			return nil
		}
		return t.WriteAligned(o.IO.Out, o.IO.TerminalWidth())
	}
	return t.WriteTSV(o.IO.Out)
}

// selectFiles picks the files NAMEs name (all of them for none).
func selectFiles(id string, all []file, names []string) ([]file, error) {
	if len(names) == 0 {
		return all, nil
	}
	var out []file
	for _, n := range names {
		kind, name, hasKind := strings.Cut(n, ":")
		if !hasKind || (kind != "source" && kind != "resource" && kind != "artifact") {
			kind, name = "", n
		}
		var match []file
		for _, f := range all {
			if kind != "" && f.kind != kind {
				continue
			}
			if f.name == name || (f.kind == "resource" && f.target == name) {
				match = append(match, f)
			}
		}
		switch {
		case len(match) == 0:
			return nil, fmt.Errorf("run %s has no file %q: `sacred files %s` lists them", id, n, id)
		case len(match) > 1:
			return nil, fmt.Errorf("run %s has %d files named %q: put source:, resource: or artifact: in front of the name", id, len(match), n)
		}
		out = append(out, match[0])
	}
	return out, nil
}

// open opens a file's content from the store.
func open(ctx context.Context, r observer.Reader, id string, f file) (io.ReadCloser, error) {
	if f.kind == "artifact" {
		return r.Artifact(ctx, id, f.name)
	}
	fo, ok := r.(readback.FileOpener)
	if !ok {
		return nil, fmt.Errorf("this store cannot give back the %ss of a run, only its artifacts", f.kind)
	}
	if f.kind == "source" {
		return fo.OpenSource(ctx, id, f.name)
	}
	return fo.OpenResource(ctx, id, f.name)
}

// writeOut writes files into o.Out. Every target is checked first (inside
// the directory, not there yet unless --force), so that a refusal writes
// nothing. Writes go through an os.Root, which no symbolic link leads
// out of.
func writeOut(ctx context.Context, r observer.Reader, id string, sel []file, o *FilesOptions) error {
	targets := map[string]file{}
	for _, f := range sel {
		if !filepath.IsLocal(filepath.FromSlash(f.target)) {
			return fmt.Errorf("%s %q of run %s would be written outside %s: refused", f.kind, f.name, id, o.Out)
		}
		if prev, dup := targets[f.target]; dup {
			return fmt.Errorf("%s %q and %s %q would both be written to %s: ask for one of them by name, e.g. %s:%s",
				prev.kind, prev.name, f.kind, f.name, filepath.Join(o.Out, f.target), f.kind, f.name)
		}
		targets[f.target] = f
	}
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return fmt.Errorf("--out: %w", err)
	}
	root, err := os.OpenRoot(o.Out)
	if err != nil {
		return fmt.Errorf("--out: %w", err)
	}
	defer root.Close()
	for _, f := range sel {
		fi, err := root.Lstat(filepath.FromSlash(f.target))
		switch {
		case err == nil && fi.IsDir():
			return fmt.Errorf("%s is a directory: %s %q of run %s cannot be written there", filepath.Join(o.Out, f.target), f.kind, f.name, id)
		case err == nil && !o.Force:
			return fmt.Errorf("%s exists: not replaced (give --force to replace it, or another --out)", filepath.Join(o.Out, f.target))
		case err != nil && !errors.Is(err, os.ErrNotExist) && !isNotDir(err):
			return fmt.Errorf("--out: %w", err)
		}
	}
	for _, f := range sel {
		if err := writeOne(ctx, r, root, id, f, o); err != nil {
			return err
		}
		fmt.Fprintln(o.IO.Out, filepath.Join(o.Out, filepath.FromSlash(f.target)))
	}
	return nil
}

// writeOne copies one file into a temporary file beside its target and
// renames it into place, so that a failed copy leaves nothing behind.
func writeOne(ctx context.Context, r observer.Reader, root *os.Root, id string, f file, o *FilesOptions) error {
	rc, err := open(ctx, r, id, f)
	if err != nil {
		return err
	}
	defer rc.Close()
	target := filepath.FromSlash(f.target)
	if dir := filepath.Dir(target); dir != "." {
		if err := root.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("--out: %w", err)
		}
	}
	tmp := filepath.Join(filepath.Dir(target), "."+filepath.Base(target)+".sacred-tmp")
	w, err := root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("--out: %w", err)
	}
	_, err = io.Copy(w, rc)
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err == nil && !o.Force {
		// Taken meanwhile? Then keep it: never replace silently.
		if _, serr := root.Lstat(target); serr == nil {
			err = fmt.Errorf("%s appeared while writing: not replaced", filepath.Join(o.Out, f.target))
		}
	}
	if err == nil {
		err = root.Rename(tmp, target)
	}
	if err != nil {
		_ = root.Remove(tmp)
		return fmt.Errorf("%s %q of run %s: %w", f.kind, f.name, id, err)
	}
	return nil
}

// isNotDir tells whether err says a path element is a file.
func isNotDir(err error) bool {
	var pe *os.PathError
	return errors.As(err, &pe) && strings.Contains(pe.Err.Error(), "not a directory")
}
