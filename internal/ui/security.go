package ui

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// pagePolicy is the Content-Security-Policy of the UI's own pages: its
// scripts and styles only (no inline script or style), requests to itself
// only, and no framing by other sites. Run data never becomes markup (the
// front end writes it with textContent), and this policy is the second
// wall should that ever fail.
const pagePolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; frame-src 'self'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"

// cookieName holds a session after a login.
const cookieName = "sacred_ui_session"

// sessionValue is the cookie value a login sets: a hash of the token, so
// that the cookie is not the token itself.
func sessionValue(token string) string {
	sum := sha256.Sum256([]byte("sacred ui session\x00" + token))
	return hex.EncodeToString(sum[:])
}

// equalSecret compares two secrets in constant time, whatever their
// lengths (both are hashed first).
func equalSecret(a, b string) bool {
	ha, hb := sha256.Sum256([]byte(a)), sha256.Sum256([]byte(b))
	return subtle.ConstantTimeCompare(ha[:], hb[:]) == 1
}

// IsLoopback tells whether a listen address's host is a loopback one
// (127.0.0.0/8, ::1, localhost); an empty host listens everywhere.
func IsLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

// guard wraps every request: security headers; on a loopback server, a
// Host header naming a loopback host (a page of another site that rebinds
// its name to 127.0.0.1 is refused); the token when one is set; and for a
// request that changes something, an Origin of this server.
func (s *Server) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", pagePolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Cross-Origin-Resource-Policy", "same-origin")

		if s.opts.LoopbackOnly {
			host := r.Host
			if hh, _, err := net.SplitHostPort(host); err == nil {
				host = hh
			}
			if !IsLoopback(host) {
				http.Error(w, "sacred ui answers only to localhost, 127.0.0.1 and [::1]", http.StatusMisdirectedRequest)
				return
			}
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead && !sameOrigin(r) {
			apiError(w, http.StatusForbidden, "this request must come from the UI's own pages")
			return
		}
		if s.opts.Token != "" && !s.authorized(w, r) {
			return
		}
		next.ServeHTTP(w, r)
	})
}

// sameOrigin tells whether a request that changes something was sent by a
// page of this server: its Origin (or, without one, Sec-Fetch-Site) says
// so.
func sameOrigin(r *http.Request) bool {
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		return err == nil && u.Host == r.Host
	}
	return r.Header.Get("Sec-Fetch-Site") == "same-origin"
}

// authorized checks the token of a request: the session cookie, a bearer
// token, or ?token= on a page (which sets the cookie and reloads the page
// without the token in its address). Otherwise it answers: the login
// form for a page, 401 for the API.
func (s *Server) authorized(w http.ResponseWriter, r *http.Request) bool {
	if c, err := r.Cookie(cookieName); err == nil && equalSecret(c.Value, s.sessions) {
		return true
	}
	if auth, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok && equalSecret(auth, s.opts.Token) {
		return true
	}
	if r.URL.Path == "/login" && r.Method == http.MethodPost {
		return true // the login handler checks the token itself
	}
	if r.URL.Path == "/static/style.css" || r.URL.Path == "/static/login.js" {
		return true // what the login form itself needs
	}
	if tok := r.URL.Query().Get("token"); tok != "" && r.Method == http.MethodGet {
		if equalSecret(tok, s.opts.Token) {
			s.setSession(w)
			clean := *r.URL
			q := clean.Query()
			q.Del("token")
			clean.RawQuery = q.Encode()
			http.Redirect(w, r, s.base+clean.RequestURI(), http.StatusSeeOther)
			return false
		}
	}
	if strings.HasPrefix(r.URL.Path, "/api/") || strings.HasPrefix(r.URL.Path, "/static/") {
		apiError(w, http.StatusUnauthorized, "a token is required: open the UI's address and log in")
		return false
	}
	s.assets.serve(w, r, "login.html", http.StatusUnauthorized)
	return false
}

func (s *Server) setSession(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{
		Name: cookieName, Value: s.sessions, Path: s.base + "/",
		HttpOnly: true, SameSite: http.SameSiteStrictMode,
	})
}

// login checks the token of the login form and sets the session cookie.
func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	if s.opts.Token == "" {
		http.Redirect(w, r, s.base+"/", http.StatusSeeOther)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 4096)
	if err := r.ParseForm(); err != nil || !equalSecret(r.PostForm.Get("token"), s.opts.Token) {
		s.assets.serve(w, r, "login.html", http.StatusUnauthorized)
		return
	}
	s.setSession(w)
	next := r.PostForm.Get("next")
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") {
		next = "/"
	}
	http.Redirect(w, r, s.base+next, http.StatusSeeOther)
}
