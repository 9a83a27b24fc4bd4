package eventlog

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pushdeploy/pushdeploy/deploy"
	"github.com/pushdeploy/pushdeploy/internal/pgtest"
	"github.com/pushdeploy/pushdeploy/live"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }

// engine opens logs on one database of an engine: two on one database
// are two deployers.
type engine struct {
	name string
	db   func(t testing.TB) string // a new database
	open func(t testing.TB, db string, opts Options) *Log
}

var engines = []engine{
	{
		name: "sqlite",
		db:   func(t testing.TB) string { return filepath.Join(t.TempDir(), "history.db") },
		open: func(t testing.TB, db string, opts Options) *Log {
			l, err := OpenSQLite(context.Background(), db, opts)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { l.Close() })
			return l
		},
	},
	{
		name: "postgres",
		db:   func(t testing.TB) string { return pgtest.New(t) },
		open: func(t testing.TB, db string, opts Options) *Log {
			l, err := OpenPostgres(context.Background(), db, opts)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { l.Close() })
			return l
		},
	},
}

// fast are the options of the tests: short waits.
func fast(o Options) Options {
	o.Batch, o.Poll = 5*time.Millisecond, 20*time.Millisecond
	return o
}

// events of a deployment id over hosts, each with a step that prints
// lines lines and succeeds; the last event ends it (unless !end).
func events(id string, hosts, lines int, end bool) []deploy.Event {
	at := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	var evs []deploy.Event
	add := func(ev deploy.Event) {
		ev.Seq, ev.DeploymentID, ev.App = len(evs)+1, id, "web"
		ev.Time = at.Add(time.Duration(len(evs)) * time.Millisecond)
		evs = append(evs, ev)
	}
	started := at
	add(deploy.Event{Kind: deploy.EventDeployment, Status: deploy.StatusRunning,
		Deployment: &deploy.Deployment{ID: id, App: "web", Action: deploy.ActionDeploy, Status: deploy.StatusRunning, Queued: at, Started: started,
			Request: deploy.Request{Trigger: deploy.TriggerWebhook, Provider: "github", DeliveryID: "d-1", Push: deploy.Push{Branch: "release"}},
			Release: deploy.Release{Branch: "release", Commit: "c0ffee"}, ReleaseName: "20261202100000-c0ffee0"}})
	for h := range hosts {
		host := fmt.Sprintf("web%d", h+1)
		add(deploy.Event{Kind: deploy.EventStep, Status: deploy.StatusRunning, Host: host, Step: "pip"})
		for i := range lines {
			add(deploy.Event{Kind: deploy.EventOutput, Host: host, Step: "pip", Line: fmt.Sprintf("%s line %d", host, i)})
		}
		add(deploy.Event{Kind: deploy.EventStep, Status: deploy.StatusSucceeded, Host: host, Step: "pip", Duration: 1500 * time.Millisecond})
		add(deploy.Event{Kind: deploy.EventHost, Status: deploy.StatusSucceeded, Host: host})
	}
	if end {
		add(deploy.Event{Kind: deploy.EventDeployment, Status: deploy.StatusFailed, Error: "host web9: pip: exit status 1",
			Deployment: &deploy.Deployment{ID: id, App: "web", Action: deploy.ActionDeploy, Status: deploy.StatusFailed, Queued: at, Started: started,
				Finished: at.Add(time.Minute), Err: fmt.Errorf("host web9: pip: exit status 1"),
				Request: deploy.Request{Trigger: deploy.TriggerWebhook, Push: deploy.Push{Branch: "release"}},
				Release: deploy.Release{Branch: "release", Commit: "c0ffee"}}})
	}
	return evs
}

// collect reads events until the channel closes, or fails after 20s.
func collect(t *testing.T, c <-chan deploy.Event) []deploy.Event {
	t.Helper()
	var out []deploy.Event
	deadline := time.After(20 * time.Second)
	for {
		select {
		case ev, ok := <-c:
			if !ok {
				return out
			}
			out = append(out, ev)
		case <-deadline:
			t.Fatalf("the channel is still open after 20s and %d events", len(out))
		}
	}
}

// follow follows id on l from after; the deployment must be known.
func follow(t *testing.T, l *Log, id string, after int) (<-chan deploy.Event, func()) {
	t.Helper()
	c, cancel, ok, err := l.Follow(context.Background(), id, after)
	if err != nil || !ok {
		t.Fatalf("Follow(%s, %d) = %v, %v; want the deployment", id, after, ok, err)
	}
	t.Cleanup(cancel)
	return c, cancel
}

