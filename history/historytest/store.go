package historytest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pushdeploy/pushdeploy/deploy"
	"github.com/pushdeploy/pushdeploy/history"
)

func testSaveAndReadBack(t *testing.T, s suite) {
	st := s.store(t, history.Options{})
	ctx := context.Background()
	t0 := T0
	for _, tc := range []struct {
		name string
		dep  *deploy.Deployment
	}{
		{"queued, nothing known yet", &deploy.Deployment{
			ID: "20261125-203953-000001", App: deploy.DefaultApp, Action: "deploy", Status: deploy.StatusQueued, Queued: t0,
			Request: deploy.Request{Trigger: "api", Actor: "api", Push: deploy.Push{Branch: "release", Commit: Commit('c')}, Hosts: []string{"web2", "web3"}},
		}},
		{"webhook deploy that succeeded on two hosts", &deploy.Deployment{
			ID: "20261125-203953-000002", App: "staging", Action: "deploy", Status: deploy.StatusSucceeded,
			Queued: t0, Started: t0.Add(time.Second), Finished: t0.Add(12 * time.Second),
			Request: deploy.Request{Trigger: "webhook", Provider: "bitbucket-cloud", DeliveryID: "d-1", Actor: "Ada",
				Push: deploy.Push{Branch: "release"}, PayloadCommit: Commit('a')},
			Release: deploy.Release{Branch: "release", Commit: Commit('a')}, ReleaseName: "20261125203954-aaaaaaa",
			Hosts: []*deploy.HostResult{
				{Host: deploy.Host{Name: "web1"}, Status: deploy.StatusSucceeded, Duration: 4500 * time.Millisecond, Steps: []deploy.StepResult{
					{Name: "connect", Status: deploy.StatusSucceeded, Started: t0.Add(time.Second), Duration: 60 * time.Millisecond},
					{Name: "venv", Status: deploy.StatusSucceeded, Started: t0.Add(2 * time.Second), Duration: 4620 * time.Millisecond, Output: "created virtual environment\n…"},
				}},
				{Host: deploy.Host{Name: "deploy@[::1]:2222"}, Status: deploy.StatusSucceeded, Duration: time.Second, Steps: []deploy.StepResult{
					{Name: "restart", Status: deploy.StatusSucceeded, Started: t0.Add(11 * time.Second), Duration: 410 * time.Millisecond},
					{Name: "restart", Status: deploy.StatusSucceeded, Started: t0.Add(11*time.Second + 500*time.Millisecond), Duration: 1},
				}},
			},
		}},
		{"failed with the step's output", &deploy.Deployment{
			ID: "20261125-203953-000003", App: "production", Action: "deploy", Status: deploy.StatusFailed,
			Queued: t0, Started: t0, Finished: t0.Add(time.Minute),
			Request: deploy.Request{Trigger: "cli", Actor: "root", Push: deploy.Push{Branch: "release"}},
			Release: deploy.Release{Branch: "release", Commit: Commit('b')}, ReleaseName: "20261125203953-bbbbbbb",
			Err: errors.New("host web1: pip: exit status 1\n    ERROR: no matching distribution for broken==1.0"),
			Hosts: []*deploy.HostResult{
				{Host: deploy.Host{Name: "web1"}, Status: deploy.StatusFailed, Steps: []deploy.StepResult{
					{Name: "pip", Status: deploy.StatusFailed, Started: t0, Duration: time.Second, Err: errors.New("exit status 1"), Output: "ERROR: no matching distribution"},
				}},
				{Host: deploy.Host{Name: "web2"}, Status: deploy.StatusSkipped},
			},
		}},
		{"rollback to a named release", &deploy.Deployment{
			ID: "20261125-203953-000004", App: "a-0-very-long-app-name-of-63-characters-in-all-0123456789abcdef", Action: "rollback", Status: deploy.StatusSucceeded,
			Queued: t0, Started: t0, Finished: t0.Add(time.Second),
			Request: deploy.Request{Action: "rollback", Trigger: "cli", Actor: "ops", Release: "20261125183400-1a2b3c4"},
			Release: deploy.Release{Commit: Commit('1')}, ReleaseName: "20261125183400-1a2b3c4",
		}},
		{"text as users and forges write it", &deploy.Deployment{
			ID: "20261125-203953-000005", App: deploy.DefaultApp, Action: "deploy", Status: deploy.StatusFailed, Queued: t0, Finished: t0,
			Request: deploy.Request{Trigger: "webhook", Actor: "Zoë O'Brien; DROP TABLE deployments; -- \"quoted\" ✓", Push: deploy.Push{Branch: "release"}},
			Err:     errors.New("a question mark? $1 and 100% of ? placeholders stay text"),
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			save(t, st, tc.dep)
			got, ok, err := st.Deployment(ctx, tc.dep.ID)
			if err != nil || !ok {
				t.Fatalf("Deployment(%s): %v, %v", tc.dep.ID, ok, err)
			}
			if diff := cmp.Diff(tc.dep, got, SameDeployment); diff != "" {
				t.Errorf("read back differs (-saved +read):\n%s", diff)
			}
			// Saving again (a later snapshot) replaces, never duplicates.
			save(t, st, tc.dep)
			again, _, _ := st.Deployment(ctx, tc.dep.ID)
			if diff := cmp.Diff(tc.dep, again, SameDeployment); diff != "" {
				t.Errorf("saved twice (-saved +read):\n%s", diff)
			}
		})
	}
	if _, ok, err := st.Deployment(ctx, "nope"); ok || err != nil {
		t.Errorf("unknown id: %v, %v; want false, nil", ok, err)
	}
}

