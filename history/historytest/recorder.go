package historytest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pushdeploy/pushdeploy/deploy"
	"github.com/pushdeploy/pushdeploy/history"
)

// Script plays the events of a two-host deployment, as the deploy package
// tells them: step events before their host's, the deployment's snapshot
// when its status, commit or release changes. It stops after n events
// (all when n < 0), as a deployer killed midway would.
func Script(n int) ([]deploy.Event, *deploy.Deployment) {
	dep := deploy.NewDeployment(deploy.Request{Trigger: "webhook", Provider: "github", DeliveryID: "g-1", Actor: "ada",
		Push: deploy.Push{Branch: "release"}, PayloadCommit: Commit('a')}, T0)
	dep.App = "staging" // as the app's worker stamps it
	var evs []deploy.Event
	at := T0
	tick := func() time.Time { at = at.Add(time.Second); return at }
	emit := func(ev deploy.Event) {
		ev.Seq, ev.DeploymentID = len(evs)+1, dep.ID
		if ev.Time.IsZero() {
			ev.Time = at
		}
		if ev.Kind == deploy.EventDeployment {
			ev.Deployment, ev.Status = dep.Snapshot(), dep.Status
		}
		evs = append(evs, ev)
	}
	emit(deploy.Event{Kind: deploy.EventDeployment})
	dep.Status, dep.Started = deploy.StatusRunning, tick()
	for _, name := range []string{"web1", "web2"} {
		dep.Hosts = append(dep.Hosts, &deploy.HostResult{Host: deploy.Host{Name: name}, Status: deploy.StatusQueued})
		emit(deploy.Event{Kind: deploy.EventHost, Host: name, Status: deploy.StatusQueued})
	}
	emit(deploy.Event{Kind: deploy.EventDeployment})
	dep.Release, dep.ReleaseName = deploy.Release{Branch: "release", Commit: Commit('a')}, "20261125203954-aaaaaaa"
	emit(deploy.Event{Kind: deploy.EventDeployment})
	for _, h := range dep.Hosts {
		h.Status = deploy.StatusRunning
		emit(deploy.Event{Kind: deploy.EventHost, Host: h.Host.Name, Status: h.Status})
		for _, step := range []deploy.Step{"clone", "venv", "restart", "restart"} {
			st := deploy.StepResult{Name: step, Status: deploy.StatusRunning, Started: tick()}
			h.Steps = append(h.Steps, st)
			emit(deploy.Event{Kind: deploy.EventStep, Host: h.Host.Name, Step: step, Status: deploy.StatusRunning, Time: st.Started})
			emit(deploy.Event{Kind: deploy.EventOutput, Host: h.Host.Name, Step: step, Line: "working"})
			last := &h.Steps[len(h.Steps)-1]
			last.Status, last.Duration, last.Output = deploy.StatusSucceeded, 500*time.Millisecond, string(step)+" output on "+h.Host.Name
			tick()
			emit(deploy.Event{Kind: deploy.EventStep, Host: h.Host.Name, Step: step, Status: deploy.StatusSucceeded, Duration: last.Duration})
		}
		h.Status, h.Duration = deploy.StatusSucceeded, 4*time.Second
		emit(deploy.Event{Kind: deploy.EventHost, Host: h.Host.Name, Status: h.Status})
	}
	dep.Status, dep.Finished = deploy.StatusSucceeded, tick()
	emit(deploy.Event{Kind: deploy.EventDeployment})
	if n >= 0 {
		evs = evs[:n]
	}
	return evs, dep
}

func testRecorderWritesTheWholeDeployment(t *testing.T, s suite) {
	st := s.store(t, history.Options{})
	rec := history.NewRecorder(st, nil)
	rec.Start()
	evs, want := Script(-1)
	for _, ev := range evs {
		rec.Observe(ev)
	}
	rec.Close() // everything queued is written before Close returns
	got, ok, err := st.Deployment(context.Background(), want.ID)
	if err != nil || !ok {
		t.Fatalf("Deployment: %v %v", ok, err)
	}
	if diff := cmp.Diff(want, got, SameDeployment); diff != "" {
		t.Errorf("recorded deployment differs (-want +got):\n%s", diff)
	}
}

