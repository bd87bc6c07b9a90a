package ui

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"html"
	"io/fs"
	"net/http"
	"path"
	"strconv"
	"strings"
)

// web holds the front end: pages, plain JavaScript modules, styles and the
// vendored uPlot. There is no build step: these files are what the
// browser gets.
//
//go:embed web
var web embed.FS

// asset is one file ready to serve: its bytes, gzipped once, and an ETag.
type asset struct {
	body, gz []byte
	ctype    string
	etag     string
}

type assets struct {
	files map[string]*asset // by path under web/, e.g. "static/app.js"
}

// loadAssets reads and compresses every file once, when a server is made
// (never at init: `sacred run` links this package too). The pages get the
// base path in their <base href>, so that every address in them is
// relative to it.
func loadAssets(base string) (*assets, error) {
	a := &assets{files: map[string]*asset{}}
	err := fs.WalkDir(web, "web", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := web.ReadFile(p)
		if err != nil {
			return err
		}
		name := strings.TrimPrefix(p, "web/")
		if strings.HasSuffix(name, ".html") {
			body = bytes.ReplaceAll(body, []byte("{{BASE}}"), []byte(html.EscapeString(base+"/")))
		}
		var gz bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression)
		if _, err := zw.Write(body); err != nil {
			return err
		}
		if err := zw.Close(); err != nil {
			return err
		}
		sum := sha256.Sum256(body)
		a.files[name] = &asset{
			body:  body,
			gz:    gz.Bytes(),
			ctype: mimeType(name),
			etag:  `"` + hex.EncodeToString(sum[:12]) + `"`,
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("ui: loading the web assets: %w", err)
	}
	return a, nil
}

func mimeType(name string) string {
	switch path.Ext(name) {
	case ".html":
		return "text/html; charset=utf-8"
	case ".js":
		return "text/javascript; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".svg":
		return "image/svg+xml"
	case ".txt":
		return "text/plain; charset=utf-8"
	}
	return "application/octet-stream"
}

// serve answers with an asset: 304 when the browser has it (ETag), gzip
// when the browser takes it.
func (a *assets) serve(w http.ResponseWriter, r *http.Request, name string, status int) {
	f, ok := a.files[name]
	if !ok {
		http.NotFound(w, r)
		return
	}
	h := w.Header()
	h.Set("Content-Type", f.ctype)
	h.Set("ETag", f.etag)
	h.Set("Cache-Control", "no-cache")
	h.Set("Vary", "Accept-Encoding")
	if status == http.StatusOK && etagMatch(r.Header.Get("If-None-Match"), f.etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	body := f.body
	if acceptsGzip(r.Header.Get("Accept-Encoding")) {
		h.Set("Content-Encoding", "gzip")
		body = f.gz
	}
	h.Set("Content-Length", fmt.Sprint(len(body)))
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

func etagMatch(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == etag || t == "*" {
			return true
		}
	}
	return false
}

func acceptsGzip(header string) bool {
	for _, e := range strings.Split(header, ",") {
		name, params, _ := strings.Cut(strings.TrimSpace(e), ";")
		if strings.TrimSpace(name) != "gzip" {
			continue
		}
		if q, ok := strings.CutPrefix(strings.ReplaceAll(params, " ", ""), "q="); ok {
			if v, err := strconv.ParseFloat(q, 64); err == nil && v == 0 {
				return false
			}
		}
		return true
	}
	return false
}

// page serves the front end's shell for every page address.
func (s *Server) page(w http.ResponseWriter, r *http.Request) {
	s.assets.serve(w, r, "index.html", http.StatusOK)
}

// static serves the front end's files.
func (s *Server) static(w http.ResponseWriter, r *http.Request) {
	name := "static/" + r.PathValue("file")
	if strings.HasSuffix(name, ".html") {
		http.NotFound(w, r)
		return
	}
	s.assets.serve(w, r, name, http.StatusOK)
}
