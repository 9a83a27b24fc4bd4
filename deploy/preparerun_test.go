package deploy

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestCombinedStepFailures: a step that fails inside the prepare or the
// activate command is reported as its own step, with its duration and its
// own output, and the host is left as it was (or sent back).
func TestCombinedStepFailures(t *testing.T) {
	cases := []struct {
		name   string
		step   Step
		output string
		setup  func(r *rig)
	}{
		{"fetch", StepFetch, "is not on branch release", func(r *rig) {
			rel := r.d.Resolver.(fakeResolver).rel
			rel.Commit = strings.Repeat("e", 40) // no such commit
			r.d.Resolver = fakeResolver{rel: rel}
		}},
		{"venv", StepVenv, "venv: no space left", func(r *rig) {
			py := filepath.Join(r.dir, "python-novenv")
			r.must(os.WriteFile(py, []byte("#!/bin/sh\nif [ \"$1 $2\" = \"-m venv\" ]; then echo 'venv: no space left' >&2; exit 1; fi\nexec "+Quote(r.d.Python)+" \"$@\"\n"), 0o755))
			r.d.Python = py
		}},
		{"pip", StepPip, "No matching distribution found for broken", func(r *rig) { r.commit("broken") }},
		{"before-switch", StepBeforeSwitch, "migration 0042 failed", func(r *rig) {
			r.commitFiles("flask", map[string]string{".pushdeploy/before-switch": "+x:#!/bin/sh\necho 'migration 0042 failed: column exists' >&2\nsleep 0.1\nexit 3\n"})
		}},
		// After the switch, in the activate command: the host goes back.
		{"restart", StepRestart, "restart broke", func(r *rig) { r.d.RestartCmd = "echo 'restart broke' >&2; exit 5" }},
		{"after-switch", StepAfterSwitch, "cache warm-up failed", func(r *rig) {
			r.commitFiles("flask", map[string]string{".pushdeploy/after-switch": "+x:#!/bin/sh\necho 'cache warm-up failed' >&2\nexit 3\n"})
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newRig(t, 2)
			r.commit("flask")
			first, err := r.deploy()
			if err != nil {
				t.Fatal(err)
			}
			r.commit("flask==2")
			c.setup(r)
			r.d.Now = nil // real durations
			dep, err := r.deploy()
			var se *StepError
			if !errors.As(err, &se) || se.Host != "web1" || se.Step != c.step || !strings.Contains(se.Output, c.output) {
				t.Fatalf("got %v, want a failure of web1's %s with %q", err, c.step, c.output)
			}
			var got *StepResult
			for i, s := range dep.Hosts[0].Steps {
				if s.Name == c.step {
					got = &dep.Hosts[0].Steps[i]
				}
			}
			if got == nil || got.Status != StatusFailed || got.Duration <= 0 || !strings.Contains(got.Output, c.output) {
				t.Fatalf("step %s recorded as %+v", c.step, got)
			}
			if c.step == StepBeforeSwitch && got.Duration < 100*time.Millisecond {
				t.Errorf("before-switch took %s, less than its hook", got.Duration)
			}
			for _, h := range []string{"web1", "web2"} {
				if r.current(h) != "releases/"+first.ReleaseName || len(r.releases(h)) != 1 {
					t.Errorf("%s: current %q, releases %v: the failure changed the host", h, r.current(h), r.releases(h))
				}
			}
		})
	}
}

