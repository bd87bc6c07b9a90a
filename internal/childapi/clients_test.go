package childapi

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
)

// The clients of docs/child-api.md, driven as real processes.

type lang struct {
	name, bin, client string
	// drive is the script that follows the client: it logs every kind and
	// rewrites model.bin right after reporting it.
	drive string
}

var langs = []lang{
	{name: "python", bin: "python3", client: "sacred_client.py", drive: `
s = Sacred()
s.metric("loss", 0.5)
s.metric("loss", 0.25)
s.metric("acc", 0.9, step=10)
s.metric("acc", 0.95)
s.info("a.b", {"lang": "python"})
s.info("n", 3)
s.result({"best": 0.25})
s.artifact("model.bin")
open("model.bin", "w").write("changed")
s.resource("data.csv")
s.close()
`},
	{name: "node", bin: "node", client: "sacred_client.js", drive: `
(async () => {
  const s = new Sacred();
  s.metric("loss", 0.5);
  s.metric("loss", 0.25);
  s.metric("acc", 0.9, 10);
  s.metric("acc", 0.95);
  s.info("a.b", { lang: "node" });
  s.info("n", 3);
  s.result({ best: 0.25 });
  await s.artifact("model.bin");
  require("fs").writeFileSync("model.bin", "changed");
  s.resource("data.csv");
  await s.close();
})();
`},
	{name: "perl", bin: "perl", client: "sacred_client.pl", drive: `
sacred_metric("loss", 0.5);
sacred_metric("loss", 0.25);
sacred_metric("acc", 0.9, 10);
sacred_metric("acc", 0.95);
sacred_info("a.b", {lang => "perl"});
sacred_info("n", 3);
sacred_result({best => 0.25});
sacred_artifact("model.bin");
open(my $fh, ">", "model.bin") or die; print $fh "changed"; close $fh;
sacred_resource("data.csv");
sacred_close();
`},
}

func needBin(t *testing.T, bin string) string {
	t.Helper()
	p, err := exec.LookPath(bin)
	if err != nil {
		t.Skipf("%s is not installed on this machine", bin)
	}
	return p
}

// script writes the client followed by the driver into dir.
func script(t *testing.T, dir string, l lang, drive string) string {
	t.Helper()
	client, err := os.ReadFile(filepath.Join("testdata", "clients", l.client))
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "drive"+filepath.Ext(l.client))
	if err := os.WriteFile(p, append(client, drive...), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func runIn(t *testing.T, f *fixture, dir, bin string, args ...string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), f.s.Env())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", bin, err, out)
	}
}

func TestClientsInOtherLanguages(t *testing.T) {
	for _, l := range langs {
		t.Run(l.name, func(t *testing.T) {
			bin := needBin(t, l.bin)
			f := newServer(t, nil)
			os.WriteFile(filepath.Join(f.cwd, "model.bin"), []byte("original"), 0o644)
			os.WriteFile(filepath.Join(f.cwd, "data.csv"), []byte("x,y\n"), 0o644)
			runIn(t, f, f.cwd, bin, script(t, f.cwd, l, l.drive))

			ms := f.s.DrainMetrics()
			if len(ms) != 2 || ms[0].Name != "loss" || ms[1].Name != "acc" {
				t.Fatalf("series %+v", ms)
			}
			if a, b := steps(ms, "loss"), steps(ms, "acc"); !reflect.DeepEqual(a, []int64{0, 1}) || !reflect.DeepEqual(b, []int64{10, 11}) {
				t.Errorf("steps loss %v acc %v", a, b)
			}
			if ms[0].Points[1].Value != 0.25 || ms[1].Points[1].Value != 0.95 {
				t.Errorf("values %+v", ms)
			}
			want := map[string]any{"a": map[string]any{"b": map[string]any{"lang": l.name}}, "n": int64(3)}
			if info := f.s.Info(); !reflect.DeepEqual(info, want) {
				t.Errorf("info %#v", info)
			}
			if r, ok := f.s.Result(); !ok || !reflect.DeepEqual(r, map[string]any{"best": 0.25}) {
				t.Errorf("result %#v", r)
			}
			if len(f.ev.artifacts) != 1 || f.ev.artifacts[0].Name != "model.bin" || f.ev.artifacts[0].OrigPath != filepath.Join(f.cwd, "model.bin") {
				t.Fatalf("artifacts %+v", f.ev.artifacts)
			}
			if got := string(f.ev.copies["model.bin"]); got != "original" {
				t.Errorf("artifact copy %q, want the content when it was reported", got)
			}
			sum := md5.Sum([]byte("x,y\n"))
			if len(f.ev.resources) != 1 || f.ev.resources[0].MD5 != hex.EncodeToString(sum[:]) {
				t.Errorf("resources %+v", f.ev.resources)
			}
			if w := f.warn.String(); w != "" {
				t.Errorf("warnings: %s", w)
			}
		})
	}
}

