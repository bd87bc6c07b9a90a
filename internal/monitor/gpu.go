package monitor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// gpuTimeout bounds one nvidia-smi call: a wedged driver must not hold a
// sample for long.
const gpuTimeout = 3 * time.Second

// gpuMaxFailures is how many nvidia-smi failures in a row turn GPU
// sampling off for the rest of the run.
const gpuMaxFailures = 3

// gpuProbe queries nvidia-smi in its CSV query format, which is stable
// across driver versions (unlike the text of `nvidia-smi` alone).
type gpuProbe struct {
	bin      string
	failures int
}

// gpuSample is one GPU at one sample.
type gpuSample struct {
	index     int
	name      string
	util      float64 // percent
	hasUtil   bool
	memory    uint64 // bytes used on the GPU by every process
	hasMemory bool
	runMemory uint64 // bytes used by processes of the tree
}

// newGPUProbe returns nil when there is no nvidia-smi to ask.
func newGPUProbe(bin string) *gpuProbe {
	if bin == "-" {
		return nil
	}
	if bin == "" {
		p, err := exec.LookPath("nvidia-smi")
		if err != nil {
			return nil
		}
		bin = p
	}
	return &gpuProbe{bin: bin}
}

// query reads every GPU and the memory the processes in pids use on each.
// After gpuMaxFailures failures in a row it returns errGPUOff wrapped with
// the last failure.
func (g *gpuProbe) query(ctx context.Context, pids map[int]bool) ([]gpuSample, error) {
	gpus, err := g.queryOnce(ctx, pids)
	if err != nil {
		g.failures++
		if g.failures >= gpuMaxFailures {
			return nil, fmt.Errorf("%w: %v", errGPUOff, err)
		}
		return nil, err
	}
	g.failures = 0
	return gpus, nil
}

var errGPUOff = errors.New("GPU sampling turned off after repeated nvidia-smi failures")

func (g *gpuProbe) queryOnce(ctx context.Context, pids map[int]bool) ([]gpuSample, error) {
	out, err := g.run(ctx, "--query-gpu=index,uuid,utilization.gpu,memory.used,name", "--format=csv,noheader,nounits")
	if err != nil {
		return nil, err
	}
	gpus, uuids, err := parseGPUs(out)
	if err != nil {
		return nil, err
	}
	out, err = g.run(ctx, "--query-compute-apps=pid,gpu_uuid,used_memory", "--format=csv,noheader,nounits")
	if err != nil {
		return nil, err
	}
	if err := addRunMemory(out, gpus, uuids, pids); err != nil {
		return nil, err
	}
	return gpus, nil
}

func (g *gpuProbe) run(ctx context.Context, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, gpuTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, g.bin, args...)
	cmd.WaitDelay = 100 * time.Millisecond // a child keeping the pipe open must not block us
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		if i := strings.IndexByte(msg, '\n'); i >= 0 {
			msg = msg[:i]
		}
		if msg != "" {
			return nil, fmt.Errorf("nvidia-smi %s: %w (%s)", args[0], err, msg)
		}
		return nil, fmt.Errorf("nvidia-smi %s: %w", args[0], err)
	}
	return out, nil
}

// parseGPUs reads lines "index, uuid, util, memory MiB, name".
func parseGPUs(out []byte) ([]gpuSample, map[string]int, error) {
	var gpus []gpuSample
	uuids := map[string]int{} // uuid → position in gpus
	for _, line := range strings.Split(string(out), "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		f := strings.SplitN(line, ",", 5)
		if len(f) < 4 {
			return nil, nil, fmt.Errorf("nvidia-smi --query-gpu: unexpected line %q", clipLine(line))
		}
		for i := range f {
			f[i] = strings.TrimSpace(f[i])
		}
		idx, err := strconv.Atoi(f[0])
		if err != nil || idx < 0 {
			return nil, nil, fmt.Errorf("nvidia-smi --query-gpu: bad GPU index in %q", clipLine(line))
		}
		s := gpuSample{index: idx}
		if len(f) == 5 {
			s.name = f[4]
		}
		if v, ok := smiNumber(f[2]); ok {
			s.util, s.hasUtil = v, true
		}
		if v, ok := smiNumber(f[3]); ok {
			s.memory, s.hasMemory = uint64(v)<<20, true
		}
		uuids[f[1]] = len(gpus)
		gpus = append(gpus, s)
	}
	return gpus, uuids, nil
}

// addRunMemory reads lines "pid, gpu uuid, used memory MiB" and adds the
// memory of the tree's processes to their GPU.
func addRunMemory(out []byte, gpus []gpuSample, uuids map[string]int, pids map[int]bool) error {
	for _, line := range strings.Split(string(out), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "No running") {
			continue
		}
		f := strings.Split(line, ",")
		if len(f) < 3 {
			return fmt.Errorf("nvidia-smi --query-compute-apps: unexpected line %q", clipLine(line))
		}
		pid, err := strconv.Atoi(strings.TrimSpace(f[0]))
		if err != nil {
			return fmt.Errorf("nvidia-smi --query-compute-apps: bad pid in %q", clipLine(line))
		}
		if !pids[pid] {
			continue
		}
		i, ok := uuids[strings.TrimSpace(f[1])]
		if !ok {
			continue
		}
		if v, ok := smiNumber(strings.TrimSpace(f[2])); ok {
			gpus[i].runMemory += uint64(v) << 20
		}
	}
	return nil
}

// smiNumber parses a value of nvidia-smi's nounits CSV; "[N/A]" and
// "[Not Supported]" are no value.
func smiNumber(s string) (float64, bool) {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v < 0 {
		return 0, false
	}
	return v, true
}

func clipLine(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}
