package runner

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
)

// deadPID returns the pid of a process that has exited and been reaped.
func deadPID(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Skipf("cannot run true: %v", err)
	}
	return cmd.Process.Pid
}

func TestRemoveStaleTempDirsKeepsLiveAndUnknownOwners(t *testing.T) {
	parent := t.TempDir()
	mk := func(name, owner string) string {
		dir := filepath.Join(parent, name)
		if err := os.MkdirAll(filepath.Join(dir, "sub"), 0o700); err != nil {
			t.Fatal(err)
		}
		if owner != "" {
			if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(owner), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	dead := mk(tempPrefix+"dead", strconv.Itoa(deadPID(t))+"\n")
	live := mk(tempPrefix+"live", strconv.Itoa(os.Getpid())+"\n")
	self := mk(tempPrefix+"self", strconv.Itoa(deadPID(t)))
	noOwner := mk(tempPrefix+"noowner", "")
	garbage := mk(tempPrefix+"garbage", "12ab")
	other := mk("other-dir", strconv.Itoa(deadPID(t)))

	removed := removeStaleTempDirs(parent, self)
	if !slices.Equal(removed, []string{dead}) {
		t.Errorf("removed %v, want only %s", removed, dead)
	}
	for _, dir := range []string{live, self, noOwner, garbage, other} {
		if _, err := os.Stat(dir); err != nil {
			t.Errorf("%s was removed: %v", dir, err)
		}
	}
	if _, err := os.Stat(dead); !os.IsNotExist(err) {
		t.Errorf("%s is still there: %v", dead, err)
	}
}

func TestMakeTempDirRecordsItsOwner(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir())
	dir, err := makeTempDir()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, ownerFile))
	if err != nil || string(b) != strconv.Itoa(os.Getpid())+"\n" {
		t.Fatalf("owner file %q, %v", b, err)
	}
}