// Eight processes of one run log at once: nothing is lost, no line is torn.
func TestConcurrentProcesses(t *testing.T) {
	const procs, n = 8, 2000
	for _, l := range langs[:2] { // python and node
		t.Run(l.name, func(t *testing.T) {
			bin := needBin(t, l.bin)
			f := newServer(t, nil)
			var drive string
			if l.name == "python" {
				drive = fmt.Sprintf("\nimport sys\ns = Sacred()\nfor j in range(%d): s.metric(sys.argv[1], j)\ns.close()\n", n)
			} else {
				drive = fmt.Sprintf("\nconst s = new Sacred();\nfor (let j = 0; j < %d; j++) s.metric(process.argv[2], j);\ns.close();\n", n)
			}
			p := script(t, f.cwd, l, drive)
			var wg sync.WaitGroup
			for i := range procs {
				wg.Add(1)
				go func() {
					defer wg.Done()
					cmd := exec.Command(bin, p, fmt.Sprintf("c%d", i))
					cmd.Env = append(os.Environ(), f.s.Env())
					if out, err := cmd.CombinedOutput(); err != nil {
						t.Errorf("process %d: %v\n%s", i, err, out)
					}
				}()
			}
			wg.Wait()
			checkSeries(t, f.s.DrainMetrics(), procs, n)
			if w := f.warn.String(); w != "" {
				t.Errorf("warnings: %s", w)
			}
		})
	}
}

// A Python client that sends NaN: the client itself refuses (allow_nan is
// off); a raw writer that sends it gets a warning and the run goes on.
func TestPythonBadInput(t *testing.T) {
	bin := needBin(t, "python3")
	f := newServer(t, nil)
	drive := `
import json
s = Sacred()
try:
    s.metric("loss", float("nan"))
except ValueError as e:
    print("refused:", e)
s.sock.sendall(b'{"kind": "metric", "name": "loss", "value": NaN}\n')
s.sock.sendall(json.dumps({"kind": "metric", "name": "loss", "value": float("inf")}).encode() + b"\n")
s.sock.sendall(b'{"kind": "nonsense"}\n')
s.artifact("/does/not/exist.pt")
s.artifact("ok.txt", name="../../etc/passwd")
s.metric("loss", 1.0)
s.sock.sendall(b'{"kind": "metric", "name": "loss", "val')  # and disconnect mid-line
s.sock.close()
`
	os.WriteFile(filepath.Join(f.cwd, "ok.txt"), nil, 0o644)
	cmd := exec.Command(bin, script(t, f.cwd, langs[0], drive))
	cmd.Dir = f.cwd
	cmd.Env = append(os.Environ(), f.s.Env())
	out, err := cmd.CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("refused: Out of range float values are not JSON compliant")) {
		t.Fatalf("%v\n%s", err, out)
	}
	f.s.Close()
	w := f.warn.String()
	for _, want := range []string{"NaN is not a finite number", "Infinity is not a finite number", `unknown kind "nonsense"`, "/does/not/exist.pt does not exist", "escapes the run directory", "disconnected in the middle of a line"} {
		if !strings.Contains(w, want) {
			t.Errorf("no warning %q in:\n%s", want, w)
		}
	}
	if n := strings.Count(w, "\n"); n != 6 {
		t.Errorf("%d warnings, want 6:\n%s", n, w)
	}
	if got := steps(f.s.DrainMetrics(), "loss"); !reflect.DeepEqual(got, []int64{0}) {
		t.Errorf("loss steps %v, want the one good point", got)
	}
}

// The clients in docs/child-api.md are the ones tested here.
func TestDocsCarryTheTestedClients(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "child-api.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range langs {
		client, err := os.ReadFile(filepath.Join("testdata", "clients", l.client))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(doc, client) {
			t.Errorf("docs/child-api.md does not contain testdata/clients/%s verbatim", l.client)
		}
		if n := bytes.Count(client, []byte("\n")); n >= 20 {
			t.Errorf("%s has %d lines; the docs promise under 20", l.client, n)
		}
	}
}

// BenchmarkPythonClient is the throughput of the documented Python client
// (one sendall per point), process start included.
func BenchmarkPythonClient(b *testing.B) {
	bin, err := exec.LookPath("python3")
	if err != nil {
		b.Skip("python3 is not installed")
	}
	f := newServer(b, nil)
	client, err := os.ReadFile(filepath.Join("testdata", "clients", "sacred_client.py"))
	if err != nil {
		b.Fatal(err)
	}
	p := filepath.Join(b.TempDir(), "bench.py")
	os.WriteFile(p, append(client, fmt.Sprintf("\ns = Sacred()\nfor j in range(%d): s.metric('loss', 0.5)\ns.close()\n", b.N)...), 0o644)
	b.ResetTimer()
	stop := drainOnFlush(f.s)
	cmd := exec.Command(bin, p)
	cmd.Env = append(os.Environ(), f.s.Env())
	out, err := cmd.CombinedOutput()
	b.StopTimer()
	stop()
	if err != nil {
		b.Fatalf("%v\n%s", err, out)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "points/s")
}
