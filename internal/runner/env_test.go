package runner

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sacred-go/sacred/pkg/observer"
)

func TestChildEnvLeavesPythonBufferingAloneUnlessAsked(t *testing.T) {
	for _, unbuffered := range []bool{false, true} {
		r := &run{cfg: Config{Start: &observer.StartEvent{}, Env: []string{"HOME=/h"}, Unbuffered: unbuffered}}
		env, err := r.childEnv(t.TempDir(), "/s")
		if err != nil {
			t.Fatal(err)
		}
		if got := slices.Contains(env, "PYTHONUNBUFFERED=1"); got != unbuffered {
			t.Errorf("Unbuffered=%v: PYTHONUNBUFFERED=1 in the environment: %v", unbuffered, got)
		}
	}
}

func TestChildEnvConfigInlineOnlyWhenSmall(t *testing.T) {
	for _, size := range []int{10, maxConfigEnv + 1} {
		dir := t.TempDir()
		cfg := map[string]any{"s": strings.Repeat("x", size)}
		want, _ := json.Marshal(cfg)
		r := &run{cfg: Config{Start: &observer.StartEvent{Config: cfg}, Env: []string{"SACRED_CONFIG=outer", "SACRED_CONFIG_FILE=/outer"}}}
		env, err := r.childEnv(dir, "/s")
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]int{}
		for _, e := range env {
			k, _, _ := strings.Cut(e, "=")
			got[k]++
		}
		if got["SACRED_CONFIG_FILE"] != 1 || !slices.Contains(env, "SACRED_CONFIG_FILE="+filepath.Join(dir, "config.json")) {
			t.Fatalf("size %d: SACRED_CONFIG_FILE not set once to the run's file: %v", size, got)
		}
		inline := len(want) <= maxConfigEnv
		if inline && !slices.Contains(env, "SACRED_CONFIG="+string(want)) || !inline && got["SACRED_CONFIG"] != 0 {
			t.Errorf("size %d: SACRED_CONFIG set %d times (inline %v)", size, got["SACRED_CONFIG"], inline)
		}
		b, err := os.ReadFile(filepath.Join(dir, "config.json"))
		if err != nil || string(b) != string(want) {
			t.Errorf("size %d: config file holds %d bytes (%v), want %d", size, len(b), err, len(want))
		}
	}
}
