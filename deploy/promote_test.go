package deploy

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
)

// fakePeers knows which commits each app deployed everywhere and what its
// hosts run.
type fakePeers struct {
	mu       sync.Mutex
	deployed map[string]string // app -> the one commit it deployed everywhere
	running  map[string]string // app -> the commit its hosts run
	err      error             // DeployedEverywhere fails with it
	asked    []string          // "app commit" per DeployedEverywhere call
}

func (p *fakePeers) DeployedEverywhere(_ context.Context, app, commit string) (bool, string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.asked = append(p.asked, app+" "+commit)
	if p.err != nil {
		return false, "", p.err
	}
	if p.deployed[app] == commit {
		return true, "", nil
	}
	return false, app + " has not deployed " + commit[:7] + " to web2", nil
}

func (p *fakePeers) Running(_ context.Context, app string) (string, error) {
	c, ok := p.running[app]
	if !ok {
		return "", &RequestError{Msg: "unknown app " + app}
	}
	return c, nil
}

func (p *fakePeers) calls() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.asked)
}

var (
	tipCommit   = strings.Repeat("c", 40) // what newTestWorker's resolver answers
	otherCommit = strings.Repeat("d", 40) // not on the branch
)

// newPromotedWorker is production, promoted from staging; every event its
// deployments tell is kept in events.
func newPromotedWorker(peers *fakePeers) (*Worker, *countingResolver, *recorder) {
	w, _, res := newTestWorker()
	w.App, w.PromoteFrom, w.Peers = "production", "staging", peers
	log := &recorder{}
	w.Deployer.Observer = log
	return w, res, log
}

// ended is the deployment event of id with status s, if it was told.
func ended(r *recorder, id string, s Status) (Event, bool) {
	for _, ev := range r.events() {
		if ev.Kind == EventDeployment && ev.DeploymentID == id && ev.Status == s {
			return ev, true
		}
	}
	return Event{}, false
}

func TestWorkerPromotionGate(t *testing.T) {
	webhook := tip("d1", "p1")
	api := Request{Trigger: TriggerAPI, Push: Push{Branch: "release"}}
	cli := Request{Trigger: TriggerCLI, Push: Push{Branch: "release", Commit: "cccc"}}
	rollback := Request{Trigger: TriggerAPI, Action: ActionRollback, Push: Push{Branch: "release"}}
	tests := []struct {
		name     string
		deployed string // what staging deployed everywhere
		req      Request
		refused  bool
		asked    int // DeployedEverywhere calls
	}{
		{"webhook tip staging deployed", tipCommit, webhook, false, 1},
		{"webhook tip staging has not deployed", otherCommit, webhook, true, 1},
		{"api tip staging deployed", tipCommit, api, false, 1},
		{"api tip staging has not deployed", "", api, true, 1},
		{"commit staging has not deployed", otherCommit, cli, true, 1},
		{"commit staging deployed", tipCommit, cli, false, 1},
		{"rollback is never gated", otherCommit, rollback, false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			peers := &fakePeers{deployed: map[string]string{"staging": tt.deployed}}
			w, _, log := newPromotedWorker(peers)
			tk, err := w.Submit(context.Background(), tt.req)
			if got := peers.calls(); got != tt.asked {
				t.Errorf("DeployedEverywhere asked %d times (%v), want %d", got, peers.asked, tt.asked)
			}
			if len(peers.asked) > 0 && peers.asked[0] != "staging "+tipCommit {
				t.Errorf("asked %q, want staging and the resolved commit in full", peers.asked[0])
			}
			dep, ok := w.Get(tk.ID)
			if !ok {
				t.Fatalf("ticket %+v (err %v): no deployment %q", tk, err, tk.ID)
			}
			if dep.App != "production" {
				t.Errorf("deployment app %q, want production", dep.App)
			}
			if !tt.refused {
				if err != nil || tk.Status != "queued" || dep.Status != StatusQueued {
					t.Fatalf("got %+v, %v, status %s; want queued", tk, err, dep.Status)
				}
				if tt.req.Action != ActionRollback && (dep.Request.Push.Commit != tipCommit || tk.Commit != tipCommit) {
					t.Errorf("deployment pinned to %q, ticket commit %q; want the commit checked, %s", dep.Request.Push.Commit, tk.Commit, tipCommit)
				}
				return
			}
			var re *RefusedError
			if !errors.As(err, &re) || re.ID != tk.ID || !strings.Contains(re.Reason, "staging has not deployed cccccc") {
				t.Fatalf("err %v, want a *RefusedError for %s naming staging", err, tk.ID)
			}
			if tk.Status != "refused" || tk.Commit != tipCommit {
				t.Errorf("ticket %+v, want refused with the commit", tk)
			}
			if dep.Status != StatusRefused || dep.Err == nil || dep.Err.Error() != re.Reason || dep.Release.Commit != tipCommit || len(dep.Hosts) != 2 {
				t.Errorf("recorded %s, err %v, commit %q, %d hosts; want refused with the reason, the commit and the hosts", dep.Status, dep.Err, dep.Release.Commit, len(dep.Hosts))
			}
			if ev, ok := ended(log, tk.ID, StatusRefused); !ok || ev.App != "production" || ev.Error != re.Reason {
				t.Errorf("observers were not told the refusal with app and reason: %+v", ev)
			}
			if h := w.Health(); h.QueueLength != 0 || h.Last == nil || h.Last.ID != tk.ID {
				t.Errorf("health %+v: want nothing queued, the refusal the last deployment", h)
			}
		})
	}
}

