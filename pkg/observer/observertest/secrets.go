package observertest

import (
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"
)

// secretForms are the ways a secret may show in text: as given, and
// escaped as a URL would carry it.
func secretForms(s string) []string {
	return []string{s, url.QueryEscape(s), url.PathEscape(s)}
}

// leak returns the index of the first secret text contains, or -1.
func leak(text string, secrets []string) int {
	for i, s := range secrets {
		if s == "" {
			continue
		}
		for _, f := range secretForms(s) {
			if strings.Contains(text, f) {
				return i
			}
		}
	}
	return -1
}

// hide replaces the secrets in text, so that the suite's own messages
// never print one.
func hide(text string, secrets []string) string {
	for i, s := range secrets {
		if s == "" {
			continue
		}
		for _, f := range secretForms(s) {
			text = strings.ReplaceAll(text, f, fmt.Sprintf("<Secrets[%d]>", i))
		}
	}
	return text
}

// checkText fails the test when text holds a secret.
func checkText(t testing.TB, what, text string, secrets []string) {
	t.Helper()
	if i := leak(text, secrets); i >= 0 {
		t.Errorf("%s contains secret Secrets[%d]: %s", what, i, hide(text, secrets))
	}
}

// checkErr fails the test when err's text holds a secret.
func checkErr(t testing.TB, what string, err error, secrets []string) {
	t.Helper()
	if err == nil {
		return
	}
	text := err.Error()
	if long := fmt.Sprintf("%+v", err); long != text {
		text += "\n" + long
	}
	checkText(t, "the error of "+what, text, secrets)
}

// checkSecretsInValue makes sure each secret occurs in value, since a
// check for a secret that is not there proves nothing.
func checkSecretsInValue(t testing.TB, value string, secrets []string) {
	t.Helper()
	for i, s := range secrets {
		if s == "" {
			t.Errorf("Secrets[%d] is empty", i)
			continue
		}
		if !strings.Contains(value, s) {
			t.Errorf("Secrets[%d] does not occur in the value %q: the secret checks would prove nothing", i, hide(value, secrets))
		}
	}
}

// warnings collects what observers write to Settings.Warn.
type warnings struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (w *warnings) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

func (w *warnings) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}
