package deploy

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeBacklog is an in-memory Backlog shared by the workers of a test, as
// a database is by deployers: one job of an app runs at a time; claims
// last until finished, cut (the test's stand-in for a lost lease) or
// expired by the test.
type fakeBacklog struct {
	mu       sync.Mutex
	jobs     []*fakeJob
	down     error // Enqueue and Claim fail with it
	finished map[string]Status
	expired  []BacklogJob // returned by the next Expire
}

type fakeJob struct {
	BacklogJob
	running, done bool
	lose          context.CancelCauseFunc
}

func newFakeBacklog() *fakeBacklog { return &fakeBacklog{finished: map[string]Status{}} }

func (b *fakeBacklog) Enqueue(_ context.Context, app, id string, req Request) (Ticket, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.down != nil {
		return Ticket{}, &UnavailableError{Database: "fake", Err: b.down}
	}
	for _, j := range b.jobs {
		if req.DeliveryID != "" && j.App == app && j.Request.DeliveryID == req.DeliveryID {
			return Ticket{ID: j.ID, Status: "duplicate"}, nil
		}
	}
	for _, j := range b.jobs {
		if j.App == app && !j.running && !j.done && j.Request.Push == req.Push {
			return Ticket{ID: j.ID, Status: "coalesced"}, nil
		}
	}
	b.jobs = append(b.jobs, &fakeJob{BacklogJob: BacklogJob{ID: id, App: app, Request: req, Queued: time.Now()}})
	return Ticket{ID: id, Status: "queued"}, nil
}

func (b *fakeBacklog) Claim(_ context.Context, app string) (Lease, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.down != nil {
		return nil, b.down
	}
	var next *fakeJob
	for _, j := range b.jobs {
		if j.App != app || j.done {
			continue
		}
		if j.running {
			return nil, ErrNoJob
		}
		if next == nil {
			next = j
		}
	}
	if next == nil {
		return nil, ErrNoJob
	}
	next.running = true
	return &fakeLease{b: b, j: next}, nil
}

func (b *fakeBacklog) Expire(context.Context) ([]BacklogJob, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := b.expired
	b.expired = nil
	return out, nil
}

func (b *fakeBacklog) Pending(_ context.Context, app string) (*BacklogJob, []BacklogJob, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var running *BacklogJob
	var waiting []BacklogJob
	for _, j := range b.jobs {
		switch {
		case j.App != app || j.done:
		case j.running:
			running = &j.BacklogJob
		default:
			waiting = append(waiting, j.BacklogJob)
		}
	}
	return running, waiting, nil
}

// cut makes job id's claim lost, as a lease that ended would, with cause.
func (b *fakeBacklog) cut(id string, cause error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, j := range b.jobs {
		if j.ID == id && j.lose != nil {
			j.lose(cause)
		}
	}
}

func (b *fakeBacklog) outcome(id string) (Status, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	s, ok := b.finished[id]
	return s, ok
}

type fakeLease struct {
	b *fakeBacklog
	j *fakeJob
}

func (l *fakeLease) Job() BacklogJob { return l.j.BacklogJob }

func (l *fakeLease) Hold(ctx context.Context) (context.Context, func()) {
	held, lose := context.WithCancelCause(ctx)
	l.b.mu.Lock()
	l.j.lose = lose
	l.b.mu.Unlock()
	return held, func() {}
}

func (l *fakeLease) Finish(_ context.Context, outcome Status) error {
	l.b.mu.Lock()
	defer l.b.mu.Unlock()
	l.j.done, l.j.running = true, false
	l.b.finished[l.j.ID] = outcome
	return nil
}

// fakeInterrupter records what Interrupt was asked.
type fakeInterrupter struct {
	mu   sync.Mutex
	seen map[string]string
}

func (f *fakeInterrupter) Interrupt(_ context.Context, id, reason string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.seen == nil {
		f.seen = map[string]string{}
	}
	f.seen[id] = reason
	return true, nil
}

func startWorker(t *testing.T, w *Worker) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = w.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}

