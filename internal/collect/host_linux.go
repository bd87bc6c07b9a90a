package collect

import (
	"bufio"
	"bytes"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// osInfo mimics Python's platform.platform() on Linux without the
// "-with-glibcX.Y" suffix, which needs the C library's version.
func osInfo() [2]string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return [2]string{"Linux", "Linux"}
	}
	rel := unix.ByteSliceToString(u.Release[:])
	mach := unix.ByteSliceToString(u.Machine[:])
	return [2]string{"Linux", "Linux-" + rel + "-" + mach}
}

// cpuInfo reads /proc/cpuinfo once: the first "model name" (absent on
// many ARM machines, then "") and the number of "processor" entries.
func cpuInfo() (string, int) {
	data, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "", 0
	}
	model, count := "", 0
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		switch strings.TrimSpace(k) {
		case "model name":
			if model == "" {
				model = strings.TrimSpace(v)
			}
		case "processor":
			if _, err := strconv.Atoi(strings.TrimSpace(v)); err == nil {
				count++
			}
		}
	}
	return model, count
}

func memTotal() uint64 {
	var si unix.Sysinfo_t
	if err := unix.Sysinfo(&si); err != nil {
		return 0
	}
	return uint64(si.Totalram) * uint64(si.Unit)
}
