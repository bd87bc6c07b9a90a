package observertest_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"github.com/sacred-go/sacred/pkg/observer"
	"github.com/sacred-go/sacred/pkg/observer/observertest"
)

// The test sinks post every event to a webhook whose URL carries a token.
const (
	hookSecret = "hunter2"
	hookURL    = "https://hooks.example.com/services/T000/B000/" + hookSecret
)

func redactHook(u string) string { return strings.ReplaceAll(u, hookSecret, "***") }

// hook is the webhook's server: it records posts, and can break (answer
// 503) or stall (accept and not answer until resumed).
type hook struct {
	mu     sync.Mutex
	broken bool
	stall  chan struct{}
	posts  []string
}

func (h *hook) Break(*testing.T) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.broken = true
}

func (h *hook) Stall(*testing.T) (resume func()) {
	ch := make(chan struct{})
	h.mu.Lock()
	h.stall = ch
	h.mu.Unlock()
	return sync.OnceFunc(func() {
		h.mu.Lock()
		h.stall = nil
		h.mu.Unlock()
		close(ch)
	})
}

// flaws make a test sink misbehave.
type flaws struct {
	ignoreCtx bool // waits for a stalled server whatever its context says
	leakErr   bool // its errors carry the URL with the token
	leakName  bool // its name carries the URL with the token
	leakWarn  bool // warns with the URL with the token when opened
}

// hookSink is a sink that posts every event to a hook.
type hookSink struct {
	observer.Base
	h     *hook
	url   string
	flaws flaws
}

func (s *hookSink) shown() string {
	if s.flaws.leakErr {
		return s.url
	}
	return redactHook(s.url)
}

func (s *hookSink) Name() string {
	if s.flaws.leakName {
		return "hook " + s.url
	}
	return "hook " + redactHook(s.url)
}

func (s *hookSink) post(ctx context.Context, what string) error {
	s.h.mu.Lock()
	broken, stall := s.h.broken, s.h.stall
	s.h.mu.Unlock()
	if stall != nil {
		if s.flaws.ignoreCtx {
			<-stall
		} else {
			select {
			case <-stall:
			case <-ctx.Done():
			}
		}
	}
	if err := ctx.Err(); err != nil && !s.flaws.ignoreCtx {
		return fmt.Errorf("post %s to %s: %w", what, s.shown(), err)
	}
	if broken {
		return fmt.Errorf("post %s to %s: 503 Service Unavailable", what, s.shown())
	}
	s.h.mu.Lock()
	defer s.h.mu.Unlock()
	s.h.posts = append(s.h.posts, what)
	return nil
}

func (s *hookSink) Queued(ctx context.Context, ev *observer.StartEvent) (string, error) {
	return ev.ID, s.post(ctx, "queued "+ev.ID)
}
func (s *hookSink) Started(ctx context.Context, ev *observer.StartEvent) (string, error) {
	return ev.ID, s.post(ctx, "started "+ev.ID)
}
func (s *hookSink) LogMetrics(ctx context.Context, ev *observer.MetricsEvent) error {
	return s.post(ctx, "metrics")
}
func (s *hookSink) Heartbeat(ctx context.Context, ev *observer.HeartbeatEvent) error {
	return s.post(ctx, "heartbeat")
}
func (s *hookSink) Resource(ctx context.Context, ev *observer.ResourceEvent) error {
	return s.post(ctx, "resource "+ev.Path)
}
func (s *hookSink) Artifact(ctx context.Context, ev *observer.ArtifactEvent) error {
	if _, err := os.Stat(ev.Path); err != nil {
		return err
	}
	return s.post(ctx, "artifact "+ev.Name)
}
func (s *hookSink) Completed(ctx context.Context, ev *observer.CompletedEvent) error {
	return s.post(ctx, "completed")
}
func (s *hookSink) Interrupted(ctx context.Context, ev *observer.InterruptedEvent) error {
	return s.post(ctx, "interrupted "+ev.Status)
}
func (s *hookSink) Failed(ctx context.Context, ev *observer.FailedEvent) error {
	return s.post(ctx, "failed")
}

// hookKind is the kind of the test sink, posting to h.
func hookKind(h *hook, f flaws) observer.Kind {
	return observer.Kind{
		Option: "test_hook",
		Title:  "test hook",
		Arg:    "URL",
		Usage:  "post every event of the run to a test webhook",
		Parse: func(v string) (any, error) {
			if !strings.HasPrefix(v, "https://") {
				return nil, errors.New("test hook: the URL must start with https://")
			}
			return v, nil
		},
		Redact: redactHook,
		New: func(_ context.Context, cfg any, s observer.Settings) (observer.Observer, error) {
			if f.leakWarn {
				fmt.Fprintf(s.Warner(), "test hook: posting to %s\n", cfg)
			}
			return &hookSink{h: h, url: cfg.(string), flaws: f}, nil
		},
	}
}

// hookTier is the sink tier's input for a test sink.
func hookTier(f flaws) observertest.Sink {
	h := &hook{}
	return observertest.Sink{
		Value:   hookURL,
		Secrets: []string{hookSecret},
		New:     func(*testing.T) observer.Observer { return &hookSink{h: h, url: hookURL, flaws: f} },
		Break:   h.Break,
		Stall:   h.Stall,
	}
}

// helperEnv names the helper test a child process is to run; the helpers
// skip otherwise.
const helperEnv = "OBSERVERTEST_HELPER"

func helper(t *testing.T) {
	if os.Getenv(helperEnv) != t.Name() {
		t.Skip("run in a child process by the test that checks its outcome")
	}
}

