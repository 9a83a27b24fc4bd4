package deploy

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// moveRig is a rig of n hosts with two releases, rolling back from the
// second (F) to the first (T), whose restart command logs, for every
// restart on T, which hosts' current points at T at that moment (in
// order, to the file "seen"), and each host's restarts (T or F, to the
// host's "restarts"). A host whose home has a file fail-restart fails its
// restart on T.
type moveRig struct {
	*rig
	deps []*Deployment
}

func newMoveRig(t *testing.T, n int) *moveRig {
	r := &moveRig{rig: newRig(t, n)}
	r.deps = r.deployN(2)
	seen := Quote(filepath.Join(r.dir, "seen"))
	cmd := `if [ "$COMMIT" = ` + Quote(r.commits[0]) + ` ]; then echo T >> "$HOME/restarts"; else echo F >> "$HOME/restarts"; exit 0; fi; on=""; `
	for _, h := range r.hosts {
		cmd += `[ "$(readlink ` + Quote(filepath.Join(r.dialer.homes[h.Name], "app", "current")) + `)" = releases/` + r.deps[0].ReleaseName + ` ] && on="$on ` + h.Name + `"; `
	}
	cmd += `echo "${HOME##*/}:$on" >> ` + seen + `; if [ -e "$HOME/fail-restart" ]; then echo "app: config error" >&2; exit 4; fi`
	r.d.RestartCmd = cmd
	return r
}

// restarts is the host's restarts, "T F" for one on T then one on F.
func (r *moveRig) restarts(host string) string {
	return strings.Join(strings.Fields(r.file(host, "restarts")), " ")
}

// seen is the seen file's lines, each batch's sorted (the hosts of a
// batch restart at once, in any order).
func (r *moveRig) seen(batch int) []string {
	lines := strings.Split(strings.TrimSpace(readFile(r.t, filepath.Join(r.dir, "seen"))), "\n")
	for i := 0; i < len(lines); i += batch {
		slices.Sort(lines[i:min(i+batch, len(lines))])
	}
	return lines
}

func (r *moveRig) withHealth() {
	r.d.HealthURL, r.d.HTTPClient = "http://{host}:8000/health", &http.Client{Transport: healthByHost{}}
}

// TestRollbackOrder: without a health check every host has switched before
// the first restart and the hosts restart batch after batch; with one,
// each batch switches and restarts before the next switches.
func TestRollbackOrder(t *testing.T) {
	all4 := " web1 web2 web3 web4"
	for _, tc := range []struct {
		name   string
		health bool
		batch  int
		seen   []string // per restart, in order: the host, then the hosts on the target
	}{
		{"switch every host then restart one by one", false, 1, []string{"web1:" + all4, "web2:" + all4, "web3:" + all4, "web4:" + all4}},
		{"switch every host then restart by twos", false, 2, []string{"web1:" + all4, "web2:" + all4, "web3:" + all4, "web4:" + all4}},
		{"health check: host by host", true, 1, []string{"web1: web1", "web2: web1 web2", "web3: web1 web2 web3", "web4:" + all4}},
		{"health check: by twos", true, 2, []string{"web1: web1 web2", "web2: web1 web2", "web3:" + all4, "web4:" + all4}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newMoveRig(t, 4)
			r.d.RestartBatch = RestartBatch{N: tc.batch}
			want := "connect lock verify switch restart"
			if tc.health {
				r.withHealth()
				want += " health"
			}
			before := map[string]int{}
			for _, h := range r.hosts {
				before[h.Name] = r.dialer.commandsOn(h.Name)
			}
			dep, err := r.rollback("")
			if err != nil {
				t.Fatal(err)
			}
			if got := r.seen(tc.batch); !slices.Equal(got, tc.seen) {
				t.Errorf("restarts, each with the hosts on the target then:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.seen, "\n"))
			}
			for i, h := range r.hosts {
				if got := r.current(h.Name); got != "releases/"+r.deps[0].ReleaseName {
					t.Errorf("%s: current -> %q", h.Name, got)
				}
				if got := stepNames(dep.Hosts[i]); got != want {
					t.Errorf("%s: steps %q, want %q", h.Name, got, want)
				}
				if got := r.dialer.commandsOn(h.Name) - before[h.Name]; got != 2 {
					t.Errorf("%s: %d remote commands, want 2", h.Name, got)
				}
				if got := r.restarts(h.Name); got != "T" || dep.Hosts[i].Status != StatusSucceeded {
					t.Errorf("%s: restarts %q, status %s", h.Name, got, dep.Hosts[i].Status)
				}
			}
		})
	}
}

