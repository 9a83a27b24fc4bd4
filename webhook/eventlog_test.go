package webhook

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/pushdeploy/pushdeploy/deploy"
)

// fakeLog is an EventLog with the events of its deployments, and the
// deployment it says runs elsewhere per app.
type fakeLog struct {
	mu      sync.Mutex
	events  map[string][]deploy.Event
	err     error
	running map[string]*deploy.Deployment
	follows int
}

func (f *fakeLog) Follow(_ context.Context, id string, after int) (<-chan deploy.Event, func(), bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.follows++
	evs, ok := f.events[id]
	if f.err != nil || !ok {
		return nil, nil, false, f.err
	}
	c := make(chan deploy.Event, len(evs))
	for _, ev := range evs {
		if ev.Seq > after {
			c <- ev
		}
	}
	close(c)
	return c, func() {}, true, nil
}

func (f *fakeLog) Running(_ context.Context, app string) (*deploy.Deployment, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d, ok := f.running[app]
	return d, ok
}

// TestEventStreamFromTheLog: a deployment the hub holds streams from the
// hub; one it does not, from the event log, with the same ids and
// Last-Event-ID; a log that cannot be read is as one without it.
func TestEventStreamFromTheLog(t *testing.T) {
	for _, tc := range []struct {
		name, lastID, want string
		inHub, logAsked    bool
		logErr             error
		status             int
	}{
		{name: "in the hub", inHub: true, status: 200, want: "1:deployment 2:step 3:output 4:output 5:step 6:host 7:deployment :end"},
		{name: "from the log", status: 200, want: "1:deployment 2:step 3:output 4:output 5:step 6:host 7:deployment :end", logAsked: true},
		{name: "from the log, resumed", lastID: "4", status: 200, want: "5:step 6:host 7:deployment :end", logAsked: true},
		{name: "the log unreadable", logErr: fmt.Errorf("database down"), status: 404, logAsked: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			log := &fakeLog{events: map[string][]deploy.Event{"d1": d1Events()}, err: tc.logErr}
			r := newStreamRig(t, func(c *Config) { c.EventLog = log })
			if tc.inHub {
				for _, ev := range d1Events() {
					r.hub.Observe(ev)
				}
			}
			headers := map[string]string{}
			if tc.lastID != "" {
				headers["Last-Event-ID"] = tc.lastID
			}
			resp, rd := r.get("/api/deployments/d1/events", headers)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
			}
			if tc.status == 200 {
				if got := kinds(rd.all()); got != tc.want {
					t.Errorf("events %s\nwant   %s", got, tc.want)
				}
			}
			if asked := log.follows > 0; asked != tc.logAsked {
				t.Errorf("log asked: %v, want %v", asked, tc.logAsked)
			}
		})
	}
}

// TestOverviewRunningElsewhere: the overview shows an app's deployment
// that another deployer runs (as the event log tells) as its running
// one, with its hosts; not one that the app's own worker holds (it ended
// here, and the log is behind).
func TestOverviewRunningElsewhere(t *testing.T) {
	elsewhere := appDeployment("20261125-210000-00000e", "staging", "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee", time.Now())
	elsewhere.Status, elsewhere.Finished = deploy.StatusRunning, time.Time{}
	elsewhere.Hosts = []*deploy.HostResult{{Host: deploy.Host{Name: "web1"}, Status: deploy.StatusRunning, Steps: []deploy.StepResult{{Name: "pip"}}}}
	log := &fakeLog{running: map[string]*deploy.Deployment{"staging": elsewhere}}
	ta := newTwoApps(t, func(c *Config) { c.EventLog = log })
	state := ta.s.overviewState(context.Background(), ta.apps.apps[1])
	if r := state.Running; r == nil || r.ID != elsewhere.ID || fmt.Sprint(r.Hosts) != "[{web1 running pip}]" {
		t.Fatalf("staging's running deployment %+v, want %s on web1 (pip)", r, elsewhere.ID)
	}
	if state := ta.s.overviewState(context.Background(), ta.apps.apps[0]); state.Running != nil {
		t.Errorf("production runs %s: the log says nothing runs it", state.Running.ID)
	}
	ta.staging.deps[elsewhere.ID] = elsewhere // the worker's own: it knows better
	if state := ta.s.overviewState(context.Background(), ta.apps.apps[1]); state.Running != nil {
		t.Errorf("staging runs %s from the log, while its worker holds it", state.Running.ID)
	}
}
