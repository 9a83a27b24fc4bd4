package deploy

import (
	"slices"
	"strings"
	"sync"
	"testing"
)

// recorder is an Observer that keeps every event.
type recorder struct {
	mu  sync.Mutex
	evs []Event
}

func (r *recorder) Observe(ev Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.evs = append(r.evs, ev)
}

func (r *recorder) events() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.evs)
}

// TestEventsTellEveryStepInOrder deploys to two hosts and checks that the
// events, replayed, give the deployment's final record: every step started
// before it ended, hosts end after their steps, sequence numbers have no
// gaps, and output lines arrive between their step's start and end.
func TestEventsTellEveryStepInOrder(t *testing.T) {
	for _, tc := range []struct {
		name   string
		req    string
		status Status
	}{
		{"success", "flask==3.0", StatusSucceeded},
		{"pip fails on the last host", "broken==1.0", StatusFailed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, 2)
			rec := &recorder{}
			r.d.Observer = rec
			r.commit(tc.req)
			dep, _ := r.deploy()
			final := dep.Snapshot()
			if final.Status != tc.status {
				t.Fatalf("status %s, want %s (%v)", final.Status, tc.status, final.Err)
			}
			evs := rec.events()
			if len(evs) == 0 {
				t.Fatal("no events")
			}
			type key struct {
				host string
				step Step
			}
			running := map[key]bool{}
			ended := map[key]int{}
			hostEnd := map[string]Status{}
			sawOutput := false
			for i, ev := range evs {
				if ev.Seq != i+1 {
					t.Fatalf("event %d has seq %d: %+v", i, ev.Seq, ev)
				}
				if ev.DeploymentID != dep.ID {
					t.Fatalf("event for deployment %q, want %q", ev.DeploymentID, dep.ID)
				}
				k := key{ev.Host, ev.Step}
				switch ev.Kind {
				case EventStep:
					if ev.Status == StatusRunning {
						running[k] = true
						continue
					}
					if !running[k] {
						t.Fatalf("step %s on %s ended before it started", ev.Step, ev.Host)
					}
					running[k] = false
					ended[k]++
				case EventOutput:
					if !running[k] {
						t.Fatalf("output line %q of %s on %s outside its step", ev.Line, ev.Step, ev.Host)
					}
					sawOutput = true
				case EventHost:
					hostEnd[ev.Host] = ev.Status
				case EventDeployment:
					if ev.Deployment == nil || ev.Deployment.Status != ev.Status {
						t.Fatalf("deployment event without a matching snapshot: %+v", ev)
					}
				}
			}
			last := evs[len(evs)-1]
			if last.Kind != EventDeployment || last.Status != tc.status {
				t.Fatalf("last event %+v, want the deployment's end (%s)", last, tc.status)
			}
			if !sawOutput {
				t.Error("no output line was told")
			}
			for _, h := range final.Hosts {
				if hostEnd[h.Host.String()] != h.Status {
					t.Errorf("host %s: events end at %q, record says %q", h.Host, hostEnd[h.Host.String()], h.Status)
				}
				for _, s := range h.Steps {
					if ended[key{h.Host.String(), s.Name}] == 0 {
						t.Errorf("host %s: no end event for step %s", h.Host, s.Name)
					}
				}
			}
			if tc.status == StatusFailed && !strings.Contains(last.Error, "broken") {
				t.Errorf("failed deployment's event error %q does not carry pip's output", last.Error)
			}
		})
	}
}
