package historytest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pushdeploy/pushdeploy/deploy"
	"github.com/pushdeploy/pushdeploy/history"
)

// testApps: each deployment is recorded with its app and read back with
// it; Filter.App selects one app's; a deployment without an app is the
// default app's.
func testApps(t *testing.T, s suite) {
	st := s.store(t, history.Options{})
	ctx := context.Background()
	var all []*deploy.Deployment // newest first
	for i, app := range []string{"staging", "production", "staging", "", "production", deploy.DefaultApp} {
		d := &deploy.Deployment{ID: fmt.Sprintf("20261125-2039%02d-00000%d", i, i), App: app, Action: deploy.ActionDeploy,
			Status: deploy.StatusSucceeded, Queued: T0.Add(time.Duration(i) * time.Minute), Finished: T0.Add(time.Duration(i)*time.Minute + time.Second),
			Request: deploy.Request{Trigger: "webhook", Push: deploy.Push{Branch: "release"}}, Release: deploy.Release{Branch: "release", Commit: Commit('a' + byte(i))}}
		save(t, st, d)
		all = append([]*deploy.Deployment{d}, all...)
	}
	for _, d := range all {
		got, ok, err := st.Deployment(ctx, d.ID)
		if err != nil || !ok {
			t.Fatalf("Deployment(%s): %v %v", d.ID, ok, err)
		}
		want := d.App
		if want == "" {
			want = deploy.DefaultApp
		}
		if got.App != want {
			t.Errorf("deployment %s saved with app %q: read back %q, want %q", d.ID, d.App, got.App, want)
		}
	}
	for _, tc := range []struct {
		name string
		f    deploy.Filter
		want []string
	}{
		{"every app", deploy.Filter{}, ids(all)},
		{"staging", deploy.Filter{App: "staging"}, []string{all[3].ID, all[5].ID}},
		{"production, newest", deploy.Filter{App: "production", Limit: 1}, []string{all[1].ID}},
		{"default, also when saved without an app", deploy.Filter{App: deploy.DefaultApp}, []string{all[0].ID, all[2].ID}},
		{"staging and a commit", deploy.Filter{App: "staging", Commit: Commit('c')[:7]}, []string{all[3].ID}},
		{"a commit of another app", deploy.Filter{App: "staging", Commit: Commit('b')[:7]}, nil},
		{"staging, next page", deploy.Filter{App: "staging", BeforeID: all[3].ID, BeforeQueued: all[3].Queued}, []string{all[5].ID}},
		{"an app with none", deploy.Filter{App: "nope"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := st.Deployments(ctx, tc.f)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, ids(got)); diff != "" {
				t.Errorf("ids (-want +got):\n%s", diff)
			}
			for _, d := range got {
				if !tc.f.Match(d) {
					t.Errorf("deployment %s (app %q) listed, but Filter.Match refuses it", d.ID, d.App)
				}
			}
		})
	}
}

// testHostsDeployed: the hosts on which a deploy of a commit in an app
// ended succeeded, and only those.
func testHostsDeployed(t *testing.T, s suite) {
	st := s.store(t, history.Options{})
	ctx := context.Background()
	a, b := Commit('a'), Commit('b')
	n := 0
	dep := func(app string, action deploy.Action, status deploy.Status, commit string, hosts map[string]deploy.Status) {
		t.Helper()
		n++
		d := &deploy.Deployment{ID: fmt.Sprintf("20261125-203953-%06d", n), App: app, Action: action, Status: status,
			Queued: T0.Add(time.Duration(n) * time.Second), Release: deploy.Release{Commit: commit}}
		if status != deploy.StatusRunning {
			d.Finished = d.Queued.Add(time.Second)
		}
		for _, name := range []string{"web1", "web2", "web3", "web4", "web5", "web6", "web7", "web8", "web9", "web10"} {
			if hs, ok := hosts[name]; ok {
				d.Hosts = append(d.Hosts, &deploy.HostResult{Host: deploy.Host{Name: name}, Status: hs})
			}
		}
		save(t, st, d)
	}
	ok, failed, back := deploy.StatusSucceeded, deploy.StatusFailed, deploy.StatusRolledBack
	dep("staging", deploy.ActionDeploy, ok, a, map[string]deploy.Status{"web1": ok, "web2": ok})
	dep("staging", deploy.ActionDeploy, ok, a, map[string]deploy.Status{"web1": ok}) // web1 again: listed once
	dep("staging", deploy.ActionDeploy, failed, a, map[string]deploy.Status{"web3": ok, "web4": failed, "web5": deploy.StatusSkipped})
	dep("staging", deploy.ActionDeploy, failed, a, map[string]deploy.Status{"web6": back, "web7": failed}) // DEPLOY_ROLLBACK_ON_FAILURE=all
	dep("staging", deploy.ActionRollback, ok, a, map[string]deploy.Status{"web8": ok})                     // a rollback is no deploy
	dep("staging", deploy.ActionDeploy, deploy.StatusRunning, a, map[string]deploy.Status{"web9": ok})     // may still go back
	dep("staging", deploy.ActionDeploy, deploy.StatusInterrupted, a, map[string]deploy.Status{"web10": ok, "web2": deploy.StatusInterrupted})
	dep("production", deploy.ActionDeploy, ok, a, map[string]deploy.Status{"web5": ok})
	dep("staging", deploy.ActionDeploy, ok, b, map[string]deploy.Status{"web4": ok})
	dep(deploy.DefaultApp, "", ok, b, map[string]deploy.Status{"web7": ok}) // recorded without an action: a deploy
	for _, tc := range []struct {
		app, commit string
		want        []string
	}{
		{"staging", a, []string{"web1", "web10", "web2", "web3"}},
		{"production", a, []string{"web5"}},
		{"staging", b, []string{"web4"}},
		{deploy.DefaultApp, b, []string{"web7"}},
		{"staging", a[:7], nil}, // the full hash only
		{"staging", Commit('c'), nil},
		{"nope", a, nil},
	} {
		t.Run(tc.app+" "+tc.commit[:7], func(t *testing.T) {
			got, err := st.HostsDeployed(ctx, tc.app, tc.commit)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("HostsDeployed(%s, %s) (-want +got):\n%s", tc.app, tc.commit, diff)
			}
		})
	}
}

