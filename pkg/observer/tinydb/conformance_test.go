package tinydb

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/sacred-go/sacred/pkg/observer"
	"github.com/sacred-go/sacred/pkg/observer/observertest"
)

// TestConformance runs the observer suite on one store directory. Break
// moves the store away and puts a plain file in its place, so every write
// fails (even as root); the reader then follows the moved directory.
func TestConformance(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tiny")
	var mu sync.Mutex
	readDir := dir
	observertest.Run(t, observertest.Store{
		New: func(t *testing.T) observer.Observer {
			cfg, err := ParseConfig(dir)
			if err != nil {
				t.Fatal(err)
			}
			o, err := New(context.Background(), cfg, observer.Settings{})
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			return o
		},
		Reader: func(t *testing.T) observer.Reader {
			mu.Lock()
			d := readDir
			mu.Unlock()
			r, err := Open(context.Background(), Config{Dir: d, Abs: d}, observer.Settings{})
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			return r
		},
		Break: func(t *testing.T) {
			moved := dir + ".moved"
			if err := os.Rename(dir, moved); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(dir, []byte("not a directory\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			readDir = moved
			mu.Unlock()
		},
	})
}