// testRecorderMidway stops the events at several points of a deployment:
// what was heard is in the store, steps numbered as they ran (the same
// step name twice gives two rows).
func testRecorderMidway(t *testing.T, s suite) {
	all, _ := Script(-1)
	for _, tc := range []struct {
		name       string
		n          int
		status     deploy.Status
		web1, web2 []string // "step:status"
	}{
		{"queued", 1, deploy.StatusQueued, nil, nil},
		{"hosts known", 4, deploy.StatusRunning, nil, nil},
		{"first step running", 7, deploy.StatusRunning, []string{"clone:running"}, nil},
		{"second restart running", 17, deploy.StatusRunning,
			[]string{"clone:succeeded", "venv:succeeded", "restart:succeeded", "restart:running"}, nil},
		{"second host started", 21, deploy.StatusRunning,
			[]string{"clone:succeeded", "venv:succeeded", "restart:succeeded", "restart:succeeded"}, []string{"clone:running"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			evs, dep := Script(tc.n)
			if len(evs) > len(all) {
				t.Fatal("script too short")
			}
			st := s.store(t, history.Options{})
			rec := history.NewRecorder(st, nil)
			rec.Start()
			for _, ev := range evs {
				rec.Observe(ev)
			}
			rec.Close()
			got, ok, err := st.Deployment(context.Background(), dep.ID)
			if err != nil || !ok {
				t.Fatalf("Deployment: %v %v", ok, err)
			}
			if got.Status != tc.status {
				t.Errorf("status %s, want %s", got.Status, tc.status)
			}
			steps := map[string][]string{}
			for _, h := range got.Hosts {
				steps[h.Host.Name] = nil
				for _, st := range h.Steps {
					steps[h.Host.Name] = append(steps[h.Host.Name], fmt.Sprintf("%s:%s", st.Name, st.Status))
					if st.Started.IsZero() {
						t.Errorf("%s %s: no start time", h.Host.Name, st.Name)
					}
				}
			}
			if diff := cmp.Diff(tc.web1, steps["web1"]); diff != "" {
				t.Errorf("web1 steps (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.web2, steps["web2"]); diff != "" {
				t.Errorf("web2 steps (-want +got):\n%s", diff)
			}
		})
	}
}

// testObserveDoesNotWaitForTheDatabase: events are queued while the writer
// has not even started, and all of them are written by Close.
func testObserveDoesNotWaitForTheDatabase(t *testing.T, s suite) {
	st := s.store(t, history.Options{})
	rec := history.NewRecorder(st, nil)
	const n = 2000
	start := time.Now()
	for i := range n {
		d := &deploy.Deployment{ID: fmt.Sprintf("d%04d", i), Action: "deploy", Status: deploy.StatusQueued, Queued: T0}
		rec.Observe(deploy.Event{Seq: 1, Kind: deploy.EventDeployment, DeploymentID: d.ID, Deployment: d, Status: d.Status})
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("%d Observe calls took %v: they must not wait for writes", n, took)
	}
	rec.Start()
	rec.Close()
	all, err := st.Deployments(context.Background(), deploy.Filter{})
	if err != nil || len(all) != n {
		t.Fatalf("%d deployments recorded (%v), want %d", len(all), err, n)
	}
}

// testFailedWriteIsLogged: a store that cannot be written loses the
// record, logs why, and Close still returns.
func testFailedWriteIsLogged(t *testing.T, s suite) {
	st := s.store(t, history.Options{})
	var logs bytes.Buffer
	rec := history.NewRecorder(st, slog.New(slog.NewTextHandler(&logs, nil)))
	rec.Start()
	st.Close()
	evs, _ := Script(-1)
	for _, ev := range evs {
		rec.Observe(ev)
	}
	done := make(chan struct{})
	go func() { rec.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatal("Close did not return")
	}
	if !strings.Contains(logs.String(), "history: write failed") {
		t.Errorf("no failure logged:\n%s", logs.String())
	}
	// After Close, events are dropped, not queued for ever.
	rec.Observe(evs[0])
	if !strings.Contains(logs.String(), "after the recorder closed") {
		t.Errorf("event after Close not logged:\n%s", logs.String())
	}
}

func testRecorderPrunesPeriodically(t *testing.T, s suite) {
	now := T0.AddDate(1, 0, 0)
	st := s.store(t, history.Options{Days: 30, Now: func() time.Time { return now }})
	old := &deploy.Deployment{ID: "old", Action: "deploy", Status: deploy.StatusSucceeded, Queued: T0, Finished: T0}
	save(t, st, old)
	rec := history.NewRecorder(st, nil)
	rec.PruneEvery = 10 * time.Millisecond
	rec.Start()
	defer rec.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, ok, err := st.Deployment(context.Background(), "old")
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(errors.New("the old deployment was never pruned"))
		}
		time.Sleep(10 * time.Millisecond)
	}
}
