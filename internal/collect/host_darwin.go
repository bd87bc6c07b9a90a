package collect

import "golang.org/x/sys/unix"

// osInfo mimics Python's platform.platform() on macOS, e.g.
// "macOS-14.1-arm64".
func osInfo() [2]string {
	var u unix.Utsname
	mach := "unknown"
	if err := unix.Uname(&u); err == nil {
		mach = unix.ByteSliceToString(u.Machine[:])
	}
	ver, err := unix.Sysctl("kern.osproductversion")
	if err != nil || ver == "" {
		return [2]string{"Darwin", "Darwin-" + mach}
	}
	return [2]string{"Darwin", "macOS-" + ver + "-" + mach}
}

func cpuInfo() (string, int) {
	model, _ := unix.Sysctl("machdep.cpu.brand_string")
	n, err := unix.SysctlUint32("hw.logicalcpu")
	if err != nil {
		return model, 0
	}
	return model, int(n)
}

// memTotal uses sysctl directly: gopsutil's darwin code needs purego.
func memTotal() uint64 {
	n, err := unix.SysctlUint64("hw.memsize")
	if err != nil {
		return 0
	}
	return n
}