// TestBacklogSubmitCommitsBeforeItAnswers: Submit's ticket is in the
// Backlog when Submit returns, though this worker never runs: another
// worker on the same Backlog deploys it, under the ticket's id.
func TestBacklogSubmitCommitsBeforeItAnswers(t *testing.T) {
	b := newFakeBacklog()
	a, _, _ := newTestWorker()
	a.Backlog = b
	tk, err := a.Submit(context.Background(), tip("d1", "p1"))
	if err != nil || tk.Status != "queued" {
		t.Fatalf("submit: %+v, %v", tk, err)
	}
	if _, waiting, _ := b.Pending(context.Background(), DefaultApp); len(waiting) != 1 || waiting[0].ID != tk.ID {
		t.Fatalf("after Submit the backlog holds %+v, want %s waiting", waiting, tk.ID)
	}
	if h := a.Health(); h.QueueLength != 1 {
		t.Errorf("the submitting worker's health: %+v, want 1 waiting", h)
	}

	other, g, _ := newTestWorker()
	other.Backlog, other.PollEvery = b, 10*time.Millisecond
	close(g.gate)
	startWorker(t, other)
	waitFor(t, "the other worker to run it", func() bool { _, ok := b.outcome(tk.ID); return ok })
	got, ok := other.Get(tk.ID)
	if !ok || got.Status != StatusFailed {
		t.Errorf("the other worker's deployment %s: %+v, %v; want it run (failed: no hosts here)", tk.ID, got, ok)
	}

	// A redelivery to either worker is a duplicate, as the backlog says.
	again, err := other.Submit(context.Background(), tip("d1", "p1"))
	if err != nil || again.Status != "duplicate" || again.ID != tk.ID {
		t.Errorf("redelivery to the other worker: %+v, %v; want duplicate of %s", again, err, tk.ID)
	}
}

// TestBacklogUnavailable: a Backlog that cannot be reached makes Submit
// fail with its *UnavailableError, and nothing is kept as queued.
func TestBacklogUnavailable(t *testing.T) {
	b := newFakeBacklog()
	b.down = errors.New("connection refused")
	w, _, _ := newTestWorker()
	w.Backlog = b
	_, err := w.Submit(context.Background(), tip("d1", "p1"))
	var ue *UnavailableError
	if !errors.As(err, &ue) {
		t.Fatalf("submit with the database down: %v, want an *UnavailableError", err)
	}
	if l := w.List(); len(l) != 0 {
		t.Errorf("list after a failed submit: %d deployments, want none", len(l))
	}
}

// TestBacklogMirrorsWaitingJobs: deployments another deployer queued are
// in List and Health; once another deployer takes them they leave them.
func TestBacklogMirrorsWaitingJobs(t *testing.T) {
	b := newFakeBacklog()
	busy := &fakeJob{BacklogJob: BacklogJob{ID: "elsewhere", App: DefaultApp, Queued: time.Now()}, running: true}
	b.jobs = append(b.jobs, busy)
	if _, err := b.Enqueue(context.Background(), DefaultApp, "waits", tip("", "p")); err != nil {
		t.Fatal(err)
	}
	w, _, _ := newTestWorker()
	w.Backlog, w.PollEvery = b, 10*time.Millisecond
	startWorker(t, w)
	waitFor(t, "the waiting job in the list", func() bool {
		_, ok := w.Get("waits")
		return ok && w.Health().QueueLength == 1
	})
	b.mu.Lock()
	b.jobs[1].done = true // another deployer ran it
	b.mu.Unlock()
	waitFor(t, "the job to leave the list", func() bool {
		_, ok := w.Get("waits")
		return !ok && w.Health().QueueLength == 0
	})
}

// TestBacklogExpiredAreInterrupted: the claims Expire returns are
// recorded as interrupted, naming the deployer that died.
func TestBacklogExpiredAreInterrupted(t *testing.T) {
	b := newFakeBacklog()
	b.expired = []BacklogJob{{ID: "dead-1", App: DefaultApp, Owner: "node-b"}}
	rec := &fakeInterrupter{}
	w, _, _ := newTestWorker()
	w.Backlog, w.Record, w.PollEvery = b, rec, 10*time.Millisecond
	startWorker(t, w)
	waitFor(t, "the interruption to be recorded", func() bool {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		return rec.seen["dead-1"] != ""
	})
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if !strings.Contains(rec.seen["dead-1"], "node-b") {
		t.Errorf("reason %q does not name the deployer", rec.seen["dead-1"])
	}
}

