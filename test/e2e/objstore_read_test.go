package e2e

import (
	"crypto/md5"
	"encoding/hex"
	"maps"
	"strings"
	"testing"
)

// TestObjstoreReadCommands records runs through the binary into S3 (-S)
// and GCS (--gcs) and reads them back with ls, show, files and compare,
// exactly as TestReadCommandsRoundTrip does for the other stores; reading
// writes no object.
func TestObjstoreReadCommands(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *objStore) {
		// The read-back checks run the binary without an environment of
		// their own: the server's goes into the test's.
		for _, kv := range s.env {
			k, v, _ := strings.Cut(kv, "=")
			t.Setenv(k, v)
		}
		dir := t.TempDir()
		store := s.args("team/runs")
		recordReadRuns(t, dir, store)
		before := s.contents(t, "team/")
		checkLs(t, dir, store)
		ids := lsIDs(t, dir, store)
		checkShow(t, dir, store, ids)
		checkFiles(t, dir, store, ids)
		checkCompare(t, dir, store, ids)
		checkBadInput(t, dir, store, ids)
		if after := s.contents(t, "team/"); !maps.Equal(before, after) {
			t.Errorf("reading changed the bucket:\nbefore %v\nafter  %v", before, after)
		}

		// A prefix under which nothing was recorded is an empty store.
		r := sacred(t, dir, nil, append([]string{"ls", "--json"}, s.args("team/none")...)...)
		if r.code != 0 || r.stdout != "" {
			t.Errorf("ls of an empty prefix: exit %d %q %s", r.code, r.stdout, r.stderr)
		}
	})
}

// contents returns the md5 of every object under prefix, by key.
func (s *objStore) contents(t *testing.T, prefix string) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, k := range s.keys(prefix) {
		b, err := s.object(k)
		if err != nil {
			t.Fatal(err)
		}
		sum := md5.Sum(b)
		m[k] = hex.EncodeToString(sum[:])
	}
	return m
}
