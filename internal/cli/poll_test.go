package cli

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pushdeploy/pushdeploy/config"
	"github.com/pushdeploy/pushdeploy/deploy"
)

// scriptedTurns answers TakeTurn with the holders of a script, in turn.
type scriptedTurns struct {
	holders  []string
	err      error
	asked    []string // "key ttl"
	released []string
}

func (s *scriptedTurns) ReleaseTurn(_ context.Context, key string) error {
	s.released = append(s.released, key)
	return s.err
}

func (s *scriptedTurns) TakeTurn(_ context.Context, key string, ttl time.Duration) (string, error) {
	s.asked = append(s.asked, key+" "+ttl.String())
	if s.err != nil {
		return "", s.err
	}
	h := s.holders[0]
	s.holders = s.holders[1:]
	return h, nil
}

func (s *scriptedTurns) Owner() string { return "deploy1" }

func TestSharedTurn(t *testing.T) {
	// The turn is the app's, for two rounds and ten seconds; a change of
	// hands is logged once, as this deployer sees it.
	turns := &scriptedTurns{holders: []string{"deploy1", "deploy1", "deploy2", "deploy2", "deploy1"}}
	var logs bytes.Buffer
	st := &sharedTurn{turns: turns, log: slog.New(slog.NewTextHandler(&logs, nil))}
	var got []bool
	for range 5 {
		ok, err := st.Take(context.Background(), "web", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, ok)
	}
	if want := []bool{true, true, false, false, true}; !slices.Equal(got, want) {
		t.Errorf("takes %v, want %v", got, want)
	}
	if turns.asked[0] != "poll/web 2m10s" {
		t.Errorf("asked %q, want the turn poll/web for 2m10s", turns.asked[0])
	}
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) != 3 || !strings.Contains(lines[0], "this deployer polls") ||
		!strings.Contains(lines[1], "another deployer polls") || !strings.Contains(lines[1], "polled_by=deploy2") ||
		!strings.Contains(lines[2], "this deployer polls") {
		t.Errorf("logged:\n%s\nwant three changes of hands: deploy1, deploy2, deploy1", logs.String())
	}
	// Held when its poller ends: given up.
	st.release("web")
	if len(turns.released) != 1 || turns.released[0] != "poll/web" || !strings.Contains(logs.String(), "no longer polls") {
		t.Errorf("released %q, logged:\n%s\nwant poll/web given up", turns.released, logs.String())
	}
	turns.err = errors.New("database down")
	if ok, err := st.Take(context.Background(), "web", time.Minute); ok || err == nil {
		t.Errorf("take with the database down: %v %v, want false and the error", ok, err)
	}
	// Not held: nothing to give up.
	st.release("web")
	if len(turns.released) != 1 {
		t.Errorf("released %q, want nothing more: the turn was not this deployer's", turns.released)
	}
}

// appRecord is a history holding one finished deploy per app, of the tip
// at commit a…: the fixedResolver's tip (c…) is new to every app.
type appRecord struct{}

func (appRecord) Deployments(_ context.Context, f deploy.Filter) ([]*deploy.Deployment, error) {
	at := time.Now().Add(-time.Hour)
	a := strings.Repeat("a", 40)
	d := &deploy.Deployment{ID: "20261202-080000-000000", App: f.App, Queued: at, Started: at, Finished: at,
		Status: deploy.StatusSucceeded, BranchTip: a, Release: deploy.Release{Commit: a}}
	return []*deploy.Deployment{d}, nil
}

// pollsOf returns the poll deployments of app's worker.
func pollsOf(t *testing.T, reg *registry, app string) int {
	t.Helper()
	n := 0
	for _, d := range mustGet(t, reg, app).Deployments.(*deploy.Worker).List() {
		if d.Request.Trigger == deploy.TriggerPoll {
			n++
		}
	}
	return n
}

// polling reports whether w's poller runs.
func (p *polling) polling(w *deploy.Worker) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	run := p.runs[w]
	return run != nil && run.cancel != nil
}

// TestRegistryPolls: serve's apps poll at their own DEPLOY_POLL_INTERVAL
// and ask their worker for a deployment of a new tip (trigger poll); a
// reload starts the polling of an app whose interval is no longer 0 and
// stops that of an app whose interval is; serve's end waits for them.
func TestRegistryPolls(t *testing.T) {
	s := newAppsSetup(t)
	s.app(t, "staging", "main", "DEPLOY_POLL_INTERVAL=1s")
	s.app(t, "production", "release")
	setup, _, err := config.LoadSetup(s.envFile, true)
	if err != nil {
		t.Fatal(err)
	}
	polls := newPolling(appRecord{}, nil)
	reg := &registry{log: slog.New(slog.DiscardHandler), build: newFakeBuilds().build, polls: polls, grace: time.Second}
	if err := reg.open(t.Context(), setup); err != nil {
		t.Fatal(err)
	}
	reg.start()
	var stopOnce sync.Once
	stop := func() { stopOnce.Do(reg.stop) }
	defer stop()
	worker := func(app string) *deploy.Worker { return mustGet(t, reg, app).Deployments.(*deploy.Worker) }
	eventually(t, "staging to poll and queue the new tip", func() bool { return pollsOf(t, reg, "staging") == 1 })
	if polls.polling(worker("production")) {
		t.Errorf("production, without DEPLOY_POLL_INTERVAL, polls")
	}

	s.app(t, "staging", "main")
	s.app(t, "production", "release", "DEPLOY_POLL_INTERVAL=1s")
	next, probs := setup.ReloadApps()
	reg.reload(next, probs)
	if polls.polling(worker("staging")) {
		t.Errorf("staging polls after its DEPLOY_POLL_INTERVAL was removed")
	}
	eventually(t, "production to poll once its file asks for it", func() bool { return pollsOf(t, reg, "production") == 1 })

	stop()
	polls.mu.Lock()
	defer polls.mu.Unlock()
	if len(polls.runs) != 0 {
		t.Errorf("%d pollings left after serve stopped", len(polls.runs))
	}
}

// TestPollingAppRemoved: the poller of an app that is being removed ends
// by itself (its worker takes no more requests) before serve stops it.
func TestPollingAppRemoved(t *testing.T) {
	w := &deploy.Worker{Deployer: &deploy.Deployer{Resolver: fixedResolver{}, Branch: "main"}, App: "qa", Logger: slog.New(slog.DiscardHandler)}
	p := newPolling(appRecord{}, nil)
	app := &config.App{Name: "qa", Config: &config.Config{PollInterval: time.Millisecond}}
	w.Close() // removed: before its poller's first round, which would ask for a deployment
	stop := p.start(t.Context(), w, app)
	defer stop()
	p.mu.Lock()
	run := p.runs[w]
	p.mu.Unlock()
	ended := make(chan struct{})
	go func() { run.wg.Wait(); close(ended) }()
	select {
	case <-ended:
	case <-time.After(10 * time.Second):
		t.Fatal("the poller of a closed worker did not end")
	}
	if n := len(w.List()); n != 0 {
		t.Errorf("%d deployments asked of a closed worker, want none", n)
	}
}
