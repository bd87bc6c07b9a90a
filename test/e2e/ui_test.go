package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	goruntime "runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/sacred-go/sacred/internal/testserver"
)

// The browser tests drive Debian's Chromium (installed by .ci/run) with
// chromedp against `sacred ui` serving real stores written by `sacred
// run`. Without Chromium they are skipped, except in CI.

// uiGuard bounds each browser test, so a hang fails instead of blocking
// the suite; nothing is timed by it.
const uiGuard = 3 * time.Minute

func uiChromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("Chromium is not installed; .ci/run installs Debian's chromium")
	}
	t.Skip("Chromium is not installed (apt-get install chromium): the browser tests need it")
	return ""
}

// uiBrowser is a page of a headless Chromium. Script errors, console errors
// and dialogs (an alert an injected script would open) are collected in
// problems.
type uiBrowser struct {
	ctx      context.Context
	mu       sync.Mutex
	problems []string
}

func newUIBrowser(t *testing.T) *uiBrowser {
	t.Helper()
	exe := uiChromium(t)
	actx, cancelA := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(exe),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1200, 760),
	)
	ctx, cancelB := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelB(); cancelA() })
	b := &uiBrowser{ctx: ctx}
	// Start the browser with a context that has no timeout (it would
	// stop the browser), then bound every step by the guard.
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("starting Chromium: %v", err)
	}
	console := chromedp.Console(ctx)
	dialogs := chromedp.Events(ctx, page.JavascriptDialogOpening)
	go func() {
		for m, err := range console {
			if err != nil {
				return
			}
			if m.IsException() || m.Type == "error" {
				b.problem(fmt.Sprintf("%s (%s:%d)", m, m.URL, m.Line))
			}
		}
	}()
	go func() {
		for d, err := range dialogs {
			if err != nil {
				return
			}
			b.problem("dialog opened: " + d.Message)
			go func() {
				_, _ = chromedp.Run(ctx, chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
					_, err := chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: false})
					return err
				}))
			}()
		}
	}()
	gctx, cancelC := context.WithTimeout(ctx, uiGuard)
	t.Cleanup(cancelC)
	b.ctx = gctx
	return b
}

func (b *uiBrowser) problem(s string) {
	b.mu.Lock()
	b.problems = append(b.problems, s)
	b.mu.Unlock()
}

// check fails the test for any script error, console error or dialog so
// far: a CSP violation, a failed request or an injected script shows up
// here.
func (b *uiBrowser) check(t *testing.T) {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, p := range b.problems {
		t.Errorf("in the browser: %s", p)
	}
	b.problems = nil
}

func (b *uiBrowser) navigate(t *testing.T, u string) {
	t.Helper()
	if err := chromedp.Do(b.ctx, chromedp.Navigate(u)); err != nil {
		t.Fatalf("browser: navigating to %s: %v", u, err)
	}
}

// waitJS waits until a JavaScript expression is true. It polls the page
// for the condition (what the page shows), bounded by the test's guard.
func (b *uiBrowser) waitJS(t *testing.T, what, expr string) {
	t.Helper()
	_, err := chromedp.Run(b.ctx, chromedp.Poll[chromedp.Void](expr,
		chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(uiGuard)))
	if err != nil {
		dump, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.getElementById("main").innerText.slice(0, 2000)`))
		t.Fatalf("waiting for %s (%s): %v\npage: %s", what, expr, err, dump)
	}
}

// evalJS evaluates a JavaScript expression into out (JSON-decoded).
func evalJS[T any](t *testing.T, b *uiBrowser, expr string) T {
	t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluating %s: %v", expr, err)
	}
	return v
}

// screenshot takes a PNG of the page; with SACRED_UPDATE_SCREENSHOTS=1 it
// is written into docs/ui/ for docs/ui.md.
func (b *uiBrowser) screenshot(t *testing.T, name string) {
	t.Helper()
	png, err := chromedp.Run(b.ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if !bytes.HasPrefix(png, []byte("\x89PNG")) {
		t.Fatalf("screenshot %s is not a PNG", name)
	}
	if os.Getenv("SACRED_UPDATE_SCREENSHOTS") == "1" {
		_, file, _, _ := goruntime.Caller(0)
		dst := filepath.Join(filepath.Dir(file), "..", "..", "docs", "ui", name)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// startUI starts `sacred ui` on a port the system chooses and returns its
// address and a func giving what it printed so far; it is interrupted at
// the end of the test and must exit 0.
func startUI(t *testing.T, dir string, args ...string) (string, func() string) {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"ui", "--addr", "127.0.0.1:0"}, args...)...)
	cmd.Dir = dir
	cmd.Env = cleanEnv()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	var logMu sync.Mutex
	found := make(chan string, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stderr)
		re := regexp.MustCompile(` at (http://\S+/) `)
		for sc.Scan() {
			logMu.Lock()
			log.WriteString(sc.Text() + "\n")
			logMu.Unlock()
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case found <- m[1]:
				default:
				}
			}
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		<-done
		err := cmd.Wait()
		logMu.Lock()
		defer logMu.Unlock()
		if err != nil {
			t.Errorf("sacred ui did not exit cleanly on SIGINT: %v\n%s", err, log.String())
		}
	})
	printed := func() string {
		logMu.Lock()
		defer logMu.Unlock()
		return log.String()
	}
	select {
	case u := <-found:
		return u, printed
	case <-done:
		logMu.Lock()
		defer logMu.Unlock()
		t.Fatalf("sacred ui exited before serving:\n%s", log.String())
	case <-time.After(uiGuard):
		t.Fatal("sacred ui did not say where it serves")
	}
	return "", nil
}