func testDeploymentsFilters(t *testing.T, s suite) {
	st := s.store(t, history.Options{})
	ctx := context.Background()
	var all []*deploy.Deployment
	statuses := []deploy.Status{deploy.StatusSucceeded, deploy.StatusFailed, deploy.StatusRunning, deploy.StatusSucceeded, deploy.StatusQueued}
	for i, status := range statuses {
		d := &deploy.Deployment{ID: fmt.Sprintf("20261125-2039%02d-00000%d", i, i), App: deploy.DefaultApp, Action: "deploy", Status: status,
			Queued: T0.Add(time.Duration(i) * time.Minute), Request: deploy.Request{Trigger: "api", Push: deploy.Push{Branch: "release"}}}
		if status != deploy.StatusQueued {
			d.Release.Commit = Commit("abcde"[i])
		} else {
			d.Request.Push.Commit = Commit('f')
		}
		save(t, st, d)
		all = append([]*deploy.Deployment{d}, all...) // newest first
	}
	// Two queued in the same instant: the id decides.
	same := &deploy.Deployment{ID: all[0].ID + "z", App: deploy.DefaultApp, Action: "deploy", Status: deploy.StatusQueued, Queued: all[0].Queued}
	save(t, st, same)
	all = append([]*deploy.Deployment{same}, all...)
	for _, tc := range []struct {
		name string
		f    deploy.Filter
		want []*deploy.Deployment
	}{
		{"everything, newest first", deploy.Filter{}, all},
		{"limit", deploy.Filter{Limit: 2}, all[:2]},
		{"before", deploy.Filter{BeforeID: all[1].ID, BeforeQueued: all[1].Queued, Limit: 2}, all[2:4]},
		{"before in the same instant", deploy.Filter{BeforeID: same.ID, BeforeQueued: same.Queued}, all[1:]},
		{"status", deploy.Filter{Status: deploy.StatusSucceeded}, []*deploy.Deployment{all[2], all[5]}},
		{"commit prefix", deploy.Filter{Commit: "bbb"}, []*deploy.Deployment{all[4]}},
		{"commit prefix of a queued request", deploy.Filter{Commit: "ff"}, []*deploy.Deployment{all[1]}},
		{"since", deploy.Filter{Since: T0.Add(3 * time.Minute)}, all[:3]},
		{"since, one nanosecond later", deploy.Filter{Since: T0.Add(3*time.Minute + 1)}, all[:2]},
		{"nothing", deploy.Filter{Status: deploy.StatusInterrupted}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := st.Deployments(ctx, tc.f)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(ids(tc.want), ids(got)); diff != "" {
				t.Errorf("ids (-want +got):\n%s", diff)
			}
			// The in-memory filter agrees with the database.
			var mem []*deploy.Deployment
			for _, d := range all {
				if tc.f.Match(d) && (tc.f.Limit == 0 || len(mem) < tc.f.Limit) {
					mem = append(mem, d)
				}
			}
			if diff := cmp.Diff(ids(tc.want), ids(mem)); diff != "" {
				t.Errorf("Filter.Match disagrees (-database +memory):\n%s", diff)
			}
		})
	}
}

