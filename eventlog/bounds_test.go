package eventlog

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pushdeploy/pushdeploy/deploy"
	"github.com/pushdeploy/pushdeploy/internal/pgtest"
)

// rows counts the event rows of deployment id.
func rows(t *testing.T, l *Log, id string) int {
	t.Helper()
	var n int
	if err := l.db.QueryRowContext(context.Background(), l.sql(`SELECT count(*) FROM eventlog_events WHERE deployment_id = ?`), id).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestBoundsAsTheHub: a deployment that prints far more than the bounds
// keeps what the hub keeps, with the "output truncated" lines where the
// hub has them, however the writes fall; the rows stay bounded.
func TestBoundsAsTheHub(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			opts := fast(Options{OutputLines: 40, OutputBytes: 600})
			l := e.open(t, e.db(t), opts)
			evs := events("d1", 3, 77, true)
			for i, ev := range evs {
				l.Observe(ev)
				if i%37 == 0 {
					waitWritten(t, l, "d1", ev.Seq) // trims over rows written, and over rows not written yet
				}
				if n := rows(t, l, "d1"); i%50 == 0 && n > 40+4*4+2+4 {
					t.Fatalf("%d rows after event %d: beyond the bounds", n, ev.Seq)
				}
			}
			waitWritten(t, l, "d1", len(evs))
			if want := fromHub(t, opts, evs, 0); !strings.HasPrefix(want[2].Line, "[output truncated: ") {
				t.Fatalf("the hub kept %q first: the test does not trim", want[2].Line)
			}
			for _, after := range []int{0, 100, 200} {
				c, _ := follow(t, l, "d1", after)
				same(t, collect(t, c), fromHub(t, opts, evs, after))
			}
		})
	}
}

// TestPruneKeepsTheNewest: beyond Keep ended deployments, the oldest go;
// running ones stay.
func TestPruneKeepsTheNewest(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			l := e.open(t, e.db(t), fast(Options{Keep: 2}))
			running := events("run", 1, 1, false)
			for _, ev := range running {
				l.Observe(ev)
			}
			for i := range 4 {
				evs := events(fmt.Sprintf("d%d", i), 1, 3, true)
				for _, ev := range evs {
					l.Observe(ev)
				}
				waitWritten(t, l, evs[0].DeploymentID, len(evs))
			}
			deadline := time.Now().Add(30 * time.Second)
			for {
				var got []bool
				for _, id := range []string{"run", "d0", "d1", "d2", "d3"} {
					ok, err := l.known(context.Background(), id)
					if err != nil {
						t.Fatal(err)
					}
					got = append(got, ok)
				}
				if fmt.Sprint(got) == "[true false false true true]" {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("known run, d0…d3 = %v; want the running one and the 2 newest", got)
				}
				time.Sleep(10 * time.Millisecond)
			}
			if n := rows(t, l, "d0"); n != 0 {
				t.Errorf("%d rows of a pruned deployment", n)
			}
		})
	}
}

// TestDatabaseAway: while PostgreSQL is down, the events wait in memory
// (within the bounds) and the deployment does not wait for them; when it
// is back they are written in order, and a follower gets what the hub
// has.
func TestDatabaseAway(t *testing.T) {
	srv := pgtest.Start(t)
	db := srv.NewDatabase(t)
	opts := fast(Options{OutputLines: 40, OutputBytes: 600})
	a := engines[1].open(t, db, opts)
	evs := events("d1", 3, 60, true)
	half := len(evs) / 2
	for _, ev := range evs[:half] {
		a.Observe(ev)
	}
	waitWritten(t, a, "d1", half)
	srv.Stop(t)
	start := time.Now()
	for _, ev := range evs[half:] {
		a.Observe(ev)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("observing %d events with the database down took %v", len(evs)-half, d)
	}
	time.Sleep(50 * time.Millisecond) // a write or two fails
	srv.Start(t)
	waitWritten(t, a, "d1", len(evs))
	b := engines[1].open(t, db, opts)
	c, _ := follow(t, b, "d1", 0)
	same(t, collect(t, c), fromHub(t, opts, evs, 0))
}

// records is a Records with one answer.
type records struct {
	status deploy.Status
	err    error
}

func (r records) Deployment(_ context.Context, id string) (*deploy.Deployment, bool, error) {
	if r.err != nil {
		return nil, false, r.err
	}
	return &deploy.Deployment{ID: id, Status: r.status}, true, nil
}

// TestDeployerDied: a deployment that stops writing without its end ends
// its followers once the record says it is over (another deployer marked
// it interrupted); while the record says it runs, they wait.
func TestDeployerDied(t *testing.T) {
	for _, tc := range []struct {
		name  string
		rec   records
		close bool
	}{
		{"interrupted", records{status: deploy.StatusInterrupted}, true},
		{"running", records{status: deploy.StatusRunning}, false},
		{"record unreadable", records{err: errors.New("database down")}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := engines[0]
			db := e.db(t)
			a := e.open(t, db, fast(Options{}))
			evs := events("d1", 1, 3, false)
			for _, ev := range evs {
				a.Observe(ev)
			}
			waitWritten(t, a, "d1", len(evs))
			b := e.open(t, db, fast(Options{Records: tc.rec}))
			b.endGrace = 100 * time.Millisecond
			c, _ := follow(t, b, "d1", 0)
			same(t, receive(t, c, len(evs)), evs)
			select {
			case ev, ok := <-c:
				if ok || !tc.close {
					t.Errorf("after the last event: %v, %v; closed: %v, want closed: %v", ev.Seq, ok, !ok, tc.close)
				}
			case <-time.After(time.Second):
				if tc.close {
					t.Error("still open 1s after the record said the deployment is over")
				}
			}
		})
	}
}

// TestRunning: the overview of another deployer sees an app's running
// deployment with each host's status and step; not once it has ended, nor
// when the record says it is over.
func TestRunning(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			db := e.db(t)
			a := e.open(t, db, fast(Options{}))
			evs := events("d1", 2, 2, true)
			for _, ev := range evs[:8] { // web1 done, web2 in pip
				a.Observe(ev)
			}
			waitWritten(t, a, "d1", 8)
			b := e.open(t, db, fast(Options{Records: records{status: deploy.StatusRunning}}))
			d, ok := b.Running(context.Background(), "web")
			if !ok {
				t.Fatal("no deployment running")
			}
			got := fmt.Sprintf("%s %s %s", d.ID, d.Status, d.ReleaseName)
			for _, h := range d.Hosts {
				got += fmt.Sprintf(" %s:%s:%s", h.Host.Name, h.Status, h.Steps[len(h.Steps)-1].Name)
			}
			if want := "d1 running 20261202100000-c0ffee0 web1:succeeded:pip web2::pip"; got != want {
				t.Errorf("Running = %s\nwant      %s", got, want)
			}
			if _, ok := b.Running(context.Background(), "other"); ok {
				t.Error("another app runs it too")
			}
			over := e.open(t, db, fast(Options{Records: records{status: deploy.StatusInterrupted}}))
			if _, ok := over.Running(context.Background(), "web"); ok {
				t.Error("running, while the record says it was interrupted")
			}
			for _, ev := range evs[8:] {
				a.Observe(ev)
			}
			waitWritten(t, a, "d1", len(evs))
			later := e.open(t, db, fast(Options{})) // b's answer is a second old
			if d, ok := later.Running(context.Background(), "web"); ok {
				t.Errorf("%s %s running after its end", d.ID, d.Status)
			}
		})
	}
}
