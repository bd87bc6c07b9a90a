package collect

import (
	"errors"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// Whether git could see a file as other than its bytes. Git converts a
// file before hashing it only through core.autocrlf or attributes (text,
// eol, filter, ident, working-tree-encoding): when neither can apply, a
// file whose bytes differ from the index's blob is a change, certainly,
// and no git process is needed to say so.

// mayConvert reports whether core.autocrlf or an attributes file could
// apply to the tracked file name (slash-separated, relative to the
// worktree). When unsure (a config that includes another) it says yes.
func (r *gitRepo) mayConvert(name string) bool {
	if r.convertGlobal == nil {
		v := r.globalConversion()
		r.convertGlobal = &v
	}
	if *r.convertGlobal {
		return true
	}
	// .gitattributes in the file's directory and each one above it, up
	// to the worktree, tracked or not.
	for dir := path.Dir(name); ; dir = path.Dir(dir) {
		if exists(filepath.Join(r.worktree, filepath.FromSlash(dir), ".gitattributes")) {
			return true
		}
		if dir == "." || dir == "/" {
			return false
		}
	}
}

// globalConversion: the part of mayConvert that does not depend on the
// file: core.autocrlf in any config git reads, and the attributes files
// outside the worktree.
func (r *gitRepo) globalConversion() bool {
	configs := []*gitConfig{r.config}
	for _, p := range userConfigPaths() {
		data, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		configs = append(configs, parseGitConfig(data))
	}
	if data, err := os.ReadFile(filepath.Join(r.gitDir, "config.worktree")); err == nil {
		configs = append(configs, parseGitConfig(data))
	}
	attrFiles := []string{filepath.Join(r.commonDir, "info", "attributes"), userAttributesPath()}
	if os.Getenv("GIT_CONFIG_NOSYSTEM") == "" {
		attrFiles = append(attrFiles, "/etc/gitattributes")
	}
	for _, c := range configs {
		if v, ok := c.get("core.autocrlf"); ok && parseGitBool(v, true) { // true or input
			return true
		}
		if p, ok := c.get("core.attributesfile"); ok {
			attrFiles = append(attrFiles, expandHome(p))
		}
		for _, k := range c.order {
			if strings.HasPrefix(k, "include.") || strings.HasPrefix(k, "includeif.") {
				return true // settings we do not read
			}
		}
	}
	for _, p := range attrFiles {
		if p != "" && exists(p) {
			return true
		}
	}
	return false
}

// userConfigPaths are the system and global config files git reads, as
// GIT_CONFIG_NOSYSTEM, GIT_CONFIG_SYSTEM, GIT_CONFIG_GLOBAL, HOME and
// XDG_CONFIG_HOME choose them.
func userConfigPaths() []string {
	var paths []string
	if os.Getenv("GIT_CONFIG_NOSYSTEM") == "" {
		if p := os.Getenv("GIT_CONFIG_SYSTEM"); p != "" {
			paths = append(paths, p)
		} else {
			paths = append(paths, "/etc/gitconfig")
		}
	}
	if p, ok := os.LookupEnv("GIT_CONFIG_GLOBAL"); ok {
		return append(paths, p)
	}
	if x := xdgConfigHome(); x != "" {
		paths = append(paths, filepath.Join(x, "git", "config"))
	}
	if h, err := os.UserHomeDir(); err == nil {
		paths = append(paths, filepath.Join(h, ".gitconfig"))
	}
	return paths
}

// userAttributesPath is git's default core.attributesFile.
func userAttributesPath() string {
	if x := xdgConfigHome(); x != "" {
		return filepath.Join(x, "git", "attributes")
	}
	return ""
}

func xdgConfigHome() string {
	if x := os.Getenv("XDG_CONFIG_HOME"); x != "" {
		return x
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".config")
	}
	return ""
}

func expandHome(p string) string {
	if rest, ok := strings.CutPrefix(p, "~/"); ok {
		if h, err := os.UserHomeDir(); err == nil {
			return filepath.Join(h, rest)
		}
	}
	return p
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil || !errors.Is(err, fs.ErrNotExist)
}