// expectHelper runs the helper test name in a child process (this test
// binary again) and checks that it passes or fails, that its output holds
// every want, and that the suite never printed the secret.
func expectHelper(t *testing.T, name string, pass bool, want ...string) {
	if os.Getenv(helperEnv) != "" {
		t.Skip("inside a child process")
	}
	t.Parallel()
	cmd := exec.Command(os.Args[0], "-test.run=^"+name+"$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), helperEnv+"="+name)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	switch {
	case pass && err != nil:
		t.Fatalf("%s failed (%v), want it to pass:\n%s", name, err, out)
	case !pass && !errors.As(err, &exit):
		t.Fatalf("%s did not fail (%v), want it to:\n%s", name, err, out)
	}
	verdict := "--- FAIL: " + name
	if pass {
		verdict = "--- PASS: " + name
	}
	if !strings.Contains(string(out), verdict) {
		t.Errorf("the output of %s lacks %q:\n%s", name, verdict, out)
	}
	for _, w := range want {
		if !strings.Contains(string(out), w) {
			t.Errorf("the output of %s lacks %q:\n%s", name, w, out)
		}
	}
	if strings.Contains(string(out), hookSecret) {
		t.Errorf("the output of %s shows the secret:\n%s", name, out)
	}
}

func TestSinkTierPassesAWellBehavedSink(t *testing.T) {
	expectHelper(t, "TestHelperGoodSink", true, "--- PASS: TestHelperGoodSink/Errors", "--- PASS: TestHelperGoodSink/ShortDeadline")
}

func TestSinkTierFailsASlowSink(t *testing.T) {
	expectHelper(t, "TestHelperSlowSink", false,
		"--- FAIL: TestHelperSlowSink/ShortDeadline",
		"Started did not return within 3s of its context's deadline or cancellation: every call must honour its context")
}

func TestSinkTierFailsASinkLeakingItsSecretInErrors(t *testing.T) {
	expectHelper(t, "TestHelperLeakyErrorSink", false,
		"--- FAIL: TestHelperLeakyErrorSink/Errors",
		"the error of LogMetrics after the break contains secret Secrets[0]: post metrics to https://hooks.example.com/services/T000/B000/<Secrets[0]>: 503 Service Unavailable")
}

func TestSinkTierFailsASinkLeakingItsSecretInName(t *testing.T) {
	expectHelper(t, "TestHelperLeakyNameSink", false,
		"--- FAIL: TestHelperLeakyNameSink/Name",
		"Name() contains secret Secrets[0]: hook https://hooks.example.com/services/T000/B000/<Secrets[0]>")
}

func TestSinkTierFailsASecretNotInTheValue(t *testing.T) {
	expectHelper(t, "TestHelperSecretNotInValue", false, "Secrets[0] does not occur in the value")
}

func TestRunKindFailsAKindThatDoesNotRedact(t *testing.T) {
	expectHelper(t, "TestHelperKindWithoutRedact", false,
		"--- FAIL: TestHelperKindWithoutRedact/Kind",
		"Kind.RedactValue(value) contains secret Secrets[0]")
}

func TestRunKindFailsAWarningWithTheSecret(t *testing.T) {
	expectHelper(t, "TestHelperKindLeakingInWarnings", false,
		"what the observers wrote to Settings.Warn contains secret Secrets[0]: test hook: posting to https://hooks.example.com/services/T000/B000/<Secrets[0]>")
}

// TestRunKindSink runs a well-behaved sink kind through the entry point
// and checks that the sink tier ran: the hook received whole runs.
func TestRunKindSink(t *testing.T) {
	h := &hook{}
	observertest.RunKind(t, hookKind(h, flaws{}), hookURL,
		observertest.WithSecrets(hookSecret), observertest.WithBreak(h.Break), observertest.WithStall(h.Stall))
	h.mu.Lock()
	defer h.mu.Unlock()
	var ended []string
	for _, p := range h.posts {
		if strings.HasPrefix(p, "completed") || strings.HasPrefix(p, "failed") || strings.HasPrefix(p, "interrupted") {
			ended = append(ended, p)
		}
	}
	for _, want := range []string{"completed", "failed", "interrupted INTERRUPTED", "interrupted TIMEOUT"} {
		if !strings.Contains(strings.Join(ended, "|"), want) {
			t.Errorf("the hook never received %q; endings received: %q", want, ended)
		}
	}
}

func TestHelperGoodSink(t *testing.T) {
	helper(t)
	observertest.RunSink(t, hookTier(flaws{}))
}

func TestHelperSlowSink(t *testing.T) {
	helper(t)
	observertest.RunSink(t, hookTier(flaws{ignoreCtx: true}))
}

func TestHelperLeakyErrorSink(t *testing.T) {
	helper(t)
	observertest.RunSink(t, hookTier(flaws{leakErr: true}))
}

func TestHelperLeakyNameSink(t *testing.T) {
	helper(t)
	observertest.RunSink(t, hookTier(flaws{leakName: true}))
}

func TestHelperSecretNotInValue(t *testing.T) {
	helper(t)
	s := hookTier(flaws{})
	s.Value = redactHook(hookURL)
	observertest.RunSink(t, s)
}

func TestHelperKindWithoutRedact(t *testing.T) {
	helper(t)
	h := &hook{}
	k := hookKind(h, flaws{})
	k.Redact = nil
	observertest.RunKind(t, k, hookURL, observertest.WithSecrets(hookSecret))
}

func TestHelperKindLeakingInWarnings(t *testing.T) {
	helper(t)
	h := &hook{}
	observertest.RunKind(t, hookKind(h, flaws{leakWarn: true}), hookURL, observertest.WithSecrets(hookSecret))
}
