package e2e

import (
	"os"
	"strings"
	"testing"
	"time"
)

// stepsOf returns a host's steps by name from a deploy --json result.
func stepsOf(h hostJSON) map[string]stepJSON {
	m := map[string]stepJSON{}
	for _, s := range h.Steps {
		m[s.Step] = s
	}
	return m
}

// switchWindow is the time from the first host's switch to the last's.
func switchWindow(dep deploymentJSON) time.Duration {
	var first, last time.Time
	for _, h := range dep.Hosts {
		s := stepsOf(h)["switch"]
		end := s.Started.Add(time.Duration(s.Seconds * float64(time.Second)))
		if first.IsZero() || s.Started.Before(first) {
			first = s.Started
		}
		if end.After(last) {
			last = end
		}
	}
	return last.Sub(first)
}

// TestEndToEndFastRedeploy: hosts prepared in parallel, a code-only
// redeploy reuses the venv (no pip), every host switches within one short
// window, and push mode ships a release without the hosts touching git.
func TestEndToEndFastRedeploy(t *testing.T) {
	e := newE2E(t, 3)
	e.vars["DEPLOY_PARALLEL"] = "3"
	e.commit("1.0", nil)
	first := e.mustDeploy()

	e.commit("1.0", map[string]string{"app.py": "# a code change\n" + e.env.AppFiles("1.0")["app.py"]})
	start := time.Now()
	second := e.mustDeploy()
	t.Logf("code-only redeploy of 3 hosts: %.2fs; switch window %v", time.Since(start).Seconds(), switchWindow(second))
	for i, h := range e.env.Hosts {
		steps := stepsOf(second.Hosts[i])
		if _, ran := steps["pip"]; ran {
			t.Errorf("%s: pip ran on a code-only redeploy", h.Name)
		}
		a, _ := os.Readlink(h.Path("app/releases/" + first.Release + "/venv"))
		b, _ := os.Readlink(h.Path("app/releases/" + second.Release + "/venv"))
		if a == "" || a != b {
			t.Errorf("%s: venvs %q and %q, want the same shared one", h.Name, a, b)
		}
		if v := e.onHost(h, "app/current/venv/bin/python", "-c", "import pdtestdep; print(pdtestdep.VERSION)"); v != "1.0" {
			t.Errorf("%s: reused venv imports %q", h.Name, v)
		}
		// The venv was built by the fast path (pip unpacked from
		// ensurepip's wheel, which marks it), not the slow fallback, and
		// its pip works as ensurepip's would.
		if inst := e.onHost(h, "sh", "-c", "cat app/current/venv/lib/python3*/site-packages/pip-*.dist-info/INSTALLER"); inst != "pushdeploy" {
			t.Errorf("%s: pip's INSTALLER is %q, want pushdeploy (the fast venv bootstrap was not used)", h.Name, inst)
		}
		if v := e.onHost(h, "app/current/venv/bin/pip", "--version"); !strings.HasPrefix(v, "pip ") {
			t.Errorf("%s: venv/bin/pip --version says %q", h.Name, v)
		}
		// Every host was prepared before any host switched.
		if sw := stepsOf(second.Hosts[0])["switch"].Started; !steps["before-switch"].Started.Before(sw) {
			t.Errorf("%s prepared after the first switch", h.Name)
		}
	}

	// Push mode: the deployer streams the release; the hosts' own mirror
	// is not used (not even created on a fresh host).
	e.vars["DEPLOY_FETCH"] = "push"
	sha := e.commit("2.0", nil)
	for _, h := range e.env.Hosts {
		e.onHost(h, "rm", "-rf", "app/.repo")
	}
	third := e.mustDeploy()
	for i, h := range e.env.Hosts {
		if _, ok := stepsOf(third.Hosts[i])["upload"]; !ok {
			t.Errorf("%s: no upload step in push mode", h.Name)
		}
		if _, err := os.Stat(h.Path("app/.repo")); !os.IsNotExist(err) {
			t.Errorf("%s: push mode touched the host's mirror (%v)", h.Name, err)
		}
		if rev := e.onHost(h, "cat", "app/current/REVISION"); rev != sha {
			t.Errorf("%s: REVISION %s, want %s", h.Name, rev, sha)
		}
		if v := e.onHost(h, "app/current/venv/bin/python", "-c", "import pdtestdep; print(pdtestdep.VERSION)"); v != "2.0" {
			t.Errorf("%s: venv imports %q after a requirements change", h.Name, v)
		}
		if out := e.onHost(h, "sh", "-c", "cat app/current/app.py | head -c 0; ls -a app/current"); strings.Contains(out, ".git") {
			t.Errorf("%s: a .git folder was shipped: %s", h.Name, out)
		}
	}
}
