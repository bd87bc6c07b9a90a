//go:build linux

package monitor

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeSMI writes an nvidia-smi that answers the two queries the monitor
// makes with the given text, and logs its arguments to a file.
func fakeSMI(t *testing.T, gpus, apps string) (bin, calls string) {
	t.Helper()
	dir := t.TempDir()
	bin = filepath.Join(dir, "nvidia-smi")
	calls = filepath.Join(dir, "calls")
	script := fmt.Sprintf(`#!/bin/sh
echo "$*" >> %q
case "$1" in
--query-gpu=*) printf %q ;;
--query-compute-apps=*) printf %q ;;
*) echo "unexpected arguments: $*" >&2; exit 9 ;;
esac
`, calls, gpus, apps)
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return bin, calls
}

func TestGPUSamples(t *testing.T) {
	c := startScript(t, "echo started; read x")
	c.waitLine(t, "started")
	pid := c.cmd.Process.Pid
	bin, _ := fakeSMI(t,
		"0, GPU-aaa, 37, 1024, NVIDIA Fake, Model 1\n1, GPU-bbb, [N/A], 2048, NVIDIA Fake\n",
		fmt.Sprintf("%d, GPU-aaa, 300\n%d, GPU-aaa, 700\n%d, GPU-bbb, 100\n", pid, 1, pid))
	tr := newTestTree(c)
	tr.gpu = newGPUProbe(bin)
	series := tr.sample(context.Background(), time.Now(), true)
	want := map[string]float64{
		"sys.gpu0.util":             37,
		"sys.gpu0.memory_bytes":     1024 << 20,
		"sys.gpu0.run_memory_bytes": 300 << 20, // not pid 1's 700 MiB
		"sys.gpu1.memory_bytes":     2048 << 20,
		"sys.gpu1.run_memory_bytes": 100 << 20,
	}
	for name, v := range want {
		if got, ok := value(series, name); !ok || got != v {
			t.Errorf("%s = %v (present %v), want %v", name, got, ok, v)
		}
	}
	if _, ok := value(series, "sys.gpu1.util"); ok {
		t.Error("sys.gpu1.util written though nvidia-smi said [N/A]")
	}
	sum := tr.finish(time.Now(), nil)
	c.end(t)
	if len(sum.GPUs) != 2 {
		t.Fatalf("summary GPUs = %+v, want 2", sum.GPUs)
	}
	g := sum.GPUs[0]
	if g.Name != "NVIDIA Fake, Model 1" || g.UtilPeak != 37 || g.UtilMean != 37 || g.MemoryPeak != 1024<<20 || g.RunMemoryPeak != 300<<20 {
		t.Errorf("GPU 0 summary = %+v", g)
	}
	if sum.GPUError != "" {
		t.Errorf("GPUError = %q", sum.GPUError)
	}
}

// A failing nvidia-smi is asked gpuMaxFailures times, then no more; the
// summary says why.
func TestGPUFailuresTurnSamplingOff(t *testing.T) {
	c := startScript(t, "echo started; read x")
	c.waitLine(t, "started")
	dir := t.TempDir()
	bin := filepath.Join(dir, "nvidia-smi")
	calls := filepath.Join(dir, "calls")
	script := fmt.Sprintf("#!/bin/sh\necho x >> %q\necho 'NVIDIA-SMI has failed because it could not communicate with the NVIDIA driver.' >&2\nexit 9\n", calls)
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	tr := newTestTree(c)
	tr.gpu = newGPUProbe(bin)
	for range gpuMaxFailures + 2 {
		series := tr.sample(context.Background(), time.Now(), true)
		for _, s := range series {
			if strings.Contains(s.Name, "gpu") {
				t.Errorf("GPU metric %s from a failing nvidia-smi", s.Name)
			}
		}
	}
	sum := tr.finish(time.Now(), nil)
	c.end(t)
	b, _ := os.ReadFile(calls)
	if n := strings.Count(string(b), "x"); n != gpuMaxFailures {
		t.Errorf("nvidia-smi called %d times, want %d", n, gpuMaxFailures)
	}
	if !strings.Contains(sum.GPUError, "could not communicate with the NVIDIA driver") || !strings.Contains(sum.GPUError, "turned off") {
		t.Errorf("GPUError = %q", sum.GPUError)
	}
	if _, ok := sum.Info()["gpu_error"]; !ok {
		t.Errorf("info.resources does not say why GPU sampling stopped: %v", sum.Info())
	}
}

func TestNoNvidiaSMI(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	if g := newGPUProbe(""); g != nil {
		t.Errorf("newGPUProbe found %q on an empty PATH", g.bin)
	}
	if g := newGPUProbe("-"); g != nil {
		t.Error(`newGPUProbe("-") did not turn GPU sampling off`)
	}
}
