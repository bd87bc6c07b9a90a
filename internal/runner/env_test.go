package runner

import (
	"slices"
	"testing"

	"github.com/sacred-go/sacred/pkg/observer"
)

func TestChildEnvLeavesPythonBufferingAloneUnlessAsked(t *testing.T) {
	for _, unbuffered := range []bool{false, true} {
		r := &run{cfg: Config{Start: &observer.StartEvent{}, Env: []string{"HOME=/h"}, Unbuffered: unbuffered}}
		env := r.childEnv("/s")
		if got := slices.Contains(env, "PYTHONUNBUFFERED=1"); got != unbuffered {
			t.Errorf("Unbuffered=%v: PYTHONUNBUFFERED=1 in the environment: %v", unbuffered, got)
		}
	}
}
