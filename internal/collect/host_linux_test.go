package collect

import (
	"debug/elf"
	"io"
	"strings"
	"testing"
)

// Scanning through a small buffer finds what reading everything finds,
// wherever the banner falls across the reads.
func TestScanGlibcBanner(t *testing.T) {
	banner := "GNU C Library (Debian GLIBC 2.36-9+deb12u4) stable release version 2.36."
	long := "GNU C Library (" + strings.Repeat("x", 300) + ") stable release version 2.40."
	for _, tc := range []struct{ name, data string }{
		{"none", strings.Repeat("a", 5000)},
		{"banner", banner + "\x00"},
		{"banner at the end without NUL", banner},
		{"marker alone", strings.Repeat("b", 1000) + "GNU C Library"},
		{"two banners", "GNU C Library (A) stable release version 1.1.\x00" + banner + "\x00"},
		{"longer than the banner limit", long + "\x00"},
	} {
		for pad := 0; pad < 1200; pad += 37 {
			data := strings.Repeat("\x00", pad) + tc.data + strings.Repeat("z", pad%300)
			want := glibcBannerVersion([]byte(data))
			for _, size := range []int{512, 700, 4096} {
				if got := scanGlibcBanner(strings.NewReader(data), size); got != want {
					t.Fatalf("%s, pad %d, buffer %d: %q, reading all gives %q", tc.name, pad, size, got, want)
				}
			}
		}
	}
	// The system's own C library, when there is one.
	for _, p := range libcPaths() {
		f, err := elf.Open(p)
		if err != nil {
			continue
		}
		data, err := io.ReadAll(f.Section(".rodata").Open())
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		if got, want := glibcVersionOf(p), glibcBannerVersion(data); got != want || got == "" {
			t.Errorf("%s: %q, reading the whole section gives %q", p, got, want)
		}
		return
	}
}
