package runner

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sacred-go/sacred/pkg/observer"
)

// batch makes n points spread over two names, numbered from first: the
// point numbered i goes to "even" or "odd" by i, with step i.
func batch(first, n int) []observer.MetricSeries {
	ms := []observer.MetricSeries{{Name: "even"}, {Name: "odd"}}
	for i := first; i < first+n; i++ {
		p := observer.MetricPoint{Step: int64(i), Value: float64(i) / 3, Time: time.Unix(int64(i), int64(i%1000)*1000).UTC()}
		ms[i%2].Points = append(ms[i%2].Points, p)
	}
	return ms
}

// collector checks that points arrive per name in step order, exactly
// once, with their values and times intact.
type collector struct {
	t    *testing.T
	next map[string]int64
	n    int
}

func (c *collector) add(ms []observer.MetricSeries) {
	c.t.Helper()
	for _, s := range ms {
		for _, p := range s.Points {
			want, ok := c.next[s.Name]
			if !ok {
				want = map[string]int64{"even": 0, "odd": 1}[s.Name]
			}
			if p.Step != want || p.Value != float64(want)/3 || !p.Time.Equal(time.Unix(want, (want%1000)*1000)) || p.Time.Location() != time.UTC {
				c.t.Fatalf("%s: got point %+v, want step %d", s.Name, p, want)
			}
			c.next[s.Name] = want + 2
			c.n++
		}
	}
}

func TestBacklogSpillsBeyondMemoryAndKeepsOrder(t *testing.T) {
	dir := t.TempDir()
	b := newBacklog(dir)
	defer b.close()
	c := &collector{t: t, next: map[string]int64{}}
	const per = 45_000
	pushed := 0
	for round := 0; round < 12; round++ {
		if err := b.push(batch(pushed, per)); err != nil {
			t.Fatal(err)
		}
		pushed += per
		if b.nmem > memPoints {
			t.Fatalf("%d points in memory, want at most %d", b.nmem, memPoints)
		}
		if round%3 == 2 { // the observer catches up a little now and then
			ms, err := b.take(deliverPoints)
			if err != nil {
				t.Fatal(err)
			}
			c.add(ms)
		}
	}
	if b.spill == nil {
		t.Fatal("nothing was spilled to disk")
	}
	if got := b.points(); got != int64(pushed-c.n) {
		t.Fatalf("points() = %d, want %d", got, pushed-c.n)
	}
	for b.points() > 0 {
		ms, err := b.take(deliverPoints)
		if err != nil {
			t.Fatal(err)
		}
		if countPoints(ms) > deliverPoints+per {
			t.Fatalf("take handed %d points at once", countPoints(ms))
		}
		c.add(ms)
	}
	if c.n != pushed {
		t.Fatalf("%d points came back, want %d", c.n, pushed)
	}
	if fi, err := os.Stat(b.spill.f.Name()); err != nil || fi.Size() != 0 {
		t.Errorf("the spill file is not emptied once read: %v %v", fi, err)
	}
	b.close()
	if left, _ := filepath.Glob(filepath.Join(dir, "*")); len(left) != 0 {
		t.Errorf("close left %v", left)
	}
}

func TestBacklogKeepsPointsInMemoryWhenItCannotSpill(t *testing.T) {
	b := newBacklog(filepath.Join(t.TempDir(), "missing"))
	c := &collector{t: t, next: map[string]int64{}}
	var errs int
	for i := 0; i < 5; i++ {
		if err := b.push(batch(i*50_000, 50_000)); err != nil {
			errs++
		}
	}
	if errs != 1 {
		t.Errorf("%d spill errors reported, want the first only", errs)
	}
	for b.points() > 0 {
		ms, err := b.take(deliverPoints)
		if err != nil {
			t.Fatal(err)
		}
		c.add(ms)
	}
	if c.n != 250_000 {
		t.Fatalf("%d points came back, want 250000", c.n)
	}
}

func TestSplitSeries(t *testing.T) {
	head, tail := splitSeries(batch(0, 10), 3)
	if countPoints(head) != 3 || countPoints(tail) != 7 {
		t.Fatalf("split 3 of 10: %d + %d", countPoints(head), countPoints(tail))
	}
	c := &collector{t: t, next: map[string]int64{}}
	c.add(head)
	c.add(tail)
}

func BenchmarkBacklogSpill(b *testing.B) {
	bl := newBacklog(b.TempDir())
	defer bl.close()
	ms := batch(0, 100_000)
	b.SetBytes(100_000 * 28)
	for i := 0; i < b.N; i++ {
		if err := bl.push(ms); err != nil {
			b.Fatal(err)
		}
		if i%4 == 3 {
			for bl.points() > 0 {
				if _, err := bl.take(deliverPoints); err != nil {
					b.Fatal(fmt.Sprint(err))
				}
			}
		}
	}
}