// The fixture: two ordinary runs and one whose every field is markup.
const uiScript = `set -e
echo "hello from the run"
printf '\033[32mgreen text\033[0m\n'
for i in 1 2 3 4 5; do printf '\rprogress %d/5' $i; done; echo
i=0
while [ $i -lt 50 ]; do printf '{"kind":"metric","name":"loss","value":%s,"step":%d}\n' "$(( 100 - i ))" $i; i=$((i+1)); done | sacred log stream
sacred log metric acc 0.5 --step 0
echo "<h1>report</h1>" > report.html
sacred log artifact report.html
sacred log result 0.42
`

const uiXSSScript = `set -e
echo '<img src=x onerror="window.__xss=2">'
echo '<script>window.__xss=3</script>'
sacred log metric '<img src=x onerror=window.__xss=4>' 1
echo '<script>parent.__xss=5</script><img src=x onerror="parent.__xss=6">' > evil.html
sacred log artifact evil.html
sacred log info '<b>key</b>' '"<img src=x onerror=window.__xss=7>"'
`

// uiFixture records the three runs with the observer flags given.
func uiFixture(t *testing.T, dir string, store ...string) {
	t.Helper()
	for name, body := range map[string]string{"train.sh": uiScript, "xss.sh": uiXSSScript} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	env := []string{pathWithSacred()}
	for _, run := range [][]string{
		{"-n", "mnist", "with", "lr=0.1", "opt.name=adam", "--", "sh", "train.sh"},
		{"-n", "mnist", "with", "lr=0.01", "opt.name=sgd", "--", "sh", "train.sh"},
		{"-n", "<b>xss</b>", "with", `note=<img src=x onerror=window.__xss=1>`, "--", "sh", "xss.sh"},
	} {
		args := append(append([]string{"run"}, store...), run...)
		if r := sacred(t, dir, env, args...); r.code != 0 {
			t.Fatalf("sacred %v: exit %d\n%s", args, r.code, r.stderr)
		}
	}
}

// uiIDs asks the UI for the fixture's run ids, oldest first.
func uiIDs(t *testing.T, base string) []string {
	t.Helper()
	code, _, body := uiGet(t, base+"api/runs?sort=start_time", nil)
	if code != http.StatusOK {
		t.Fatalf("api/runs: %d %s", code, body)
	}
	var res struct {
		Rows []struct {
			ID string `json:"id"`
		} `json:"rows"`
	}
	if err := json.Unmarshal([]byte(body), &res); err != nil || len(res.Rows) != 3 {
		t.Fatalf("api/runs: %v: %s", err, body)
	}
	return []string{res.Rows[0].ID, res.Rows[1].ID, res.Rows[2].ID}
}

// uiStores are the stores every browser test runs against.
func uiStores(t *testing.T) map[string][]string {
	stores := map[string][]string{
		"file":   {"-F", "runs"},
		"tinydb": {"-t", "tiny"},
		"sqlite": {"-s", "sqlite:///runs.db"},
	}
	if testing.Short() {
		return stores
	}
	uri := testserver.MongoURI(t)
	base := strings.TrimSuffix(strings.SplitN(uri, "?", 2)[0], "/")
	stores["mongo"] = []string{"-m", base + "/ui_" + fmt.Sprint(time.Now().UnixNano())}
	return stores
}

