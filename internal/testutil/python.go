package testutil

import (
	"os"
	"os/exec"
	"testing"
)

// PythonWith returns a python3 that runs imports (e.g. "import tinydb"):
// Debian's python3-* packages are for /usr/bin/python3, which may not be
// the python3 first on PATH. Without one the test fails under CI (.ci/run
// installs the package named by apt) and is skipped elsewhere.
func PythonWith(t testing.TB, imports, apt string) string {
	t.Helper()
	for _, name := range []string{"/usr/bin/python3", "python3"} {
		if p, err := exec.LookPath(name); err == nil && exec.Command(p, "-c", imports).Run() == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("no python3 runs %q; .ci/run installs Debian's %s", imports, apt)
	}
	t.Skipf("no python3 runs %q (apt-get install %s)", imports, apt)
	return ""
}
