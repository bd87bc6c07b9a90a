package childapi

import (
	"strings"
	"testing"
)

// Names under "sys." are the wrapper's resource samples: the child's
// points are refused there, with a line that says what to do.
func TestReservedMetricPrefix(t *testing.T) {
	err := CheckMetricName("sys.cpu_percent")
	if err == nil || !strings.Contains(err.Error(), "reserved") || !strings.Contains(err.Error(), "use another name") {
		t.Errorf("CheckMetricName(sys.cpu_percent) = %v, want a refusal that says the prefix is reserved", err)
	}
	for _, ok := range []string{"sys", "system.load", "my.sys.x", "Sys.cpu"} {
		if err := CheckMetricName(ok); err != nil {
			t.Errorf("CheckMetricName(%q) = %v, want nil", ok, err)
		}
	}
}
