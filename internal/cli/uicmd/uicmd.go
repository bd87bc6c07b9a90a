// Package uicmd implements `sacred ui`: a web view of the runs of one or
// more stores, served by internal/ui until interrupted.
package uicmd

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/sacred-go/sacred/internal/cli/cmdutil"
	"github.com/sacred-go/sacred/internal/cli/storeflags"
	"github.com/sacred-go/sacred/internal/ui"
)

// DefaultAddr is where the UI listens unless told otherwise: loopback
// only.
const DefaultAddr = "127.0.0.1:7878"

// TokenEnv names the variable that may hold the token.
const TokenEnv = "SACRED_UI_TOKEN"

// UIOptions are the parsed arguments of one `sacred ui`.
type UIOptions struct {
	IO        *cmdutil.IOStreams
	Stores    *storeflags.Flags
	Addr      string
	BasePath  string
	ReadOnly  bool
	TokenFile string
	Open      bool

	factory *cmdutil.Factory
	cmd     *cobra.Command
	// token is the token in force (from --token-file or SACRED_UI_TOKEN).
	token string
	// ready, when set, receives the URL once the server listens (tests).
	ready func(url string)
	// stop, when set, ends the server instead of a signal (tests).
	stop <-chan struct{}
}

// NewCmdUI returns the `ui` command. runF serves with complete options;
// nil means the real server. Tests pass their own.
func NewCmdUI(f *cmdutil.Factory, runF func(*UIOptions) error) *cobra.Command {
	o := &UIOptions{IO: f.IOStreams, factory: f}
	if runF == nil {
		runF = uiRun
	}
	cmd := &cobra.Command{
		Use:   "ui [STORE flags] [--addr HOST:PORT] [--read-only] [--token-file F]",
		Short: "Show runs in a web browser: the table, each run's output and metrics, comparisons",
		Long: `Serve a web view of the runs of one or more stores until interrupted.

Stores are named with the same flags as sacred run and sacred ls (-F DIR,
-m URL, -s URL, -t DIR, ...); several are shown together, with a store
column. Without one, the stores set in sacred.yaml or SACRED_*, else ./runs,
where sacred run records by default.

It listens on 127.0.0.1:7878 unless --addr says otherwise. An address that
is not loopback is refused unless a token is required: from --token-file F
(the file's first line) or ` + TokenEnv + `. The browser then asks for it once.

Pages: / (runs; filters, sort and columns in the address), /run/ID (one
run; ?store=N with several stores), /compare?ids=1,2,3.`,
		Example: `  sacred ui                       # the runs in ./runs, at http://127.0.0.1:7878/
  sacred ui -F runs -m mongodb://localhost/sacred --open
  SACRED_UI_TOKEN=... sacred ui --addr 0.0.0.0:7878 --read-only`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, args []string) error {
			o.cmd = c
			if err := o.complete(); err != nil {
				return err
			}
			return runF(o)
		},
	}
	fs := cmd.Flags()
	o.Stores = storeflags.Define(fs, f.Kinds())
	cmdutil.StringVarP(fs, &o.Addr, "addr", "", DefaultAddr, "HOST:PORT", "address to listen on (loopback unless a token is set)", checkAddr)
	cmdutil.StringVarP(fs, &o.BasePath, "base-path", "", "", "PATH", "serve under this path, behind a reverse proxy (e.g. /sacred)", nil)
	cmdutil.BoolVarP(fs, &o.ReadOnly, "read-only", "", false, "change nothing in any store (no notes or tags)")
	cmdutil.StringVarP(fs, &o.TokenFile, "token-file", "", "", "FILE", "require the token in FILE's first line (or set "+TokenEnv+")", nil)
	cmdutil.BoolVarP(fs, &o.Open, "open", "", false, "open the UI in the default browser")
	return cmd
}

func checkAddr(s string) error {
	if _, _, err := net.SplitHostPort(s); err != nil {
		return fmt.Errorf("give HOST:PORT, e.g. %s", DefaultAddr)
	}
	return nil
}

