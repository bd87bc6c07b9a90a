package e2e

import (
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
)

// The child API through the real binary: a child in sh, python3 and node
// reports every kind of message and the file observer's records are read.

// clientSource returns a client of docs/child-api.md (the tested copies).
func clientSource(t *testing.T, name string) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return readFile(t, filepath.Join(filepath.Dir(file), "..", "..", "internal", "childapi", "testdata", "clients", name))
}

// pathWithSacred puts the built binary first on PATH, so that the child
// can call `sacred log`.
func pathWithSacred() string {
	return "PATH=" + filepath.Dir(bin) + string(os.PathListSeparator) + os.Getenv("PATH")
}

func needInterp(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Skipf("%s is not installed on this machine", name)
	}
}

var childScripts = []struct {
	lang, interp, file, code string
}{
	{"sh", "sh", "train.sh", `set -e
sacred log metric loss 0.5
sacred log metric loss 0.25
sacred log metric acc 0.9 --step 10
sacred log metric acc 0.95
sacred log info a.b '{"lang": "sh"}'
sacred log info n 3
sacred log result '{"best": 0.25}'
mkdir -p out && cd out
echo original > model.bin
sacred log artifact model.bin
echo changed > model.bin
cd ..
sacred log resource data.csv
`},
	{"python", "python3", "train.py", "%CLIENT%" + `
import os
s = Sacred()
s.metric("loss", 0.5)
s.metric("loss", 0.25)
s.metric("acc", 0.9, step=10)
s.metric("acc", 0.95)
s.info("a.b", {"lang": "python"})
s.info("n", 3)
s.result({"best": 0.25})
os.makedirs("out", exist_ok=True)
open("out/model.bin", "w").write("original\n")
s.artifact("out/model.bin")
open("out/model.bin", "w").write("changed\n")
s.resource("data.csv")
s.close()
`},
	{"node", "node", "train.js", "%CLIENT%" + `
const fs = require("fs");
(async () => {
  const s = new Sacred();
  s.metric("loss", 0.5);
  s.metric("loss", 0.25);
  s.metric("acc", 0.9, 10);
  s.metric("acc", 0.95);
  s.info("a.b", { lang: "node" });
  s.info("n", 3);
  s.result({ best: 0.25 });
  fs.mkdirSync("out", { recursive: true });
  fs.writeFileSync("out/model.bin", "original\n");
  await s.artifact("out/model.bin");
  fs.writeFileSync("out/model.bin", "changed\n");
  s.resource("data.csv");
  await s.close();
})();
`},
}

