package observer_test

import (
	"os"
	"testing"

	"github.com/sacred-go/sacred/pkg/observer"
)

type owner struct{ observer.Base }

func (owner) Name() string                  { return "owner" }
func (owner) OutputFile() (*os.File, error) { return nil, nil }

type wrapper struct {
	observer.Base
	inner observer.Observer
}

func (w wrapper) Name() string              { return "wrap(" + w.inner.Name() + ")" }
func (w wrapper) Unwrap() observer.Observer { return w.inner }

func TestAsFindsOptionalInterfaceThroughWrappers(t *testing.T) {
	var o observer.Observer = wrapper{inner: wrapper{inner: owner{}}}
	got, ok := observer.As[observer.OutputFileOwner](o)
	if !ok {
		t.Fatal("As did not find the OutputFileOwner two wrappers down")
	}
	if _, isOwner := got.(owner); !isOwner {
		t.Fatalf("As returned %T, want owner", got)
	}
	if in := observer.Innermost(o); in.Name() != "owner" {
		t.Fatalf("Innermost = %s, want owner", in.Name())
	}
}

func TestAsReportsAbsence(t *testing.T) {
	var o observer.Observer = wrapper{inner: wrapper{inner: plain{}}}
	if _, ok := observer.As[observer.OutputFileOwner](o); ok {
		t.Fatal("As found an OutputFileOwner where there is none")
	}
}

type plain struct{ observer.Base }

func (plain) Name() string { return "plain" }
