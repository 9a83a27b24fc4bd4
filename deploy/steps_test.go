package deploy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// commitFiles commits extra files (path -> content; a "+x:" prefix makes
// the file executable) on top of requirements.txt.
func (r *rig) commitFiles(req string, files map[string]string) string {
	r.t.Helper()
	for name, content := range files {
		mode := os.FileMode(0o644)
		if c, ok := strings.CutPrefix(content, "+x:"); ok {
			content, mode = c, 0o755
		}
		p := filepath.Join(r.repo, name)
		r.must(os.MkdirAll(filepath.Dir(p), 0o755))
		r.must(os.WriteFile(p, []byte(content), mode))
		r.must(os.Chmod(p, mode)) // WriteFile keeps an existing file's mode
	}
	return r.commit(req)
}

func TestSharedPaths(t *testing.T) {
	r := newRig(t, 1)
	r.d.SharedPaths = []string{".env", "media", "var/logs/"}
	home := r.dialer.homes["web1"]
	r.commitFiles("flask", map[string]string{"media/placeholder": "from the repo"})

	// A missing shared file fails the host before its switch, naming it.
	_, err := r.deploy()
	var se *StepError
	if !errors.As(err, &se) || se.Step != "shared" || !strings.Contains(err.Error(), "shared file "+home+"/app/shared/.env is missing") {
		t.Fatalf("got %v, want a shared step error naming .env", err)
	}
	if r.current("web1") != "" || len(r.releases("web1")) != 0 {
		t.Fatalf("the host changed although a shared file was missing")
	}

	r.must(os.MkdirAll(filepath.Join(home, "app", "shared"), 0o755))
	r.must(os.WriteFile(filepath.Join(home, "app", "shared", ".env"), []byte("SECRET=1\n"), 0o600))
	if _, err := r.deploy(); err != nil {
		t.Fatal(err)
	}
	cur := filepath.Join(home, "app", "current")
	if b, err := os.ReadFile(filepath.Join(cur, ".env")); err != nil || string(b) != "SECRET=1\n" {
		t.Errorf("shared .env in the release: %q, %v", b, err)
	}
	for _, dir := range []string{"media", "var/logs"} {
		target, err := os.Readlink(filepath.Join(cur, dir))
		if err != nil || target != filepath.Join(home, "app", "shared", dir) {
			t.Errorf("%s -> %q, %v", dir, target, err)
		}
		if fi, err := os.Stat(filepath.Join(home, "app", "shared", dir)); err != nil || !fi.IsDir() {
			t.Errorf("shared folder %s was not created: %v", dir, err)
		}
	}
}

func TestSharedPathRefusesASymlinkInTheRelease(t *testing.T) {
	r := newRig(t, 1)
	r.d.SharedPaths = []string{"data/cache"}
	outside := t.TempDir()
	r.must(os.Symlink(outside, filepath.Join(r.repo, "data")))
	r.commit("flask")
	_, err := r.deploy()
	if err == nil || !strings.Contains(err.Error(), "is a symlink in the release") {
		t.Fatalf("got %v, want a refusal", err)
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Errorf("something was written through the repository's symlink: %v", entries)
	}
}

