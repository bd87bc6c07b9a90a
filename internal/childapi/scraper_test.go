package childapi

import (
	"reflect"
	"strings"
	"testing"
)

func TestScraper(t *testing.T) {
	f := newServer(t, nil)
	sc, err := NewScraper(`^epoch (?P<step>\d+) (?P<name>\w+)=(?P<value>\S+)$`, f.s)
	if err != nil {
		t.Fatal(err)
	}
	out := "starting\nepoch 3 loss=0.5\nepoch 4 loss=0.25\r\nepoch 5 acc=nan\nprogress 10%\rprogress 90%\repoch 6 loss=0.125\n" +
		"epoch x loss=1\nepoch 7 acc=0.75"
	// Fed in odd pieces, as a pipe delivers output.
	for i := 0; i < len(out); i += 7 {
		if n, err := sc.Write([]byte(out[i:min(i+7, len(out))])); err != nil || n != min(7, len(out)-i) {
			t.Fatalf("Write = %d, %v", n, err)
		}
	}
	if err := sc.Close(); err != nil {
		t.Fatal(err)
	}
	ms := f.s.DrainMetrics()
	if got := steps(ms, "loss"); !reflect.DeepEqual(got, []int64{3, 4, 6}) {
		t.Errorf("loss steps %v", got)
	}
	if got := steps(ms, "acc"); !reflect.DeepEqual(got, []int64{7}) {
		t.Errorf("acc steps %v (the last line has no newline)", got)
	}
	if ms[0].Points[2].Value != 0.125 {
		t.Errorf("loss %+v", ms[0].Points)
	}
	if w := f.warn.String(); !strings.Contains(w, `metric "acc": value "nan" is not a finite number`) || strings.Count(w, "\n") != 1 {
		t.Errorf("warnings %q", w)
	}
}

func TestScraperWithoutStepAndLongLines(t *testing.T) {
	f := newServer(t, nil)
	sc, err := NewScraper(`(?P<name>loss): (?P<value>[0-9.]+)`, f.s)
	if err != nil {
		t.Fatal(err)
	}
	sc.Write([]byte("loss: 1\n"))
	sc.Write([]byte("loss: 2 " + strings.Repeat("x", maxScrapeLine+10)))
	sc.Write([]byte("more\nloss: 3\n"))
	sc.Close()
	ms := f.s.DrainMetrics()
	if got := steps(ms, "loss"); !reflect.DeepEqual(got, []int64{0, 1}) || ms[0].Points[1].Value != 3 {
		t.Errorf("metrics %+v: want 1 and 3, the over-long line skipped", ms)
	}
}

func TestScraperBadPattern(t *testing.T) {
	f := newServer(t, nil)
	for pat, want := range map[string]string{
		`(?P<name>\w+`:              "missing closing )",
		`(?P<name>\w+)=(\d+)`:       "needs the named groups",
		`(?P<value>\d+)`:            "needs the named groups",
		`(?P<nam>\w+)=(?P<value>.)`: "needs the named groups",
	} {
		if _, err := NewScraper(pat, f.s); err == nil || !strings.Contains(err.Error(), want) || !strings.HasPrefix(err.Error(), "--metric-pattern") {
			t.Errorf("%q: error %v, want %q", pat, err, want)
		}
	}
}