// A refused request neither waits for the queue nor takes a place in it,
// and its redelivery is a duplicate, like any other.
func TestWorkerRefusalKeepsOutOfTheQueue(t *testing.T) {
	peers := &fakePeers{deployed: map[string]string{"staging": tipCommit}}
	w, _, _ := newPromotedWorker(peers)
	w.MaxQueue = 1
	ctx := context.Background()
	if _, err := w.Submit(ctx, tip("d1", "p1")); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Submit(ctx, Request{Trigger: TriggerAPI, Push: Push{Branch: "release"}, Hosts: []string{"web2"}}); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("second deploy: %v, want the queue full", err)
	}

	peers.deployed["staging"] = otherCommit
	tk, err := w.Submit(ctx, tip("d2", "p2"))
	var re *RefusedError
	if !errors.As(err, &re) {
		t.Fatalf("refused push with a full queue: %+v, %v; want a *RefusedError", tk, err)
	}
	calls := peers.calls()
	again, err := w.Submit(ctx, tip("d2", "p2"))
	if err != nil || again.Status != "duplicate" || again.ID != tk.ID {
		t.Errorf("redelivery of the refused push: %+v, %v; want duplicate of %s", again, err, tk.ID)
	}
	if peers.calls() != calls {
		t.Errorf("a redelivery asked the peers again")
	}
	if h := w.Health(); h.QueueLength != 1 {
		t.Errorf("queue length %d, want 1: the refusal is not queued", h.QueueLength)
	}
}

func TestWorkerPromotionErrors(t *testing.T) {
	ctx := context.Background()
	peers := &fakePeers{err: errors.New("history: database is locked")}
	w, _, _ := newPromotedWorker(peers)
	if tk, err := w.Submit(ctx, tip("d1", "p1")); err == nil || !strings.Contains(err.Error(), "promote from staging: history: database is locked") {
		t.Errorf("peers failing: %+v, %v; want the error", tk, err)
	}
	w.Peers = nil
	if tk, err := w.Submit(ctx, tip("d1", "p1")); err == nil || !strings.Contains(err.Error(), "promote from staging") {
		t.Errorf("promoted without peers: %+v, %v; want an error (never deploy unchecked)", tk, err)
	}
	if n := len(w.List()); n != 0 {
		t.Errorf("%d deployments recorded, want none: the request was never decided", n)
	}
}

