package testserver

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

// S3 is an in-process S3 server: gofakes3 (memory backend) behind a real
// HTTP listener on 127.0.0.1, driven by the AWS SDK over HTTP. A test can
// stop it and start it again on the same port with the same objects, to
// play an endpoint lost mid-run.
//
// In front of gofakes3 it does three things gofakes3 v1.2.0 does not,
// so that the observer meets what AWS and MinIO do:
//   - UploadPartCopy (a part copied from an existing object, x-amz-copy-source
//     with a byte range, refused past the object's end), which the S3
//     observer's appends rely on; with
//     NoPartCopy it answers 501 NotImplemented instead, as stores without it;
//   - the access key and the region of each request's signature are
//     checked (InvalidAccessKeyId, and AuthorizationHeaderMalformed with
//     AWS's "expecting 'REGION'" message); signatures themselves are not;
//   - the bytes of every object write are counted, per key.
type S3 struct {
	t         testing.TB
	Region    string
	AccessKey string
	SecretKey string
	// NoPartCopy makes UploadPartCopy fail with 501 NotImplemented.
	NoPartCopy atomic.Bool
	// ReadOnly refuses every write with 403 AccessDenied, as a bucket
	// policy that denies s3:PutObject does; reads go on.
	ReadOnly atomic.Bool

	backend *s3mem.Backend
	handler http.Handler
	addr    string
	envDir  string

	mu      sync.Mutex
	srv     *http.Server
	written map[string]int64 // request body bytes of writes, by key
	stalled chan struct{}    // non-nil: requests wait until it is closed
}

// NewS3 starts an S3 server on 127.0.0.1 with a port chosen by the OS; it
// is stopped at t.Cleanup.
func NewS3(t testing.TB) *S3 {
	t.Helper()
	s := &S3{
		t: t, Region: "eu-west-3", AccessKey: "AKIATESTSACRED0001", SecretKey: "test-secret-Zq81vW",
		backend: s3mem.New(), addr: "127.0.0.1:0", envDir: t.TempDir(), written: map[string]int64{},
	}
	faker := gofakes3.New(s.backend, gofakes3.WithLogger(gofakes3.DiscardLog()), gofakes3.WithTimeSkewLimit(0))
	s.handler = s.middleware(faker.Server())
	s.Start()
	t.Cleanup(s.Stop)
	return s
}

// URL is the endpoint, http://127.0.0.1:PORT; it stays valid across Stop
// and Start.
func (s *S3) URL() string { return "http://" + s.addr }

// CreateBucket creates a bucket.
func (s *S3) CreateBucket(name string) {
	s.t.Helper()
	if err := s.backend.CreateBucket(name); err != nil {
		s.t.Fatalf("creating bucket %s: %v", name, err)
	}
}

// Env is the environment that points the AWS SDK of a child process at
// this server's credentials and region, and away from the machine's own
// AWS settings and from any instance metadata endpoint. The endpoint
// itself is given with --s3-endpoint URL().
func (s *S3) Env() []string {
	empty := filepath.Join(s.envDir, "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		s.t.Fatal(err)
	}
	return []string{
		"AWS_ACCESS_KEY_ID=" + s.AccessKey,
		"AWS_SECRET_ACCESS_KEY=" + s.SecretKey,
		"AWS_REGION=" + s.Region,
		"AWS_EC2_METADATA_DISABLED=true",
		"AWS_CONFIG_FILE=" + empty,
		"AWS_SHARED_CREDENTIALS_FILE=" + empty,
		"AWS_PROFILE=",
		"AWS_SESSION_TOKEN=",
		"AWS_ENDPOINT_URL=",
		"AWS_ENDPOINT_URL_S3=",
	}
}

// SetEnv sets Env() for the test process (tests that use it cannot run in
// parallel).
func (s *S3) SetEnv(t testing.TB) {
	t.Helper()
	for _, kv := range s.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
}

// Running reports whether the server listens.
func (s *S3) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.srv != nil
}

// Start starts listening, on the port of the first start.
func (s *S3) Start() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		return
	}
	ln, err := net.Listen("tcp", s.addr)
	for i := 0; err != nil && i < 50 && s.addr != "127.0.0.1:0"; i++ {
		// The port of a just closed listener may take a moment to free.
		time.Sleep(20 * time.Millisecond)
		ln, err = net.Listen("tcp", s.addr)
	}
	if err != nil {
		s.t.Fatalf("S3 test server: %v", err)
	}
	s.addr = ln.Addr().String()
	srv := &http.Server{Handler: s.handler, ReadHeaderTimeout: 10 * time.Second}
	s.srv = srv
	go func() { _ = srv.Serve(ln) }()
}

