package collect

import (
	"bufio"
	"bytes"
	"debug/elf"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// osInfo is Python's [platform.system(), platform.platform()] on Linux,
// e.g. ["Linux", "Linux-6.1.0-18-amd64-x86_64-with-glibc2.36"]. Python
// asks its C library for the "-with-glibcX.Y" part (confstr); a Go binary
// has none, so the version is read from the system's libc.so.6. Without a
// glibc (musl, or none found) the suffix is left out.
func osInfo() [2]string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return [2]string{"Linux", "Linux"}
	}
	rel := unix.ByteSliceToString(u.Release[:])
	mach := unix.ByteSliceToString(u.Machine[:])
	if v := glibcVersion(); v != "" {
		return [2]string{"Linux", pyPlatform("Linux", rel, mach, "with", "glibc"+v)}
	}
	return [2]string{"Linux", pyPlatform("Linux", rel, mach)}
}

// multiarch names this architecture's Debian multiarch directory.
var multiarch = map[string]string{
	"amd64": "x86_64-linux-gnu", "arm64": "aarch64-linux-gnu", "386": "i386-linux-gnu",
	"arm": "arm-linux-gnueabihf", "ppc64le": "powerpc64le-linux-gnu", "s390x": "s390x-linux-gnu",
	"riscv64": "riscv64-linux-gnu", "mips64le": "mips64el-linux-gnuabi64", "loong64": "loongarch64-linux-gnu",
}

// libcPaths are where distributions keep the C library: the multiarch
// directory (Debian, Ubuntu), lib64 (Fedora, SUSE), lib (Arch, Alpine).
func libcPaths() []string {
	var paths []string
	if t := multiarch[runtime.GOARCH]; t != "" {
		paths = append(paths, "/lib/"+t+"/libc.so.6", "/usr/lib/"+t+"/libc.so.6")
	}
	return append(paths, "/lib64/libc.so.6", "/usr/lib64/libc.so.6", "/lib/libc.so.6", "/usr/lib/libc.so.6")
}

// glibcVersion is what gnu_get_libc_version() returns, e.g. "2.36", or
// "" when there is no glibc of this architecture's word size.
func glibcVersion() string {
	for _, p := range libcPaths() {
		if v := glibcVersionOf(p); v != "" {
			return v
		}
	}
	return ""
}

// glibcVersionOf reads the version from the banner glibc keeps in its
// read-only data ("GNU C Library (Debian GLIBC 2.36-9) stable release
// version 2.36."): one section of about 150 KiB, no code run. The section
// is scanned up to the banner through one 64 KiB buffer rather than read
// whole (0.2 ms and 350 KB of garbage per run before).
func glibcVersionOf(path string) string {
	f, err := elf.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	want := elf.ELFCLASS64
	if strconv.IntSize == 32 {
		want = elf.ELFCLASS32
	}
	sec := f.Section(".rodata")
	if f.Class != want || sec == nil || sec.Size > 16<<20 {
		return ""
	}
	return scanGlibcBanner(sec.Open(), 64<<10)
}

// glibcMarker starts glibc's banner; the banner ends at a NUL, and
// glibcBannerVersion reads at most glibcBannerMax bytes of it.
const (
	glibcMarker    = "GNU C Library"
	glibcBannerMax = 256
)

// scanGlibcBanner is glibcBannerVersion of everything r holds, read
// through a buffer of size bytes, stopping at the banner.
func scanGlibcBanner(r io.Reader, size int) string {
	buf := make([]byte, max(size, 2*glibcBannerMax))
	n := 0 // bytes held in buf
	for {
		m, err := io.ReadFull(r, buf[n:])
		n += m
		eof := err != nil
		if i := bytes.Index(buf[:n], []byte(glibcMarker)); i >= 0 {
			if eof || n-i >= glibcBannerMax || bytes.IndexByte(buf[i:n], 0) >= 0 {
				return glibcBannerVersion(buf[i:n])
			}
			// The banner goes on past the buffer: keep it, read more.
			n = copy(buf, buf[i:n])
			continue
		}
		if eof {
			return ""
		}
		// The marker may straddle two reads.
		n = copy(buf, buf[n-(len(glibcMarker)-1):n])
	}
}

// glibcBannerVersion finds "GNU C Library ... release version X.Y" in data
// and returns X.Y.
func glibcBannerVersion(data []byte) string {
	i := bytes.Index(data, []byte("GNU C Library"))
	if i < 0 {
		return ""
	}
	banner := data[i:min(len(data), i+256)]
	if end := bytes.IndexByte(banner, 0); end >= 0 {
		banner = banner[:end]
	}
	const marker = "release version "
	j := bytes.Index(banner, []byte(marker))
	if j < 0 {
		return ""
	}
	v := banner[j+len(marker):]
	n := 0
	for n < len(v) && (v[n] >= '0' && v[n] <= '9' || v[n] == '.') {
		n++
	}
	return strings.Trim(string(v[:n]), ".")
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
