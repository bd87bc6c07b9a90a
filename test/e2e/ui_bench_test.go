package e2e

import (
	"context"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/sacred-go/sacred/internal/testserver"
)

// BenchmarkUI10k serves 10,000 runs (one real run copied, as for
// BenchmarkLs10k) from the file store, SQLite and MongoDB (embedded
// FerretDB) with the real binary: "cold" is the time from the start of
// `sacred ui` to the table's default first page (answered from the newest
// runs while the store is scanned), "scan" to a filtered page (which
// waits for the first scan of the store), "page" the answer of a first
// page once scanned, "browser" the time from navigating to the table
// until its 50 rows are on screen.
func BenchmarkUI10k(b *testing.B) {
	dir := b.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "train.sh"), []byte(readTrainScript), 0o644); err != nil {
		b.Fatal(err)
	}
	_ = os.WriteFile(filepath.Join(dir, "data.txt"), []byte("the data set\n"), 0o644)
	sqlite := "sqlite:///" + filepath.Join(dir, "runs.db")
	uri := testserver.MongoURI(b)
	base := strings.TrimSuffix(strings.SplitN(uri, "?", 2)[0], "/")
	mongoURL := base + "/bench_ui"
	cmd := exec.Command(bin, "run", "-F", "runs", "-s", sqlite, "-m", mongoURL, "with", "lr=0.5", "--", "sh", "train.sh")
	cmd.Dir = dir
	cmd.Env = append(cleanEnv(), pathWithSacred(), "LOSS0=1", "LOSS2=0.25", "RESULT=0.9")
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("sacred run: %v\n%s", err, out)
	}
	copyFileRuns(b, filepath.Join(dir, "runs"))
	copySQLRuns(b, filepath.Join(dir, "runs.db"))
	copyMongoRuns(b, base, "bench_ui")

	for _, c := range []struct {
		name  string
		store []string
	}{{"file", []string{"-F", "runs"}}, {"sqlite", []string{"-s", sqlite}}, {"mongo", []string{"-m", mongoURL}}} {
		// cold: from the start of `sacred ui` to the default first page,
		// which the newest runs answer while the first scan goes on;
		// scan: to a filtered page, which waits for the first scan.
		for _, first := range []struct{ name, query string }{
			{"cold", "api/runs?limit=50"},
			{"scan", "api/runs?limit=50&where=" + url.QueryEscape(`status == "COMPLETED"`)},
		} {
			b.Run(c.name+"/"+first.name, func(b *testing.B) {
				for b.Loop() {
					ui := exec.Command(bin, append([]string{"ui", "--addr", "127.0.0.1:0"}, c.store...)...)
					ui.Dir, ui.Env = dir, cleanEnv()
					u := benchStartUI(b, ui)
					if code := benchGet(b, u+first.query); code != 200 {
						b.Fatalf("%s: %d", first.query, code)
					}
					_ = ui.Process.Signal(os.Interrupt)
					_ = ui.Wait()
				}
			})
		}
		ui := exec.Command(bin, append([]string{"ui", "--addr", "127.0.0.1:0"}, c.store...)...)
		ui.Dir, ui.Env = dir, cleanEnv()
		u := benchStartUI(b, ui)
		benchGet(b, u+"api/runs?limit=1&where="+url.QueryEscape(`status == "COMPLETED"`)) // the first scan
		b.Run(c.name+"/page", func(b *testing.B) {
			for b.Loop() {
				if code := benchGet(b, u+"api/runs?limit=50"); code != 200 {
					b.Fatalf("api/runs: %d", code)
				}
			}
		})
		b.Run(c.name+"/browser", func(b *testing.B) {
			ctx, cancel := benchBrowser(b)
			defer cancel()
			for b.Loop() {
				err := chromedp.Do(ctx, chromedp.Navigate(u+"?cols=config.lr,metrics.loss.last"),
					chromedp.Poll[chromedp.Void](`document.querySelectorAll("#runs tbody tr").length === 50`, chromedp.WithPollingTimeout(time.Minute)))
				if err != nil {
					b.Fatal(err)
				}
			}
		})
		_ = ui.Process.Signal(os.Interrupt)
		_ = ui.Wait()
	}
}

// benchStartUI starts a `sacred ui` command and returns its address.
func benchStartUI(b *testing.B, ui *exec.Cmd) string {
	b.Helper()
	stderr, err := ui.StderrPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := ui.Start(); err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 4096)
	var got strings.Builder
	for !strings.Contains(got.String(), "(Ctrl-C stops)") {
		n, err := stderr.Read(buf)
		got.Write(buf[:n])
		if err != nil {
			b.Fatalf("sacred ui: %v: %s", err, got.String())
		}
	}
	s := got.String()
	i := strings.Index(s, " at http://")
	return strings.Fields(s[i+4:])[0]
}

func benchGet(b *testing.B, u string) int {
	res, err := http.Get(u)
	if err != nil {
		b.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode
}

func benchBrowser(b *testing.B) (context.Context, func()) {
	exe, err := exec.LookPath("chromium")
	if err != nil {
		b.Skip("no chromium")
	}
	actx, cancelA := chromedp.NewExecAllocator(b.Context(), chromedp.ExecPath(exe), chromedp.Headless, chromedp.NoSandbox,
		chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true), chromedp.UserDataDir(b.TempDir()))
	ctx, cancelB := chromedp.NewContext(actx)
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		b.Fatal(err)
	}
	return ctx, func() { cancelB(); cancelA() }
}
