// Package ui is `sacred ui`: a web view of the runs of any store that has a
// reader. It serves a small front end (plain JavaScript modules and uPlot,
// from an embed.FS) and a JSON API over the stores: the runs table with
// paging, sort and the query language of `sacred ls` done on the server,
// one run with its output and artifacts, metrics decimated per pixel
// column, a comparison of runs, and server-sent events for what changes.
//
// Nothing here runs at init: the package is linked into the binary that
// runs `sacred run`, whose start must not pay for the UI.
package ui

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/sacred-go/sacred/pkg/observer"
)

// Store is one store the UI shows.
type Store struct {
	// Label names the store in the table's store column and in messages
	// (the value as given, its secrets removed).
	Label  string
	Reader observer.Reader
}

// Options configure a Server.
type Options struct {
	Stores []Store
	// BasePath is the path prefix the UI is served under ("" or "/x"),
	// for a reverse proxy that forwards /x/... unchanged.
	BasePath string
	// ReadOnly turns off every request that writes to a store (notes and
	// tags).
	ReadOnly bool
	// Token, when not empty, is required of every request: as a cookie
	// set by the login form or by ?token= on a page, or as a bearer
	// token. It is compared in constant time and never logged.
	Token string
	// LoopbackOnly is true when the server listens on a loopback address:
	// requests must then name a loopback host (against DNS rebinding).
	LoopbackOnly bool
	// DeadAfter is the heartbeat age that shows a RUNNING run as DIED?;
	// 0 for the query's default (120 s).
	DeadAfter time.Duration
	// Refresh is the shortest pause between two scans of a store for new
	// and changed runs; 0 for 2 s. A scan that takes long lengthens it.
	Refresh time.Duration
	// Poll is the shortest pause between two reads of a running run that
	// a page follows live; 0 for 1 s.
	Poll time.Duration
	// Now is the clock; nil for time.Now.
	Now func() time.Time
	// Log receives one line per problem worth the operator's attention
	// (a store that fails to read). Nil discards them.
	Log io.Writer
}

// Server serves the UI. It is an http.Handler.
type Server struct {
	opts     Options
	base     string // "" or "/x", no trailing slash
	stores   []*catalog
	runs     *runCache
	assets   *assets
	handler  http.Handler
	sessions string // the cookie value a valid login sets (derived from the token)

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	logMu  sync.Mutex
}

// New checks the options and returns a server. It starts one goroutine per
// store that scans it while someone looks; Close stops them.
func New(opts Options) (*Server, error) {
	if len(opts.Stores) == 0 {
		return nil, errors.New("ui: no store to show")
	}
	base := strings.TrimRight(opts.BasePath, "/")
	if base != "" && (!strings.HasPrefix(base, "/") || strings.ContainsAny(base, "?#\"'<> \\")) {
		return nil, fmt.Errorf("--base-path %q: give a path such as /sacred (a leading slash, no query)", opts.BasePath)
	}
	if opts.Refresh <= 0 {
		opts.Refresh = 2 * time.Second
	}
	if opts.Poll <= 0 {
		opts.Poll = time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Log == nil {
		opts.Log = io.Discard
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{opts: opts, base: base, ctx: ctx, cancel: cancel}
	if opts.Token != "" {
		s.sessions = sessionValue(opts.Token)
	}
	for i, st := range opts.Stores {
		c := newCatalog(s, i, st)
		s.stores = append(s.stores, c)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			c.loop(ctx)
		}()
	}
	s.runs = newRunCache(s)
	a, err := loadAssets(base)
	if err != nil {
		cancel()
		s.wg.Wait()
		return nil, err
	}
	s.assets = a
	s.handler = s.routes()
	return s, nil
}

// Close stops the scans and ends the live streams. It does not close the
// stores' readers, which belong to the caller.
func (s *Server) Close() error {
	s.cancel()
	s.wg.Wait()
	return nil
}

// ServeHTTP serves the UI and its API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.handler.ServeHTTP(w, r)
}

func (s *Server) logf(format string, args ...any) {
	s.logMu.Lock()
	defer s.logMu.Unlock()
	fmt.Fprintf(s.opts.Log, "sacred ui: "+format+"\n", args...)
}

func (s *Server) now() time.Time { return s.opts.Now() }

// routes builds the handler: security checks around a mux, under the base
// path.
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	// Pages: the same shell; the front end reads the URL.
	mux.HandleFunc("GET /{$}", s.page)
	mux.HandleFunc("GET /run/{id...}", s.page)
	mux.HandleFunc("GET /compare", s.page)
	mux.HandleFunc("GET /static/{file...}", s.static)
	mux.HandleFunc("POST /login", s.login)

	mux.HandleFunc("GET /api/stores", s.apiStores)
	mux.HandleFunc("GET /api/runs", s.apiRuns)
	mux.HandleFunc("GET /api/runs.csv", s.apiRunsExport)
	mux.HandleFunc("GET /api/runs.json", s.apiRunsExport)
	mux.HandleFunc("GET /api/fields", s.apiFields)
	mux.HandleFunc("GET /api/run", s.apiRun)
	mux.HandleFunc("GET /api/output", s.apiOutput)
	mux.HandleFunc("GET /api/output.txt", s.apiOutputFile)
	mux.HandleFunc("GET /api/metric", s.apiMetric)
	mux.HandleFunc("GET /api/metric.csv", s.apiMetricExport)
	mux.HandleFunc("GET /api/metric.json", s.apiMetricExport)
	mux.HandleFunc("GET /api/artifact", s.apiArtifact)
	mux.HandleFunc("GET /api/source", s.apiFile)
	mux.HandleFunc("GET /api/resource", s.apiFile)
	mux.HandleFunc("GET /api/files.zip", s.apiZip)
	mux.HandleFunc("GET /api/compare", s.apiCompare)
	mux.HandleFunc("GET /api/live", s.apiLiveRun)
	mux.HandleFunc("GET /api/live/runs", s.apiLiveRuns)
	mux.HandleFunc("POST /api/annotate", s.apiAnnotate)

	var h http.Handler = mux
	h = s.guard(h)
	if s.base != "" {
		inner := h
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == s.base {
				http.Redirect(w, r, s.base+"/", http.StatusMovedPermanently)
				return
			}
			http.StripPrefix(s.base, inner).ServeHTTP(w, r)
		})
	}
	return h
}
