package history

import (
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/pushdeploy/pushdeploy/deploy"
)

// liveProcess starts a real process that outlives the test's checks.
func liveProcess(t *testing.T) Owner {
	t.Helper()
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	self := Self()
	o := Owner{PID: cmd.Process.Pid, Host: self.Host, Start: startMarker(cmd.Process.Pid)}
	if o.Start == "" {
		t.Fatalf("no start marker for live pid %d: is /proc mounted?", o.PID)
	}
	return o
}

// deadProcess returns a process that ran and ended.
func deadProcess(t *testing.T) Owner {
	t.Helper()
	cmd := exec.Command("true")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	o := Owner{PID: cmd.Process.Pid, Host: Self().Host, Start: startMarker(cmd.Process.Pid)}
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	return o
}

func TestStartMarker(t *testing.T) {
	self := Self()
	if self.PID == 0 || self.Host == "" || !strings.Contains(self.Start, ":") {
		t.Fatalf("Self() = %+v", self)
	}
	boot, ticks, _ := strings.Cut(self.Start, ":")
	if len(boot) < 32 || ticks == "" || strings.Trim(ticks, "0123456789") != "" {
		t.Errorf("start marker %q: want bootid:ticks", self.Start)
	}
	if startMarker(self.PID) != self.Start {
		t.Errorf("start marker changed within one process")
	}
}

// TestInterruptedMarking opens a database holding unfinished deployments of
// various owners: only those whose process is known to be gone become
// interrupted.
func TestInterruptedMarking(t *testing.T) {
	self := Self()
	live, dead := liveProcess(t), deadProcess(t)
	boot, ticks, _ := strings.Cut(live.Start, ":")
	for _, tc := range []struct {
		name   string
		owner  Owner
		status deploy.Status
		want   deploy.Status
	}{
		{"this process", self, deploy.StatusRunning, deploy.StatusRunning},
		{"a live process (a CLI deploy beside serve)", live, deploy.StatusRunning, deploy.StatusRunning},
		{"a live process, queued", live, deploy.StatusQueued, deploy.StatusQueued},
		{"a process that ended", dead, deploy.StatusRunning, deploy.StatusInterrupted},
		{"a process that ended, queued", dead, deploy.StatusQueued, deploy.StatusInterrupted},
		{"the pid is reused by another process", Owner{PID: live.PID, Host: live.Host, Start: boot + ":" + ticks + "0"}, deploy.StatusRunning, deploy.StatusInterrupted},
		{"the machine rebooted since", Owner{PID: live.PID, Host: live.Host, Start: "00000000-0000-0000-0000-000000000000:" + ticks}, deploy.StatusRunning, deploy.StatusInterrupted},
		{"another machine: cannot tell", Owner{PID: dead.PID, Host: self.Host + "-other", Start: dead.Start}, deploy.StatusRunning, deploy.StatusRunning},
		{"no owner recorded", Owner{}, deploy.StatusRunning, deploy.StatusInterrupted},
		{"finished ones are left alone", dead, deploy.StatusSucceeded, deploy.StatusSucceeded},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s := open(t, dir, Options{})
			d := &deploy.Deployment{ID: "d1", Action: "deploy", Status: tc.status, Queued: t0, Started: t0,
				Hosts: []*deploy.HostResult{
					{Host: deploy.Host{Name: "web1"}, Status: deploy.StatusRunning, Steps: []deploy.StepResult{
						{Name: "clone", Status: deploy.StatusSucceeded, Started: t0, Duration: time.Second},
						{Name: "venv", Status: deploy.StatusRunning, Started: t0.Add(time.Second)},
					}},
					{Host: deploy.Host{Name: "web2"}, Status: deploy.StatusQueued},
				}}
			if tc.status == deploy.StatusSucceeded {
				d.Finished = t0.Add(time.Minute)
			}
			if err := s.Save(ctx, d, tc.owner); err != nil {
				t.Fatal(err)
			}
			s.Close()
			s = open(t, dir, Options{}) // the next start
			got, _, err := s.Deployment(ctx, "d1")
			if err != nil {
				t.Fatal(err)
			}
			if got.Status != tc.want {
				t.Fatalf("status %q, want %q", got.Status, tc.want)
			}
			if tc.want != deploy.StatusInterrupted {
				if got.Status != deploy.StatusSucceeded && !got.Finished.IsZero() {
					t.Errorf("finished %v for a deployment left running", got.Finished)
				}
				return
			}
			if got.Finished.IsZero() || got.Err == nil || !strings.Contains(got.Err.Error(), "stopped before the deployment finished") {
				t.Errorf("interrupted without a finish time or a clear error: finished %v, error %v", got.Finished, got.Err)
			}
			if h := got.Hosts; h[0].Status != deploy.StatusInterrupted || h[1].Status != deploy.StatusSkipped ||
				h[0].Steps[0].Status != deploy.StatusSucceeded || h[0].Steps[1].Status != deploy.StatusInterrupted {
				t.Errorf("hosts after interruption: %+v %+v, steps %+v", h[0], h[1], h[0].Steps)
			}
		})
	}
}