func TestHooks(t *testing.T) {
	r := newRig(t, 2)
	r.commit("flask")
	if _, err := r.deploy(); err != nil {
		t.Fatal(err)
	}
	before := r.current("web1")
	hook := "+x:#!/bin/sh\necho \"hook $0 in $(pwd -P) for $COMMIT with $(command -v python)\" >> \"$HOME/hooks.log\"\n"
	failing := "+x:#!/bin/sh\necho 'migration 0042 failed: column exists' >&2\nexit 3\n"

	// A failing before-switch hook: no switch on that host, the next host untouched.
	r.commitFiles("flask", map[string]string{".pushdeploy/before-switch": failing})
	n2 := r.dialer.commandsOn("web2")
	_, err := r.deploy()
	var se *StepError
	if !errors.As(err, &se) || se.Step != "before-switch" || se.Host != "web1" || !strings.Contains(err.Error(), "migration 0042 failed") {
		t.Fatalf("got %v", err)
	}
	// web2 ran its prepare command only (every host's starts at once).
	if r.current("web1") != before || len(r.releases("web1")) != 1 || r.dialer.commandsOn("web2") != n2+1 {
		t.Fatalf("a failing before-switch hook changed something")
	}

	// Working hooks run in the release, with its venv first on PATH.
	sha := r.commitFiles("flask", map[string]string{".pushdeploy/before-switch": hook, ".pushdeploy/after-switch": hook})
	dep, err := r.deploy()
	if err != nil {
		t.Fatal(err)
	}
	home := r.dialer.homes["web1"]
	log, _ := os.ReadFile(filepath.Join(home, "hooks.log"))
	rel := filepath.Join(home, "app", "releases", dep.ReleaseName)
	want := "hook ./.pushdeploy/before-switch in " + rel + " for " + sha + " with " + rel + "/venv/bin/python\n" +
		"hook ./.pushdeploy/after-switch in " + rel + " for " + sha + " with " + rel + "/venv/bin/python\n"
	if string(log) != want {
		t.Errorf("hooks.log:\n%s\nwant:\n%s", log, want)
	}

	// A hook that is not executable is a clear error.
	r.commitFiles("flask", map[string]string{".pushdeploy/before-switch": "#!/bin/sh\n"})
	if _, err := r.deploy(); err == nil || !strings.Contains(err.Error(), "not an executable file") {
		t.Errorf("non-executable hook: %v", err)
	}
}

func TestRetention(t *testing.T) {
	r := newRig(t, 1)
	r.d.KeepReleases = 2
	var names []string
	for i := 0; i < 4; i++ {
		r.commit("flask==" + itoa(i))
		dep, err := r.deploy()
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, dep.ReleaseName)
	}
	if got := strings.Join(r.releases("web1"), " "); got != names[2]+" "+names[3] {
		t.Errorf("releases %q, want the newest 2", got)
	}
	// A failed deploy removes its own release and nothing else.
	r.commit("broken")
	if _, err := r.deploy(); err == nil {
		t.Fatal("broken deploy succeeded")
	}
	if got := strings.Join(r.releases("web1"), " "); got != names[2]+" "+names[3] {
		t.Errorf("after a failed deploy: %q", got)
	}
	// Current is kept even when it is old: point it at the oldest kept
	// release (as a rollback would), deploy twice with KeepReleases=1.
	home := r.dialer.homes["web1"]
	r.must(os.Remove(filepath.Join(home, "app", "current")))
	r.must(os.Symlink("releases/"+names[2], filepath.Join(home, "app", "current")))
	r.d.KeepReleases = 1
	r.commit("flask==9")
	dep, err := r.deploy()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(r.releases("web1"), " "); got != names[2]+" "+dep.ReleaseName {
		t.Errorf("keep 1: %q, want the previous (%s) and current", got, names[2])
	}
	// A file named like a release is not one: it neither stops the
	// cleanup nor is removed.
	stray := "19990101000000-0000000"
	r.must(os.WriteFile(filepath.Join(home, "app", "releases", stray), []byte("not a release"), 0o644))
	r.commit("flask==10")
	next, err := r.deploy()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(r.releases("web1"), " "); got != stray+" "+dep.ReleaseName+" "+next.ReleaseName {
		t.Errorf("with a stray file: %q, want the file, the previous (%s) and current", got, dep.ReleaseName)
	}
}

// healthByHost answers health checks: 500 for the hosts in sick, 200 else.
type healthByHost struct{ sick map[string]bool }

func (h healthByHost) RoundTrip(req *http.Request) (*http.Response, error) {
	code := 200
	if h.sick[req.URL.Hostname()] {
		code = 500
	}
	return &http.Response{StatusCode: code, Status: fmt.Sprintf("%d %s", code, http.StatusText(code)), Body: io.NopCloser(strings.NewReader("app says " + http.StatusText(code))), Request: req}, nil
}