// testTwoWritersAtOnce: serve and a CLI deploy (or two deployers) share
// the database. Two stores (two connection pools, as two processes would
// have) write at the same time.
func testTwoWritersAtOnce(t *testing.T, s suite) {
	db := s.newDB(t)
	a, b := open(t, db, history.Options{}), open(t, db, history.Options{})
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for w, st := range []history.Store{a, b} {
		wg.Go(func() {
			for i := range 50 {
				d := &deploy.Deployment{ID: fmt.Sprintf("%d-%02d", w, i), Action: "deploy", Status: deploy.StatusRunning, Queued: T0,
					Hosts: []*deploy.HostResult{{Host: deploy.Host{Name: "web1"}, Status: deploy.StatusRunning,
						Steps: []deploy.StepResult{{Name: "clone", Status: deploy.StatusRunning, Started: T0}}}}}
				if err := st.Save(context.Background(), d, st.Owner()); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	all, err := a.Deployments(context.Background(), deploy.Filter{})
	if err != nil || len(all) != 100 {
		t.Fatalf("%d deployments (%v), want 100", len(all), err)
	}
}

// testPrune: at open, the deployments that ended more than Days ago go;
// running ones stay, however old.
func testPrune(t *testing.T, s suite) {
	now := T0.AddDate(0, 0, 200)
	clock := func() time.Time { return now }
	for _, tc := range []struct {
		days int
		want []string
	}{
		{90, []string{"recent", "running-for-ever"}},
		{0, []string{"old", "recent", "running-for-ever"}},
		{365, []string{"old", "recent", "running-for-ever"}},
	} {
		t.Run(fmt.Sprint(tc.days, " days"), func(t *testing.T) {
			db := s.newDB(t)
			st := open(t, db, history.Options{Now: clock})
			for _, d := range []*deploy.Deployment{
				{ID: "old", Status: deploy.StatusSucceeded, Queued: now.AddDate(0, 0, -100), Finished: now.AddDate(0, 0, -100)},
				{ID: "recent", Status: deploy.StatusFailed, Queued: now.AddDate(0, 0, -10), Finished: now.AddDate(0, 0, -10)},
				// Never finished, and owned by this live process: kept.
				{ID: "running-for-ever", Status: deploy.StatusRunning, Queued: now.AddDate(0, 0, -150)},
			} {
				d.Action = "deploy"
				d.Hosts = []*deploy.HostResult{{Host: deploy.Host{Name: "web1"}, Status: d.Status, Steps: []deploy.StepResult{{Name: "clone", Status: d.Status}}}}
				save(t, st, d)
			}
			st.Close()
			// Pruned at open.
			st = open(t, db, history.Options{Days: tc.days, Now: clock})
			got, err := st.Deployments(context.Background(), deploy.Filter{})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, slices.Sorted(slices.Values(ids(got)))); diff != "" {
				t.Errorf("kept (-want +got):\n%s", diff)
			}
			// Pruning again finds nothing more.
			if n, err := st.Prune(context.Background()); n != 0 || err != nil {
				t.Errorf("second Prune: %d, %v; want 0, nil", n, err)
			}
		})
	}
}

// testCheck: an open store is writable; a closed one says it is not.
func testCheck(t *testing.T, s suite) {
	st := s.store(t, history.Options{})
	if err := st.Check(context.Background()); err != nil {
		t.Fatalf("Check: %v", err)
	}
	if err := st.Check(context.Background()); err != nil {
		t.Fatalf("second Check: %v", err)
	}
	st.Close()
	if err := st.Check(context.Background()); err == nil {
		t.Fatal("Check of a closed store: no error")
	}
}
