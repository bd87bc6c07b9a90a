package collect

import (
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/sacred-go/sacred/pkg/observer"
)

func TestHost(t *testing.T) {
	t.Setenv("SACRED_TEST_SET", "value")
	h, err := Host([]string{"SACRED_TEST_SET", "SACRED_TEST_SURELY_UNSET"})
	if err != nil {
		t.Fatal(err)
	}
	want, _ := os.Hostname()
	if h.Hostname == "" || h.Hostname != want {
		t.Errorf("hostname %q, want %q", h.Hostname, want)
	}
	if h.OS[0] == "" || !strings.HasPrefix(h.OS[1], h.OS[0]) && runtime.GOOS != "darwin" {
		t.Errorf("os %q", h.OS)
	}
	if runtime.GOOS == "linux" && (h.OS[0] != "Linux" || !strings.Contains(h.OS[1], "-"+unameMachine(t))) {
		t.Errorf("os %q on Linux", h.OS)
	}
	if h.CPUCount < 1 || h.CPUCount < runtime.NumCPU() {
		t.Errorf("cpu count %d, NumCPU %d", h.CPUCount, runtime.NumCPU())
	}
	if h.MemoryTotal < 64<<20 {
		t.Errorf("memory total %d bytes", h.MemoryTotal)
	}
	if runtime.GOOS == "linux" {
		data, err := os.ReadFile("/proc/cpuinfo")
		if err == nil && strings.Contains(string(data), "model name") && (h.CPU == "" || !strings.Contains(string(data), h.CPU)) {
			t.Errorf("cpu %q not the model name of /proc/cpuinfo", h.CPU)
		}
	}
	if !reflect.DeepEqual(h.ENV, map[string]string{"SACRED_TEST_SET": "value"}) {
		t.Errorf("ENV %v", h.ENV)
	}
	if h2, _ := Host(nil); h2.ENV == nil || len(h2.ENV) != 0 {
		t.Errorf("no names: ENV %#v, want an empty map", h2.ENV)
	}
}

func unameMachine(t *testing.T) string {
	switch runtime.GOARCH {
	case "amd64":
		return "x86_64"
	case "arm64":
		return "aarch64"
	}
	t.Skipf("no machine name known for %s", runtime.GOARCH)
	return ""
}

const smiXML = `<?xml version="1.0" ?>
<!DOCTYPE nvidia_smi_log SYSTEM "nvsmi_device_v12.dtd">
<nvidia_smi_log>
	<driver_version>535.104.05</driver_version>
	<attached_gpus>2</attached_gpus>
	<gpu id="00000000:00:04.0">
		<product_name>Tesla T4</product_name>
		<persistence_mode>Enabled</persistence_mode>
		<fb_memory_usage>
			<total>15360 MiB</total>
			<used>0 MiB</used>
		</fb_memory_usage>
	</gpu>
	<gpu id="00000000:00:05.0">
		<product_name>NVIDIA A100-SXM4-40GB</product_name>
		<persistence_mode>Disabled</persistence_mode>
		<fb_memory_usage>
			<total>Insufficient Permissions</total>
		</fb_memory_usage>
		<mig_devices>
			<mig_device>
				<fb_memory_usage><total>4864 MiB</total></fb_memory_usage>
			</mig_device>
		</mig_devices>
	</gpu>
</nvidia_smi_log>
`

var wantGPUs = &observer.GPUInfo{
	DriverVersion: "535.104.05",
	GPUs: []observer.GPU{
		{Model: "Tesla T4", TotalMemory: 15360, PersistenceMode: true},
		{Model: "NVIDIA A100-SXM4-40GB", TotalMemory: 4864, PersistenceMode: false},
	},
}

func TestParseNvidiaSMI(t *testing.T) {
	g, err := parseNvidiaSMI([]byte(smiXML))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(g, wantGPUs) {
		t.Errorf("got %+v, want %+v", g, wantGPUs)
	}
	if _, err := parseNvidiaSMI([]byte("not xml <")); err == nil {
		t.Error("garbage parsed")
	}
}

// fakeSMI puts an executable nvidia-smi script first on PATH.
func fakeSMI(t *testing.T, script string) {
	t.Helper()
	if runtime.GOOS == "windows" {
		t.Skip("the fake nvidia-smi is a shell script")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "nvidia-smi"), []byte("#!/bin/sh\n"+script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
}

func TestHostGPUFromNvidiaSMI(t *testing.T) {
	dir := t.TempDir()
	xmlPath := writeFile(t, filepath.Join(dir, "out.xml"), smiXML)
	fakeSMI(t, `[ "$1 $2" = "-q -x" ] || exit 3
cat '`+xmlPath+`'
`)
	h, err := Host(nil)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(h.GPUs, wantGPUs) {
		t.Errorf("GPUs %+v", h.GPUs)
	}
}

func TestHostGPUFailing(t *testing.T) {
	fakeSMI(t, "echo 'NVIDIA-SMI has failed' >&2\nexit 9\n")
	h, err := Host(nil)
	if err != nil || h.GPUs != nil {
		t.Fatalf("failing nvidia-smi: GPUs %+v, err %v; want nil, nil", h.GPUs, err)
	}
}

func BenchmarkHost(b *testing.B) {
	b.Setenv("PATH", b.TempDir()) // no nvidia-smi: the common case
	for b.Loop() {
		if _, err := Host([]string{"HOME"}); err != nil {
			b.Fatal(err)
		}
	}
}

func TestPyPlatform(t *testing.T) {
	for _, tc := range []struct {
		parts []string
		want  string
	}{
		{[]string{"Linux", "6.1.0-18-amd64", "x86_64", "", "with", "glibc2.36"}, "Linux-6.1.0-18-amd64-x86_64-with-glibc2.36"},
		{[]string{"Linux", "5.4 (custom)/x", "x86_64"}, "Linux-5.4_-custom-x-x86_64"},
		{[]string{"Linux", "unknown", "x86_64", "with", ""}, "Linux-x86_64-with"},
	} {
		if got := pyPlatform(tc.parts...); got != tc.want {
			t.Errorf("pyPlatform(%q) = %q, want %q", tc.parts, got, tc.want)
		}
	}
}

func TestGlibcBannerVersion(t *testing.T) {
	for in, want := range map[string]string{
		"\x00GNU C Library (Debian GLIBC 2.36-9+deb12u4) stable release version 2.36.\x00": "2.36",
		"GNU C Library (GNU libc) stable release version 2.17, by Roland McGrath et al.":   "2.17",
		"GNU C Library (Ubuntu GLIBC 2.39-0ubuntu8) stable release version 2.39.\n":        "2.39",
		"release version 2.36.":                            "",
		"GNU C Library\x00 other string release version 9": "",
	} {
		if got := glibcBannerVersion([]byte(in)); got != want {
			t.Errorf("glibcBannerVersion(%q) = %q, want %q", in, got, want)
		}
	}
}
