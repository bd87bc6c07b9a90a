package runner

// The child's environment: what the runner adds to what it inherits.

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

func (r *run) childEnv(socket string) []string {
	env := append([]string(nil), r.cfg.Env...)
	cfgJSON, _ := json.Marshal(r.cfg.Start.Config)
	env = setEnv(env, "SACRED_RUN_ID", r.id)
	env = setEnv(env, "SACRED_CONFIG", string(cfgJSON))
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
	return env
}

func setEnv(env []string, k, v string) []string {
	prefix := k + "="
	out := env[:0]
	for _, e := range env {
		if !strings.HasPrefix(e, prefix) {
			out = append(out, e)
		}
	}
	return append(out, prefix+v)
}

func containsPath(list, dir string) bool {
	for _, p := range filepath.SplitList(list) {
		if p == dir {
			return true
		}
	}
	return false
}