// TestUIBrowser drives the UI over a fixture in every store: the table
// lists and filters runs, a run page shows config, output and a plotted
// metric, compare shows a config difference, and the run whose every
// field is markup shows it as text.
func TestUIBrowser(t *testing.T) {
	uiChromium(t)
	dir := t.TempDir()
	for name, store := range uiStores(t) {
		t.Run(name, func(t *testing.T) {
			sub := filepath.Join(dir, name)
			if err := os.MkdirAll(sub, 0o755); err != nil {
				t.Fatal(err)
			}
			uiFixture(t, sub, store...)
			base, _ := startUI(t, sub, store...)
			ids := uiIDs(t, base)
			b := newUIBrowser(t)
			uiCheckTable(t, b, base)
			if name == "file" {
				b.screenshot(t, "table.png")
			}
			uiCheckRunPage(t, b, base, ids[0])
			if name == "file" {
				b.screenshot(t, "run.png")
			}
			uiCheckCompare(t, b, base, ids[0], ids[1])
			if name == "file" {
				b.screenshot(t, "compare.png")
			}
			uiCheckXSS(t, b, base, ids[2])
			b.check(t)
		})
	}
}

func uiCheckTable(t *testing.T, b *uiBrowser, base string) {
	t.Helper()
	b.navigate(t, base+"?cols=config.lr,metrics.loss.last")
	b.waitJS(t, "three rows", `document.querySelectorAll("#runs tbody tr").length === 3`)
	names := evalJS[[]string](t, b, `[...document.querySelectorAll("#runs td.name")].map(td => td.textContent)`)
	if strings.Join(names, ",") != "<b>xss</b>,mnist,mnist" {
		t.Errorf("names, newest first = %q", names)
	}
	// Filter with the query language, typed into the page.
	evalJS[any](t, b, `document.querySelector("#where").value = "config.lr > 0.05"; document.querySelector("#filters").requestSubmit(); null`)
	b.waitJS(t, "one row for lr > 0.05", `document.querySelectorAll("#runs tbody tr").length === 1 && document.querySelector("#count").textContent.endsWith("of 1")`)
	cells := evalJS[[]string](t, b, `[...document.querySelectorAll("#runs tbody td")].map(td => td.textContent)`)
	if !uiContains(cells, "0.1") || !uiContains(cells, "51") {
		t.Errorf("the filtered row shows %q; want config.lr 0.1 and loss.last 51", cells)
	}
	loc := evalJS[string](t, b, `location.search`)
	if q, _ := url.ParseQuery(strings.TrimPrefix(loc, "?")); q.Get("where") != "config.lr > 0.05" {
		t.Errorf("the filter is not in the address: %q", loc)
	}
	// The quick filter, then back to every run for the screenshot.
	b.navigate(t, base+"?q=xss")
	b.waitJS(t, "the quick filter", `document.querySelectorAll("#runs tbody tr").length === 1`)
	b.navigate(t, base+"?cols=config.lr,metrics.loss.last")
	b.waitJS(t, "three rows", `document.querySelectorAll("#runs tbody tr").length === 3`)
}

func uiContains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func uiCheckRunPage(t *testing.T, b *uiBrowser, base, id string) {
	t.Helper()
	b.navigate(t, base+"run/"+id)
	b.waitJS(t, "the output", `(document.querySelector("#output") || {}).textContent?.includes("hello from the run")`)
	out := evalJS[string](t, b, `document.querySelector("#output").textContent.replace(/\u200b/g, "")`)
	if !strings.Contains(out, "green text") || strings.Contains(out, "\x1b") || !strings.Contains(out, "progress 5/5") || strings.Contains(out, "progress 1/5") {
		t.Errorf("output: colours and \\r not rendered as a terminal would:\n%q", out)
	}
	green := evalJS[bool](t, b, `[...document.querySelectorAll("#output span.fg2")].some(s => s.textContent === "green text")`)
	if !green {
		t.Error("the green text is not in a green span")
	}
	config := evalJS[string](t, b, `document.querySelector("#config").textContent`)
	if !strings.Contains(config, "lr0.1") || !strings.Contains(config, "opt.nameadam") {
		t.Errorf("config card: %q", config)
	}
	b.waitJS(t, "the loss chart", `!!document.querySelector('.chart[data-metric="loss"] canvas') && document.querySelector('.chart[data-metric="loss"] .chart-info').textContent.startsWith("50 of 50 points")`)
}

func uiCheckCompare(t *testing.T, b *uiBrowser, base, id1, id2 string) {
	t.Helper()
	b.navigate(t, base+"compare?ids="+id1+","+id2)
	b.waitJS(t, "the config difference", `!!document.querySelector("#config-diff tbody tr")`)
	rows := evalJS[[]string](t, b, `[...document.querySelectorAll("#config-diff tbody tr")].map(tr => [...tr.children].map(c => c.textContent).join("|"))`)
	if !uiContains(rows, "lr|0.1|0.01") || !uiContains(rows, "opt.name|adam|sgd") {
		t.Errorf("config differences: %q", rows)
	}
	b.waitJS(t, "the overlaid loss chart", `document.querySelectorAll(".charts canvas").length >= 1`)
}

