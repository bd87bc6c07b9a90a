package collect

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
)

// MaxSeed bounds the seeds Seed draws: [1, MaxSeed), like Sacred's
// random.randint(1, 1e9) range.
const MaxSeed = 1_000_000_000

// Seed returns config["seed"] when present, after checking that it is an
// integer (an integral float such as 42.0 from a YAML file is accepted and
// stored back as int64). Otherwise it draws a random seed in [1, MaxSeed)
// and stores it in config as int64.
func Seed(config map[string]any) (int64, error) {
	if config == nil {
		return 0, errors.New("seed: no config to store the seed in")
	}
	v, ok := config["seed"]
	if !ok {
		s := rand.Int64N(MaxSeed-1) + 1
		config["seed"] = s
		return s, nil
	}
	var s int64
	switch x := v.(type) {
	case int64:
		s = x
	case int:
		s = int64(x)
	case int32:
		s = int64(x)
	case uint64:
		if x > math.MaxInt64 {
			return 0, fmt.Errorf("seed %d is too large: give an integer below 2^63", x)
		}
		s = int64(x)
	case float64:
		if x != math.Trunc(x) || math.Abs(x) >= math.MaxInt64 {
			return 0, fmt.Errorf("seed must be an integer, got %v: give e.g. with seed=42", x)
		}
		s = int64(x)
	case json.Number:
		n, err := x.Int64()
		if err != nil {
			return 0, fmt.Errorf("seed must be an integer, got %s: give e.g. with seed=42", x)
		}
		s = n
	default:
		return 0, fmt.Errorf("seed must be an integer, got %T %v: give e.g. with seed=42", v, v)
	}
	config["seed"] = s
	return s, nil
}
