package historytest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pushdeploy/pushdeploy/deploy"
	"github.com/pushdeploy/pushdeploy/history"
)

// testInterrupted opens a database holding unfinished deployments of
// various owners: at the next start, only those whose owner is gone (as
// Options.Alive tells) become interrupted, with their running hosts and
// steps; queued hosts are skipped.
func testInterrupted(t *testing.T, s suite) {
	self := history.Owner{PID: 100, Host: "deployer-1", Start: "boot:1"}
	live := history.Owner{PID: 200, Host: "deployer-1", Start: "boot:2"}
	dead := history.Owner{PID: 300, Host: "deployer-2", Start: "boot:3"}
	alive := func(o history.Owner) bool { return o == self || o == live }
	for _, tc := range []struct {
		name   string
		owner  history.Owner
		status deploy.Status
		want   deploy.Status
	}{
		{"this process", self, deploy.StatusRunning, deploy.StatusRunning},
		{"a live process (a CLI deploy beside serve)", live, deploy.StatusRunning, deploy.StatusRunning},
		{"a live process, queued", live, deploy.StatusQueued, deploy.StatusQueued},
		{"a process that ended", dead, deploy.StatusRunning, deploy.StatusInterrupted},
		{"a process that ended, queued", dead, deploy.StatusQueued, deploy.StatusInterrupted},
		{"no owner recorded", history.Owner{}, deploy.StatusRunning, deploy.StatusInterrupted},
		{"finished ones are left alone", dead, deploy.StatusSucceeded, deploy.StatusSucceeded},
		{"refused ones are left alone", dead, deploy.StatusRefused, deploy.StatusRefused},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := s.newDB(t)
			st := open(t, db, history.Options{Self: self, Alive: alive})
			if st.Owner() != self {
				t.Fatalf("Owner() = %+v, want Options.Self %+v", st.Owner(), self)
			}
			d := &deploy.Deployment{ID: "d1", App: "staging", Action: "deploy", Status: tc.status, Queued: T0, Started: T0,
				Hosts: []*deploy.HostResult{
					{Host: deploy.Host{Name: "web1"}, Status: deploy.StatusRunning, Steps: []deploy.StepResult{
						{Name: "clone", Status: deploy.StatusSucceeded, Started: T0, Duration: time.Second},
						{Name: "venv", Status: deploy.StatusRunning, Started: T0.Add(time.Second)},
					}},
					{Host: deploy.Host{Name: "web2"}, Status: deploy.StatusQueued},
				}}
			if tc.status == deploy.StatusSucceeded || tc.status == deploy.StatusRefused {
				d.Finished = T0.Add(time.Minute)
			}
			if err := st.Save(context.Background(), d, tc.owner); err != nil {
				t.Fatal(err)
			}
			st.Close()
			st = open(t, db, history.Options{Self: self, Alive: alive}) // the next start
			got, _, err := st.Deployment(context.Background(), "d1")
			if err != nil {
				t.Fatal(err)
			}
			if got.Status != tc.want {
				t.Fatalf("status %q, want %q", got.Status, tc.want)
			}
			if tc.want != deploy.StatusInterrupted {
				if (got.Status == deploy.StatusRunning || got.Status == deploy.StatusQueued) && !got.Finished.IsZero() {
					t.Errorf("finished %v for a deployment left running", got.Finished)
				}
				return
			}
			if got.Finished.IsZero() || got.Err == nil || !strings.Contains(got.Err.Error(), "stopped before the deployment finished") {
				t.Errorf("interrupted without a finish time or a clear error: finished %v, error %v", got.Finished, got.Err)
			}
			if got.App != "staging" {
				t.Errorf("interrupted deployment's app %q, want staging", got.App)
			}
			if h := got.Hosts; h[0].Status != deploy.StatusInterrupted || h[1].Status != deploy.StatusSkipped ||
				h[0].Steps[0].Status != deploy.StatusSucceeded || h[0].Steps[1].Status != deploy.StatusInterrupted {
				t.Errorf("hosts after interruption: %+v %+v, steps %+v", h[0], h[1], h[0].Steps)
			}
		})
	}
}

