package e2e

import (
	"crypto/md5"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sacred-go/sacred/internal/testutil"
)

// Regression tests of issue 8 for file storage and the collectors, through
// the real binary.

// A run whose -F disk fills up ends with its final status recorded, and
// the file store says, in one line, what the record lacks and why; the
// child's exit code is kept.
func TestHardening10FileStoreDiskFull(t *testing.T) {
	disk := testutil.Tmpfs(t, 1<<20)
	dir := t.TempDir()
	script := `set -e
sacred log info before 1
head -c 3000000 /dev/zero | tr '\0' x
echo
sacred log metric loss 0.5
sacred log info after 2
echo data > a.txt
sacred log artifact a.txt
exit 3
`
	if err := os.WriteFile(filepath.Join(dir, "train.sh"), []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	runs := filepath.Join(disk, "runs")
	r := sacred(t, dir, []string{pathWithSacred()}, "run", "-F", runs, "--", "sh", "train.sh")
	if r.code != 3 {
		t.Fatalf("exit %d, want the child's 3; stderr: %s", r.code, r.stderr)
	}
	if n := strings.Count(r.stdout, "x"); n != 3000000 {
		t.Errorf("the terminal got %d of 3000000 bytes", n)
	}
	run := readJSON(t, filepath.Join(runs, "1", "run.json"))
	wantStatus(t, run, "FAILED")
	if run["stop_time"] == nil {
		t.Error("no stop_time")
	}
	trace, _ := run["fail_trace"].([]any)
	if len(trace) == 0 || !strings.Contains(trace[0].(string), "status 3") {
		t.Errorf("fail_trace = %v", trace)
	}
	var line string
	for _, l := range strings.Split(r.stderr, "\n") {
		if strings.Contains(l, "is recorded FAILED, but without") {
			line = l
		}
	}
	if line == "" {
		t.Fatalf("no line says what the record lacks; stderr:\n%s", r.stderr)
	}
	for _, want := range []string{"file storage " + runs, "run 1", "1 metric point", "the latest info", `artifact "a.txt"`, "no space left on device"} {
		if !strings.Contains(line, want) {
			t.Errorf("the line %q does not say %q", line, want)
		}
	}
	cout, err := os.Stat(filepath.Join(runs, "1", "cout.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if cout.Size() < 3000000 && !strings.Contains(r.stderr, "output") {
		t.Errorf("cout.txt holds %d bytes of 3000001 and nothing says so; stderr:\n%s", cout.Size(), r.stderr)
	}
}

// A source larger than the cap (10 MiB by default) is recorded by name,
// md5 and size, and not copied to _sources.
func TestHardening13LargeSourceNotCopied(t *testing.T) {
	dir := t.TempDir()
	big := make([]byte, 10<<20+1)
	for i := range big {
		big[i] = byte(i * 7)
	}
	if err := os.WriteFile(filepath.Join(dir, "big.dat"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "train.sh"), []byte("echo ok\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := sacred(t, dir, nil, "run", "-F", "runs", "--source", "big.dat", "--", "sh", "train.sh")
	if r.code != 0 {
		t.Fatalf("exit %d, stderr: %s", r.code, r.stderr)
	}
	sum := md5.Sum(big)
	md5hex := hex.EncodeToString(sum[:])
	run := readJSON(t, filepath.Join(dir, "runs", "1", "run.json"))
	ex := run["experiment"].(map[string]any)
	var gotPair []any
	for _, s := range ex["sources"].([]any) {
		if p := s.([]any); p[0] == "big.dat" {
			gotPair = p
		}
	}
	if len(gotPair) != 2 || gotPair[1] != md5hex {
		t.Errorf("sources entry of big.dat = %v, want [big.dat %s]", gotPair, md5hex)
	}
	omitted, _ := ex["omitted_sources"].([]any)
	if len(omitted) != 1 {
		t.Fatalf("omitted_sources = %v", ex["omitted_sources"])
	}
	o := omitted[0].(map[string]any)
	if o["name"] != "big.dat" || o["md5"] != md5hex || o["size"] != float64(len(big)) {
		t.Errorf("omitted_sources[0] = %v", o)
	}
	stored, _ := filepath.Glob(filepath.Join(dir, "runs", "_sources", "big*"))
	if len(stored) != 0 {
		t.Errorf("big.dat was copied: %v", stored)
	}
	if stored, _ := filepath.Glob(filepath.Join(dir, "runs", "_sources", "train_*.sh")); len(stored) != 1 {
		t.Errorf("train.sh was not copied: %v", stored)
	}
}

// Stored copies never get more permissions than the original: a 0600 key
// sent as artifact or resource, directly or through a symlink, and a 0600
// source stay 0600; a 0644 file stays 0644 and a 0755 one loses only x.
func TestHardening19StoredCopiesKeepModes(t *testing.T) {
	dir := t.TempDir()
	files := map[string]os.FileMode{
		"key.pem": 0o600, "res.pem": 0o600, "secret.py": 0o600, "public.txt": 0o644, "tool.sh": 0o755,
	}
	for name, mode := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("content of "+name+"\n"), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(filepath.Join(dir, name), mode); err != nil { // past the umask
			t.Fatal(err)
		}
	}
	for link, target := range map[string]string{"link.pem": "key.pem", "reslink.pem": "res.pem"} {
		if err := os.Symlink(target, filepath.Join(dir, link)); err != nil {
			t.Fatal(err)
		}
	}
	script := `set -e
sacred log artifact key.pem
sacred log artifact link.pem --name via-link.pem
sacred log artifact public.txt
sacred log artifact tool.sh
sacred log resource reslink.pem
`
	if err := os.WriteFile(filepath.Join(dir, "train.sh"), []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	r := sacred(t, dir, []string{pathWithSacred()}, "run", "-F", "runs", "--source", "secret.py", "--", "sh", "train.sh")
	if r.code != 0 {
		t.Fatalf("exit %d, stderr: %s", r.code, r.stderr)
	}
	mode := func(p string) os.FileMode {
		t.Helper()
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Mode().Perm()
	}
	one := func(pattern string) string {
		t.Helper()
		m, _ := filepath.Glob(filepath.Join(dir, "runs", pattern))
		if len(m) != 1 {
			t.Fatalf("%s matches %v", pattern, m)
		}
		return m[0]
	}
	for path, want := range map[string]os.FileMode{
		filepath.Join(dir, "runs", "1", "key.pem"):      0o600,
		filepath.Join(dir, "runs", "1", "via-link.pem"): 0o600,
		filepath.Join(dir, "runs", "1", "public.txt"):   0o644,
		filepath.Join(dir, "runs", "1", "tool.sh"):      0o644,
		one("_resources/reslink_*.pem"):                 0o600,
		one("_sources/secret_*.py"):                     0o600,
	} {
		if got := mode(path); got != want {
			t.Errorf("%s is %04o, want %04o", path, got, want)
		}
	}
}

// A git remote with a token in its query (and credentials, and a
// fragment) is stored without any of them.
func TestHardening20GitRemoteQueryStripped(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed on this machine")
	}
	dir := t.TempDir()
	const secret = "SECRET-TOKEN-123"
	git := func(args ...string) {
		t.Helper()
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		cmd.Env = append(cleanEnv(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_SYSTEM=/dev/null",
			"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "train.sh"), []byte("echo ok\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	git("init", "-q")
	git("remote", "add", "origin", "https://user:pw-"+secret+"@example.com/x.git?access_token="+secret+"#"+secret)
	git("add", "train.sh")
	git("commit", "-q", "-m", "init")
	r := sacred(t, dir, nil, "run", "-F", "runs", "--", "sh", "train.sh")
	if r.code != 0 {
		t.Fatalf("exit %d, stderr: %s", r.code, r.stderr)
	}
	raw := readFile(t, filepath.Join(dir, "runs", "1", "run.json"))
	if strings.Contains(raw, secret) {
		t.Errorf("run.json holds the token:\n%s", raw)
	}
	repos := readJSON(t, filepath.Join(dir, "runs", "1", "run.json"))["experiment"].(map[string]any)["repositories"].([]any)
	if len(repos) != 1 || repos[0].(map[string]any)["url"] != "https://example.com/x.git" {
		t.Errorf("repositories = %v, want the url https://example.com/x.git", repos)
	}
}

// host.os[1] is what Python's platform.platform() says on this machine
// (with -with-glibcX.Y on glibc systems), so hosts match Python Sacred's.
func TestHardening35HostPlatformAsPython(t *testing.T) {
	needInterp(t, "python3")
	out, err := exec.Command("python3", "-c", "import platform; print(platform.platform())").Output()
	if err != nil {
		t.Skipf("python3 does not run here: %v", err)
	}
	want := strings.TrimSpace(string(out))
	dir := t.TempDir()
	r := sacred(t, dir, nil, "run", "-F", "runs", "--", "true")
	if r.code != 0 {
		t.Fatalf("exit %d, stderr: %s", r.code, r.stderr)
	}
	host := readJSON(t, filepath.Join(dir, "runs", "1", "run.json"))["host"].(map[string]any)
	if got := host["os"].([]any)[1]; got != want {
		t.Errorf("host.os[1] = %q, Python's platform.platform() = %q", got, want)
	}
}
