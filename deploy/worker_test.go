package deploy

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pushdeploy/pushdeploy/internal/deploytest"
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

// TestWorkerRefusesLongDeliveryIDs: the worker remembers every delivery
// id; one longer than MaxDeliveryID (or with a space or control
// character) is refused before anything is remembered or queued.
func TestWorkerRefusesLongDeliveryIDs(t *testing.T) {
	w, _, _ := newTestWorker()
	push := func(id string) Request {
		return Request{Trigger: "webhook", Provider: "github", DeliveryID: id, Push: Push{Branch: "release"}}
	}
	for _, id := range []string{strings.Repeat("a", MaxDeliveryID+1), strings.Repeat("x", 64<<10), "a b", "a\x00b", "\u00e9t\u00e9"} {
		_, err := w.Submit(context.Background(), push(id))
		var re *RequestError
		if !errors.As(err, &re) {
			t.Errorf("delivery id of %d bytes: %v, want a RequestError", len(id), err)
		}
		if strings.Contains(fmt.Sprint(err), id) {
			t.Errorf("the refusal repeats the delivery id: %v", err)
		}
	}
	if n := len(w.List()); n != 0 || len(w.deliveries) != 0 {
		t.Errorf("%d deployments and %d delivery ids remembered after refusals", n, len(w.deliveries))
	}
	if tk, err := w.Submit(context.Background(), push("{"+strings.Repeat("f", MaxDeliveryID-2)+"}")); err != nil || tk.Status != "queued" {
		t.Errorf("a %d-character delivery id: %+v %v, want queued", MaxDeliveryID, tk, err)
	}
}