// testOpenAtOnce: several deployers start at the same moment on a new
// database. Each Open succeeds (the schema is made once), and each sees
// what the others write.
func testOpenAtOnce(t *testing.T, s suite) {
	db := s.newDB(t)
	const n = 6
	stores := make([]history.Store, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { stores[i], errs[i] = db(context.Background(), history.Options{}) })
	}
	wg.Wait()
	for i, st := range stores {
		if st != nil {
			t.Cleanup(func() { st.Close() })
		}
		if errs[i] != nil {
			t.Errorf("Open %d of %d at once: %v", i+1, n, errs[i])
		}
	}
	if t.Failed() {
		return
	}
	for i, st := range stores {
		save(t, st, &deploy.Deployment{ID: fmt.Sprintf("d%d", i), Action: "deploy", Status: deploy.StatusQueued, Queued: T0})
	}
	for i, st := range stores {
		all, err := st.Deployments(context.Background(), deploy.Filter{})
		if err != nil || len(all) != n {
			t.Errorf("store %d sees %d deployments (%v), want %d", i, len(all), err, n)
		}
	}
}

// testInterrupt: a deployer marks one deployment interrupted whose
// deployer died (its claim expired): an unfinished one becomes
// interrupted with the reason, its running hosts and steps too; a
// finished one is left alone; one the record does not have is not found.
func testInterrupt(t *testing.T, s suite) {
	ctx := context.Background()
	st := s.store(t, history.Options{})
	running := &deploy.Deployment{ID: "running", App: "web", Action: "deploy", Status: deploy.StatusRunning, Queued: T0, Started: T0,
		Hosts: []*deploy.HostResult{
			{Host: deploy.Host{Name: "web1"}, Status: deploy.StatusRunning, Steps: []deploy.StepResult{
				{Name: "venv", Status: deploy.StatusRunning, Started: T0},
			}},
			{Host: deploy.Host{Name: "web2"}, Status: deploy.StatusQueued},
		}}
	done := &deploy.Deployment{ID: "done", App: "web", Action: "deploy", Status: deploy.StatusSucceeded, Queued: T0, Started: T0, Finished: T0.Add(time.Minute)}
	save(t, st, running, done)
	const reason = "interrupted: its deployer node-b stopped renewing its claim"
	for _, tc := range []struct {
		id        string
		wantFound bool
		want      deploy.Status
	}{
		{"running", true, deploy.StatusInterrupted},
		{"done", true, deploy.StatusSucceeded},
		{"unknown", false, ""},
	} {
		found, err := st.Interrupt(ctx, tc.id, reason)
		if err != nil || found != tc.wantFound {
			t.Fatalf("Interrupt(%s) = %v, %v; want found %v", tc.id, found, err, tc.wantFound)
		}
		if !found {
			continue
		}
		got, _, err := st.Deployment(ctx, tc.id)
		if err != nil {
			t.Fatal(err)
		}
		if got.Status != tc.want {
			t.Errorf("%s: status %q after Interrupt, want %q", tc.id, got.Status, tc.want)
		}
		if tc.want != deploy.StatusInterrupted {
			continue
		}
		if got.Err == nil || got.Err.Error() != reason || got.Finished.IsZero() {
			t.Errorf("%s: error %v, finished %v; want the reason and a finish time", tc.id, got.Err, got.Finished)
		}
		if h := got.Hosts; h[0].Status != deploy.StatusInterrupted || h[1].Status != deploy.StatusSkipped || h[0].Steps[0].Status != deploy.StatusInterrupted {
			t.Errorf("%s: hosts %+v %+v, steps %+v", tc.id, h[0], h[1], h[0].Steps)
		}
	}
}

