package deploy

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// inFlight counts calls under way and remembers the most at once.
type inFlight struct {
	mu   sync.Mutex
	now  int
	most int
}

func (f *inFlight) add(d int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now += d
	f.most = max(f.most, f.now)
}

func (f *inFlight) counts() (now, most int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now, f.most
}

// releaseOneByOne lets n held calls go one at a time. Before each, it
// waits (synctest.Wait) until every goroutine of the bubble is blocked, so
// every call that can start has started, and checks that exactly as many
// are under way as the limit allows; then it calls check, if not nil.
func releaseOneByOne(t *testing.T, f *inFlight, release chan<- struct{}, n, limit int, check func()) {
	t.Helper()
	for released := 0; released < n; released++ {
		synctest.Wait()
		if now, _ := f.counts(); now != min(limit, n-released) {
			t.Fatalf("with %d of %d released: %d under way, want %d", released, n, now, min(limit, n-released))
		}
		if check != nil {
			check()
		}
		release <- struct{}{}
	}
}

func TestForEachHost(t *testing.T) {
	tests := []struct {
		items, limit int
		want         int // at once
	}{
		{items: 0, limit: 16, want: 0},
		{items: 1, limit: 16, want: 1},
		{items: 5, limit: 1, want: 1},
		{items: 5, limit: 2, want: 2},
		{items: 3, limit: 0, want: 1}, // at least one at a time
		{items: 3, limit: -1, want: 1},
		{items: 40, limit: 16, want: 16},
		{items: 16, limit: 40, want: 16},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d items, limit %d", tt.items, tt.limit), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				items := make([]int, tt.items)
				for i := range items {
					items[i] = i * 10
				}
				var f inFlight
				var mu sync.Mutex
				var started []int
				release := make(chan struct{})
				done := make(chan struct{})
				go func() {
					defer close(done)
					forEachHost(items, tt.limit, func(i, item int) {
						f.add(1)
						defer f.add(-1)
						mu.Lock()
						started = append(started, i)
						mu.Unlock()
						if item != i*10 {
							t.Errorf("call %d: got item %d, want %d", i, item, i*10)
						}
						<-release
					})
				}()
				// The calls started so far are always the first ones.
				first := func() {
					mu.Lock()
					defer mu.Unlock()
					got := slices.Sorted(slices.Values(started))
					for i, s := range got {
						if s != i {
							t.Fatalf("calls started: %v, want the first %d items", got, len(got))
						}
					}
				}
				releaseOneByOne(t, &f, release, tt.items, max(tt.limit, 1), first)
				<-done
				first()
				if _, most := f.counts(); most != tt.want {
					t.Errorf("got %d calls at once, want %d", most, tt.want)
				}
				if len(started) != tt.items {
					t.Errorf("got %d calls, want %d", len(started), tt.items)
				}
			})
		})
	}
}

// checkDialer logs in to any host at once; the host's connection closes
// (its check ends) only when the test releases one.
type checkDialer struct {
	hosts   inFlight
	release chan struct{}
}

func (d *checkDialer) Dial(context.Context, Host) (Conn, error) {
	d.hosts.add(1)
	return &checkConn{d: d}, nil
}

type checkConn struct{ d *checkDialer }

func (c *checkConn) Run(context.Context, Command) error { return nil }

func (c *checkConn) Close() error {
	<-c.d.release
	c.d.hosts.add(-1)
	return nil
}

// TestCheckBounded checks that `check` works on at most maxDials hosts at
// once, as every other fan-out does (it used to dial the whole pool at
// once), and that it does use that many.
func TestCheckBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const n = 3*maxDials + 1
		dialer := &checkDialer{release: make(chan struct{})}
		d := &Deployer{
			Dialer: dialer, Resolver: fakeResolver{err: errors.New("no repository in this test")},
			Root: "app", Python: "python3", StepTimeout: time.Minute,
		}
		hosts := make([]Host, n)
		for i := range hosts {
			name := fmt.Sprintf("web%d", i+1)
			hosts[i] = Host{Name: name, User: "deploy", Addr: name, Port: 22}
		}
		done := make(chan []CheckResult)
		go func() { done <- d.Check(context.Background(), hosts) }()
		releaseOneByOne(t, &dialer.hosts, dialer.release, n, maxDials, nil)
		results := <-done
		if _, most := dialer.hosts.counts(); most != maxDials {
			t.Errorf("check worked on %d hosts at once, want %d (maxDials)", most, maxDials)
		}
		logins := 0
		for _, r := range results {
			if r.Name == "login" && r.Err == nil {
				logins++
			}
		}
		if logins != n {
			t.Errorf("got %d logins, want %d:\n%v", logins, n, results)
		}
	})
}