func uiCheckXSS(t *testing.T, b *uiBrowser, base, id string) {
	t.Helper()
	b.navigate(t, base)
	b.waitJS(t, "the table", `document.querySelectorAll("#runs tbody tr").length === 3`)
	b.navigate(t, base+"run/"+id)
	b.waitJS(t, "the output", `(document.querySelector("#output") || {}).textContent?.includes("window.__xss=3")`)
	// Open every preview, the HTML one in its sandboxed frame.
	evalJS[any](t, b, `document.querySelectorAll("#artifacts button").forEach(b => b.click())`)
	b.waitJS(t, "the sandboxed preview", `!!document.querySelector("#artifacts iframe")`)
	b.waitJS(t, "the metric chart", `!!document.querySelector(".chart canvas")`)
	type xssResult struct {
		XSS     any    `json:"xss"`
		Markup  int    `json:"markup"`
		Name    string `json:"name"`
		Sandbox string `json:"sandbox"`
	}
	res := evalJS[xssResult](t, b, `({xss: window.__xss ?? null,
		markup: document.querySelectorAll("main img:not(.preview img), main script, main b, #output h1").length,
		name: document.querySelector(".run-name").textContent,
		sandbox: document.querySelector("#artifacts iframe").getAttribute("sandbox")})`)
	if res.XSS != nil {
		t.Errorf("an injected script ran: window.__xss = %v", res.XSS)
	}
	if res.Markup != 0 {
		t.Errorf("%d elements came from run data as markup", res.Markup)
	}
	if res.Name != "<b>xss</b>" {
		t.Errorf("the run's name shows as %q", res.Name)
	}
	if res.Sandbox != "" {
		t.Errorf("the HTML preview's frame is sandboxed with %q; want no permissions", res.Sandbox)
	}
}

// TestUILiveOutput follows a running run: output and a metric point
// logged after the page was opened appear without a reload, and the
// status turns COMPLETED.
func TestUILiveOutput(t *testing.T) {
	uiChromium(t)
	dir := t.TempDir()
	script := `echo "first line"
sacred log metric x 1
touch started
while [ ! -e go ]; do sleep 0.05; done
echo "second line"
sacred log metric x 2
while [ ! -e done ]; do sleep 0.05; done
`
	if err := os.WriteFile(filepath.Join(dir, "live.sh"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	run := exec.Command(bin, "run", "-F", "runs", "-b", "1", "--", "sh", "live.sh")
	run.Dir = dir
	run.Env = append(cleanEnv(), pathWithSacred())
	var runErr bytes.Buffer
	run.Stdout, run.Stderr = io.Discard, &runErr
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	finished := false
	t.Cleanup(func() {
		if !finished {
			_ = os.WriteFile(filepath.Join(dir, "done"), nil, 0o644)
			_ = os.WriteFile(filepath.Join(dir, "go"), nil, 0o644)
			_ = run.Wait()
		}
	})
	uiWaitFile(t, filepath.Join(dir, "started"))
	uiWaitFile(t, filepath.Join(dir, "runs", "1", "run.json"))

	base, _ := startUI(t, dir, "-F", "runs")
	b := newUIBrowser(t)
	b.navigate(t, base+"run/1")
	b.waitJS(t, "the first line", `(document.querySelector("#output") || {}).textContent?.includes("first line")`)
	evalJS[any](t, b, `window.__sameDocument = true`)

	if err := os.WriteFile(filepath.Join(dir, "go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	b.waitJS(t, "the second line, live", `document.querySelector("#output").textContent.includes("second line")`)
	b.waitJS(t, "the second point, live", `document.querySelector('.chart[data-metric="x"] .chart-info')?.textContent.startsWith("2 of 2 points")`)
	if err := os.WriteFile(filepath.Join(dir, "done"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := run.Wait(); err != nil {
		t.Fatalf("the run failed: %v\n%s", err, runErr.String())
	}
	finished = true
	b.waitJS(t, "COMPLETED, live", `document.querySelector("#run-status").textContent === "COMPLETED"`)
	same := evalJS[bool](t, b, `window.__sameDocument === true`)
	if !same {
		t.Error("the page reloaded to show the new output")
	}
	b.check(t)
}

// uiWaitFile waits for a file a child creates, within the guard.
func uiWaitFile(t *testing.T, path string) {
	t.Helper()
	deadline := time.Now().Add(uiGuard)
	for {
		if _, err := os.Stat(path); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never appeared", path)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// uiGet fetches a URL and returns the status, headers and body.
func uiGet(t *testing.T, u string, hdr map[string]string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return res.StatusCode, res.Header, string(body)
}
