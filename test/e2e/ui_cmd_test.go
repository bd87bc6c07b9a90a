package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	mongodrv "go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/sacred-go/sacred/internal/testserver"
)

// TestUICommandRefusals: bad invocations of sacred ui are one line saying
// what to do, and nothing is served.
func TestUICommandRefusals(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "runs"), 0o755); err != nil {
		t.Fatal(err)
	}
	short := filepath.Join(dir, "short")
	empty := filepath.Join(dir, "empty")
	_ = os.WriteFile(short, []byte("abc\n"), 0o600)
	_ = os.WriteFile(empty, []byte("\n"), 0o600)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	for _, c := range []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{"public address without a token", nil, []string{"--addr", "0.0.0.0:0"}, "--addr 0.0.0.0:0 is reachable from other machines: require a token with --token-file FILE or SACRED_UI_TOKEN, or listen on 127.0.0.1"},
		{"short token", nil, []string{"--token-file", short}, "the token is 3 characters long; use at least 16"},
		{"short token in the environment", []string{"SACRED_UI_TOKEN=abc"}, nil, "the token is 3 characters long; use at least 16"},
		{"empty token file", nil, []string{"--token-file", empty}, "the file is empty; put the token on its first line"},
		{"missing token file", nil, []string{"--token-file", filepath.Join(dir, "nope")}, "no such file or directory"},
		{"bad address", nil, []string{"--addr", "7878"}, "give HOST:PORT"},
		{"address in use", nil, []string{"--addr", busy.Addr().String()}, "is in use: choose another port"},
		{"missing store", nil, []string{"-F", "nope"}, "no such store"},
		{"arguments", nil, []string{"1"}, "unknown command"},
		{"bad base path", nil, []string{"--base-path", "x y"}, "--base-path"},
	} {
		t.Run(c.name, func(t *testing.T) {
			args := append([]string{"ui"}, c.args...)
			if c.name != "missing store" {
				args = append(args, "-F", "runs")
			}
			r := sacred(t, dir, c.env, args...)
			lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
			if r.code == 0 || !strings.Contains(r.stderr, c.want) || len(lines) > 2 {
				t.Errorf("sacred %v: exit %d\nstderr: %s\nwant one line with %q", args, r.code, r.stderr, c.want)
			}
		})
	}
}

// TestUITokenThroughBinary: with a token, nothing is served without it,
// the bearer token and the login cookie work, and the token appears in
// nothing sacred ui prints.
func TestUITokenThroughBinary(t *testing.T) {
	dir := t.TempDir()
	r := sacred(t, dir, nil, "run", "-F", "runs", "--", "sh", "-c", "echo hi")
	if r.code != 0 {
		t.Fatalf("run: %d %s", r.code, r.stderr)
	}
	const token = "tok-3f9a2c7e5b1d4086"
	if err := os.WriteFile(filepath.Join(dir, "token"), []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	base, printed := startUI(t, dir, "-F", "runs", "--token-file", "token")
	if code, _, _ := uiGet(t, base+"api/runs", nil); code != http.StatusUnauthorized {
		t.Errorf("no token: %d", code)
	}
	if code, _, body := uiGet(t, base+"api/runs", map[string]string{"Authorization": "Bearer " + token}); code != 200 || !strings.Contains(body, `"total":1`) {
		t.Errorf("bearer: %d %s", code, body)
	}
	code, hdr, _ := uiGet(t, base+"?token="+token, nil)
	cookie := hdr.Get("Set-Cookie")
	if code != http.StatusSeeOther || strings.Contains(hdr.Get("Location"), token) || cookie == "" || strings.Contains(cookie, token) {
		t.Errorf("?token=: %d, Location %q, cookie %q", code, hdr.Get("Location"), cookie)
	}
	session := strings.SplitN(cookie, ";", 2)[0]
	if code, _, _ := uiGet(t, base+"api/runs", map[string]string{"Cookie": session}); code != 200 {
		t.Errorf("the session cookie: %d", code)
	}
	if out := printed(); strings.Contains(out, token) || !strings.Contains(out, "the token is required") {
		t.Errorf("sacred ui printed:\n%s", out)
	}
}

// TestUINotesOnMongo: notes and tags typed in the run page land in
// Omniboard's fields of the runs document, read back as they were; under
// --read-only nothing can be changed; the file store keeps none.
func TestUINotesOnMongo(t *testing.T) {
	uiChromium(t)
	uri := testserver.MongoURI(t)
	base := strings.TrimSuffix(strings.SplitN(uri, "?", 2)[0], "/")
	dbName := "ui_notes_" + fmt.Sprint(time.Now().UnixNano())
	spec := base + "/" + dbName
	dir := t.TempDir()
	if r := sacred(t, dir, nil, "run", "-m", spec, "-c", "first try", "--", "sh", "-c", "echo hi"); r.code != 0 {
		t.Fatalf("run: %d %s", r.code, r.stderr)
	}
	ui, _ := startUI(t, dir, "-m", spec)
	b := newUIBrowser(t)
	b.navigate(t, ui+"run/1")
	b.waitJS(t, "the notes card", `!!document.querySelector("#notes textarea") && !document.querySelector("#notes textarea").disabled`)
	if got := evalJS[string](t, b, `document.querySelector("#notes textarea").value`); got != "first try" {
		t.Errorf("notes before any were set show %q; want the comment, as Omniboard shows it", got)
	}
	evalJS[any](t, b, `document.querySelector("#notes textarea").value = "<b>converged</b> at epoch 3";
		document.querySelector("#notes input").value = "baseline, <i>good</i>, baseline";
		document.querySelector("#notes button").click(); null`)
	b.waitJS(t, "saved", `document.querySelector("#notes").textContent.includes("saved")`)
	b.check(t)

	ctx := context.Background()
	c, err := mongodrv.Connect(options.Client().ApplyURI(base + "/"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Disconnect(ctx)
	db := c.Database(dbName)
	t.Cleanup(func() { _ = db.Drop(context.Background()) })
	var doc struct {
		Omniboard struct {
			Notes string   `bson:"notes"`
			Tags  []string `bson:"tags"`
		} `bson:"omniboard"`
	}
	if err := db.Collection("runs").FindOne(ctx, bson.D{{Key: "_id", Value: 1}}).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	if doc.Omniboard.Notes != "<b>converged</b> at epoch 3" || strings.Join(doc.Omniboard.Tags, "|") != "baseline|<i>good</i>" {
		t.Errorf("stored omniboard = %+v", doc.Omniboard)
	}

	// Read-only: the form is disabled and the API refuses.
	ro, _ := startUI(t, dir, "-m", spec, "--read-only")
	b.navigate(t, ro+"run/1")
	b.waitJS(t, "the notes card", `!!document.querySelector("#notes textarea")`)
	if !evalJS[bool](t, b, `document.querySelector("#notes textarea").disabled && document.querySelector("#notes textarea").value.startsWith("<b>converged")`) {
		t.Error("under --read-only the notes are editable, or not shown")
	}
	req, _ := http.NewRequest(http.MethodPost, ro+"api/annotate?id=1", strings.NewReader(`{"notes":"x"}`))
	req.Header.Set("Origin", strings.TrimSuffix(ro, "/"))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusForbidden {
		t.Errorf("annotate under --read-only: %d", res.StatusCode)
	}
}
