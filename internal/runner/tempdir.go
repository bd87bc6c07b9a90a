package runner

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// The run's private directory (spool, child API socket, artifact copies,
// the config file, spilled metrics) is os.TempDir()/sacred-run-*. It holds
// the wrapper's pid in ownerFile, so that the directory of a wrapper that
// died without removing it (SIGKILL, a crash, a power cut) is recognised
// and removed by the next run.
const (
	tempPrefix = "sacred-run-"
	ownerFile  = "owner.pid"
	// staleWait bounds how long the end of a run waits for the removal of
	// stale directories it started (a slow or hanging file system must not
	// keep the wrapper from exiting; the next run goes on with it).
	staleWait = 5 * time.Second
)

// makeTempDir creates the run's private directory and records its owner.
func makeTempDir() (string, error) {
	dir, err := os.MkdirTemp("", tempPrefix)
	if err != nil {
		return "", fmt.Errorf("create private temp dir: %w", err)
	}
	// Written under another name and renamed, so a reader never sees a
	// partial pid (which could name a dead process and get a live
	// wrapper's directory removed).
	tmp := filepath.Join(dir, ownerFile+".new")
	err = os.WriteFile(tmp, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o600)
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, ownerFile))
	}
	if err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("record the owner of the private temp dir: %w", err)
	}
	return dir, nil
}

// removeStaleTempDirs removes the private directories in parent whose
// owner is no longer running, except self. A directory without a readable
// owner is left alone: its wrapper may be starting, or be of an older
// version that did not record itself. It returns the directories removed.
func removeStaleTempDirs(parent, self string) []string {
	f, err := os.Open(parent)
	if err != nil {
		return nil
	}
	// Names only, unsorted: no stat of every entry of a busy /tmp.
	names, _ := f.Readdirnames(-1)
	f.Close()
	var removed []string
	for _, name := range names {
		if !strings.HasPrefix(name, tempPrefix) {
			continue
		}
		dir := filepath.Join(parent, name)
		if dir == self {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, ownerFile))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 0 || processAlive(pid) {
			continue
		}
		if err := os.RemoveAll(dir); err == nil || errors.Is(err, os.ErrNotExist) {
			removed = append(removed, dir)
		}
	}
	return removed
}