func TestHealthFailureSendsHostsBack(t *testing.T) {
	for _, all := range []bool{false, true} {
		t.Run(map[bool]string{false: "host", true: "all"}[all], func(t *testing.T) {
			r := newRig(t, 3)
			r.commit("flask")
			first, err := r.deploy()
			if err != nil {
				t.Fatal(err)
			}
			r.d.HealthURL = "http://{host}:8000/health"
			r.d.HealthTimeout = 1500 * time.Millisecond
			r.d.HTTPClient = &http.Client{Transport: healthByHost{sick: map[string]bool{"web2": true}}}
			r.d.RollbackAll = all
			r.commit("flask==2")
			dep, err := r.deploy()
			var se *StepError
			if !errors.As(err, &se) || se.Host != "web2" || se.Step != "health" || !strings.Contains(err.Error(), "answered 500") {
				t.Fatalf("got %v, want a health failure on web2", err)
			}
			old := "releases/" + first.ReleaseName
			for _, h := range []string{"web2", "web3"} {
				if r.current(h) != old || len(r.releases(h)) != 1 {
					t.Errorf("%s: current %q releases %v, want it back on %s", h, r.current(h), r.releases(h), old)
				}
			}
			// With a health check the hosts go one at a time: the rollout
			// stopped at web2, so web3 was never switched nor restarted.
			env3, _ := os.ReadFile(filepath.Join(r.dialer.homes["web3"], "restart.env"))
			if !strings.Contains(string(env3), "COMMIT="+r.commits[0]+"\n") {
				t.Errorf("web3 was restarted on the new release:\n%s", env3)
			}
			if log := strings.TrimSpace(r.file("web3", "app/revisions.log")); strings.Count(log, "\n") != 0 {
				t.Errorf("web3 was switched:\n%s", log)
			}
			if dep.Hosts[2].Status != StatusCancelled {
				t.Errorf("web3 status %s, want cancelled", dep.Hosts[2].Status)
			}
			wantWeb1 := "releases/" + dep.ReleaseName
			if all {
				wantWeb1 = old
			}
			if r.current("web1") != wantWeb1 {
				t.Errorf("web1: current %q, want %q", r.current("web1"), wantWeb1)
			}
			if all && dep.Hosts[0].Status != StatusRolledBack {
				t.Errorf("web1 status %s", dep.Hosts[0].Status)
			}
			// The restart of the previous release ran on the hosts sent back.
			env, _ := os.ReadFile(filepath.Join(r.dialer.homes["web2"], "restart.env"))
			if !strings.Contains(string(env), "COMMIT="+r.commits[0]+"\n") {
				t.Errorf("web2 was not restarted on its previous release:\n%s", env)
			}
		})
	}
}

func TestVenvReuse(t *testing.T) {
	r := newRig(t, 1)
	r.d.VenvReuse = true
	r.d.KeepReleases = 2
	home := r.dialer.homes["web1"]
	venvOf := func(rel string) string {
		target, err := os.Readlink(filepath.Join(home, "app", "releases", rel, "venv"))
		if err != nil {
			t.Fatalf("release %s has no venv link: %v", rel, err)
		}
		return target
	}
	r.commit("flask==1")
	d1, err := r.deploy()
	if err != nil {
		t.Fatal(err)
	}
	r.commitFiles("flask==1", map[string]string{"app.py": "# a code change\n"})
	d2, err := r.deploy()
	if err != nil {
		t.Fatal(err)
	}
	if venvOf(d1.ReleaseName) != venvOf(d2.ReleaseName) || !strings.HasPrefix(venvOf(d2.ReleaseName), "../../venvs/") {
		t.Errorf("a code-only change got a new venv: %s vs %s", venvOf(d1.ReleaseName), venvOf(d2.ReleaseName))
	}
	if steps := stepNames(d2.Hosts[0]); slices.Contains(strings.Fields(steps), "pip") {
		t.Errorf("pip ran for a reused venv: %v", steps)
	}
	// The venv works through the link.
	if _, err := os.Stat(filepath.Join(home, "app", "current", "venv", "bin", "python")); err != nil {
		t.Errorf("current/venv/bin/python: %v", err)
	}

	// New requirements: a new venv; a broken one leaves no complete venv
	// behind and the next deploy builds it again.
	r.commit("broken")
	if _, err := r.deploy(); err == nil {
		t.Fatal("broken requirements deployed")
	}
	r.commit("flask==2")
	d3, err := r.deploy()
	if err != nil {
		t.Fatal(err)
	}
	if venvOf(d3.ReleaseName) == venvOf(d2.ReleaseName) {
		t.Errorf("new requirements reused the old venv")
	}
	// Retention keeps 2 releases (d2 and d3): d1's venv is still d2's;
	// the failed build's venv is gone.
	venvs, _ := os.ReadDir(filepath.Join(home, "app", "venvs"))
	if len(venvs) != 2 {
		t.Errorf("venvs %v, want the 2 in use", venvs)
	}
	r.commit("flask==3")
	if _, err := r.deploy(); err != nil {
		t.Fatal(err)
	}
	venvs, _ = os.ReadDir(filepath.Join(home, "app", "venvs"))
	if len(venvs) != 2 {
		t.Errorf("after retention: venvs %v, want only those of the 2 kept releases", venvs)
	}

	// Local paths in requirements.txt: the release gets its own venv.
	r.commit("-e .")
	d5, err := r.deploy()
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(filepath.Join(home, "app", "releases", d5.ReleaseName, "venv")); err != nil || fi.Mode()&os.ModeSymlink != 0 {
		t.Errorf("requirements with local paths: venv should be the release's own folder (%v)", err)
	}
}

