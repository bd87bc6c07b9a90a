package uicmd

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/sacred-go/sacred/internal/cli/cmdutil"
	"github.com/sacred-go/sacred/internal/readback/readbacktest"
	"github.com/sacred-go/sacred/internal/ui"
	"github.com/sacred-go/sacred/pkg/observer"
	_ "github.com/sacred-go/sacred/pkg/observer/file" // -F
)

func parse(t *testing.T, env []string, args ...string) (*UIOptions, error) {
	t.Helper()
	f := cmdutil.NewTest(env, t.TempDir())
	var got *UIOptions
	cmd := NewCmdUI(f, func(o *UIOptions) error { got = o; return nil })
	cmd.SetArgs(args)
	cmd.SetOut(io.Discard)
	cmd.SetErr(io.Discard)
	cmd.SilenceErrors, cmd.SilenceUsage = true, true
	err := cmd.Execute()
	return got, err
}

func TestFlags(t *testing.T) {
	o, err := parse(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	if o.Addr != DefaultAddr || o.ReadOnly || o.token != "" {
		t.Errorf("defaults: %+v", o)
	}
	o, err = parse(t, []string{"SACRED_UI_TOKEN=0123456789abcdef0123"}, "--addr", "0.0.0.0:80", "--read-only", "--base-path", "/x")
	if err != nil {
		t.Fatal(err)
	}
	if o.token != "0123456789abcdef0123" || !o.ReadOnly || o.BasePath != "/x" {
		t.Errorf("options: %+v", o)
	}
	_, err = parse(t, nil, "--addr", "[::]:7878")
	var fe *cmdutil.FlagError
	if !errors.As(err, &fe) || !strings.Contains(err.Error(), "reachable from other machines") {
		t.Errorf("a public address without a token: %v", err)
	}
	if _, err := parse(t, nil, "--addr", "localhost:0"); err != nil {
		t.Errorf("localhost: %v", err)
	}
}

// TestServe serves a store until told to stop, as a signal would.
func TestServe(t *testing.T) {
	ios, _, _, errOut := cmdutil.Test()
	stop := make(chan struct{})
	urls := make(chan string, 1)
	o := &UIOptions{IO: ios, Addr: "127.0.0.1:0", ready: func(u string) { urls <- u }, stop: stop}
	mem := &readbacktest.Memory{RunList: []*observer.Run{{ID: "1", Status: "COMPLETED"}}}
	done := make(chan error, 1)
	go func() { done <- serve(o, []ui.Store{{Label: "mem", Reader: mem}}) }()
	u := <-urls
	res, err := http.Get(u + "api/runs")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || !strings.Contains(string(body), `"total":1`) {
		t.Errorf("api/runs: %d %s", res.StatusCode, body)
	}
	close(stop)
	if err := <-done; err != nil {
		t.Errorf("serve: %v", err)
	}
	if !strings.Contains(errOut.String(), "sacred ui: mem at "+u) {
		t.Errorf("stderr: %q", errOut.String())
	}
}
