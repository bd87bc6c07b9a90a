package observertest

import (
	"context"
	"strings"
	"testing"

	"github.com/sacred-go/sacred/pkg/observer"
)

// Option configures RunKind.
type Option func(*kindTest)

type kindTest struct {
	secrets             []string
	brk                 func(t *testing.T)
	stall               func(t *testing.T) (resume func())
	flags               map[string]string
	noMetrics, noOutput bool
}

// WithSecrets declares the passwords and tokens in the value; each must
// occur in it.
func WithSecrets(secrets ...string) Option {
	return func(k *kindTest) { k.secrets = append(k.secrets, secrets...) }
}

// WithBreak gives the hook that makes the store or sink fail from now on
// (see Store.Break and Sink.Break).
func WithBreak(f func(t *testing.T)) Option { return func(k *kindTest) { k.brk = f } }

// WithStall gives the hook that makes the destination hang until resume
// is called (see Sink.Stall).
func WithStall(f func(t *testing.T) (resume func())) Option {
	return func(k *kindTest) { k.stall = f }
}

// WithFlags sets the kind's own flags (Settings.Flags).
func WithFlags(flags map[string]string) Option { return func(k *kindTest) { k.flags = flags } }

// WithoutMetrics and WithoutOutput declare a store that cannot keep
// metrics or output (see Store).
func WithoutMetrics() Option { return func(k *kindTest) { k.noMetrics = true } }

// WithoutOutput: see WithoutMetrics.
func WithoutOutput() Option { return func(k *kindTest) { k.noOutput = true } }

// RunKind runs the conformance suite for an observer kind configured with
// value, as `sacred run --OPTION VALUE` would open it: it checks the Kind
// (see the package documentation), the contract every observer keeps, and
// then the store tier when kind.Open is set (observers and readers both
// opened from value), the sink tier otherwise.
//
// Since every reader is opened from value, a Break hook should leave the
// store readable at value or make reads fail (the check of what was kept
// is then skipped); a store that needs another reader after a break can
// call Run with its own Store.
func RunKind(t *testing.T, kind observer.Kind, value string, opts ...Option) {
	var k kindTest
	for _, o := range opts {
		o(&k)
	}
	warn := &warnings{}
	settings := observer.Settings{Flags: k.flags, Warn: warn}
	t.Cleanup(func() { checkText(t, "what the observers wrote to Settings.Warn", warn.String(), k.secrets) })

	ok := t.Run("Kind", func(t *testing.T) { testKind(t, kind, value, k.secrets) })
	if !ok || kind.Parse == nil || kind.New == nil {
		return
	}
	newObserver := func(t *testing.T) observer.Observer {
		t.Helper()
		var o observer.Observer
		err := call(t, "opening the observer", func(ctx context.Context) (err error) {
			o, err = kind.OpenObserver(ctx, value, settings)
			return err
		})
		checkErr(t, "opening the observer", err, k.secrets)
		if err != nil {
			t.Fatalf("opening the observer: %v", hidden{err, k.secrets})
		}
		return o
	}
	if kind.Open == nil {
		RunSink(t, Sink{Value: value, Secrets: k.secrets, New: newObserver, Break: k.brk, Stall: k.stall})
		return
	}
	t.Run("Contract", func(t *testing.T) {
		runContract(t, contract{New: newObserver, Secrets: k.secrets, Stall: k.stall})
	})
	Run(t, Store{
		New: newObserver,
		Reader: func(t *testing.T) observer.Reader {
			t.Helper()
			var r observer.Reader
			err := call(t, "opening the reader", func(ctx context.Context) (err error) {
				r, err = kind.OpenReader(ctx, value, settings)
				return err
			})
			checkErr(t, "opening the reader", err, k.secrets)
			if err != nil {
				t.Fatalf("opening the reader: %v", hidden{err, k.secrets})
			}
			return r
		},
		Break:     k.brk,
		NoMetrics: k.noMetrics,
		NoOutput:  k.noOutput,
		Secrets:   k.secrets,
	})
}

// hidden is an error whose text has the secrets replaced, for the suite's
// own messages.
type hidden struct {
	err     error
	secrets []string
}

func (h hidden) Error() string { return hide(h.err.Error(), h.secrets) }
func (h hidden) Unwrap() error { return h.err }

// testKind checks what the Kind declares.
func testKind(t *testing.T, kind observer.Kind, value string, secrets []string) {
	if kind.Option == "" {
		t.Error("Kind.Option is empty")
	}
	if kind.Usage == "" || strings.Contains(kind.Usage, "\n") {
		t.Errorf("Kind.Usage %q must be one line of help", kind.Usage)
	}
	if kind.Parse == nil || kind.New == nil {
		t.Fatal("Kind.Parse and Kind.New are required")
	}
	checkSecretsInValue(t, value, secrets)
	checkText(t, "Kind.RedactValue(value)", kind.RedactValue(value), secrets)
	_, err := kind.Parse(value)
	checkErr(t, "Kind.Parse(value)", err, secrets)
	if err != nil {
		t.Fatalf("Kind.Parse(value): %v", hidden{err, secrets})
	}
}