// testLatest: the newest deployment of an app, whatever its status.
func testLatest(t *testing.T, s suite) {
	st := s.store(t, history.Options{})
	ctx := context.Background()
	if d, ok, err := st.Latest(ctx, "staging"); ok || err != nil {
		t.Fatalf("Latest of an empty history: %v, %v, %v; want false", d, ok, err)
	}
	mk := func(id, app string, q time.Time, status deploy.Status) *deploy.Deployment {
		return &deploy.Deployment{ID: id, App: app, Action: deploy.ActionDeploy, Status: status, Queued: q,
			Hosts: []*deploy.HostResult{{Host: deploy.Host{Name: "web1"}, Status: status}}}
	}
	save(t, st,
		mk("20261125-203953-000001", "staging", T0, deploy.StatusSucceeded),
		mk("20261125-203953-000003", "staging", T0.Add(time.Minute), deploy.StatusFailed),
		mk("20261125-203953-000002", "staging", T0.Add(time.Minute), deploy.StatusSucceeded), // same instant: the id decides
		mk("20261125-203953-000004", "production", T0.Add(2*time.Minute), deploy.StatusRefused),
		mk("20261125-203953-000005", "", T0.Add(3*time.Minute), deploy.StatusQueued),
		mk("20261125-203953-000000", "production", T0.Add(-time.Hour), deploy.StatusSucceeded),
	)
	for _, tc := range []struct{ app, want string }{
		{"staging", "20261125-203953-000003"},
		{"production", "20261125-203953-000004"},
		{deploy.DefaultApp, "20261125-203953-000005"},
		{"nope", ""},
	} {
		d, ok, err := st.Latest(ctx, tc.app)
		if err != nil {
			t.Fatal(err)
		}
		got := ""
		if ok {
			got = d.ID
			if d.App != tc.app {
				t.Errorf("Latest(%s): app %q", tc.app, d.App)
			}
		}
		if got != tc.want {
			t.Errorf("Latest(%s) = %q, want %q", tc.app, got, tc.want)
		}
	}
}

// testRefused: a deployment refused by promotion is recorded like any
// other, with its reason; it is never taken for an interrupted one, and it
// is pruned like a finished one, also without a finish time.
func testRefused(t *testing.T, s suite) {
	now := T0.AddDate(0, 0, 100)
	db := s.newDB(t)
	st := open(t, db, history.Options{Now: func() time.Time { return now }})
	ctx := context.Background()
	refused := func(id string, q time.Time, finished bool) *deploy.Deployment {
		d := &deploy.Deployment{ID: id, App: "production", Action: deploy.ActionDeploy, Status: deploy.StatusRefused, Queued: q,
			Request: deploy.Request{Trigger: "webhook", Provider: "github", DeliveryID: "g-" + id, Push: deploy.Push{Branch: "main", Commit: Commit('a')}},
			Err:     errors.New("staging has not deployed aaaaaaa to web2")}
		if finished {
			d.Finished = q
		}
		return d
	}
	recent := refused("20261125-203953-000002", now.AddDate(0, 0, -1), true)
	oldNoFinish := refused("20261125-203953-000001", now.AddDate(0, 0, -60), false)
	old := refused("20261125-203953-000000", now.AddDate(0, 0, -61), true)
	save(t, st, recent, oldNoFinish, old)
	got, ok, err := st.Deployment(ctx, recent.ID)
	if err != nil || !ok {
		t.Fatalf("Deployment: %v %v", ok, err)
	}
	if diff := cmp.Diff(recent, got, SameDeployment); diff != "" {
		t.Errorf("read back differs (-saved +read):\n%s", diff)
	}
	list, err := st.Deployments(ctx, deploy.Filter{Status: deploy.StatusRefused, App: "production"})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{recent.ID, oldNoFinish.ID, old.ID}, ids(list)); diff != "" {
		t.Errorf("refused ones (-want +got):\n%s", diff)
	}
	// The next start, keeping 30 days, from a process that does not own
	// them: none is interrupted; the two old ones are pruned.
	st.Close()
	st = open(t, db, history.Options{Days: 30, Now: func() time.Time { return now }, Alive: func(history.Owner) bool { return false }})
	list, err = st.Deployments(ctx, deploy.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].ID != recent.ID || list[0].Status != deploy.StatusRefused {
		t.Errorf("after the next start: %v; want only %s, still refused", ids(list), recent.ID)
	}
}
