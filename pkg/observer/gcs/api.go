package gcs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"cloud.google.com/go/auth"
)

// api is the little of the Cloud Storage JSON API the observer needs,
// over net/http: list with a delimiter, object metadata, download, upload
// (one request, or resumable in chunks streamed from the source), delete
// and compose. cloud.google.com/go/storage does all this too, but linking
// it (with gRPC, DirectPath and OpenTelemetry) takes sacred's resident
// memory from 18 to 43 MB on every run, GCS or not, past the project's
// 40 MiB target; see docs/observers/gcs.md.
type api struct {
	hc    *http.Client
	base  string            // e.g. https://storage.googleapis.com, no trailing slash
	creds *auth.Credentials // nil: no Authorization (an emulator)
}

// apiError is an error answer of the JSON API. Its message never holds a
// credential: the service does not repeat tokens.
type apiError struct {
	Code    int
	Message string
}

func (e *apiError) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("HTTP %d %s", e.Code, http.StatusText(e.Code))
	}
	return fmt.Sprintf("HTTP %d: %s", e.Code, e.Message)
}

// statusOf is the HTTP status of an apiError, or 0.
func statusOf(err error) int {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae.Code
	}
	return 0
}

// transportError is a request that got no answer. Unlike *url.Error it
// does not print the URL, which for a resumable upload is a session that
// accepts data without credentials.
type transportError struct {
	host string
	err  error
}

func (e *transportError) Error() string { return "cannot reach " + e.host + ": " + e.err.Error() }
func (e *transportError) Unwrap() error { return e.err }

func objectPath(bucket, name string) string {
	return "/storage/v1/b/" + url.PathEscape(bucket) + "/o/" + url.PathEscape(name)
}

// do sends a request and returns the answer when its status is one of ok;
// any other status is an *apiError, with the body closed.
func (a *api) do(ctx context.Context, method, rawURL string, body io.Reader, size int64, header http.Header, ok ...int) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, rawURL, body)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.ContentLength = size
		if size == 0 {
			req.Body = http.NoBody
		}
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if a.creds != nil {
		tok, err := a.creds.Token(ctx)
		if err != nil {
			return nil, fmt.Errorf("getting a token: %w", err)
		}
		typ := tok.Type
		if typ == "" {
			typ = "Bearer"
		}
		req.Header.Set("Authorization", typ+" "+tok.Value)
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, &transportError{host: req.URL.Host, err: err}
	}
	for _, code := range ok {
		if resp.StatusCode == code {
			return resp, nil
		}
	}
	defer resp.Body.Close()
	ae := &apiError{Code: resp.StatusCode}
	var doc struct {
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if json.Unmarshal(data, &doc) == nil {
		ae.Message = doc.Error.Message
	}
	return nil, ae
}

// decode reads a JSON answer into v and closes it.
func decode(resp *http.Response, v any) error {
	defer resp.Body.Close()
	if v == nil {
		_, err := io.Copy(io.Discard, resp.Body)
		return err
	}
	return json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(v)
}

// list returns one page of the common prefixes ("directories") right under
// prefix, and the token of the next page ("" at the end).
func (a *api) list(ctx context.Context, bucket, prefix, pageToken string, max int) (prefixes []string, next string, err error) {
	q := url.Values{"prefix": {prefix}, "delimiter": {"/"}, "fields": {"prefixes,nextPageToken"}}
	if pageToken != "" {
		q.Set("pageToken", pageToken)
	}
	if max > 0 {
		q.Set("maxResults", strconv.Itoa(max))
	}
	resp, err := a.do(ctx, http.MethodGet, a.base+"/storage/v1/b/"+url.PathEscape(bucket)+"/o?"+q.Encode(), nil, 0, nil, http.StatusOK)
	if err != nil {
		return nil, "", err
	}
	var page struct {
		Prefixes      []string `json:"prefixes"`
		NextPageToken string   `json:"nextPageToken"`
	}
	if err := decode(resp, &page); err != nil {
		return nil, "", err
	}
	return page.Prefixes, page.NextPageToken, nil
}

// objectAttrs is the little of an object's metadata the observer reads.
// The JSON API gives numbers as strings.
type objectAttrs struct {
	Size       int64 `json:"size,string"`
	Generation int64 `json:"generation,string"`
}

// attrs returns an object's size and generation.
func (a *api) attrs(ctx context.Context, bucket, name string) (objectAttrs, error) {
	resp, err := a.do(ctx, http.MethodGet, a.base+objectPath(bucket, name)+"?fields=size,generation", nil, 0, nil, http.StatusOK)
	if err != nil {
		return objectAttrs{}, err
	}
	var at objectAttrs
	err = decode(resp, &at)
	return at, err
}

