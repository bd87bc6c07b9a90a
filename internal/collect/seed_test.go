package collect

import (
	"encoding/json"
	"testing"
)

func TestSeedDrawn(t *testing.T) {
	seen := map[int64]bool{}
	for i := 0; i < 200; i++ {
		cfg := map[string]any{"lr": 0.1}
		s, err := Seed(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if s < 1 || s >= MaxSeed {
			t.Fatalf("seed %d out of [1, %d)", s, MaxSeed)
		}
		if cfg["seed"] != s {
			t.Fatalf("config seed %#v, returned %d", cfg["seed"], s)
		}
		seen[s] = true
	}
	if len(seen) < 190 {
		t.Errorf("only %d distinct seeds in 200 draws", len(seen))
	}
}

func TestSeedGiven(t *testing.T) {
	for _, v := range []any{int64(42), 42, 42.0, json.Number("42")} {
		cfg := map[string]any{"seed": v}
		s, err := Seed(cfg)
		if err != nil || s != 42 || cfg["seed"] != int64(42) {
			t.Errorf("seed %#v: got %d, %v, config %#v", v, s, err, cfg["seed"])
		}
	}
	// From the command line, through ParseUpdates.
	cfg, _, _, err := ParseUpdates([]string{"seed=123"})
	if err != nil {
		t.Fatal(err)
	}
	if s, err := Seed(cfg); err != nil || s != 123 {
		t.Errorf("with seed=123: %d, %v", s, err)
	}
}

func TestSeedInvalid(t *testing.T) {
	for _, v := range []any{"abc", 1.5, true, nil, []any{int64(1)}, json.Number("1.5"), uint64(1 << 63), 1e30} {
		if s, err := Seed(map[string]any{"seed": v}); err == nil {
			t.Errorf("seed %#v accepted as %d", v, s)
		}
	}
	if _, err := Seed(nil); err == nil {
		t.Error("nil config accepted")
	}
}
