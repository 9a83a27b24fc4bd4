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

// fakeRecord is a history: deployments newest first.
type fakeRecord struct {
	mu   sync.Mutex
	deps []*Deployment
	err  error
	n    int // Deployments calls
}

func (r *fakeRecord) Deployments(_ context.Context, f Filter) ([]*Deployment, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.n++
	if r.err != nil {
		return nil, r.err
	}
	var out []*Deployment
	for _, d := range r.deps {
		if f.Match(d) && (f.Limit == 0 || len(out) < f.Limit) {
			out = append(out, d)
		}
	}
	return out, nil
}

// add records d as the newest deployment.
func (r *fakeRecord) add(d *Deployment) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.deps = append([]*Deployment{d}, r.deps...)
}

// tipResolver answers the branch tip it holds, or fails.
type tipResolver struct {
	mu  sync.Mutex
	tip string
	err error
	n   atomic.Int32
}

func (r *tipResolver) Resolve(_ context.Context, p Push) (Release, error) {
	r.n.Add(1)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return Release{}, r.err
	}
	c := r.tip
	if p.Commit != "" {
		c = p.Commit
	}
	return Release{RepoURL: "/repo", Branch: "release", Commit: c}, nil
}

func (r *tipResolver) set(tip string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.tip, r.err = tip, err
}

var (
	commitA = strings.Repeat("a", 40)
	commitB = strings.Repeat("b", 40)
	commitC = strings.Repeat("c", 40)
)

var pollT0 = time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC)

// recorded is a finished deployment of the default app, n minutes after
// pollT0.
func recorded(n int, action Action, status Status, tip, commit string) *Deployment {
	q := pollT0.Add(time.Duration(n) * time.Minute)
	d := &Deployment{ID: q.Format("20060102-150405") + "-000000", App: DefaultApp, Action: action, Queued: q,
		Started: q, Finished: q.Add(time.Second), Status: status, BranchTip: tip}
	d.Request.Action, d.Request.Push.Branch = action, "release"
	d.Release.Commit = commit
	return d
}

func newPollRig() (*Poller, *fakeRecord, *tipResolver) {
	rec := &fakeRecord{}
	res := &tipResolver{tip: commitA}
	w := &Worker{
		Deployer: &Deployer{Dialer: &gateDialer{gate: make(chan struct{})}, Resolver: res, Branch: "release", Root: "app", Python: "python3", StepTimeout: time.Minute},
		Hosts:    []Host{{Name: "web1", User: "u", Addr: "web1", Port: 22}},
	}
	return &Poller{Worker: w, Record: rec, Interval: time.Minute}, rec, res
}

// queued returns the worker's deployments (its Run is not started: what a
// round asks for stays queued).
func queued(p *Poller) []*Deployment { return p.Worker.List() }

