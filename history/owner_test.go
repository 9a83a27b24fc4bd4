package history_test

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/pushdeploy/pushdeploy/deploy"
	"github.com/pushdeploy/pushdeploy/history"
)

// liveProcess starts a real process that outlives the test's checks.
func liveProcess(t *testing.T) history.Owner {
	t.Helper()
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	o := history.Owner{PID: cmd.Process.Pid, Host: history.Self().Host, Start: history.StartMarker(cmd.Process.Pid)}
	if o.Start == "" {
		t.Fatalf("no start marker for live pid %d: is /proc mounted?", o.PID)
	}
	return o
}

// deadProcess returns a process that ran and ended.
func deadProcess(t *testing.T) history.Owner {
	t.Helper()
	cmd := exec.Command("true")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	o := history.Owner{PID: cmd.Process.Pid, Host: history.Self().Host, Start: history.StartMarker(cmd.Process.Pid)}
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	return o
}

func TestStartMarker(t *testing.T) {
	self := history.Self()
	if self.PID == 0 || self.Host == "" || !strings.Contains(self.Start, ":") {
		t.Fatalf("Self() = %+v", self)
	}
	boot, ticks, _ := strings.Cut(self.Start, ":")
	if len(boot) < 32 || ticks == "" || strings.Trim(ticks, "0123456789") != "" {
		t.Errorf("start marker %q: want bootid:ticks", self.Start)
	}
	if history.StartMarker(self.PID) != self.Start {
		t.Errorf("start marker changed within one process")
	}
}

// TestOwnerAlive: a deployment's process is only declared gone when it is
// known to be, looking at real processes.
func TestOwnerAlive(t *testing.T) {
	self := history.Self()
	live, dead := liveProcess(t), deadProcess(t)
	boot, ticks, _ := strings.Cut(live.Start, ":")
	for _, tc := range []struct {
		name  string
		owner history.Owner
		want  bool
	}{
		{"this process", self, true},
		{"a live process (a CLI deploy beside serve)", live, true},
		{"a process that ended", dead, false},
		{"the pid is reused by another process", history.Owner{PID: live.PID, Host: live.Host, Start: boot + ":" + ticks + "0"}, false},
		{"the machine rebooted since", history.Owner{PID: live.PID, Host: live.Host, Start: "00000000-0000-0000-0000-000000000000:" + ticks}, false},
		{"another machine: cannot tell", history.Owner{PID: dead.PID, Host: self.Host + "-other", Start: dead.Start}, true},
		{"no owner recorded", history.Owner{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.owner.Alive(self); got != tc.want {
				t.Errorf("%+v.Alive(self) = %v, want %v", tc.owner, got, tc.want)
			}
		})
	}
}

// TestInterruptedByRealProcesses: without Options.Alive, Open looks at
// the real processes: the deployment of a process that ended is
// interrupted, that of a live one is left running.
func TestInterruptedByRealProcesses(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, history.Options{})
	owners := map[string]history.Owner{"of-the-dead": deadProcess(t), "of-the-living": liveProcess(t)}
	for id, o := range owners {
		if err := s.Save(ctx, &deploy.Deployment{ID: id, Action: "deploy", Status: deploy.StatusRunning, Queued: t0, Started: t0}, o); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	s = open(t, dir, history.Options{})
	for id, want := range map[string]deploy.Status{"of-the-dead": deploy.StatusInterrupted, "of-the-living": deploy.StatusRunning} {
		d, _, err := s.Deployment(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if d.Status != want {
			t.Errorf("deployment %s: %s, want %s", id, d.Status, want)
		}
	}
}
