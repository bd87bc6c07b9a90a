package sqlstore

import (
	"context"
	"testing"

	"github.com/sacred-go/sacred/pkg/observer"
	"github.com/sacred-go/sacred/pkg/observer/observertest"
)

func TestResume(t *testing.T) {
	forEach(t, func(t *testing.T, url string) {
		observertest.RunResume(t, observertest.Store{
			New: func(t *testing.T) observer.Observer {
				o, err := newURL(context.Background(), url)
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				return o
			},
			Reader: func(t *testing.T) observer.Reader {
				r, err := openURL(context.Background(), url)
				if err != nil {
					t.Fatalf("OpenReader: %v", err)
				}
				return r
			},
		})
	})
}
