package historytest

import (
	"context"
	"testing"
	"time"

	"github.com/pushdeploy/pushdeploy/deploy"
	"github.com/pushdeploy/pushdeploy/history"
)

// testBranchTip: the tip the branch had when a deployment started
// (polling compares the branch with it) is kept, read back by Deployment
// and Deployments, replaced by a later snapshot, and empty when unknown.
func testBranchTip(t *testing.T, s suite) {
	st := s.store(t, history.Options{})
	ctx := context.Background()
	rollback := &deploy.Deployment{
		ID: "20261202-080000-000001", App: "production", Action: deploy.ActionRollback, Status: deploy.StatusRunning,
		Queued: T0, Started: T0, Request: deploy.Request{Action: deploy.ActionRollback, Trigger: deploy.TriggerAPI},
	}
	save(t, st, rollback)
	// The look-up ends after the start: the snapshot at the end has it.
	ended := rollback.Snapshot()
	ended.Status, ended.Finished, ended.BranchTip = deploy.StatusSucceeded, T0.Add(time.Second), Commit('b')
	save(t, st, ended)
	unknown := &deploy.Deployment{
		ID: "20261202-080000-000002", App: "production", Action: deploy.ActionRollback, Status: deploy.StatusSucceeded,
		Queued: T0.Add(time.Minute), Started: T0.Add(time.Minute), Finished: T0.Add(2 * time.Minute),
		Request: deploy.Request{Action: deploy.ActionRollback, Trigger: deploy.TriggerCLI},
	}
	poll := &deploy.Deployment{
		ID: "20261202-080000-000003", App: "production", Action: deploy.ActionDeploy, Status: deploy.StatusSucceeded,
		Queued: T0.Add(3 * time.Minute), Started: T0.Add(3 * time.Minute), Finished: T0.Add(4 * time.Minute),
		Request: deploy.Request{Trigger: deploy.TriggerPoll, Actor: "poll", Push: deploy.Push{Branch: "release"}, PayloadCommit: Commit('c')},
		Release: deploy.Release{Branch: "release", Commit: Commit('c')}, BranchTip: Commit('c'),
	}
	save(t, st, unknown, poll)

	got, ok, err := st.Deployment(ctx, rollback.ID)
	if err != nil || !ok {
		t.Fatalf("Deployment(%s): %v, %v", rollback.ID, ok, err)
	}
	if got.BranchTip != Commit('b') {
		t.Errorf("rollback's tip %q, want the later snapshot's %s", got.BranchTip, Commit('b'))
	}
	list, err := st.Deployments(ctx, deploy.Filter{App: "production"})
	if err != nil {
		t.Fatal(err)
	}
	tips := map[string]string{}
	for _, d := range list {
		tips[d.ID] = d.BranchTip
	}
	want := map[string]string{rollback.ID: Commit('b'), unknown.ID: "", poll.ID: Commit('c')}
	for id, tip := range want {
		if got, ok := tips[id]; !ok || got != tip {
			t.Errorf("Deployments: %s has tip %q (listed: %v), want %q", id, got, ok, tip)
		}
	}
	if list[0].ID != poll.ID || list[0].Request.Trigger != deploy.TriggerPoll {
		t.Errorf("newest %s with trigger %q, want %s with trigger poll", list[0].ID, list[0].Request.Trigger, poll.ID)
	}
}