func TestChildAPIEveryKind(t *testing.T) {
	for _, cs := range childScripts {
		t.Run(cs.lang, func(t *testing.T) {
			needInterp(t, cs.interp)
			dir := t.TempDir()
			code := cs.code
			if strings.HasPrefix(code, "%CLIENT%") {
				client := map[string]string{"python": "sacred_client.py", "node": "sacred_client.js"}[cs.lang]
				code = strings.Replace(code, "%CLIENT%", clientSource(t, client), 1)
			}
			os.WriteFile(filepath.Join(dir, cs.file), []byte(code), 0o644)
			os.WriteFile(filepath.Join(dir, "data.csv"), []byte("x,y\n1,2\n"), 0o644)

			// --monitor-interval 0: info holds what the child sent, no resources.
			r := sacred(t, dir, []string{pathWithSacred()}, "run", "-F", "runs", "--monitor-interval", "0", "--", cs.interp, cs.file)
			if r.code != 0 {
				t.Fatalf("exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
			}
			if strings.Contains(r.stderr, "child API") {
				t.Errorf("child API warnings: %s", r.stderr)
			}
			run := filepath.Join(dir, "runs", "1")

			metrics := readJSON(t, filepath.Join(run, "metrics.json"))
			checkMetric(t, metrics, "loss", []float64{0, 1}, []float64{0.5, 0.25})
			checkMetric(t, metrics, "acc", []float64{10, 11}, []float64{0.9, 0.95})

			info := readJSON(t, filepath.Join(run, "info.json"))
			if want := map[string]any{"a": map[string]any{"b": map[string]any{"lang": cs.lang}}, "n": 3.0}; !reflect.DeepEqual(info, want) {
				t.Errorf("info.json %v, want %v", info, want)
			}

			rec := readJSON(t, filepath.Join(run, "run.json"))
			wantStatus(t, rec, "COMPLETED")
			if res := rec["result"]; !reflect.DeepEqual(res, map[string]any{"best": 0.25}) {
				t.Errorf("result %v", res)
			}
			if arts := rec["artifacts"]; !reflect.DeepEqual(arts, []any{"model.bin"}) {
				t.Errorf("artifacts %v", arts)
			}
			if got := readFile(t, filepath.Join(run, "model.bin")); got != "original\n" {
				t.Errorf("stored artifact %q, want the content when it was reported", got)
			}
			res, _ := rec["resources"].([]any)
			sum := md5.Sum([]byte("x,y\n1,2\n"))
			if len(res) != 1 {
				t.Fatalf("resources %v", rec["resources"])
			}
			pair, _ := res[0].([]any)
			if len(pair) != 2 || pair[0] != filepath.Join(dir, "data.csv") || !strings.Contains(fmt.Sprint(pair[1]), hex.EncodeToString(sum[:])) {
				t.Errorf("resource %v", res[0])
			}
		})
	}
}

// checkMetric compares one series of metrics.json.
func checkMetric(t *testing.T, metrics map[string]any, name string, steps, values []float64) {
	t.Helper()
	m, _ := metrics[name].(map[string]any)
	if m == nil {
		t.Errorf("metrics.json has no %q: %v", name, metrics)
		return
	}
	toF := func(v any) []float64 {
		var out []float64
		l, _ := v.([]any)
		for _, x := range l {
			f, _ := x.(float64)
			out = append(out, f)
		}
		return out
	}
	if got := toF(m["steps"]); !reflect.DeepEqual(got, steps) {
		t.Errorf("%s steps %v, want %v", name, got, steps)
	}
	if got := toF(m["values"]); !reflect.DeepEqual(got, values) {
		t.Errorf("%s values %v, want %v", name, got, values)
	}
	if ts, _ := m["timestamps"].([]any); len(ts) != len(steps) {
		t.Errorf("%s timestamps %v", name, m["timestamps"])
	}
}

// Eight processes of one run log at once; nothing is lost.
func TestChildAPIConcurrentProcesses(t *testing.T) {
	needInterp(t, "python3")
	dir := t.TempDir()
	const procs, n = 8, 3000
	code := clientSource(t, "sacred_client.py") + fmt.Sprintf("\nimport sys\ns = Sacred()\nfor j in range(%d): s.metric(sys.argv[1], j)\ns.close()\n", n)
	os.WriteFile(filepath.Join(dir, "logger.py"), []byte(code), 0o644)
	var sh strings.Builder
	for i := range procs {
		fmt.Fprintf(&sh, "python3 logger.py p%d &\n", i)
	}
	sh.WriteString("wait\n")
	os.WriteFile(filepath.Join(dir, "many.sh"), []byte(sh.String()), 0o644)
	r := sacred(t, dir, []string{pathWithSacred()}, "run", "-F", "runs", "--", "sh", "many.sh")
	if r.code != 0 || strings.Contains(r.stderr, "child API") {
		t.Fatalf("exit %d\nstderr: %s", r.code, r.stderr)
	}
	metrics := readJSON(t, filepath.Join(dir, "runs", "1", "metrics.json"))
	seq := make([]float64, n)
	for j := range seq {
		seq[j] = float64(j)
	}
	for i := range procs {
		checkMetric(t, metrics, fmt.Sprintf("p%d", i), seq, seq)
	}
}

// Bad input warns on the wrapper's stderr and breaks nothing.
func TestChildAPIBadInput(t *testing.T) {
	needInterp(t, "python3")
	dir := t.TempDir()
	code := clientSource(t, "sacred_client.py") + `
s = Sacred()
s.sock.sendall(b'{"kind": "metric", "name": "loss", "value": NaN}\n')
s.sock.sendall(b'{"kind": "metric", "name": "loss", "value": "high"}\n')
s.sock.sendall(b'this is not json\n')
s.sock.sendall(b'{"kind": "telemetry"}\n')
s.send(kind="artifact", path="/no/such/model.pt")
s.send(kind="artifact", path="train.py", name="../../escape.py")
s.metric("loss", 0.5)
s.result(7)
s.sock.sendall(b'{"kind": "metric", "na')
`
	os.WriteFile(filepath.Join(dir, "train.py"), []byte(code), 0o644)
	r := sacred(t, dir, []string{pathWithSacred()}, "run", "-F", "runs", "--", "python3", "train.py")
	if r.code != 0 {
		t.Fatalf("exit %d\nstderr: %s", r.code, r.stderr)
	}
	for _, want := range []string{"NaN is not a finite number", `value "\"high\"" is a string`, "malformed JSON", `unknown kind "telemetry"`, "/no/such/model.pt does not exist", "escapes the run directory", "disconnected in the middle of a line"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}
	run := filepath.Join(dir, "runs", "1")
	checkMetric(t, readJSON(t, filepath.Join(run, "metrics.json")), "loss", []float64{0}, []float64{0.5})
	rec := readJSON(t, filepath.Join(run, "run.json"))
	wantStatus(t, rec, "COMPLETED")
	if rec["result"] != 7.0 || !reflect.DeepEqual(rec["artifacts"], []any{}) {
		t.Errorf("result %v artifacts %v", rec["result"], rec["artifacts"])
	}
	if _, err := os.Stat(filepath.Join(dir, "escape.py")); err == nil {
		t.Error("an artifact escaped the run directory")
	}
}

func TestChildAPIMetricPatternAndResultFile(t *testing.T) {
	dir := t.TempDir()
	script := `for i in 1 2 3; do echo "epoch $i loss=0.$i"; done
echo "epoch 9 acc=0.75"
echo '{"accuracy": 0.75, "epochs": 3}' > result.json
`
	os.WriteFile(filepath.Join(dir, "train.sh"), []byte(script), 0o644)
	r := sacred(t, dir, nil, "run", "-F", "runs", "--metric-pattern", `^epoch (?P<step>\d+) (?P<name>\w+)=(?P<value>\S+)$`,
		"--result-file", "result.json", "--", "sh", "train.sh")
	if r.code != 0 {
		t.Fatalf("exit %d\nstderr: %s", r.code, r.stderr)
	}
	run := filepath.Join(dir, "runs", "1")
	metrics := readJSON(t, filepath.Join(run, "metrics.json"))
	checkMetric(t, metrics, "loss", []float64{1, 2, 3}, []float64{0.1, 0.2, 0.3})
	checkMetric(t, metrics, "acc", []float64{9}, []float64{0.75})
	rec := readJSON(t, filepath.Join(run, "run.json"))
	if want := map[string]any{"accuracy": 0.75, "epochs": 3.0}; !reflect.DeepEqual(rec["result"], want) {
		t.Errorf("result %v, want %v", rec["result"], want)
	}
}

func TestSacredLogOutsideARun(t *testing.T) {
	r := sacred(t, t.TempDir(), nil, "log", "metric", "loss", "0.3")
	if r.code != 1 || r.stderr != "sacred: not inside a sacred run (SACRED_SOCKET is not set); run the command under `sacred run -- ...`\n" {
		t.Errorf("exit %d, stderr %q", r.code, r.stderr)
	}
}