// Stop closes the listener and every connection; the objects stay.
func (s *S3) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		_ = s.srv.Close()
		s.srv = nil
	}
}

// Stall makes every request on an object hang until resume is called (or
// the client gives up), to check that calls honour their context. Bucket
// listings still answer, so that an observer (whose New lists the bucket)
// can be opened meanwhile.
func (s *S3) Stall() (resume func()) { return stall(&s.mu, &s.stalled) }

// Open opens an object stored in the server.
func (s *S3) Open(bucket, key string) (io.ReadCloser, error) {
	obj, err := s.backend.GetObject(bucket, key, nil)
	if err != nil {
		return nil, err
	}
	return obj.Contents, nil
}

// Keys lists the keys under prefix.
func (s *S3) Keys(bucket, prefix string) ([]string, error) {
	list, err := s.backend.ListBucket(bucket, &gofakes3.Prefix{Prefix: prefix, HasPrefix: true}, gofakes3.ListBucketPage{})
	if err != nil {
		return nil, err
	}
	var keys []string
	for _, c := range list.Contents {
		keys = append(keys, c.Key)
	}
	return keys, nil
}

// Written is the number of request body bytes written to key so far
// (puts, parts, copies excluded: they cross no network).
func (s *S3) Written(key string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.written[key]
}

// countingBody counts what is read from a request body.
type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (c countingBody) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.n.Add(int64(n))
	return n, err
}

func (s *S3) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, key, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
		if key != "" && !waitStall(&s.mu, &s.stalled, r) {
			return
		}
		if code, msg, region := s.checkAuth(r); code != "" {
			status := http.StatusForbidden
			if code == "AuthorizationHeaderMalformed" {
				status = http.StatusBadRequest
			}
			writeS3Error(w, status, code, msg, region)
			return
		}
		if s.ReadOnly.Load() && r.Method != http.MethodGet && r.Method != http.MethodHead {
			writeS3Error(w, http.StatusForbidden, "AccessDenied", "Access Denied", "")
			return
		}
		q := r.URL.Query()
		if r.Method == http.MethodPut && q.Get("uploadId") != "" && r.Header.Get("X-Amz-Copy-Source") != "" {
			s.uploadPartCopy(w, r, next)
			return
		}
		if r.Method == http.MethodPut || r.Method == http.MethodPost {
			var n atomic.Int64
			r.Body = countingBody{r.Body, &n}
			next.ServeHTTP(w, r)
			if _, key, ok := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/"); ok {
				s.mu.Lock()
				s.written[key] += n.Load()
				s.mu.Unlock()
			}
			return
		}
		next.ServeHTTP(w, r)
	})
}

// checkAuth checks the access key and region of a SigV4 signature.
func (s *S3) checkAuth(r *http.Request) (code, msg, region string) {
	cred := r.URL.Query().Get("X-Amz-Credential")
	if auth := r.Header.Get("Authorization"); auth != "" {
		_, after, ok := strings.Cut(auth, "Credential=")
		if !ok {
			return "AccessDenied", "Access Denied", ""
		}
		cred, _, _ = strings.Cut(after, ",")
	}
	parts := strings.Split(cred, "/")
	if len(parts) < 5 {
		return "AccessDenied", "Access Denied", ""
	}
	if parts[0] != s.AccessKey {
		return "InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist in our records.", ""
	}
	if parts[2] != s.Region {
		return "AuthorizationHeaderMalformed",
			fmt.Sprintf("The authorization header is malformed; the region '%s' is wrong; expecting '%s'", parts[2], s.Region), s.Region
	}
	return "", "", ""
}