func TestPollRule(t *testing.T) {
	deploy, rollback := ActionDeploy, ActionRollback
	pinned := func(d *Deployment) *Deployment { d.Request.Push.Commit = d.Release.Commit; return d }
	neverStarted := func(d *Deployment) *Deployment { d.Started = time.Time{}; return d }
	for _, tc := range []struct {
		name    string
		history []*Deployment // oldest first
		tip     string
		want    PollOutcome
	}{
		{"a new tip is deployed", []*Deployment{recorded(1, deploy, StatusSucceeded, commitA, commitA)}, commitB, PollQueued},
		{"the same tip is not", []*Deployment{recorded(1, deploy, StatusSucceeded, commitA, commitA)}, commitA, PollCurrent},
		{"a failed deploy is not retried", []*Deployment{recorded(1, deploy, StatusFailed, commitA, commitA)}, commitA, PollCurrent},
		{"after a rollback the tip it went back from stays", []*Deployment{
			recorded(1, deploy, StatusSucceeded, commitA, commitA),
			recorded(2, deploy, StatusSucceeded, commitB, commitB),
			recorded(3, rollback, StatusSucceeded, commitB, ""),
		}, commitB, PollCurrent},
		{"after a rollback a new push is deployed", []*Deployment{
			recorded(2, deploy, StatusSucceeded, commitB, commitB),
			recorded(3, rollback, StatusSucceeded, commitB, ""),
		}, commitC, PollQueued},
		{"a failed rollback counts as well", []*Deployment{
			recorded(2, deploy, StatusSucceeded, commitA, commitA),
			recorded(3, rollback, StatusFailed, commitB, ""),
		}, commitB, PollCurrent},
		{"a pinned deploy of an older commit stays", []*Deployment{
			pinned(recorded(2, deploy, StatusSucceeded, commitB, commitA)),
		}, commitB, PollCurrent},
		{"a rollback that could not read the tip pauses polling", []*Deployment{
			recorded(2, deploy, StatusSucceeded, commitA, commitA),
			recorded(3, rollback, StatusSucceeded, "", ""),
		}, commitB, PollPaused},
		{"a pinned deploy that could not read the tip pauses polling", []*Deployment{
			pinned(recorded(2, deploy, StatusSucceeded, "", commitA)),
		}, commitB, PollPaused},
		{"no deployment yet: nothing", nil, commitA, PollPaused},
		{"refused and cancelled ones never started", []*Deployment{
			recorded(1, deploy, StatusSucceeded, commitA, commitA),
			neverStarted(recorded(2, deploy, StatusRefused, "", commitB)),
			neverStarted(recorded(3, deploy, StatusCancelled, "", "")),
		}, commitA, PollCurrent},
		{"a deploy that never learnt its commit changed nothing", []*Deployment{
			recorded(2, rollback, StatusSucceeded, commitB, ""),
			recorded(3, deploy, StatusFailed, "", ""),
		}, commitB, PollCurrent},
		{"a deploy recorded before branch tips shipped the tip", []*Deployment{
			recorded(1, deploy, StatusSucceeded, "", commitA),
		}, commitA, PollCurrent},
		{"running elsewhere (the command line, another deployer)", []*Deployment{
			recorded(1, deploy, StatusSucceeded, commitA, commitA),
			recorded(2, deploy, StatusRunning, "", ""),
		}, commitB, PollBusy},
		{"queued elsewhere", []*Deployment{
			recorded(1, deploy, StatusSucceeded, commitA, commitA),
			neverStarted(recorded(2, deploy, StatusQueued, "", "")),
		}, commitB, PollBusy},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, rec, res := newPollRig()
			for _, d := range tc.history {
				rec.add(d)
			}
			res.set(tc.tip, nil)
			if got := p.Round(context.Background()); got != tc.want {
				t.Fatalf("round: %s, want %s", got, tc.want)
			}
			q := queued(p)
			if tc.want != PollQueued {
				if len(q) != 0 {
					t.Fatalf("queued %d deployments, want none", len(q))
				}
				return
			}
			if len(q) != 1 {
				t.Fatalf("queued %d deployments, want 1", len(q))
			}
			d := q[0]
			if d.Request.Trigger != TriggerPoll || d.Request.Push != (Push{Branch: "release"}) || d.Request.PayloadCommit != tc.tip || d.Status != StatusQueued {
				t.Errorf("queued %+v, want a deploy of the tip, trigger poll, payload commit %s", d.Request, tc.tip[:7])
			}
		})
	}
}

func TestPollLongRecord(t *testing.T) {
	// The last deployment that started is found past pages of refused ones.
	p, rec, res := newPollRig()
	rec.add(recorded(0, ActionRollback, StatusSucceeded, commitB, ""))
	for i := 1; i <= 3*recordPage; i++ {
		d := recorded(i, ActionDeploy, StatusRefused, "", commitC)
		d.Started = time.Time{}
		rec.add(d)
	}
	res.set(commitB, nil)
	if got := p.Round(context.Background()); got != PollCurrent {
		t.Fatalf("round: %s, want %s", got, PollCurrent)
	}
	if rec.n != 4 {
		t.Errorf("%d pages read, want 4", rec.n)
	}
}

func TestPollWhileTheWorkerIsBusy(t *testing.T) {
	p, rec, res := newPollRig()
	rec.add(recorded(1, ActionDeploy, StatusSucceeded, commitA, commitA))
	res.set(commitB, nil)
	if _, err := p.Worker.Submit(context.Background(), tip("d1", commitB)); err != nil {
		t.Fatal(err)
	}
	before := res.n.Load()
	if got := p.Round(context.Background()); got != PollBusy {
		t.Fatalf("round with a queued deployment: %s, want %s", got, PollBusy)
	}
	if len(queued(p)) != 1 || res.n.Load() != before || rec.n != 0 {
		t.Errorf("a busy round asked for a deployment or read the branch or the record")
	}

	// Running: the same.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go p.Worker.Run(ctx)
	waitFor(t, "the deployment to run", func() bool { return p.Worker.Health().Running != nil })
	if got := p.Round(context.Background()); got != PollBusy {
		t.Fatalf("round with a running deployment: %s, want %s", got, PollBusy)
	}
}

// turns answers Take from a list.
type turns struct {
	ok    bool
	err   error
	asked []string
}

func (tr *turns) Take(_ context.Context, app string, round time.Duration) (bool, error) {
	tr.asked = append(tr.asked, app+" "+round.String())
	return tr.ok, tr.err
}

