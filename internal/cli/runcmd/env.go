package runcmd

import (
	"strings"

	"github.com/sacred-go/sacred/pkg/observer"
)

// childEnv returns environ without the observers' settings: the variable
// of every registered kind and of its own flags, the variables it reads
// itself (Kind.Env: secrets such as SACRED_WEBHOOK_SECRET), those of
// Sacred's observer options, and SACRED_PING. They may hold passwords (SACRED_SQL=postgresql://u:pw@...)
// and are sacred's, not the command's. removed lists the names taken out.
func childEnv(environ []string, kinds []observer.Kind) (env, removed []string) {
	// SACRED_PING holds the check's secret URL.
	secret := map[string]bool{observer.EnvVar("ping"): true}
	for _, o := range observer.SacredOptions {
		secret[observer.EnvVar(o)] = true
	}
	for _, k := range kinds {
		secret[k.EnvVar()] = true
		for _, f := range k.Flags {
			secret[observer.EnvVar(f.Name)] = true
		}
		for _, name := range k.Env {
			secret[name] = true
		}
	}
	env = make([]string, 0, len(environ))
	for _, e := range environ {
		name, _, _ := strings.Cut(e, "=")
		if secret[name] {
			removed = append(removed, name)
			continue
		}
		env = append(env, e)
	}
	return env, removed
}

// getenv reads a variable of the child's environment, as the command will
// see it (the last of a name wins, as in exec).
func (o *RunOptions) getenv(name string) string {
	v := ""
	for _, e := range o.Env {
		if k, val, ok := strings.Cut(e, "="); ok && k == name {
			v = val
		}
	}
	return v
}