// uploadPartCopy serves UploadPartCopy: the source range is read from the
// backend and handed to gofakes3 as an ordinary part, whose ETag is
// answered as a CopyPartResult.
func (s *S3) uploadPartCopy(w http.ResponseWriter, r *http.Request, next http.Handler) {
	if s.NoPartCopy.Load() {
		writeS3Error(w, http.StatusNotImplemented, "NotImplemented", "A header you provided implies functionality that is not implemented", "")
		return
	}
	src, err := url.PathUnescape(strings.TrimPrefix(r.Header.Get("X-Amz-Copy-Source"), "/"))
	if err != nil {
		writeS3Error(w, http.StatusBadRequest, "InvalidArgument", "bad x-amz-copy-source", "")
		return
	}
	src, _, _ = strings.Cut(src, "?versionId=")
	bucket, key, _ := strings.Cut(src, "/")
	var rng *gofakes3.ObjectRangeRequest
	if h := r.Header.Get("X-Amz-Copy-Source-Range"); h != "" {
		a, b, ok := strings.Cut(strings.TrimPrefix(h, "bytes="), "-")
		start, err1 := strconv.ParseInt(a, 10, 64)
		end, err2 := strconv.ParseInt(b, 10, 64)
		if !ok || err1 != nil || err2 != nil || end < start {
			writeS3Error(w, http.StatusBadRequest, "InvalidArgument", "bad x-amz-copy-source-range", "")
			return
		}
		rng = &gofakes3.ObjectRangeRequest{Start: start, End: end}
	}
	obj, err := s.backend.GetObject(bucket, key, rng)
	if err != nil {
		var ge gofakes3.Error
		if errors.As(err, &ge) && ge.ErrorCode() == gofakes3.ErrNoSuchKey {
			writeS3Error(w, http.StatusNotFound, "NoSuchKey", "The specified key does not exist.", "")
			return
		}
		writeS3Error(w, http.StatusInternalServerError, "InternalError", err.Error(), "")
		return
	}
	defer obj.Contents.Close()
	if rng != nil && rng.End >= obj.Size {
		// As AWS and MinIO: a range past the end of the source is
		// refused, not cut short.
		writeS3Error(w, http.StatusRequestedRangeNotSatisfiable, "InvalidRange", "The requested range is not satisfiable", "")
		return
	}
	size := obj.Size
	if obj.Range != nil {
		size = obj.Range.Length
	}
	part := r.Clone(r.Context())
	for h := range part.Header {
		if strings.HasPrefix(strings.ToLower(h), "x-amz-copy-source") || strings.EqualFold(h, "Content-Md5") {
			part.Header.Del(h)
		}
	}
	part.Body = obj.Contents
	part.ContentLength = size
	part.Header.Set("Content-Length", strconv.FormatInt(size, 10))
	rec := httptest.NewRecorder()
	next.ServeHTTP(rec, part)
	if rec.Code != http.StatusOK {
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
		return
	}
	w.Header().Set("Content-Type", "application/xml")
	_ = xml.NewEncoder(w).Encode(struct {
		XMLName      xml.Name `xml:"CopyPartResult"`
		ETag         string   `xml:"ETag"`
		LastModified string   `xml:"LastModified"`
	}{ETag: rec.Header().Get("ETag"), LastModified: time.Now().UTC().Format(time.RFC3339)})
}

func writeS3Error(w http.ResponseWriter, status int, code, msg, region string) {
	w.Header().Set("Content-Type", "application/xml")
	if region != "" {
		w.Header().Set("X-Amz-Bucket-Region", region)
	}
	w.WriteHeader(status)
	_ = xml.NewEncoder(w).Encode(struct {
		XMLName   xml.Name `xml:"Error"`
		Code      string   `xml:"Code"`
		Message   string   `xml:"Message"`
		Region    string   `xml:"Region,omitempty"`
		RequestID string   `xml:"RequestId"`
	}{Code: code, Message: msg, Region: region, RequestID: "sacred-test"})
}

// stall sets *ch to a new channel and returns the func that closes it.
func stall(mu *sync.Mutex, ch *chan struct{}) func() {
	c := make(chan struct{})
	mu.Lock()
	*ch = c
	mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			mu.Lock()
			if *ch == c {
				*ch = nil
			}
			mu.Unlock()
			close(c)
		})
	}
}

// waitStall holds a request while the server is stalled; false when the
// client went away meanwhile.
func waitStall(mu *sync.Mutex, ch *chan struct{}, r *http.Request) bool {
	mu.Lock()
	c := *ch
	mu.Unlock()
	if c == nil {
		return true
	}
	select {
	case <-c:
		return true
	case <-r.Context().Done():
		return false
	}
}