func TestPollTurn(t *testing.T) {
	p, rec, res := newPollRig()
	rec.add(recorded(1, ActionDeploy, StatusSucceeded, commitA, commitA))
	res.set(commitB, nil)
	tr := &turns{}
	p.Turn = tr
	if got := p.Round(context.Background()); got != PollNotOurs {
		t.Fatalf("round another deployer took: %s, want %s", got, PollNotOurs)
	}
	if res.n.Load() != 0 || rec.n != 0 || len(queued(p)) != 0 {
		t.Errorf("a round not ours read the branch or the record, or asked for a deployment")
	}
	if len(tr.asked) != 1 || tr.asked[0] != "default 1m0s" {
		t.Errorf("Take asked %q, want the app and the interval", tr.asked)
	}
	tr.err = errors.New("database down")
	if got := p.Round(context.Background()); got != PollFailed {
		t.Errorf("round when the turn cannot be taken: %s, want %s", got, PollFailed)
	}
	tr.ok, tr.err = true, nil
	if got := p.Round(context.Background()); got != PollQueued {
		t.Errorf("round ours: %s, want %s", got, PollQueued)
	}
}

func TestPollFailures(t *testing.T) {
	p, rec, res := newPollRig()
	rec.add(recorded(1, ActionDeploy, StatusSucceeded, commitA, commitA))
	var outcomes []PollOutcome
	p.Polled = func(app string, o PollOutcome) { outcomes = append(outcomes, o) }
	res.set("", errors.New("resolve branch release on ssh://git.example/app.git: connection refused"))
	if got := p.Round(context.Background()); got != PollFailed {
		t.Fatalf("round when the branch cannot be read: %s, want %s", got, PollFailed)
	}
	rec.err = errors.New("database locked")
	if got := p.Round(context.Background()); got != PollFailed {
		t.Fatalf("round when the record cannot be read: %s, want %s", got, PollFailed)
	}
	// The next round tries again.
	rec.err = nil
	res.set(commitB, nil)
	if got := p.Round(context.Background()); got != PollQueued {
		t.Fatalf("round after the failures: %s, want %s", got, PollQueued)
	}
	if want := []PollOutcome{PollFailed, PollFailed, PollQueued}; !equalOutcomes(outcomes, want) {
		t.Errorf("Polled heard %v, want %v", outcomes, want)
	}
}

func equalOutcomes(a, b []PollOutcome) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestPollPromoted(t *testing.T) {
	// A tip the source app has not deployed everywhere is not asked for
	// (and so not recorded as refused every round); once it has, it is.
	p, rec, res := newPollRig()
	peers := &fakePeers{deployed: map[string]string{}}
	p.Worker.App, p.Worker.PromoteFrom, p.Worker.Peers = "production", "staging", peers
	d := recorded(1, ActionDeploy, StatusSucceeded, commitA, commitA)
	d.App = "production"
	rec.add(d)
	res.set(commitB, nil)
	if got := p.Round(context.Background()); got != PollRefused {
		t.Fatalf("round: %s, want %s", got, PollRefused)
	}
	if q := queued(p); len(q) != 0 {
		t.Fatalf("the refused tip made %d deployments, want none", len(q))
	}
	peers.deployed["staging"] = commitB
	if got := p.Round(context.Background()); got != PollQueued {
		t.Fatalf("round once staging deployed it: %s, want %s", got, PollQueued)
	}
	if q := queued(p); len(q) != 1 || q[0].Request.Push.Commit != commitB || q[0].App != "production" {
		t.Errorf("queued %+v, want one deployment of production pinned to the tip", q)
	}
}

func TestPollJitter(t *testing.T) {
	p, _, _ := newPollRig()
	for _, r := range []float64{0, 0.5, 0.999999} {
		p.random = func() float64 { return r }
		if w := p.firstWait(); w < 6*time.Second || w > time.Minute {
			t.Errorf("first wait with %v: %s, want within [6s, 1m]", r, w)
		}
		if w := p.nextWait(); w < 54*time.Second || w > 66*time.Second {
			t.Errorf("wait with %v: %s, want within 1m ± 10%%", r, w)
		}
	}
	p.random = func() float64 { return 0 }
	if w := p.nextWait(); w != 54*time.Second {
		t.Errorf("shortest wait %s, want 54s", w)
	}
	p.random = func() float64 { return 0.5 }
	if w := p.nextWait(); w != time.Minute {
		t.Errorf("middle wait %s, want 1m", w)
	}
}

