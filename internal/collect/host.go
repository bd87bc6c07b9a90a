package collect

import (
	"context"
	"encoding/xml"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/sacred-go/sacred/pkg/observer"
)

// GPUTimeout bounds the nvidia-smi call in Host: a wedged driver must not
// hold up the run.
const GPUTimeout = 2 * time.Second

// Host collects Sacred's host_info: hostname, os ([system, platform] as
// Python's platform.platform() writes it, with "-with-glibcX.Y" on glibc
// systems), CPU model
// (empty when unknown), logical CPU count, total memory in bytes, GPUs from
// `nvidia-smi -q -x` when it is on PATH (nil when absent or failing), and
// the variables of envNames that are set. Without nvidia-smi it reads only
// a few kernel files and makes no subprocess.
func Host(envNames []string) (*observer.Host, error) {
	h := &observer.Host{ENV: map[string]string{}}
	var err error
	if h.Hostname, err = os.Hostname(); err != nil {
		return nil, fmt.Errorf("host info: hostname: %w", err)
	}
	h.OS = osInfo()
	h.CPU, h.CPUCount = cpuInfo()
	if h.CPUCount <= 0 {
		h.CPUCount = runtime.NumCPU()
	}
	h.MemoryTotal = memTotal()
	h.GPUs = gpuInfo()
	for _, n := range envNames {
		if v, ok := os.LookupEnv(n); ok {
			h.ENV[n] = v
		}
	}
	return h, nil
}

func gpuInfo() *observer.GPUInfo {
	bin, err := exec.LookPath("nvidia-smi")
	if err != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), GPUTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-q", "-x")
	cmd.WaitDelay = 100 * time.Millisecond // a child keeping the pipe open must not block us
	out, err := cmd.Output()
	if err != nil {
		return nil
	}
	g, err := parseNvidiaSMI(out)
	if err != nil {
		return nil
	}
	return g
}

type smiLog struct {
	DriverVersion string `xml:"driver_version"`
	GPUs          []struct {
		ProductName     string `xml:"product_name"`
		PersistenceMode string `xml:"persistence_mode"`
		FBTotal         string `xml:"fb_memory_usage>total"`
		MIGDevices      []struct {
			FBTotal string `xml:"fb_memory_usage>total"`
		} `xml:"mig_devices>mig_device"`
	} `xml:"gpu"`
}

// parseNvidiaSMI reads the XML of `nvidia-smi -q -x` into Sacred's gpus
// record: total_memory is the first token of fb_memory_usage/total in MiB,
// or of the first MIG device's when the GPU's own is not readable.
func parseNvidiaSMI(data []byte) (*observer.GPUInfo, error) {
	var l smiLog
	dec := xml.NewDecoder(strings.NewReader(string(data)))
	dec.Strict = false // nvidia-smi emits a DOCTYPE with an external DTD
	if err := dec.Decode(&l); err != nil {
		return nil, fmt.Errorf("parse nvidia-smi output: %w", err)
	}
	g := &observer.GPUInfo{GPUs: []observer.GPU{}, DriverVersion: strings.TrimSpace(l.DriverVersion)}
	for _, x := range l.GPUs {
		mem, ok := firstInt(x.FBTotal)
		if !ok {
			for _, m := range x.MIGDevices {
				if mem, ok = firstInt(m.FBTotal); ok {
					break
				}
			}
		}
		g.GPUs = append(g.GPUs, observer.GPU{
			Model:           strings.TrimSpace(x.ProductName),
			TotalMemory:     mem,
			PersistenceMode: strings.EqualFold(strings.TrimSpace(x.PersistenceMode), "Enabled"),
		})
	}
	return g, nil
}

func firstInt(s string) (int, bool) {
	f := strings.Fields(s)
	if len(f) == 0 {
		return 0, false
	}
	n, err := strconv.Atoi(f[0])
	return n, err == nil
}

// pyPlatform joins parts as Python's platform._platform does to build
// platform.platform(): the non-empty parts joined with "-", characters
// unfit for file names replaced with "-", "unknown" removed, runs of "-"
// folded and trailing ones dropped.
func pyPlatform(parts ...string) string {
	var kept []string
	for _, p := range parts {
		if p != "" {
			kept = append(kept, strings.TrimSpace(p))
		}
	}
	s := strings.Join(kept, "-")
	s = strings.ReplaceAll(s, " ", "_")
	s = strings.NewReplacer("/", "-", "\\", "-", ":", "-", ";", "-", `"`, "-", "(", "-", ")", "-").Replace(s)
	s = strings.ReplaceAll(s, "unknown", "")
	for strings.Contains(s, "--") {
		s = strings.ReplaceAll(s, "--", "-")
	}
	return strings.TrimRight(s, "-")
}
