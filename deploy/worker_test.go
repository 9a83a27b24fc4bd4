package deploy

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// gateDialer blocks every Dial until the gate opens, so a test can hold a
// deployment in its connect step; then it fails, which is enough here: the
// worker's behaviour does not depend on what happens on hosts.
type gateDialer struct {
	gate  chan struct{}
	dials atomic.Int32
}

func (g *gateDialer) Dial(ctx context.Context, h Host) (Conn, error) {
	g.dials.Add(1)
	select {
	case <-g.gate:
		return nil, errors.New("no hosts in this test")
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

type countingResolver struct {
	n      atomic.Int32
	commit string
}

func (r *countingResolver) Resolve(_ context.Context, p Push) (Release, error) {
	r.n.Add(1)
	if p.Commit != "" && !strings.HasPrefix(r.commit, p.Commit) {
		return Release{}, &CommitError{Commit: p.Commit, Branch: p.Branch}
	}
	return Release{RepoURL: "/repo", Branch: "release", Commit: r.commit}, nil
}

func newTestWorker() (*Worker, *gateDialer, *countingResolver) {
	g := &gateDialer{gate: make(chan struct{})}
	res := &countingResolver{commit: strings.Repeat("c", 40)}
	w := &Worker{
		Deployer: &Deployer{Dialer: g, Resolver: res, Root: "app", Python: "python3", StepTimeout: time.Minute},
		Hosts:    []Host{{Name: "web1", User: "u", Addr: "web1", Port: 22}, {Name: "web2", User: "u", Addr: "web2", Port: 22}},
		Grace:    time.Second,
	}
	return w, g, res
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func tip(delivery, payload string) Request {
	return Request{Trigger: "webhook", Provider: "github", DeliveryID: delivery, Push: Push{Branch: "release"}, PayloadCommit: payload}
}

func TestWorkerCoalescesPushesWhileADeployRuns(t *testing.T) {
	w, g, _ := newTestWorker()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- w.Run(ctx) }()

	first, err := w.Submit(ctx, tip("d0", "p0"))
	if err != nil || first.Status != "queued" {
		t.Fatalf("first submit: %+v, %v", first, err)
	}
	waitFor(t, "the first deployment to run", func() bool { return g.dials.Load() > 0 })

	var ids sync.Map
	var wg sync.WaitGroup
	for i := 1; i <= 20; i++ {
		wg.Go(func() {
			tk, err := w.Submit(ctx, tip("d"+string(rune('a'+i)), "p"+string(rune('a'+i))))
			if err != nil {
				t.Error(err)
			}
			ids.Store(tk.ID, true)
		})
	}
	wg.Wait()
	n := 0
	ids.Range(func(k, v any) bool { n++; return true })
	if n != 1 {
		t.Fatalf("20 pushes during a deploy made %d deployments, want exactly 1", n)
	}
	if h := w.Health(); h.QueueLength != 1 || h.Running == nil {
		t.Errorf("health %+v, want one running and one queued", h)
	}

	// A redelivery is recognised, whether its deployment waits or ran.
	again, _ := w.Submit(ctx, tip("d0", "p0"))
	if again.Status != "duplicate" || again.ID != first.ID {
		t.Errorf("redelivery: %+v, want duplicate of %s", again, first.ID)
	}

	close(g.gate)
	waitFor(t, "both deployments to finish", func() bool {
		l := w.List()
		return len(l) == 2 && l[0].Status == StatusFailed && l[1].Status == StatusFailed
	})
	list := w.List()
	if list[1].ID != first.ID {
		t.Errorf("list is not newest first")
	}
	// The coalesced deployment records the newest payload commit.
	if pc := list[0].Request.PayloadCommit; pc == "p0" || pc == "" {
		t.Errorf("coalesced deployment records payload commit %q", pc)
	}
	if h := w.Health(); h.Last == nil || h.Last.ID != list[0].ID || h.QueueLength != 0 || h.Running != nil || h.Stuck != "" {
		t.Errorf("health after: %+v", h)
	}
	cancel()
	<-done
	if _, err := w.Submit(context.Background(), tip("late", "x")); !errors.Is(err, ErrClosed) {
		t.Errorf("submit after shutdown: %v, want ErrClosed", err)
	}
}

func TestWorkerRejectsBadRequests(t *testing.T) {
	w, _, res := newTestWorker()
	_, err := w.Submit(context.Background(), Request{Trigger: "api", Push: Push{Branch: "release"}, Hosts: []string{"web9"}})
	var re *RequestError
	if !errors.As(err, &re) || !strings.Contains(err.Error(), "web9") {
		t.Errorf("unknown host: %v", err)
	}
	_, err = w.Submit(context.Background(), Request{Trigger: "api", Push: Push{Branch: "release", Commit: "abcdef"}})
	var ce *CommitError
	if !errors.As(err, &ce) {
		t.Errorf("commit not on the branch: %v", err)
	}
	_, err = w.Submit(context.Background(), Request{Trigger: "api", Push: Push{Branch: "release", Commit: "$(id)"}})
	if !errors.As(err, &ce) || res.n.Load() != 1 {
		t.Errorf("hostile commit: %v (resolver called %d times, want 1: only for the valid one)", err, res.n.Load())
	}
	// A commit on the branch is expanded to its full hash.
	tk, err := w.Submit(context.Background(), Request{Trigger: "api", Push: Push{Branch: "release", Commit: "cccc"}, Hosts: []string{"web2"}})
	if err != nil {
		t.Fatal(err)
	}
	d, ok := w.Get(tk.ID)
	if !ok || d.Request.Push.Commit != res.commit || d.Status != StatusQueued {
		t.Errorf("queued %+v", d)
	}
}

func TestWorkerShutdownStopsBetweenSteps(t *testing.T) {
	w, g, _ := newTestWorker()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- w.Run(ctx) }()
	running, _ := w.Submit(ctx, tip("a", "1"))
	waitFor(t, "the deployment to run", func() bool { return g.dials.Load() > 0 })
	waiting, _ := w.Submit(ctx, Request{Trigger: "api", Push: Push{Branch: "release"}, Hosts: []string{"web1"}})

	start := time.Now()
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	// The dial never returns on its own: the grace period (1s) ended it.
	if took := time.Since(start); took < 900*time.Millisecond {
		t.Errorf("stopped after %s: the running step got no grace", took)
	}
	d, _ := w.Get(running.ID)
	if d.Status != StatusFailed {
		t.Errorf("running deployment: %s", d.Status)
	}
	d, _ = w.Get(waiting.ID)
	if d.Status != StatusCancelled || !errors.Is(d.Err, ErrStopped) {
		t.Errorf("waiting deployment: %s %v", d.Status, d.Err)
	}
}
