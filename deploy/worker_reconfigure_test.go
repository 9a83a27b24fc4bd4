package deploy

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestWorkerReconfigure: a Reconfigure while a deployment runs leaves that
// one on the old Deployer and pool; requests from then on are checked
// against the new pool, and the next deployment runs with the new
// Deployer. Run with -race: the fields change beside Submit and Health.
// The same with the queue in a Backlog (serve's SIGHUP).
func TestWorkerReconfigure(t *testing.T) {
	t.Run("in memory", func(t *testing.T) { testWorkerReconfigure(t, nil) })
	t.Run("backlog", func(t *testing.T) { testWorkerReconfigure(t, newFakeBacklog()) })
}

func testWorkerReconfigure(t *testing.T, b Backlog) {
	w, g1, _ := newTestWorker()
	if b != nil {
		w.Backlog, w.PollEvery = b, 10*time.Millisecond
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- w.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()

	first, err := w.Submit(ctx, tip("d1", "p1"))
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the first deployment to connect", func() bool { return g1.dials.Load() > 0 })

	g2 := &gateDialer{gate: make(chan struct{})}
	res2 := &countingResolver{commit: strings.Repeat("b", 40)}
	d2 := &Deployer{Dialer: g2, Resolver: res2, Root: "app2", Python: "python3", StepTimeout: time.Minute}
	w.Reconfigure(d2, []Host{{Name: "web3", User: "u", Addr: "web3", Port: 22}}, "")
	_ = w.Health() // beside the change: -race checks it

	if _, err := w.Submit(ctx, Request{Trigger: TriggerAPI, Push: Push{Branch: "release"}, Hosts: []string{"web1"}}); err == nil {
		t.Errorf("a request for web1 after the pool became web3: accepted, want a RequestError")
	}
	second, err := w.Submit(ctx, Request{Trigger: TriggerAPI, Push: Push{Branch: "release"}, Hosts: []string{"web3"}})
	if err != nil {
		t.Fatalf("a request for web3, the new pool: %v", err)
	}
	if second.Commit != res2.commit {
		t.Errorf("the new request was resolved to %s, want the new resolver's %s", second.Commit, res2.commit)
	}
	if g2.dials.Load() != 0 {
		t.Fatalf("the new Deployer dialled while the first deployment still ran")
	}

	close(g1.gate)
	waitFor(t, "the second deployment to connect with the new Deployer", func() bool { return g2.dials.Load() > 0 })
	close(g2.gate)
	waitFor(t, "both deployments to end", func() bool {
		l := w.List()
		return len(l) == 2 && l[0].Status == StatusFailed && l[1].Status == StatusFailed
	})
	byID := map[string]*Deployment{}
	for _, d := range w.List() {
		byID[d.ID] = d
	}
	if got := hostNamesOf(byID[first.ID]); got != "web1,web2" {
		t.Errorf("the running deployment's hosts: %s, want the old pool web1,web2", got)
	}
	if got := hostNamesOf(byID[second.ID]); got != "web3" {
		t.Errorf("the next deployment's hosts: %s, want the new pool web3", got)
	}

	// Idle, a Reconfigure takes effect at once.
	res3 := &countingResolver{commit: strings.Repeat("d", 40)}
	w.Reconfigure(&Deployer{Dialer: g2, Resolver: res3, Root: "app3", Python: "python3", StepTimeout: time.Minute}, []Host{{Name: "web4", User: "u", Addr: "web4", Port: 22}}, "staging")
	if s := w.setup(); s.deployer.Root != "app3" || len(s.hosts) != 1 || s.hosts[0].Name != "web4" || s.promoteFrom != "staging" {
		t.Errorf("idle worker after Reconfigure: root %s, hosts %v, promote from %q; want app3, web4, staging", s.deployer.Root, s.hosts, s.promoteFrom)
	}
}

func hostNamesOf(d *Deployment) string {
	if d == nil {
		return "(no deployment)"
	}
	var names []string
	for _, h := range d.Hosts {
		names = append(names, h.Host.Name)
	}
	return strings.Join(names, ",")
}
