package testserver

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fsouza/fake-gcs-server/fakestorage"
)

// GCS is an in-process Cloud Storage server: fake-gcs-server (memory
// backend) behind a real HTTP listener on 127.0.0.1, which
// cloud.google.com/go/storage reaches through STORAGE_EMULATOR_HOST. A
// test can stop it and start it again on the same port with the same
// objects, to play an endpoint lost mid-run; with ReadOnly it refuses
// writes as a bucket whose IAM policy allows reading only.
type GCS struct {
	t testing.TB
	// ReadOnly refuses every write with 403.
	ReadOnly atomic.Bool

	fake    *fakestorage.Server
	handler http.Handler
	addr    string

	composeMu sync.Mutex // composes are checked and carried out one at a time

	mu       sync.Mutex
	srv      *http.Server
	uploaded atomic.Int64  // request body bytes of uploads
	stalled  chan struct{} // non-nil: requests wait until it is closed
}

// NewGCS starts a Cloud Storage server on 127.0.0.1 with a port chosen by
// the OS; it is stopped at t.Cleanup.
func NewGCS(t testing.TB) *GCS {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("GCS test server: %v", err)
	}
	g := &GCS{t: t, addr: ln.Addr().String()}
	// Objects are read through the JSON API at the listener's address;
	// PublicHost must match the Host of those requests (see
	// library-notes.md).
	g.fake, err = fakestorage.NewServerWithOptions(fakestorage.Options{
		NoListener:  true,
		Scheme:      "http",
		PublicHost:  "127.0.0.1",
		ExternalURL: "http://" + g.addr,
		Writer:      io.Discard,
	})
	if err != nil {
		ln.Close()
		t.Fatalf("GCS test server: %v", err)
	}
	g.handler = g.middleware(g.fake.HTTPHandler())
	g.serve(ln)
	t.Cleanup(func() {
		g.Stop()
		g.fake.Stop()
	})
	return g
}

// Host is host:port, the value of STORAGE_EMULATOR_HOST.
func (g *GCS) Host() string { return g.addr }

// Env points a child process's Cloud Storage client at this server.
func (g *GCS) Env() []string {
	return []string{"STORAGE_EMULATOR_HOST=" + g.addr, "GOOGLE_APPLICATION_CREDENTIALS="}
}

// SetEnv sets Env() for the test process (tests that use it cannot run in
// parallel).
func (g *GCS) SetEnv(t testing.TB) {
	t.Helper()
	for _, kv := range g.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
}

// CreateBucket creates a bucket.
func (g *GCS) CreateBucket(name string) {
	g.fake.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: name})
}

// Object returns the content of an object.
func (g *GCS) Object(bucket, key string) ([]byte, error) {
	obj, err := g.fake.GetObject(bucket, key)
	if err != nil {
		return nil, err
	}
	return obj.Content, nil
}

// Keys lists the object names under prefix.
func (g *GCS) Keys(bucket, prefix string) ([]string, error) {
	var keys []string
	opts := fakestorage.ListOptions{Prefix: prefix}
	for {
		page, err := g.fake.ListObjectsWithOptionsPaginated(bucket, opts)
		if err != nil {
			return nil, err
		}
		for _, o := range page.Objects {
			keys = append(keys, o.Name)
		}
		if page.NextPageToken == "" {
			return keys, nil
		}
		opts.PageToken = page.NextPageToken
	}
}

// Stall makes every request but bucket listings hang until resume is
// called (or the client gives up), to check that calls honour their
// context; an observer (whose New lists the bucket) can still be opened.
func (g *GCS) Stall() (resume func()) { return stall(&g.mu, &g.stalled) }

// Uploaded is the number of request body bytes of every upload so far.
func (g *GCS) Uploaded() int64 { return g.uploaded.Load() }

// Running reports whether the server listens.
func (g *GCS) Running() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.srv != nil
}