// testQueuedNeverGoesBack: the deployer that queued a deployment may write
// its queued snapshot after the deployer that runs it wrote it running
// (several deployers on one database): the record keeps the running one,
// hosts and all. A queued snapshot still updates a queued row.
func testQueuedNeverGoesBack(t *testing.T, s suite) {
	ctx := context.Background()
	st := s.store(t, history.Options{})
	queued := &deploy.Deployment{ID: "d1", App: "web", Action: "deploy", Status: deploy.StatusQueued, Queued: T0,
		Request: deploy.Request{PayloadCommit: Commit('a')}}
	save(t, st, queued)
	queued.Request.PayloadCommit = Commit('b')
	save(t, st, queued)
	if got, _, _ := st.Deployment(ctx, "d1"); got == nil || got.Request.PayloadCommit != Commit('b') {
		t.Fatalf("a queued row takes a newer queued snapshot: got %+v", got)
	}
	running := &deploy.Deployment{ID: "d1", App: "web", Action: "deploy", Status: deploy.StatusRunning, Queued: T0, Started: T0,
		Hosts: []*deploy.HostResult{{Host: deploy.Host{Name: "web1"}, Status: deploy.StatusRunning}}}
	save(t, st, running, queued)
	got, _, err := st.Deployment(ctx, "d1")
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != deploy.StatusRunning || len(got.Hosts) != 1 {
		t.Errorf("after a late queued snapshot: status %q, %d hosts; want running with its host", got.Status, len(got.Hosts))
	}
}

// testTakenOverStays: a deployer (a) lost its claim while cut from the
// database, and another (b) recorded its deployment interrupted. When a's
// network returns, its late writes (the final snapshot, a host, a step)
// leave the record as b made it. A deployment a finished itself, a still
// rewrites (its final snapshot after a first one).
func testTakenOverStays(t *testing.T, s suite) {
	ctx := context.Background()
	db := s.newDB(t)
	alive := func(history.Owner) bool { return true }
	a := open(t, db, history.Options{Self: history.Owner{PID: 101, Host: "node-a", Start: "boot:1"}, Alive: alive})
	b := open(t, db, history.Options{Self: history.Owner{PID: 202, Host: "node-b", Start: "boot:2"}, Alive: alive})
	running := func(id string) *deploy.Deployment {
		return &deploy.Deployment{ID: id, App: "web", Action: "deploy", Status: deploy.StatusRunning, Queued: T0, Started: T0,
			Hosts: []*deploy.HostResult{{Host: deploy.Host{Name: "web1"}, Status: deploy.StatusRunning, Steps: []deploy.StepResult{
				{Name: "pip", Status: deploy.StatusRunning, Started: T0},
			}}}}
	}
	save(t, a, running("lost"), running("own"))
	const reason = "interrupted: its deployer node-a stopped renewing its claim"
	if found, err := b.Interrupt(ctx, "lost", reason); err != nil || !found {
		t.Fatalf("Interrupt = %v, %v", found, err)
	}
	want, _, err := b.Deployment(ctx, "lost")
	if err != nil {
		t.Fatal(err)
	}

	late := running("lost")
	late.Status, late.Finished = deploy.StatusInterrupted, T0.Add(time.Hour)
	late.Err = errors.New("interrupted: this deployer lost its claim on the deployment before it finished")
	late.Hosts[0].Status, late.Hosts[0].Steps[0].Status = deploy.StatusFailed, deploy.StatusFailed
	save(t, a, late)
	if err := a.SaveHost(ctx, "lost", "web1", 0, deploy.StatusFailed); err != nil {
		t.Fatal(err)
	}
	if err := a.SaveStep(ctx, "lost", "web1", 0, deploy.StepResult{Name: "pip", Status: deploy.StatusFailed, Err: errors.New("stopped")}); err != nil {
		t.Fatal(err)
	}
	got, _, err := a.Deployment(ctx, "lost")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got, SameDeployment); diff != "" {
		t.Errorf("the late writes of the deployer that lost the claim changed the record (-interrupted +got):\n%s", diff)
	}

	own := running("own")
	own.Status, own.Finished, own.Err = deploy.StatusFailed, T0.Add(time.Minute), errors.New("pip failed")
	save(t, a, own)
	own.Status, own.Err = deploy.StatusInterrupted, errors.New("interrupted: this deployer lost its claim")
	save(t, a, own)
	if got, _, err := a.Deployment(ctx, "own"); err != nil || got.Status != deploy.StatusInterrupted || got.Err == nil || got.Err.Error() != own.Err.Error() {
		t.Errorf("a deployer rewriting the deployment it finished itself: got %+v, %v; want its last snapshot", got, err)
	}
}