func TestPrepareFailureSwitchesNothingAnywhere(t *testing.T) {
	for _, parallel := range []int{1, 3} {
		t.Run(itoa(parallel), func(t *testing.T) {
			r := newRig(t, 3)
			r.d.Parallel = parallel
			r.commit("flask")
			first, err := r.deploy()
			if err != nil {
				t.Fatal(err)
			}
			// Only web3 lacks the shared file: web1 and web2 prepare fine.
			r.d.SharedPaths = []string{".env"}
			for _, h := range []string{"web1", "web2"} {
				r.must(os.MkdirAll(filepath.Join(r.dialer.homes[h], "app", "shared"), 0o755))
				r.must(os.WriteFile(filepath.Join(r.dialer.homes[h], "app", "shared", ".env"), nil, 0o644))
			}
			r.commit("flask==2")
			dep, err := r.deploy()
			var se *StepError
			if !errors.As(err, &se) || se.Host != "web3" || se.Step != "shared" {
				t.Fatalf("got %v", err)
			}
			for _, h := range []string{"web1", "web2", "web3"} {
				if r.current(h) != "releases/"+first.ReleaseName || len(r.releases(h)) != 1 {
					t.Errorf("%s: current %q releases %v: a failed preparation must switch nothing anywhere", h, r.current(h), r.releases(h))
				}
			}
			if dep.Hosts[0].Status != StatusCancelled || dep.Hosts[2].Status != StatusFailed {
				t.Errorf("statuses %s %s %s", dep.Hosts[0].Status, dep.Hosts[1].Status, dep.Hosts[2].Status)
			}
		})
	}
}

func TestRedeployOfAFetchedCommitSkipsTheFetch(t *testing.T) {
	r := newRig(t, 1)
	first := r.commit("flask")
	if _, err := r.deploy(); err != nil {
		t.Fatal(err)
	}
	r.commit("flask==2")
	if _, err := r.deploy(); err != nil {
		t.Fatal(err)
	}
	r.d.Resolver = fakeResolver{rel: Release{RepoURL: "/nonexistent/repo", Branch: "release", Commit: first}}
	dep, err := r.deploy()
	if err != nil {
		t.Fatalf("redeploy of a commit in the mirror must not need the repository: %v", err)
	}
	for _, s := range dep.Hosts[0].Steps {
		if s.Name == "fetch" && !strings.Contains(s.Output, "in the mirror already") {
			t.Errorf("fetch output %q", s.Output)
		}
	}
	rev, _ := os.ReadFile(filepath.Join(r.dialer.homes["web1"], "app", "current", "REVISION"))
	if strings.TrimSpace(string(rev)) != first {
		t.Errorf("REVISION %q, want %s", rev, first)
	}
}