// TestRollbackFailures: what a failed switch, restart or health check puts
// back, and how: each host's release, steps, status and restarts after.
func TestRollbackFailures(t *testing.T) {
	type host struct {
		on       string // T (the target) or F (where it was)
		steps    string // after connect lock verify
		status   Status
		restarts string
	}
	var (
		stays    = host{"T", "switch restart", StatusSucceeded, "T"}
		back     = host{"F", "switch revert", StatusRolledBack, ""}
		restored = host{"F", "switch restart revert restart-previous", StatusRolledBack, "T F"}
		failed   = host{"F", "switch restart revert restart-previous", StatusFailed, "T F"}
		notMoved = host{"F", "", StatusSkipped, ""}
	)
	withHealth := func(h host) host { h.steps = strings.Replace(h.steps, "restart", "restart health", 1); return h }
	for _, tc := range []struct {
		name    string
		health  bool
		batch   int
		all     bool   // RollbackAll
		switchX string // the host whose switch fails
		restart string // the host whose restart fails
		sick    string // the host whose health check fails
		step    Step   // the failed step, on the first failing host
		output  string // in the failed step's output
		want    []host
	}{
		{name: "a switch fails: every host goes back, none restarts", batch: 1, switchX: "web2", step: StepSwitch, output: "is not complete on this host",
			want: []host{back, {"F", "switch revert", StatusFailed, ""}, back, back}},
		{name: "a switch fails, by twos: every host goes back, none restarts", batch: 2, switchX: "web4", step: StepSwitch, output: "is not complete on this host",
			want: []host{back, back, back, {"F", "switch revert", StatusFailed, ""}}},
		{name: "health check: a switch fails: the hosts before go back, restarted", health: true, batch: 1, switchX: "web3", step: StepSwitch, output: "is not complete on this host",
			want: []host{withHealth(restored), withHealth(restored), {"F", "switch revert", StatusFailed, ""}, notMoved}},
		{name: "a restart fails: the hosts after go back without a restart", batch: 1, restart: "web2", step: StepRestart, output: "app: config error",
			want: []host{stays, failed, back, back}},
		{name: "a restart fails, RollbackAll: the hosts before go back restarted", batch: 1, all: true, restart: "web2", step: StepRestart, output: "app: config error",
			want: []host{restored, failed, back, back}},
		{name: "a restart fails, by twos: the batch goes back restarted", batch: 2, restart: "web3", step: StepRestart, output: "app: config error",
			want: []host{stays, stays, failed, restored, back}},
		{name: "the last batch fails", batch: 2, restart: "web5", step: StepRestart, output: "app: config error",
			want: []host{stays, stays, stays, stays, failed}},
		{name: "health check fails: the hosts after are not moved", health: true, batch: 1, sick: "web2", step: StepHealth, output: "500",
			want: []host{withHealth(stays), withHealth(failed), notMoved, notMoved}},
		{name: "health check fails, RollbackAll", health: true, batch: 1, all: true, sick: "web2", step: StepHealth, output: "500",
			want: []host{withHealth(restored), withHealth(failed), notMoved, notMoved}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newMoveRig(t, len(tc.want))
			r.d.RestartBatch, r.d.RollbackAll = RestartBatch{N: tc.batch}, tc.all
			if tc.health {
				r.withHealth()
				r.d.HTTPClient.Transport = healthByHost{sick: map[string]bool{tc.sick: true}}
				r.d.HealthTimeout = 300 * time.Millisecond
			}
			bd := newBarrierDialer(t, r.dialer, len(r.hosts))
			if tc.switchX != "" {
				// The target loses its venv after the check: switch.sh
				// refuses it.
				bd.before[tc.switchX] = func() {
					r.must(os.RemoveAll(filepath.Join(r.dialer.homes[tc.switchX], "app", "releases", r.deps[0].ReleaseName, "venv")))
				}
			}
			r.d.Dialer = bd
			if tc.restart != "" {
				r.must(os.WriteFile(filepath.Join(r.dialer.homes[tc.restart], "fail-restart"), nil, 0o644))
			}
			failing := tc.switchX + tc.restart + tc.sick
			dep, err := r.rollback("")
			var se *StepError
			if !errors.As(err, &se) || se.Host != failing || se.Step != tc.step || !strings.Contains(se.Output, tc.output) || !strings.Contains(err.Error(), tc.output) {
				t.Fatalf("got %v, want %s's %s step with %q", err, failing, tc.step, tc.output)
			}
			release := map[string]string{"T": r.deps[0].ReleaseName, "F": r.deps[1].ReleaseName}
			for i, h := range r.hosts {
				w := tc.want[i]
				if got := r.current(h.Name); got != "releases/"+release[w.on] {
					t.Errorf("%s: current -> %q, want %s", h.Name, got, w.on)
				}
				if got := stepNames(dep.Hosts[i]); got != strings.TrimSpace("connect lock verify "+w.steps) {
					t.Errorf("%s: steps %q, want %q", h.Name, got, w.steps)
				}
				if dep.Hosts[i].Status != w.status {
					t.Errorf("%s: status %s, want %s", h.Name, dep.Hosts[i].Status, w.status)
				}
				if got := r.restarts(h.Name); got != w.restarts {
					t.Errorf("%s: restarts %q, want %q", h.Name, got, w.restarts)
				}
			}
		})
	}
}