// TestBacklogFencing: a worker whose claim is lost before the switch
// switches no host (the prepared releases are removed); lost once the
// hosts switched (they switch at once), it restarts none. Either way it
// records the deployment as interrupted, and its error says the claim was
// lost and for how long the database was away.
func TestBacklogFencing(t *testing.T) {
	for _, tc := range []struct {
		name string
		// the claim is cut when host's step succeeds
		host     string
		step     Step
		switched bool
	}{
		{"before the switch", "web3", StepBeforeSwitch, false},
		{"after the switch", "web1", StepSwitch, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, 3)
			r.commit("flask")
			first, err := r.deploy()
			if err != nil {
				t.Fatal(err)
			}
			r.commit("flask==2")
			r.clock.Tick()
			b := newFakeBacklog()
			w := &Worker{Deployer: r.d, Hosts: r.hosts, Backlog: b, PollEvery: 10 * time.Millisecond, Grace: time.Minute}
			var id string
			var mu sync.Mutex
			var restarted []string
			r.d.Observer = ObserverFunc(func(ev Event) {
				if ev.Kind != EventStep || ev.Status != StatusSucceeded {
					return
				}
				if ev.Host == tc.host && ev.Step == tc.step {
					b.cut(id, &LapsedError{For: 27 * time.Second}) // the lease ends right then
				}
				if ev.Step == StepRestart {
					mu.Lock()
					restarted = append(restarted, ev.Host)
					mu.Unlock()
				}
			})
			id = submitAPI(t, w)
			startWorker(t, w)
			waitFor(t, "the deployment to finish", func() bool { _, ok := b.outcome(id); return ok })
			if s, _ := b.outcome(id); s != StatusInterrupted {
				t.Errorf("finished as %q, want interrupted", s)
			}
			dep, _ := w.Get(id)
			if dep.Status != StatusInterrupted || !errors.Is(dep.Err, ErrClaimLost) {
				t.Errorf("deployment %s: %v, want interrupted by the lost claim", dep.Status, dep.Err)
			}
			const why = "lost its claim on the app (the database could not be reached for 27s)"
			if dep.Err == nil || !strings.Contains(dep.Err.Error(), why) {
				t.Errorf("deployment error %q, want it to say %q", dep.Err, why)
			}
			mu.Lock()
			if len(restarted) > 0 {
				t.Errorf("restarted after the claim was lost: %v", restarted)
			}
			mu.Unlock()
			for _, h := range []string{"web1", "web2", "web3"} {
				want, releases := "releases/"+first.ReleaseName, 1
				if tc.switched {
					want, releases = "releases/"+dep.ReleaseName, 2
				}
				if got := r.current(h); got != want {
					t.Errorf("%s: current %q, want %q", h, got, want)
				}
				if rels := r.releases(h); len(rels) != releases {
					t.Errorf("%s keeps releases %v, want %d", h, rels, releases)
				}
			}
		})
	}
}

// submitAPI submits a deployment of the release branch to w, and returns
// its id.
func submitAPI(t *testing.T, w *Worker) string {
	t.Helper()
	tk, err := w.Submit(context.Background(), Request{Trigger: "api", Push: Push{Branch: "release"}})
	if err != nil {
		t.Fatal(err)
	}
	return tk.ID
}

// TestBacklogLostClaimStops: the steps a lost claim's stop skips say the
// claim was lost (not that the deployer is shutting down).
func TestBacklogLostClaimStops(t *testing.T) {
	r := newRig(t, 1)
	r.commit("flask")
	b := newFakeBacklog()
	w := &Worker{Deployer: r.d, Hosts: r.hosts, Backlog: b, PollEvery: 10 * time.Millisecond, Grace: time.Minute}
	var id string
	r.d.Observer = ObserverFunc(func(ev Event) {
		if ev.Kind == EventStep && ev.Step == StepConnect && ev.Status == StatusSucceeded {
			b.cut(id, &LapsedError{For: 27 * time.Second})
			// The stop follows the cut on its own goroutine: the steps
			// that follow must find it asked for.
			waitFor(t, "the stop", func() bool {
				w.mu.Lock()
				d := w.running
				w.mu.Unlock()
				return d != nil && d.stopRequested()
			})
		}
	})
	id = submitAPI(t, w)
	startWorker(t, w)
	waitFor(t, "the deployment to finish", func() bool { _, ok := b.outcome(id); return ok })
	dep, _ := w.Get(id)
	var stopped *StepResult
	for i, st := range dep.Hosts[0].Steps {
		if errors.Is(st.Err, ErrStopped) {
			stopped = &dep.Hosts[0].Steps[i]
		}
	}
	const want = "stopped: this deployer lost its claim on the app (the database could not be reached for 27s); another deployer may take it over"
	if stopped == nil || !errors.Is(stopped.Err, ErrClaimLost) || stopped.Err.Error() != want {
		t.Fatalf("after the claim was lost: steps %+v; want one skipped with %q", dep.Hosts[0].Steps, want)
	}
}

// TestBacklogMirrorsWhileRunning: while the worker runs a deployment, one
// another deployer queues for the app is listed too.
func TestBacklogMirrorsWhileRunning(t *testing.T) {
	b := newFakeBacklog()
	w, g, _ := newTestWorker()
	w.Backlog, w.PollEvery = b, 10*time.Millisecond
	startWorker(t, w)
	defer close(g.gate)
	if _, err := w.Submit(context.Background(), tip("d1", "p1")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the deployment to run", func() bool { return g.dials.Load() > 0 })
	if _, err := b.Enqueue(context.Background(), DefaultApp, "queued-elsewhere", Request{Trigger: TriggerAPI, Push: Push{Branch: "release", Commit: "abcd"}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the other deployer's deployment in the list", func() bool {
		d, ok := w.Get("queued-elsewhere")
		return ok && d.Status == StatusQueued && w.Health().QueueLength == 1 && w.Health().Running != nil
	})
}