// TestSwitchOrder: without a health check every host switches, all at
// once, before the first restart (the pool is mixed for moments only);
// with one, each host is switched, restarted and checked before the next
// one switches. The restarts go in hosts-file order.
func TestSwitchOrder(t *testing.T) {
	for _, tc := range []struct {
		name      string
		healthURL string
		want      string
	}{
		{"no health check", "", "web1 switch, web2 switch, web3 switch, web1 restart, web2 restart, web3 restart"},
		{"health check", "http://{host}:8000/health",
			"web1 switch, web1 restart, web1 health, web2 switch, web2 restart, web2 health, web3 switch, web3 restart, web3 health"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, 3)
			r.d.HealthURL = tc.healthURL
			r.d.HTTPClient = &http.Client{Transport: healthByHost{}}
			rec := &recorder{}
			r.d.Observer = rec
			r.commit("flask")
			if _, err := r.deploy(); err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, ev := range rec.events() {
				if ev.Kind == EventStep && ev.Status == StatusRunning && slices.Contains([]Step{StepSwitch, StepRestart, StepHealth}, ev.Step) {
					got = append(got, ev.Host+" "+string(ev.Step))
				}
			}
			if tc.healthURL == "" && len(got) >= 3 {
				// At once: in whatever order they began.
				slices.Sort(got[:3])
			}
			if s := strings.Join(got, ", "); s != tc.want {
				t.Errorf("steps started in the order\n%s\nwant\n%s", s, tc.want)
			}
		})
	}
}

// TestHookOutputIsLogged: what a hook prints is logged with its step even
// when it succeeds; other successful steps log no output.
func TestHookOutputIsLogged(t *testing.T) {
	r := newRig(t, 1)
	var buf bytes.Buffer
	r.d.Logger = slog.New(slog.NewJSONHandler(&buf, nil))
	// Without hooks, the hook steps log no output line, and keep why they
	// did nothing.
	r.commit("flask")
	dep, err := r.deploy()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(buf.String(), `"output"`) {
		t.Errorf("a release without hooks logged output:\n%s", buf.String())
	}
	for _, s := range dep.Hosts[0].Steps {
		if s.Name == "before-switch" && strings.TrimSpace(s.Output) != noHook("before-switch") {
			t.Errorf("before-switch output %q, want %q", s.Output, noHook("before-switch"))
		}
	}

	buf.Reset()
	r.commitFiles("flask", map[string]string{
		".pushdeploy/before-switch": "+x:#!/bin/sh\necho 'Applying app.0002_note... OK'\n",
		".pushdeploy/after-switch":  "+x:#!/bin/sh\necho '12 static files copied' >&2\n",
	})
	if _, err := r.deploy(); err != nil {
		t.Fatal(err)
	}
	outputs := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var rec struct{ Msg, Host, Step, Output string }
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if rec.Msg == "step done" && rec.Output != "" {
			outputs[rec.Step] = rec.Output
		}
	}
	want := map[string]string{"before-switch": "Applying app.0002_note... OK", "after-switch": "12 static files copied"}
	if !maps.Equal(outputs, want) {
		t.Errorf("steps logged with their output: %q, want %q", outputs, want)
	}
}

// TestRetentionEndsWithTheDeployment: each host's retention runs on while
// the next host is activated (followRetention), but the deployment ends
// only once every host's has: when it returns, every host's record ends
// with a passed retention step and its old releases are gone, the last
// host's too.
func TestRetentionEndsWithTheDeployment(t *testing.T) {
	r := newRig(t, 3)
	r.d.KeepReleases = 1
	for i := 1; i <= 3; i++ {
		r.commit("flask==" + itoa(i))
		dep, err := r.deploy()
		if err != nil {
			t.Fatalf("deploy %d: %v", i, err)
		}
		for _, h := range dep.Hosts {
			last := h.Steps[len(h.Steps)-1]
			if last.Name != StepRetention || last.Status != StatusSucceeded {
				t.Errorf("deploy %d, %s: last step %s (%s), want a passed retention; steps %s", i, h.Host.Name, last.Name, last.Status, stepNames(h))
			}
			// Kept: the new release and the one before it.
			if got, want := len(r.releases(h.Host.Name)), min(i, 2); got != want {
				t.Errorf("deploy %d, %s: %d releases %v, want %d", i, h.Host.Name, got, r.releases(h.Host.Name), want)
			}
		}
	}
}
