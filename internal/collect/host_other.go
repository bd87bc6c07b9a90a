//go:build !linux && !darwin

package collect

import (
	"runtime"
	"strings"

	"github.com/shirou/gopsutil/v4/cpu"
	"github.com/shirou/gopsutil/v4/host"
	"github.com/shirou/gopsutil/v4/mem"
)

// osInfo approximates Python's platform.platform(), e.g.
// ["Windows", "Windows-10-10.0.19045"].
func osInfo() [2]string {
	sys := runtime.GOOS
	switch sys {
	case "windows":
		sys = "Windows"
	case "freebsd":
		sys = "FreeBSD"
	case "openbsd":
		sys = "OpenBSD"
	case "netbsd":
		sys = "NetBSD"
	default:
		if sys != "" {
			sys = strings.ToUpper(sys[:1]) + sys[1:]
		}
	}
	plat := sys
	if info, err := host.Info(); err == nil {
		if info.PlatformVersion != "" {
			plat += "-" + info.PlatformVersion
		}
		if info.KernelVersion != "" && info.KernelVersion != info.PlatformVersion {
			plat += "-" + info.KernelVersion
		}
		if info.KernelArch != "" {
			plat += "-" + info.KernelArch
		}
	}
	return [2]string{sys, plat}
}

func cpuInfo() (string, int) {
	model := ""
	if infos, err := cpu.Info(); err == nil && len(infos) > 0 {
		model = strings.TrimSpace(infos[0].ModelName)
	}
	n, err := cpu.Counts(true)
	if err != nil {
		return model, 0
	}
	return model, n
}

func memTotal() uint64 {
	v, err := mem.VirtualMemory()
	if err != nil {
		return 0
	}
	return v.Total
}
