package runner

// The child's environment: what the runner adds to what it inherits.

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// maxConfigEnv is the largest config handed over in SACRED_CONFIG. Linux
// refuses a single environment string over 128 KiB (MAX_ARG_STRLEN) and
// the whole environment and argv over ARG_MAX, so a larger config is only
// in the file SACRED_CONFIG_FILE names.
const maxConfigEnv = 64 << 10

// childEnv is the child's environment: the inherited one plus the run's
// SACRED_* variables. The config is always written to a file in dir (the
// run's private directory), named by SACRED_CONFIG_FILE, and also given
// inline as SACRED_CONFIG when it is small enough.
func (r *run) childEnv(dir, socket string) ([]string, error) {
	env := append([]string(nil), r.cfg.Env...)
	cfgJSON, err := json.Marshal(r.cfg.Start.Config)
	if err != nil {
		return nil, fmt.Errorf("encode the config for the child: %w", err)
	}
	cfgFile := filepath.Join(dir, "config.json")
	if err := os.WriteFile(cfgFile, cfgJSON, 0o600); err != nil {
		return nil, fmt.Errorf("write the config for the child: %w", err)
	}
	env = setEnv(env, "SACRED_RUN_ID", r.id)
	env = setEnv(env, "SACRED_CONFIG_FILE", cfgFile)
	if len(cfgJSON) <= maxConfigEnv {
		env = setEnv(env, "SACRED_CONFIG", string(cfgJSON))
	} else {
		env = unsetEnv(env, "SACRED_CONFIG") // e.g. an enclosing run's
	}
	env = setEnv(env, "SACRED_SEED", strconv.FormatInt(r.cfg.Seed, 10))
	env = setEnv(env, "SACRED_SOCKET", socket)
	// The child's own buffering is left alone unless asked for: Python
	// writing to a pipe runs several times faster block-buffered.
	if r.cfg.Unbuffered {
		env = setEnv(env, "PYTHONUNBUFFERED", "1")
	}
	// `sacred log` must work in the child even when sacred was started by
	// its full path: its directory goes last on PATH.
	if exe, err := os.Executable(); err == nil {
		dir := filepath.Dir(exe)
		path := os.Getenv("PATH")
		for _, e := range env {
			if strings.HasPrefix(e, "PATH=") {
				path = e[len("PATH="):]
			}
		}
		if !containsPath(path, dir) {
			env = setEnv(env, "PATH", strings.TrimPrefix(path+string(os.PathListSeparator)+dir, string(os.PathListSeparator)))
		}
	}
	return env, nil
}

// setEnv sets k to v in env, replacing any earlier value.
func setEnv(env []string, k, v string) []string {
	return append(unsetEnv(env, k), k+"="+v)
}

// unsetEnv removes k from env, in place.
func unsetEnv(env []string, k string) []string {
	prefix := k + "="
	out := env[:0]
	for _, e := range env {
		if !strings.HasPrefix(e, prefix) {
			out = append(out, e)
		}
	}
	return out
}

func containsPath(list, dir string) bool {
	for _, p := range filepath.SplitList(list) {
		if p == dir {
			return true
		}
	}
	return false
}