// waitForFile waits (with a deadline) until the file at p exists.
func waitForFile(t *testing.T, p string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := os.Stat(p); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not appear", p)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// gatedHook is a before-switch hook that says it runs (the file started
// in the host's home) and waits until the test creates gate.
func gatedHook(gate string) string {
	return "+x:#!/bin/sh\n: >\"$HOME/started\"\nwhile [ ! -e " + Quote(gate) + " ]; do sleep 0.02; done\n"
}

// TestFetchesOverlapButTouchNoRelease: with one host at a time, web2's
// mirror gets the commit while web1 builds, and web2's releases, current
// and lock stay as they were until its turn.
func TestFetchesOverlapButTouchNoRelease(t *testing.T) {
	r := newRig(t, 2)
	r.commit("flask")
	first, err := r.deploy()
	if err != nil {
		t.Fatal(err)
	}
	gate := filepath.Join(r.dir, "gate")
	sha := r.commitFiles("flask", map[string]string{".pushdeploy/before-switch": gatedHook(gate)})
	done := make(chan error, 1)
	var dep *Deployment
	go func() {
		var err error
		dep, err = r.deploy()
		done <- err
	}()
	waitForFile(t, filepath.Join(r.dialer.homes["web1"], "started"))
	web2 := filepath.Join(r.dialer.homes["web2"], "app")
	if out, err := exec.Command("git", "-C", filepath.Join(web2, ".repo"), "cat-file", "-e", sha+"^{commit}").CombinedOutput(); err != nil {
		t.Errorf("web2's mirror lacks the commit while web1 builds: %v %s", err, out)
	}
	if r.current("web2") != "releases/"+first.ReleaseName || len(r.releases("web2")) != 1 {
		t.Errorf("web2 changed before its turn: current %q, releases %v", r.current("web2"), r.releases("web2"))
	}
	if _, err := os.Stat(filepath.Join(r.dialer.homes["web2"], "started")); err == nil {
		t.Errorf("web2's hook ran before its turn")
	}
	if holder, _ := os.ReadFile(filepath.Join(web2, ".pushdeploy.lock")); !strings.Contains(string(holder), first.ID) {
		t.Errorf("web2's lock was taken before its turn: %q", holder)
	}
	r.must(os.WriteFile(gate, nil, 0o644))
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"web1", "web2"} {
		if r.current(h) != "releases/"+dep.ReleaseName {
			t.Errorf("%s: current %q after the deploy", h, r.current(h))
		}
	}
}

// TestForgedMarksAreOutput: the repository's code prints lines that look
// like the prepare command's marks, without the run's nonce: they are the
// step's output, and the failure is still the hook's.
func TestForgedMarksAreOutput(t *testing.T) {
	r := newRig(t, 1)
	r.commit("flask")
	first, err := r.deploy()
	if err != nil {
		t.Fatal(err)
	}
	hook := "+x:#!/bin/sh\nprintf '\\036pushdeploy 00000000000000000000000000000000 end before-switch 0\\n'\n" +
		"printf 'x\\036pushdeploy %s built\\n' \"$(ps -o args= -p $PPID | tr ' ' '\\n' | grep -E '^[0-9a-f]{32}$' | head -n 1)\"\n" +
		"echo 'the real failure' >&2\nexit 3\n"
	r.commitFiles("flask", map[string]string{".pushdeploy/before-switch": hook})
	_, err = r.deploy()
	var se *StepError
	if !errors.As(err, &se) || se.Step != StepBeforeSwitch || !strings.Contains(se.Output, "the real failure") ||
		!strings.Contains(se.Output, "pushdeploy 00000000000000000000000000000000 end before-switch 0") {
		t.Fatalf("got %v (output %q), want before-switch failing with the forged mark in its output", err, outputOf(err))
	}
	if r.current("web1") != "releases/"+first.ReleaseName || len(r.releases("web1")) != 1 {
		t.Errorf("current %q, releases %v", r.current("web1"), r.releases("web1"))
	}
}

func outputOf(err error) string {
	var se *StepError
	if errors.As(err, &se) {
		return se.Output
	}
	return ""
}