// TestRollbackStopBeforeARestart: a stop asked for while web1 restarts,
// after every host switched: web1 stays on the target, the hosts not
// restarted yet go back without a restart.
func TestRollbackStopBeforeARestart(t *testing.T) {
	r := newMoveRig(t, 3)
	started, resume := filepath.Join(r.dir, "started"), filepath.Join(r.dir, "resume")
	for _, p := range []string{started, resume} {
		r.must(syscall.Mkfifo(p, 0o600))
	}
	// web1's restart on the target tells the test it runs, and waits for
	// its word (each fifo blocks until the other side opens it).
	r.d.RestartCmd = `if [ "${HOME##*/}" = web1 ] && [ "$COMMIT" = ` + Quote(r.commits[0]) + ` ]; then echo started > ` + Quote(started) + `; read -r _ < ` + Quote(resume) + `; fi; ` + r.d.RestartCmd
	dep := NewDeployment(Request{Action: "rollback", Trigger: "cli"}, time.Now())
	done := make(chan error, 1)
	go func() { done <- r.d.Rollback(context.Background(), dep, r.hosts) }()
	if _, err := os.ReadFile(started); err != nil {
		t.Fatal(err)
	}
	dep.Stop()
	r.must(os.WriteFile(resume, []byte("go\n"), 0o600))
	err := <-done
	if !errors.Is(err, ErrStopped) || !strings.Contains(err.Error(), "before the restart of host web2") {
		t.Fatalf("got %v, want a stop before web2's restart", err)
	}
	for i, w := range []struct {
		on     string
		steps  string
		status Status
	}{
		{r.deps[0].ReleaseName, "switch restart", StatusSucceeded},
		{r.deps[1].ReleaseName, "switch revert", StatusRolledBack},
		{r.deps[1].ReleaseName, "switch revert", StatusRolledBack},
	} {
		h := r.hosts[i].Name
		if got := r.current(h); got != "releases/"+w.on {
			t.Errorf("%s: current -> %q, want %s", h, got, w.on)
		}
		if got := stepNames(dep.Hosts[i]); got != "connect lock verify "+w.steps || dep.Hosts[i].Status != w.status {
			t.Errorf("%s: steps %q, status %s; want %q, %s", h, got, dep.Hosts[i].Status, w.steps, w.status)
		}
	}
	if got := r.restarts("web2") + r.restarts("web3"); got != "" {
		t.Errorf("web2, web3 restarted: %q", got)
	}
}