// TestWorkerClose: after Close, Submit refuses with ErrClosed (serve
// answers 503), and what was queued before stays queued for Run.
func TestWorkerClose(t *testing.T) {
	w, _, _ := newTestWorker()
	tk, err := w.Submit(context.Background(), Request{Trigger: "webhook", Push: Push{Branch: "release"}})
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	if _, err := w.Submit(context.Background(), Request{Trigger: "webhook", Push: Push{Branch: "release"}}); !errors.Is(err, ErrClosed) {
		t.Errorf("Submit after Close: %v, want ErrClosed", err)
	}
	if d, ok := w.Get(tk.ID); !ok || d.Status != StatusQueued {
		t.Errorf("the deployment queued before Close: %+v", d)
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

// stepDialer holds a deployment where the test wants it: Dial waits for
// dialGate to close, and every command on the connection it returns waits
// for release to close (or its context to end), then fails.
type stepDialer struct {
	dialGate, release chan struct{}
	dials             atomic.Int32
}

func (s *stepDialer) Dial(ctx context.Context, h Host) (Conn, error) {
	s.dials.Add(1)
	select {
	case <-s.dialGate:
		return heldConn{s.release}, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

type heldConn struct{ release chan struct{} }

func (c heldConn) Run(ctx context.Context, cmd Command) error {
	select {
	case <-c.release:
		return errors.New("released by the test")
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (heldConn) Close() error { return nil }

// runningStep returns the host and the step that runs in d.
func runningStep(t *testing.T, d *Deployment) (string, StepResult) {
	t.Helper()
	for _, h := range d.Hosts {
		for _, s := range h.Steps {
			if s.Status == StatusRunning {
				return h.Host.String(), s
			}
		}
	}
	t.Fatalf("deployment %s runs no step", d.ID)
	return "", StepResult{}
}

// TestWorkerHealthStuck: a deployment whose step runs past
// DEPLOY_STEP_TIMEOUT + 1m without progress makes the worker stuck; the
// next step starting counts as progress. Health is asked at chosen
// instants (Worker.now) instead of waiting minutes.
func TestWorkerHealthStuck(t *testing.T) {
	w, _, res := newTestWorker()
	sd := &stepDialer{dialGate: make(chan struct{}), release: make(chan struct{})}
	w.Deployer.Dialer = sd
	w.Hosts = w.Hosts[:1] // one running step at a time: web1's
	threshold := w.Deployer.StepTimeout + time.Minute
	var clock atomic.Pointer[time.Time]
	w.now = func() time.Time {
		if c := clock.Load(); c != nil {
			return *c
		}
		return time.Now()
	}
	at := func(t time.Time) Health { clock.Store(&t); return w.Health() }
	// The steps' start times come from the Deployer's clock, which the
	// test moves on instead of waiting.
	stepClock := &deploytest.Clock{}
	w.Deployer.Now = stepClock.Now

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error)
	go func() { done <- w.Run(ctx) }()
	first, err := w.Submit(ctx, tip("a", "1"))
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the connect step to run", func() bool { return sd.dials.Load() > 0 })
	// A second request waits behind the first (other hosts: no coalescing).
	second, err := w.Submit(ctx, Request{Trigger: "api", Push: Push{Branch: "release"}, Hosts: []string{"web1"}})
	if err != nil || second.Status != "queued" {
		t.Fatalf("second submit: %+v, %v", second, err)
	}

	h := w.Health()
	if h.Running == nil || h.Running.ID != first.ID || h.QueueLength != 1 || h.Last != nil || h.Stuck != "" {
		t.Fatalf("health with one deployment running and one waiting: %+v", h)
	}
	host, connect := runningStep(t, h.Running)
	if host != "web1" || connect.Name != "connect" {
		t.Fatalf("running step: %s on %s, want connect on web1", connect.Name, host)
	}
	if h := at(connect.Started.Add(threshold - time.Second)); h.Stuck != "" {
		t.Errorf("a step running for %s (threshold %s) is reported stuck: %s", threshold-time.Second, threshold, h.Stuck)
	}
	h = at(connect.Started.Add(threshold + 30*time.Second))
	want := "deployment " + first.ID + " has made no progress for 2m30s, in step connect on web1 (DEPLOY_STEP_TIMEOUT is 1m0s)"
	if h.Stuck != want {
		t.Errorf("stuck in connect for 2m30s: Stuck = %q, want %q", h.Stuck, want)
	}

	// Progress: connect ends, the prepare step (the first remote one) starts. At an instant past the
	// threshold counted from connect's start but not from prepare's start, the
	// deployment is not stuck.
	clock.Store(nil)
	stepClock.Tick() // prepare starts a second after connect did
	close(sd.dialGate)
	var lock StepResult
	waitFor(t, "the prepare step to run", func() bool {
		d, _ := w.Get(first.ID)
		for _, s := range d.Hosts[0].Steps {
			if s.Name == "prepare" && s.Status == StatusRunning {
				lock = s
				return true
			}
		}
		return false
	})
	half := lock.Started.Sub(connect.Started) / 2
	if h := at(lock.Started.Add(threshold - half)); h.Stuck != "" {
		t.Errorf("%s after connect started, %s after prepare started: reported stuck although prepare is progress: %s",
			threshold+half, threshold-half, h.Stuck)
	}
	h = at(lock.Started.Add(threshold + 5*time.Second))
	if want := "has made no progress for 2m5s, in step prepare on web1"; !strings.Contains(h.Stuck, want) {
		t.Errorf("stuck in prepare: Stuck = %q, want it to contain %q", h.Stuck, want)
	}

	// Both deployments fail at their prepare step; the last one is reported.
	clock.Store(nil)
	close(sd.release)
	waitFor(t, "both deployments to finish", func() bool {
		h := w.Health()
		return h.Running == nil && h.QueueLength == 0 && h.Last != nil && h.Last.ID == second.ID
	})
	h = at(time.Now().Add(time.Hour)) // nothing runs: nothing can be stuck
	if h.Stuck != "" || h.Last.Status != StatusFailed || h.Last.Release.Commit != res.commit {
		t.Errorf("health after both failed: stuck %q, last %s %s commit %q; want not stuck, last failed with commit %s",
			h.Stuck, h.Last.ID, h.Last.Status, h.Last.Release.Commit, res.commit)
	}
	cancel()
	<-done
}

// TestWorkerHealthWithoutLoop: requests that wait while no worker loop runs
// make the worker stuck; an idle worker is not.
func TestWorkerHealthWithoutLoop(t *testing.T) {
	w, g, _ := newTestWorker()
	if h := w.Health(); h.Stuck != "" || h.QueueLength != 0 || h.Running != nil || h.Last != nil {
		t.Errorf("new worker, nothing asked: %+v", h)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := w.Submit(ctx, tip("a", "1")); err != nil {
		t.Fatal(err)
	}
	want := "deployments are waiting but the worker is not running"
	if h := w.Health(); h.Stuck != want || h.QueueLength != 1 {
		t.Errorf("one request, no loop: queue %d, Stuck %q; want 1, %q", h.QueueLength, h.Stuck, want)
	}

	done := make(chan error)
	go func() { done <- w.Run(ctx) }()
	waitFor(t, "the deployment to run", func() bool { return g.dials.Load() > 0 })
	if h := w.Health(); h.Stuck != "" || h.QueueLength != 0 || h.Running == nil {
		t.Errorf("the loop took the request: %+v", h)
	}
	close(g.gate)
	waitFor(t, "the deployment to finish", func() bool { return w.Health().Last != nil })
	if h := w.Health(); h.Stuck != "" || h.QueueLength != 0 || h.Running != nil {
		t.Errorf("idle worker: %+v", h)
	}
	cancel()
	<-done
}

// TestWorkerHealthBeforeTheStart: a deployment the loop has taken but that
// has not recorded its start yet (Started is zero) is not stuck.
func TestWorkerHealthBeforeTheStart(t *testing.T) {
	w, g, _ := newTestWorker()
	// The Deployer reads its clock for the start: hold it there.
	reading, resume := make(chan struct{}), make(chan struct{})
	var once sync.Once
	w.Deployer.Now = func() time.Time {
		once.Do(func() { close(reading); <-resume })
		return time.Now()
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error)
	go func() { done <- w.Run(ctx) }()
	if _, err := w.Submit(ctx, tip("a", "1")); err != nil {
		t.Fatal(err)
	}
	<-reading
	h := w.Health()
	if h.Running == nil || !h.Running.Started.IsZero() {
		t.Fatalf("want a running deployment with no start yet, got %+v", h.Running)
	}
	if h.Stuck != "" {
		t.Errorf("a deployment about to start is reported stuck: %s", h.Stuck)
	}
	close(resume)
	close(g.gate)
	cancel()
	<-done
}