func TestPollRun(t *testing.T) {
	// Run waits, polls, waits again: rounds happen when the clock says,
	// and Run ends with its context.
	p, rec, res := newPollRig()
	rec.add(recorded(1, ActionRollback, StatusSucceeded, commitA, ""))
	res.set(commitA, nil)
	waits := make(chan time.Duration)
	fire := make(chan time.Time)
	p.after = func(d time.Duration) <-chan time.Time { waits <- d; return fire }
	var mu sync.Mutex
	var outcomes []PollOutcome
	p.Polled = func(_ string, o PollOutcome) { mu.Lock(); outcomes = append(outcomes, o); mu.Unlock() }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- p.Run(ctx) }()

	for i := range 3 {
		w := <-waits
		lo, hi := 54*time.Second, 66*time.Second
		if i == 0 {
			lo, hi = 6*time.Second, time.Minute
		}
		if w < lo || w > hi {
			t.Errorf("wait %d: %s, want within [%s, %s]", i, w, lo, hi)
		}
		if i == 2 {
			res.set(commitB, nil) // a push whose webhook was lost
		}
		fire <- time.Time{}
	}
	<-waits
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []PollOutcome{PollCurrent, PollCurrent, PollQueued}; !equalOutcomes(outcomes, want) {
		t.Errorf("rounds: %v, want %v", outcomes, want)
	}
	if err := (&Poller{}).Run(ctx); err == nil {
		t.Error("Run without Worker, Record and Interval did not fail")
	}
}

func TestPollKeepsItsTurnWhileBusy(t *testing.T) {
	// The deployer that polls takes its turn also while it deploys, so
	// that the turn stays with it rather than passing to another deployer
	// in the middle of its own deployment.
	p, rec, res := newPollRig()
	rec.add(recorded(1, ActionDeploy, StatusSucceeded, commitA, commitA))
	res.set(commitB, nil)
	tr := &turns{ok: true}
	p.Turn = tr
	if _, err := p.Worker.Submit(context.Background(), tip("d1", commitB)); err != nil {
		t.Fatal(err)
	}
	if got := p.Round(context.Background()); got != PollBusy {
		t.Fatalf("round while busy: %s, want %s", got, PollBusy)
	}
	if len(tr.asked) != 1 {
		t.Errorf("Take asked %d times while busy, want once", len(tr.asked))
	}
}

func TestPollSeesWhatTheRecordHasNotYet(t *testing.T) {
	// The record is written behind the deployments: a rollback this
	// worker has just finished, not recorded yet, still counts.
	for _, tc := range []struct {
		name string
		mem  *Deployment // in the worker's memory, newest
		tip  string
		want PollOutcome
	}{
		{"a rollback not recorded yet stands", recorded(2, ActionRollback, StatusSucceeded, commitB, ""), commitB, PollCurrent},
		{"a deploy not recorded yet is not repeated", recorded(2, ActionDeploy, StatusSucceeded, commitB, commitB), commitB, PollCurrent},
		{"an older one in memory does not hide a newer record", recorded(0, ActionDeploy, StatusSucceeded, commitC, commitC), commitB, PollQueued},
		{"the memory only holds back: its tip is not deployed again", recorded(0, ActionDeploy, StatusSucceeded, commitB, commitB), commitB, PollCurrent},
		{"the same deployment: the memory's copy", recorded(1, ActionRollback, StatusSucceeded, commitB, ""), commitB, PollCurrent},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, rec, res := newPollRig()
			// The record's copy of deployment 1 was written before its
			// tip was known (the copy in memory has it).
			rec.add(recorded(1, ActionDeploy, StatusSucceeded, commitA, commitA))
			if tc.mem.ID == rec.deps[0].ID {
				rec.deps[0] = recorded(1, ActionRollback, StatusSucceeded, "", "")
			}
			p.Worker.all = []*Deployment{tc.mem}
			res.set(tc.tip, nil)
			if got := p.Round(context.Background()); got != tc.want {
				t.Fatalf("round: %s, want %s", got, tc.want)
			}
		})
	}
}

func TestPollStopsWithItsWorker(t *testing.T) {
	// A removed app's worker takes no more requests: its poller ends at
	// its next round, without one.
	p, rec, res := newPollRig()
	rec.add(recorded(1, ActionDeploy, StatusSucceeded, commitA, commitA))
	res.set(commitB, nil)
	fire := make(chan time.Time, 1)
	p.after = func(time.Duration) <-chan time.Time { return fire }
	var rounds atomic.Int32
	p.Polled = func(string, PollOutcome) { rounds.Add(1) }
	p.Worker.Close()
	fire <- time.Time{}
	if err := p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := rounds.Load(); n != 0 || res.n.Load() != 0 {
		t.Errorf("%d rounds after the worker closed, want none", n)
	}
}