// get opens an object's content.
func (a *api) get(ctx context.Context, bucket, name string) (io.ReadCloser, error) {
	resp, err := a.do(ctx, http.MethodGet, a.base+objectPath(bucket, name)+"?alt=media", nil, 0, nil, http.StatusOK)
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

// delete removes an object.
func (a *api) delete(ctx context.Context, bucket, name string) error {
	resp, err := a.do(ctx, http.MethodDelete, a.base+objectPath(bucket, name), nil, 0, nil, http.StatusOK, http.StatusNoContent)
	if err != nil {
		return err
	}
	return decode(resp, nil)
}

// uploadURL is the media upload endpoint for an object.
func (a *api) uploadURL(bucket, name, uploadType string, ifAbsent bool) string {
	q := url.Values{"uploadType": {uploadType}, "name": {name}, "fields": {"size,generation"}}
	if ifAbsent {
		q.Set("ifGenerationMatch", "0") // the DoesNotExist precondition
	}
	return a.base + "/upload/storage/v1/b/" + url.PathEscape(bucket) + "/o?" + q.Encode()
}

// put uploads size bytes of src in one request, streamed, and returns the
// new object's size and generation.
func (a *api) put(ctx context.Context, bucket, name string, src io.ReaderAt, size int64, contentType string, ifAbsent bool) (objectAttrs, error) {
	if contentType == "" {
		contentType = "application/octet-stream"
	}
	h := http.Header{"Content-Type": {contentType}}
	resp, err := a.do(ctx, http.MethodPost, a.uploadURL(bucket, name, "media", ifAbsent),
		io.NewSectionReader(src, 0, size), size, h, http.StatusOK)
	if err != nil {
		return objectAttrs{}, err
	}
	var at objectAttrs
	err = decode(resp, &at)
	return at, err
}

// resumable uploads size bytes of src as a resumable upload: a session,
// then chunks of chunk bytes, each streamed from src (nothing buffered).
// It returns the new object's size and generation.
func (a *api) resumable(ctx context.Context, bucket, name string, src io.ReaderAt, size int64, contentType string, chunk int64) (objectAttrs, error) {
	if contentType == "" {
		contentType = "application/octet-stream"
	}
	h := http.Header{
		"X-Upload-Content-Type":   {contentType},
		"X-Upload-Content-Length": {strconv.FormatInt(size, 10)},
		"Content-Type":            {"application/json; charset=UTF-8"},
	}
	meta := []byte(`{"contentType":` + strconv.Quote(contentType) + `}`)
	resp, err := a.do(ctx, http.MethodPost, a.uploadURL(bucket, name, "resumable", false), bytes.NewReader(meta), int64(len(meta)), h, http.StatusOK)
	if err != nil {
		return objectAttrs{}, err
	}
	session := resp.Header.Get("Location")
	decode(resp, nil)
	if session == "" {
		return objectAttrs{}, errors.New("no upload session in the answer")
	}
	for off := int64(0); off < size; off += chunk {
		n := min(chunk, size-off)
		h := http.Header{"Content-Range": {fmt.Sprintf("bytes %d-%d/%d", off, off+n-1, size)}}
		// 308 asks for the next chunk; 200 or 201 ends the upload.
		resp, err := a.do(ctx, http.MethodPut, session, io.NewSectionReader(src, off, n), n, h,
			http.StatusPermanentRedirect, http.StatusOK, http.StatusCreated)
		if err != nil {
			return objectAttrs{}, fmt.Errorf("bytes %d to %d: %w", off, off+n, err)
		}
		last := resp.StatusCode != http.StatusPermanentRedirect
		if last != (off+n == size) {
			decode(resp, nil)
			return objectAttrs{}, fmt.Errorf("bytes %d to %d: the upload ended at the wrong place", off, off+n)
		}
		if !last {
			decode(resp, nil)
			continue
		}
		var at objectAttrs
		err = decode(resp, &at)
		return at, err
	}
	return objectAttrs{}, errors.New("an empty resumable upload")
}

// composeSource is a source of compose, at a generation (0: the live one).
type composeSource struct {
	Name       string `json:"name"`
	Generation int64  `json:"generation,omitempty,string"`
}

// compose makes dst the concatenation of srcs (in the same bucket), only
// if dst is at generation ifGeneration (when that is not 0), and returns
// the new object's size and generation. With the generations of the
// sources given, a compose the service carries out late (after its
// caller gave up) fails instead of concatenating objects that changed.
func (a *api) compose(ctx context.Context, bucket, dst string, srcs []composeSource, ifGeneration int64, contentType string) (objectAttrs, error) {
	var req struct {
		SourceObjects []composeSource `json:"sourceObjects"`
		Destination   struct {
			ContentType string `json:"contentType,omitempty"`
		} `json:"destination"`
	}
	req.SourceObjects = srcs
	req.Destination.ContentType = contentType
	body, err := json.Marshal(req)
	if err != nil {
		return objectAttrs{}, err
	}
	q := url.Values{"fields": {"size,generation"}}
	if ifGeneration != 0 {
		q.Set("ifGenerationMatch", strconv.FormatInt(ifGeneration, 10))
	}
	resp, err := a.do(ctx, http.MethodPost, a.base+objectPath(bucket, dst)+"/compose?"+q.Encode(),
		bytes.NewReader(body), int64(len(body)), http.Header{"Content-Type": {"application/json"}}, http.StatusOK)
	if err != nil {
		return objectAttrs{}, err
	}
	var at objectAttrs
	err = decode(resp, &at)
	return at, err
}

// endpointURL turns STORAGE_EMULATOR_HOST ("host:port" or a URL) or
// --gcs-endpoint into the API's base URL.
func endpointURL(s string) (string, error) {
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", errors.New("not an http:// or https:// address")
	}
	if u.User != nil || u.RawQuery != "" {
		return "", errors.New("must not hold credentials or a query")
	}
	p := strings.TrimSuffix(u.Path, "/")
	p = strings.TrimSuffix(p, "/storage/v1")
	return u.Scheme + "://" + u.Host + p, nil
}