// Start starts listening again on the same port.
func (g *GCS) Start() {
	g.t.Helper()
	g.mu.Lock()
	running := g.srv != nil
	g.mu.Unlock()
	if running {
		return
	}
	ln, err := net.Listen("tcp", g.addr)
	for i := 0; err != nil && i < 50; i++ {
		time.Sleep(20 * time.Millisecond) // the port of a just closed listener
		ln, err = net.Listen("tcp", g.addr)
	}
	if err != nil {
		g.t.Fatalf("GCS test server: %v", err)
	}
	g.serve(ln)
}

func (g *GCS) serve(ln net.Listener) {
	srv := &http.Server{Handler: g.handler, ReadHeaderTimeout: 10 * time.Second}
	g.mu.Lock()
	g.srv = srv
	g.mu.Unlock()
	go func() { _ = srv.Serve(ln) }()
}

// Stop closes the listener and every connection; the objects stay.
func (g *GCS) Stop() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.srv != nil {
		_ = g.srv.Close()
		g.srv = nil
	}
}

func (g *GCS) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		listing := r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/storage/v1/b/") && strings.HasSuffix(r.URL.Path, "/o")
		if !listing && !waitStall(&g.mu, &g.stalled, r) {
			return
		}
		write := r.Method != http.MethodGet && r.Method != http.MethodHead
		if write && g.ReadOnly.Load() {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusForbidden)
			_, _ = io.WriteString(w, `{"error":{"code":403,"message":"does not have storage.objects.create access"}}`)
			return
		}
		if write && strings.HasPrefix(r.URL.Path, "/upload/") {
			r.Body = countingBody{r.Body, &g.uploaded}
		}
		if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/compose") {
			g.compose(w, r, next)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// compose serves compose with the preconditions Cloud Storage honours and
// fake-gcs-server ignores: ifGenerationMatch on the destination (412 when
// it does not hold) and the generation of each source (404 when the
// source is not at that generation). The check and the compose are one
// step: composes are carried out one at a time.
func (g *GCS) compose(w http.ResponseWriter, r *http.Request, next http.Handler) {
	g.composeMu.Lock()
	defer g.composeMu.Unlock()
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	var req struct {
		SourceObjects []struct {
			Name       string
			Generation json.Number
		}
	}
	_ = json.Unmarshal(body, &req)
	bucket, dst, ok := composePath(r.URL.Path)
	if !ok {
		next.ServeHTTP(w, r)
		return
	}
	fail := func(code int, msg string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		fmt.Fprintf(w, `{"error":{"code":%d,"message":%q}}`, code, msg)
	}
	if want := r.URL.Query().Get("ifGenerationMatch"); want != "" {
		if g.generation(bucket, dst) != want {
			fail(http.StatusPreconditionFailed, "At least one of the pre-conditions you specified did not hold.")
			return
		}
	}
	for _, s := range req.SourceObjects {
		if s.Generation != "" && g.generation(bucket, s.Name) != s.Generation.String() {
			fail(http.StatusNotFound, "No such object: "+bucket+"/"+s.Name)
			return
		}
	}
	next.ServeHTTP(w, r)
}

// generation is the live generation of an object, "" when it is missing.
func (g *GCS) generation(bucket, name string) string {
	obj, err := g.fake.GetObjectStreaming(bucket, name)
	if err != nil {
		return ""
	}
	obj.Close()
	return strconv.FormatInt(obj.Generation, 10)
}

// composePath splits /storage/v1/b/BUCKET/o/OBJECT/compose.
func composePath(p string) (bucket, object string, ok bool) {
	rest, ok := strings.CutPrefix(p, "/storage/v1/b/")
	if !ok {
		return "", "", false
	}
	bucket, rest, ok = strings.Cut(rest, "/o/")
	if !ok {
		return "", "", false
	}
	object, ok = strings.CutSuffix(rest, "/compose")
	return bucket, object, ok
}