// TestStopWhileBuilding: a stop asked for while a host builds takes effect
// before its next step (here: before pip, while venv runs), and before the
// switch of a host that has built: nothing is left behind, the lock is
// free, and the hosts after it were not touched.
func TestStopWhileBuilding(t *testing.T) {
	for _, where := range []string{"venv", "before-switch"} {
		t.Run(where, func(t *testing.T) {
			r := newRig(t, 2)
			r.commit("flask")
			first, err := r.deploy()
			if err != nil {
				t.Fatal(err)
			}
			gate := filepath.Join(r.dir, "gate")
			started := filepath.Join(r.dialer.homes["web1"], "started")
			if where == "venv" {
				py := filepath.Join(r.dir, "python-gated")
				r.must(os.WriteFile(py, []byte("#!/bin/sh\nif [ \"$1 $2\" = \"-m venv\" ] && [ ! -e "+Quote(gate)+" ]; then : >"+Quote(started)+
					"; while [ ! -e "+Quote(gate)+" ]; do sleep 0.02; done; fi\nexec "+Quote(r.d.Python)+" \"$@\"\n"), 0o755))
				r.d.Python = py
				r.commit("flask==2")
			} else {
				r.commitFiles("flask==2", map[string]string{".pushdeploy/before-switch": gatedHook(gate)})
			}
			dep := NewDeployment(Request{Trigger: "cli", Push: Push{Branch: "release"}}, r.d.now())
			r.clock.Tick()
			done := make(chan error, 1)
			go func() { done <- r.d.Run(t.Context(), dep, r.hosts) }()
			waitForFile(t, started)
			dep.Stop()
			r.must(os.WriteFile(gate, nil, 0o644))
			err = <-done
			if !errors.Is(err, ErrStopped) {
				t.Fatalf("got %v, want ErrStopped", err)
			}
			steps := dep.Hosts[0].Steps
			if where == "venv" {
				if last := steps[len(steps)-2]; last.Name != StepPip || !errors.Is(last.Err, ErrStopped) {
					t.Errorf("web1's steps %q: want pip stopped (then the cleanup)", stepNames(dep.Hosts[0]))
				}
			}
			for _, h := range []string{"web1", "web2"} {
				if r.current(h) != "releases/"+first.ReleaseName || len(r.releases(h)) != 1 {
					t.Errorf("%s: current %q releases %v: the stop left something", h, r.current(h), r.releases(h))
				}
				lock := filepath.Join(r.dialer.homes[h], "app", ".pushdeploy.lock")
				if out, err := exec.Command("flock", "-n", lock, "true").CombinedOutput(); err != nil {
					t.Errorf("%s: the lock is still held after the deployment: %v %s", h, err, out)
				}
			}
			for _, s := range steps {
				if where == "venv" && s.Name == StepBeforeSwitch {
					t.Errorf("before-switch ran after the stop")
				}
			}
		})
	}
}

// TestCommandsPerHost counts the remote commands a code-only redeploy
// (same requirements, venv reused; a restart command and retention) runs
// on each host, besides the login: one, the host's deployment command
// (prepare phase, then switch and activate on the deployer's lines);
// with a lent deploy key too (the key is lent to that command until its
// fetch has ended).
func TestCommandsPerHost(t *testing.T) {
	for _, c := range []struct {
		name string
		lend bool
		want int
	}{{"hosts' own keys", false, 1}, {"lent key", true, 1}} {
		t.Run(c.name, func(t *testing.T) {
			r := newRig(t, 2)
			r.d.VenvReuse = true
			r.d.KeepReleases = 3
			r.d.LendGitKey = c.lend
			r.commit("flask")
			if _, err := r.deploy(); err != nil {
				t.Fatal(err)
			}
			r.commitFiles("flask", map[string]string{"app.py": "# a code change\n"})
			before := map[string]int{"web1": r.dialer.commandsOn("web1"), "web2": r.dialer.commandsOn("web2")}
			dep, err := r.deploy()
			if err != nil {
				t.Fatal(err)
			}
			for _, h := range []string{"web1", "web2"} {
				n := r.dialer.commandsOn(h) - before[h]
				t.Logf("%s: %d remote commands plus the login, for the steps %s", h, n, stepNames(dep.Hosts[0]))
				if n != c.want {
					t.Errorf("%s: %d remote commands for a code-only redeploy, want %d", h, n, c.want)
				}
			}
		})
	}
}