// Without DEPLOY_PROMOTE_FROM a webhook's tip is resolved when the
// deployment starts (so the newest push ships), as before.
func TestWorkerUnpromotedTipIsNotPinned(t *testing.T) {
	w, _, res := newTestWorker()
	tk, err := w.Submit(context.Background(), tip("d1", "p1"))
	if err != nil {
		t.Fatal(err)
	}
	dep, _ := w.Get(tk.ID)
	if res.n.Load() != 0 || dep.Request.Push.Commit != "" || tk.Commit != "p1" {
		t.Errorf("resolved %d times, pinned to %q, ticket commit %q; want the tip left for later and the payload commit told", res.n.Load(), dep.Request.Push.Commit, tk.Commit)
	}
}

func TestWorkerFrom(t *testing.T) {
	from := func(app string) Request {
		return Request{Trigger: TriggerAPI, Push: Push{Branch: "release"}, From: app}
	}
	tests := []struct {
		name    string
		peers   *fakePeers
		promote string
		req     Request
		want    string // "" queued; else what the error says
		errType any
	}{
		{name: "staging's commit", peers: &fakePeers{running: map[string]string{"staging": tipCommit}}, req: from("staging")},
		{name: "staging's commit, promoted and deployed", promote: "staging",
			peers: &fakePeers{running: map[string]string{"staging": tipCommit}, deployed: map[string]string{"staging": tipCommit}}, req: from("staging")},
		{name: "staging's commit not on the branch", peers: &fakePeers{running: map[string]string{"staging": otherCommit}}, req: from("staging"),
			want: "from staging: commit " + otherCommit + " is not on branch release", errType: new(*CommitError)},
		{name: "own app", peers: &fakePeers{}, req: from("production"), want: "production is this app", errType: new(*RequestError)},
		{name: "unknown app", peers: &fakePeers{}, req: from("qa"), want: "unknown app qa", errType: new(*RequestError)},
		{name: "without peers", req: from("staging"), want: "serves no other app", errType: new(*RequestError)},
		{name: "with a commit", peers: &fakePeers{running: map[string]string{"staging": tipCommit}},
			req: Request{Trigger: TriggerAPI, Push: Push{Branch: "release", Commit: "cccc"}, From: "staging"}, want: "give one of them", errType: new(*RequestError)},
		{name: "rollback", peers: &fakePeers{running: map[string]string{"staging": tipCommit}},
			req: Request{Trigger: TriggerAPI, Action: ActionRollback, Push: Push{Branch: "release"}, From: "staging"}, want: "only a deploy", errType: new(*RequestError)},
		{name: "bad commit from the peer", peers: &fakePeers{running: map[string]string{"staging": "$(id)"}}, req: from("staging"), want: "from staging:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, _, res := newTestWorker()
			w.App, w.PromoteFrom = "production", tt.promote
			if tt.peers != nil {
				w.Peers = tt.peers
			}
			tk, err := w.Submit(context.Background(), tt.req)
			if tt.want == "" {
				dep, ok := w.Get(tk.ID)
				if err != nil || !ok || dep.Request.Push.Commit != tipCommit || tk.Commit != tipCommit {
					t.Fatalf("got %+v, %v; want queued, pinned to staging's commit", tk, err)
				}
				if res.n.Load() != 1 {
					t.Errorf("resolved %d times, want once: staging's commit checked against this app's branch", res.n.Load())
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %+v, %v; want an error saying %q", tk, err, tt.want)
			}
			switch target := tt.errType.(type) {
			case **CommitError:
				if !errors.As(err, target) {
					t.Errorf("%v is not a *CommitError", err)
				}
			case **RequestError:
				if !errors.As(err, target) {
					t.Errorf("%v is not a *RequestError", err)
				}
			}
			if n := len(w.List()); n != 0 {
				t.Errorf("%d deployments recorded, want none", n)
			}
		})
	}
}
