package deploy

import (
	"sync"
	"testing"
)

// TestNodeRecorded: every deployment and rollback records the deployer
// that runs it (Deployer.Node) as it starts, so that the observers (the
// history, the API) hear it from the first running snapshot on.
func TestNodeRecorded(t *testing.T) {
	r := newRig(t, 2)
	r.d.Node = "deploy2:4242"
	var mu sync.Mutex
	running := map[string]string{} // deployment: its node in the first running snapshot
	r.d.Observer = ObserverFunc(func(ev Event) {
		if ev.Kind != EventDeployment || ev.Deployment.Status != StatusRunning {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if _, ok := running[ev.DeploymentID]; !ok {
			running[ev.DeploymentID] = ev.Deployment.Node
		}
	})
	dep := r.deployN(2)[1]
	r.clock.Tick()
	rb, err := r.rollback("")
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, d := range []*Deployment{dep, rb} {
		s := d.Snapshot()
		if s.Node != "deploy2:4242" || running[d.ID] != "deploy2:4242" {
			t.Errorf("%s %s: node %q (first running snapshot: %q), want deploy2:4242", s.Action, s.ID, s.Node, running[d.ID])
		}
		if got := ReportDeployment(s, false).Node; got != "deploy2:4242" {
			t.Errorf("%s: report's node %q", s.ID, got)
		}
	}
}
