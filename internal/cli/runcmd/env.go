package runcmd

import (
	"strings"

	"github.com/sacred-go/sacred/pkg/observer"
)

// childEnv returns environ without the observers' settings: the variable
// of every registered kind and of its own flags, and those of Sacred's
// observer options. They may hold passwords (SACRED_SQL=postgresql://u:pw@...)
// and are sacred's, not the command's. removed lists the names taken out.
func childEnv(environ []string, kinds []observer.Kind) (env, removed []string) {
	secret := map[string]bool{}
	for _, o := range observer.SacredOptions {
		secret[observer.EnvVar(o)] = true
	}
	for _, k := range kinds {
		secret[k.EnvVar()] = true
		for _, f := range k.Flags {
			secret[observer.EnvVar(f.Name)] = true
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