// complete reads the token and checks that a non-loopback address has one.
func (o *UIOptions) complete() error {
	tok := ""
	if o.TokenFile != "" {
		b, err := os.ReadFile(o.TokenFile)
		if err != nil {
			return cmdutil.FlagErrorf("--token-file %s: %v", o.TokenFile, unwrapPath(err))
		}
		tok, _, _ = strings.Cut(string(b), "\n")
		tok = strings.TrimSpace(tok)
		if tok == "" {
			return cmdutil.FlagErrorf("--token-file %s: the file is empty; put the token on its first line", o.TokenFile)
		}
	} else if v := o.factory.Getenv(TokenEnv); v != "" {
		tok = strings.TrimSpace(v)
	}
	if tok != "" && len(tok) < 16 {
		return cmdutil.FlagErrorf("the token is %d characters long; use at least 16 (e.g. `openssl rand -hex 16`)", len(tok))
	}
	o.token = tok
	host, _, _ := net.SplitHostPort(o.Addr)
	if !ui.IsLoopback(host) && tok == "" {
		return cmdutil.FlagErrorf("--addr %s is reachable from other machines: require a token with --token-file FILE or %s, or listen on 127.0.0.1", o.Addr, TokenEnv)
	}
	return nil
}

// unwrapPath drops the path an *os.PathError repeats.
func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

func uiRun(o *UIOptions) error {
	return o.Stores.Use(o.factory, o.cmd, func(opened []storeflags.Store) error {
		stores := make([]ui.Store, len(opened))
		for i, s := range opened {
			stores[i] = ui.Store{Label: s.Label, Reader: s.Reader}
		}
		return serve(o, stores)
	})
}

// serve serves the stores until a signal (or o.stop) ends it.
func serve(o *UIOptions, stores []ui.Store) error {
	host, _, _ := net.SplitHostPort(o.Addr)
	srv, err := ui.New(ui.Options{
		Stores:       stores,
		BasePath:     o.BasePath,
		ReadOnly:     o.ReadOnly,
		Token:        o.token,
		LoopbackOnly: ui.IsLoopback(host),
		Log:          o.IO.ErrOut,
	})
	if err != nil {
		return cmdutil.FlagErrorWrap(err)
	}
	defer srv.Close()
	ln, err := net.Listen("tcp", o.Addr)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return fmt.Errorf("--addr %s is in use: choose another port, e.g. --addr %s", o.Addr, suggestAddr(o.Addr))
		}
		return fmt.Errorf("--addr %s: %w", o.Addr, err)
	}
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second}
	url := "http://" + displayAddr(ln.Addr().String(), host) + strings.TrimRight(o.BasePath, "/") + "/"
	labels := make([]string, len(stores))
	for i, s := range stores {
		labels[i] = s.Label
	}
	fmt.Fprintf(o.IO.ErrOut, "sacred ui: %s at %s (Ctrl-C stops)\n", strings.Join(labels, ", "), url)
	if o.token != "" {
		fmt.Fprintln(o.IO.ErrOut, "sacred ui: the token is required; the browser asks for it once")
	}
	if o.ReadOnly {
		fmt.Fprintln(o.IO.ErrOut, "sacred ui: read-only: notes and tags cannot be changed")
	}
	if o.ready != nil {
		o.ready(url)
	}
	if o.Open {
		openBrowser(url, o.IO.ErrOut)
	}

	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sig)
	select {
	case err := <-served:
		return err
	case <-sig:
	case <-o.stop:
	}
	// Live streams end with the server's context; then the rest drains.
	srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = hs.Shutdown(ctx)
	return nil
}

// displayAddr is the address to print: the listener's, with a host one can
// type (localhost for an unspecified one is not right either, so keep it).
func displayAddr(listened, host string) string {
	if host == "localhost" {
		_, port, _ := net.SplitHostPort(listened)
		return "localhost:" + port
	}
	return listened
}

func suggestAddr(addr string) string {
	host, port, _ := net.SplitHostPort(addr)
	if port == "7878" {
		return net.JoinHostPort(host, "7879")
	}
	return net.JoinHostPort(host, "7878")
}

// openBrowser asks the desktop to open url; failing that, it says so.
func openBrowser(url string, w interface{ Write([]byte) (int, error) }) {
	var cmd *exec.Cmd
	switch runtime.GOOS {
	case "darwin":
		cmd = exec.Command("open", url)
	case "windows":
		cmd = exec.Command("rundll32", "url.dll,FileProtocolHandler", url)
	default:
		cmd = exec.Command("xdg-open", url)
	}
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(w, "sacred ui: --open: could not start a browser (%v); open %s yourself\n", err, url)
		return
	}
	go func() { _ = cmd.Wait() }()
}
