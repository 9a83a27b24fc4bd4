package historytest

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pushdeploy/pushdeploy/deploy"
	"github.com/pushdeploy/pushdeploy/history"
)

// outage is a store whose writes fail as they do while the database is
// unreachable: the writes numbered from..to-1 (counting every write, from
// 0), or from from on until lift when to < 0.
type outage struct {
	history.Store
	from, to int

	mu     sync.Mutex
	writes int
	lifted bool
	// endFailed is closed when the save of a finished deployment has
	// failed: the recorder heard the end during the outage.
	endFailed chan struct{}
}

var errDown = errors.New("the database is down")

func newOutage(st history.Store, from, to int) *outage {
	return &outage{Store: st, from: from, to: to, endFailed: make(chan struct{})}
}

// fail counts a write and tells whether it fails.
func (o *outage) fail(end bool) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := o.writes
	o.writes++
	down := n >= o.from && (o.to >= 0 && n < o.to || o.to < 0 && !o.lifted)
	if down && end {
		select {
		case <-o.endFailed:
		default:
			close(o.endFailed)
		}
	}
	return down
}

func (o *outage) lift() {
	o.mu.Lock()
	o.lifted = true
	o.mu.Unlock()
}

func (o *outage) Save(ctx context.Context, d *deploy.Deployment, owner history.Owner) error {
	if o.fail(d.Status != deploy.StatusQueued && d.Status != deploy.StatusRunning) {
		return errDown
	}
	return o.Store.Save(ctx, d, owner)
}

func (o *outage) SaveHost(ctx context.Context, id, host string, idx int, status deploy.Status) error {
	if o.fail(false) {
		return errDown
	}
	return o.Store.SaveHost(ctx, id, host, idx, status)
}

func (o *outage) SaveStep(ctx context.Context, id, host string, idx int, st deploy.StepResult) error {
	if o.fail(false) {
		return errDown
	}
	return o.Store.SaveStep(ctx, id, host, idx, st)
}

// WaitRecorded waits (up to a minute) until st holds want as it is, and
// fails the test with the difference if it never does.
func WaitRecorded(t *testing.T, st history.Store, want *deploy.Deployment) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		got, ok, err := st.Deployment(context.Background(), want.ID)
		diff := "not recorded"
		if ok {
			diff = cmp.Diff(want, got, SameDeployment)
		}
		if err == nil && diff == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("deployment %s never recorded as it ended (%v) (-want +got):\n%s", want.ID, err, diff)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// testRecorderOutage: the database goes away during a deployment, at
// several points; when it is back, the deployment is recorded as it ended,
// whether it ended before or after (nothing lost, nothing twice).
func testRecorderOutage(t *testing.T, s suite) {
	for _, tc := range []struct {
		name       string
		from, to   int // the writes that fail (see outage)
		closeWhile bool
	}{
		{"from the first write, back after the end", 0, -1, false},
		{"from the middle, back after the end", 9, -1, false},
		{"in the middle, back before the end", 5, 20, false},
		{"one host event", 3, 4, false},
		{"one step event", 7, 8, false},
		{"the last write only", 25, 26, false}, // the script makes 26 writes
		{"still down at Close", 8, -1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := newOutage(s.store(t, history.Options{}), tc.from, tc.to)
			var logs bytes.Buffer // read after Close, when the writer has ended
			rec := history.NewRecorder(st, slog.New(slog.NewTextHandler(&logs, nil)))
			rec.RetryEvery = 10 * time.Millisecond
			rec.Start()
			evs, want := Script(-1)
			for _, ev := range evs {
				rec.Observe(ev)
			}
			if tc.to < 0 {
				select {
				case <-st.endFailed:
				case <-time.After(time.Minute):
					t.Fatal("the recorder never tried to save the deployment's end")
				}
			}
			if tc.closeWhile {
				rec.Close()
				if !strings.Contains(logs.String(), "not recorded as it stands") {
					t.Errorf("a deployment left unsaved at Close is not logged:\n%s", logs.String())
				}
				return
			}
			st.lift()
			WaitRecorded(t, st, want)
			rec.Close()
			WaitRecorded(t, st, want)
			list, err := st.Deployments(context.Background(), deploy.Filter{})
			if err != nil || len(list) != 1 {
				t.Errorf("%d deployments recorded (%v), want 1", len(list), err)
			}
		})
	}
}
