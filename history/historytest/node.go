package historytest

import (
	"context"
	"testing"
	"time"

	"github.com/pushdeploy/pushdeploy/deploy"
	"github.com/pushdeploy/pushdeploy/history"
)

// testNode: the deployer that ran a deployment (Deployment.Node) is kept
// and read back by Deployment and Deployments; a deployment that never
// started (queued, cancelled) has none. Two processes on one database
// each record their own.
func testNode(t *testing.T, s suite) {
	db := s.newDB(t)
	a := open(t, db, history.Options{})
	b := open(t, db, history.Options{})
	ctx := context.Background()
	ran := &deploy.Deployment{
		ID: "20261202-090000-000001", App: "production", Action: deploy.ActionDeploy, Status: deploy.StatusSucceeded,
		Queued: T0, Started: T0, Finished: T0.Add(time.Second), Node: "deploy1",
		Request: deploy.Request{Trigger: deploy.TriggerWebhook, Push: deploy.Push{Branch: "release"}},
	}
	other := &deploy.Deployment{
		ID: "20261202-090000-000002", App: "production", Action: deploy.ActionRollback, Status: deploy.StatusRunning,
		Queued: T0.Add(time.Minute), Started: T0.Add(time.Minute), Node: "web-deployer-2.example:4242",
		Request: deploy.Request{Action: deploy.ActionRollback, Trigger: deploy.TriggerAPI},
	}
	queued := &deploy.Deployment{
		ID: "20261202-090000-000003", App: "production", Action: deploy.ActionDeploy, Status: deploy.StatusQueued,
		Queued: T0.Add(2 * time.Minute), Request: deploy.Request{Trigger: deploy.TriggerWebhook, Push: deploy.Push{Branch: "release"}},
	}
	save(t, a, ran, queued)
	save(t, b, other)

	want := map[string]string{ran.ID: "deploy1", other.ID: "web-deployer-2.example:4242", queued.ID: ""}
	for _, st := range []history.Store{a, b} {
		for id, node := range want {
			got, ok, err := st.Deployment(ctx, id)
			if err != nil || !ok {
				t.Fatalf("Deployment(%s): %v, %v", id, ok, err)
			}
			if got.Node != node {
				t.Errorf("Deployment(%s).Node = %q, want %q", id, got.Node, node)
			}
		}
		list, err := st.Deployments(ctx, deploy.Filter{App: "production"})
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != len(want) {
			t.Fatalf("Deployments: %d, want %d", len(list), len(want))
		}
		for _, d := range list {
			if d.Node != want[d.ID] {
				t.Errorf("Deployments: %s has node %q, want %q", d.ID, d.Node, want[d.ID])
			}
		}
	}
	// A later snapshot (the deployment ended) keeps the node.
	ended := other.Snapshot()
	ended.Status, ended.Finished = deploy.StatusSucceeded, T0.Add(2*time.Minute)
	save(t, b, ended)
	if got, _, err := a.Deployment(ctx, other.ID); err != nil || got.Node != other.Node {
		t.Errorf("after its end: node %v (%v), want %q", got, err, other.Node)
	}
}