// waitWritten waits until l's database has id up to Seq seq.
func waitWritten(t testing.TB, l *Log, id string, seq int) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		var last int
		err := l.db.QueryRowContext(context.Background(), l.sql(`SELECT last_seq FROM eventlog_deployments WHERE deployment_id = ?`), id).Scan(&last)
		if err == nil && last >= seq {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("deployment %s: not written up to %d after a minute (last %d, %v)", id, seq, last, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// fromHub is what a live.Hub with opts's bounds gives a subscriber that
// arrives after evs, from Seq after: what the log must give too.
func fromHub(t *testing.T, opts Options, evs []deploy.Event, after int) []deploy.Event {
	t.Helper()
	hub := &live.Hub{OutputLines: opts.OutputLines, OutputBytes: opts.OutputBytes}
	for _, ev := range evs {
		hub.Observe(ev)
	}
	c, cancel, ok := hub.Subscribe(evs[0].DeploymentID, after)
	if !ok {
		t.Fatal("the hub does not know the deployment")
	}
	defer cancel()
	return collect(t, c)
}

// same compares events as the event stream shows them: a deployment's
// snapshot by its report.
func same(t *testing.T, got, want []deploy.Event) {
	t.Helper()
	norm := func(evs []deploy.Event) []any {
		out := make([]any, len(evs))
		for i, ev := range evs {
			var rep *deploy.DeploymentReport
			if ev.Deployment != nil {
				r := deploy.ReportDeployment(ev.Deployment, false)
				rep = &r
			}
			ev.Deployment = nil
			ev.Time = ev.Time.UTC()
			out[i] = struct {
				Ev  deploy.Event
				Rep *deploy.DeploymentReport
			}{ev, rep}
		}
		return out
	}
	if diff := cmp.Diff(norm(want), norm(got)); diff != "" {
		t.Fatalf("events (-want +got):\n%s", diff)
	}
}

// TestReplayInOrderAndResume: a deployment written, then followed from
// the start and from ids in the middle, gives its events in order, then
// closes after its end.
func TestReplayInOrderAndResume(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			l := e.open(t, e.db(t), fast(Options{}))
			evs := events("d1", 3, 700, true) // 2,110 events: more than one read
			for _, ev := range evs {
				l.Observe(ev)
			}
			waitWritten(t, l, "d1", len(evs))
			for _, after := range []int{0, 1, 500, 501, len(evs) - 1, len(evs)} {
				c, _ := follow(t, l, "d1", after)
				same(t, collect(t, c), evs[after:])
			}
			if _, _, ok, err := l.Follow(context.Background(), "d2", 0); ok || err != nil {
				t.Errorf("Follow(unknown) = %v, %v; want false, nil", ok, err)
			}
		})
	}
}

// TestFollowAcrossDeployers: deployer B follows a deployment that
// deployer A writes as it runs, and gets every event in order, live. On
// PostgreSQL B never polls (Poll is an hour): NOTIFY wakes it.
func TestFollowAcrossDeployers(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			db := e.db(t)
			a := e.open(t, db, fast(Options{}))
			bOpts := fast(Options{})
			if e.name == "postgres" {
				bOpts.Poll = time.Hour
			}
			b := e.open(t, db, bOpts)
			evs := events("d1", 2, 50, true)
			a.Observe(evs[0])
			waitWritten(t, a, "d1", 1)
			c, _ := follow(t, b, "d1", 0)
			got := receive(t, c, 1)
			for i, ev := range evs[1:] {
				a.Observe(ev)
				if i%10 == 9 || ev.Seq == len(evs) {
					// Live: what A has observed reaches B before A goes on.
					got = append(got, receive(t, c, ev.Seq-len(got))...)
				}
			}
			same(t, got, evs)
			if ev, ok := <-c; ok {
				t.Errorf("event %d after the end", ev.Seq)
			}
		})
	}
}

// receive reads n events from c, or fails after a minute.
func receive(t *testing.T, c <-chan deploy.Event, n int) []deploy.Event {
	t.Helper()
	var out []deploy.Event
	deadline := time.After(time.Minute)
	for len(out) < n {
		select {
		case ev, ok := <-c:
			if !ok {
				t.Fatalf("closed after %d of %d events", len(out), n)
			}
			out = append(out, ev)
		case <-deadline:
			t.Fatalf("%d of %d events after a minute", len(out), n)
		}
	}
	return out
}
