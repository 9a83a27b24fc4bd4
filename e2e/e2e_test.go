package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pushdeploy/pushdeploy/history"
	"github.com/pushdeploy/pushdeploy/internal/pgtest"
	"github.com/pushdeploy/pushdeploy/internal/testhosts"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "pushdeploy-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "pushdeploy")
	// -tags e2e: the binary's deployer clock takes the offset that
	// environ gives each run (internal/cli/clock_e2e.go).
	if out, err := exec.Command("go", "build", "-tags", "e2e", "-o", binary, "github.com/pushdeploy/pushdeploy").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		os.Exit(1)
	}
	// pgtest.Run: the tests of several deployers share one PostgreSQL
	// server, started on first use and stopped after the tests.
	code := pgtest.Run(m)
	os.RemoveAll(dir)
	os.Exit(code)
}

// restartCmd records the environment the restart command gets.
const restartCmd = `env | grep -E '^(RELEASE_DIR|CURRENT_DIR|COMMIT|BRANCH|DEPLOYMENT_ID|APP_PROCESSES|APP_THREADS)=' | sort > "$HOME/restart.env"; echo "PWD=$(pwd -P)" >> "$HOME/restart.env"`

type e2e struct {
	t    *testing.T
	env  *testhosts.Env
	vars map[string]string
	runs atomic.Int64 // pushdeploy processes started so far
}

func newE2E(t *testing.T, hosts int) *e2e {
	t.Helper()
	return newE2EWith(t, testhosts.Options{Hosts: hosts})
}

// newE2EWith is newE2E with the test hosts o says.
func newE2EWith(t *testing.T, o testhosts.Options) *e2e {
	t.Helper()
	env := testhosts.New(t, o)
	// The hosts must trust the git server only through the key the
	// deployer verified and hands them, not through a file of their own.
	for _, h := range env.Hosts {
		if err := os.Remove(h.Path(".ssh/known_hosts")); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
	}
	return &e2e{t: t, env: env, vars: map[string]string{
		"DEPLOY_REPO_URL":    env.RepoURL,
		"DEPLOY_HOSTS_FILE":  env.HostsFile,
		"DEPLOY_ROOT":        "app",
		"DEPLOY_SSH_KEY":     env.AdminKey,
		"DEPLOY_KNOWN_HOSTS": env.KnownHosts,
		"DEPLOY_GIT_KEY":     env.GitKey,
		"DEPLOY_RESTART_CMD": restartCmd,
		"DEPLOY_DATA_DIR":    t.TempDir(),
		// The end-to-end tests run in parallel on 2 cores: under that load
		// a login has been seen to take longer than the 10 s default.
		"DEPLOY_CONNECT_TIMEOUT": "30s",
	}}
}

func (e *e2e) commit(depVersion string, extra map[string]string) string {
	e.t.Helper()
	files := e.env.AppFiles(depVersion)
	for k, v := range extra {
		files[k] = v
	}
	sha, err := e.env.Commit(context.Background(), files, "app with pdtestdep "+depVersion)
	if err != nil {
		e.t.Fatal(err)
	}
	return sha
}

type result struct {
	code           int
	stdout, stderr string
	took           time.Duration
}

// environ is the whole environment of a pushdeploy run: PATH, HOME and
// e.vars, and a deployer clock one second further ahead of the real time
// than the run before's. Release names have a one-second resolution: so
// each deployment gets one of its own, which sorts after the earlier ones,
// without the test waiting for a second to pass between two deploys.
func (e *e2e) environ() []string {
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"),
		"PUSHDEPLOY_E2E_CLOCK_OFFSET=" + strconv.FormatInt(e.runs.Add(1), 10) + "s"}
	for k, v := range e.vars {
		env = append(env, k+"="+v)
	}
	return env
}

// pushdeploy runs the binary with only our variables in its environment.
func (e *e2e) pushdeploy(args ...string) result {
	e.t.Helper()
	return e.pushdeployIn(e.t.TempDir(), args...) // no deploy.env there
}

// pushdeployIn is pushdeploy in the working folder dir (where a deploy.env
// is read when there is one).
func (e *e2e) pushdeployIn(dir string, args ...string) result {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Dir = dir
	cmd.Env = e.environ()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String(), took: time.Since(start)}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		e.t.Fatal(err)
	}
	return r
}

func (e *e2e) mustDeploy(args ...string) deploymentJSON {
	e.t.Helper()
	dep, _ := e.mustDeployJSON(args...)
	return dep
}

// mustDeployJSON is mustDeploy that also returns the run, whose stderr
// holds the JSON progress lines.
func (e *e2e) mustDeployJSON(args ...string) (deploymentJSON, result) {
	e.t.Helper()
	r := e.pushdeploy(append([]string{"deploy", "--json"}, args...)...)
	if r.code != 0 {
		e.t.Fatalf("deploy: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	var dep deploymentJSON
	if err := json.Unmarshal([]byte(r.stdout), &dep); err != nil {
		e.t.Fatalf("deploy --json output: %v\n%s", err, r.stdout)
	}
	var steps []string
	if len(dep.Hosts) > 0 {
		for _, s := range dep.Hosts[0].Steps {
			steps = append(steps, fmt.Sprintf("%s %.2fs", s.Step, s.Seconds))
		}
		e.t.Logf("deploy %s to %d hosts: %.2fs wall; on %s: %s", dep.Release, len(dep.Hosts), r.took.Seconds(), dep.Hosts[0].Host, strings.Join(steps, ", "))
	}
	return dep, r
}

// mustDeployHuman deploys without --json and returns the release name
// (from the "deployed … as RELEASE …" line) and the run.
func (e *e2e) mustDeployHuman(args ...string) (string, result) {
	e.t.Helper()
	r := e.pushdeploy(append([]string{"deploy"}, args...)...)
	if r.code != 0 {
		e.t.Fatalf("deploy: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	f := strings.Fields(r.stdout)
	if len(f) < 5 || f[0] != "deployed" || f[3] != "as" {
		e.t.Fatalf("deploy: stdout %q, want \"deployed COMMIT (BRANCH) as RELEASE …\"", r.stdout)
	}
	return f[4], r
}

// onHost runs a command on h as its user, over SSH.
func (e *e2e) onHost(h *testhosts.Host, args ...string) string {
	e.t.Helper()
	out, err := e.env.SSH(context.Background(), h, args...).CombinedOutput()
	if err != nil {
		e.t.Fatalf("on %s: %v: %v\n%s", h.Name, args, err, out)
	}
	return strings.TrimSpace(string(out))
}

func current(h *testhosts.Host) string {
	target, _ := os.Readlink(h.Path("app/current"))
	return target
}

func releases(t *testing.T, h *testhosts.Host) []string {
	t.Helper()
	entries, err := os.ReadDir(h.Path("app/releases"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func TestEndToEndDeploy(t *testing.T) {
	e := newE2E(t, 3)
	hosts := hostNames(e)
	sha1 := e.commit("1.0", nil)
	dep1, run1 := e.mustDeployJSON()

	if dep1.Commit != sha1 || dep1.Status != "succeeded" || len(dep1.Hosts) != 3 {
		t.Fatalf("deployment %+v, want commit %s on 3 hosts", dep1, sha1)
	}
	// --json: every stderr line is a JSON object, and every host reports
	// each step done with its duration.
	checkHostSteps(t, "JSON", jsonSteps(t, run1.stderr), hosts, deploySteps)
	for _, h := range e.env.Hosts {
		if got, want := current(h), "releases/"+dep1.Release; got != want {
			t.Errorf("%s: current -> %q, want %q", h.Name, got, want)
		}
		if rev := e.onHost(h, "cat", "app/current/REVISION"); rev != sha1 {
			t.Errorf("%s: REVISION %q, want %s", h.Name, rev, sha1)
		}
		if v := e.onHost(h, "app/current/venv/bin/python", "-c", "import pdtestdep; print(pdtestdep.VERSION)"); v != "1.0" {
			t.Errorf("%s: venv imports pdtestdep %q, want 1.0", h.Name, v)
		}
		relDir := h.Home + "/app/releases/" + dep1.Release
		env, _ := os.ReadFile(h.Path("restart.env"))
		for _, want := range []string{
			"APP_PROCESSES=2", "APP_THREADS=15", "BRANCH=release", "COMMIT=" + sha1,
			"CURRENT_DIR=" + h.Home + "/app/current", "DEPLOYMENT_ID=" + dep1.ID,
			"RELEASE_DIR=" + relDir, "PWD=" + relDir,
		} {
			if !strings.Contains(string(env), want+"\n") {
				t.Errorf("%s: restart command's environment lacks %s:\n%s", h.Name, want, env)
			}
		}
		log := e.onHost(h, "cat", "app/revisions.log")
		if f := strings.Fields(log); len(f) != 5 || f[1] != "deploy" || f[2] != dep1.Release || f[3] != sha1 || f[4] != dep1.ID {
			t.Errorf("%s: revisions.log %q", h.Name, log)
		}
	}

	// A new commit makes a second release and flips current to it. This
	// deploy shows the human progress: one line per host and step with
	// its duration, every switch before the first restart; with -v, what
	// pip prints, as it prints it, under its host and step.
	sha2 := e.commit("2.0", nil)
	rel2, run2 := e.mustDeployHuman("-v")
	for _, h := range hosts {
		if !regexp.MustCompile(`(?m)^\d\d:\d\d:\d\d ` + regexp.QuoteMeta(h) + ` +pip +\| Successfully installed pdtestdep-2\.0$`).MatchString(run2.stderr) {
			t.Errorf("deploy -v: no live pip output for %s", h)
		}
	}
	t.Logf("progress of the second deploy:\n%s", run2.stderr)
	steps, order := humanSteps(t, run2.stderr, hosts)
	checkHostSteps(t, "human", steps, hosts, deploySteps)
	checkSwitchBeforeRestart(t, order)
	for _, h := range e.env.Hosts {
		if got, want := current(h), "releases/"+rel2; got != want {
			t.Errorf("%s: current -> %q, want %q", h.Name, got, want)
		}
		if rev := e.onHost(h, "cat", "app/current/REVISION"); rev != sha2 {
			t.Errorf("%s: REVISION %q, want %s", h.Name, rev, sha2)
		}
		if v := e.onHost(h, "app/current/venv/bin/python", "-c", "import pdtestdep; print(pdtestdep.VERSION)"); v != "2.0" {
			t.Errorf("%s: venv has pdtestdep %q, want 2.0", h.Name, v)
		}
		if got := releases(t, h); len(got) != 2 {
			t.Errorf("%s: releases %v, want 2", h.Name, got)
		}
	}

	checkBadRequirement(t, e, rel2)

	// A commit that is not on the branch is refused as bad input.
	r := e.pushdeploy("deploy", "--commit", strings.Repeat("ab", 20))
	if r.code != 2 || !strings.Contains(r.stderr, "is not on branch release") {
		t.Errorf("--commit not on the branch: exit %d, want 2\n%s", r.code, r.stderr)
	}

	checkStepTimeout(t, e, rel2)
	// The deploy right after the timed-out one: it must not find the host
	// busy or anything of the failed deployment in its way.
	checkNoRequirements(t, e)

	// --commit deploys an older commit of the branch, exactly.
	dep4 := e.mustDeploy("--commit", sha1[:10])
	if dep4.Commit != sha1 {
		t.Errorf("--commit %s deployed %s", sha1[:10], dep4.Commit)
	}
	for _, h := range e.env.Hosts {
		if rev := e.onHost(h, "cat", "app/current/REVISION"); rev != sha1 {
			t.Errorf("%s: REVISION %q, want %s", h.Name, rev, sha1)
		}
	}
}

// checkBadRequirement deploys a requirement pip cannot install. It fails on
// the first host, before any switch: on hosts 2 and 3 only their mirror
// changed (the fetch runs on every host at once: docs/deploy.md, "The
// phases"; mirrorMayChange), and on host 1 only what docs/deploy.md says a
// failed prepare leaves changes (hostMayChange). current is rel on every
// host throughout.
func checkBadRequirement(t *testing.T, e *e2e, rel string) {
	before := map[string]string{}
	releasesBefore := map[string][]string{}
	for _, h := range e.env.Hosts {
		before[h.Name] = treeState(t, h.Home)
		releasesBefore[h.Name] = releases(t, h)
	}
	e.commit("9.9", nil)
	r := e.pushdeploy("deploy")
	if r.code != 1 {
		t.Fatalf("deploy with a bad requirement: exit %d, want 1\n%s", r.code, r.stderr)
	}
	first := e.env.Hosts[0]
	for _, want := range []string{"host " + first.Name + ": pip:", "exit status 1", "No matching distribution found for pdtestdep==9.9"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("error output lacks %q:\n%s", want, r.stderr)
		}
	}
	for _, h := range e.env.Hosts {
		if got, want := current(h), "releases/"+rel; got != want {
			t.Errorf("%s: current -> %q after a failed deploy, want %q", h.Name, got, want)
		}
		if got := releases(t, h); !slices.Equal(got, releasesBefore[h.Name]) {
			t.Errorf("%s: releases %v after a failed deploy, want the good ones %v", h.Name, got, releasesBefore[h.Name])
		}
	}
	for _, h := range e.env.Hosts[1:] {
		if d := stateDiff(before[h.Name], treeState(t, h.Home), mirrorMayChange); d != "" {
			t.Errorf("%s: touched beyond its mirror by a deploy that failed on the host before it:\n%s", h.Name, d)
		}
	}
	if d := stateDiff(before[first.Name], treeState(t, first.Home), hostMayChange); d != "" {
		t.Errorf("%s: the failed deploy changed more than docs/deploy.md says it may:\n%s", first.Name, d)
	}
}

// mirrorMayChange says whether a difference at path (relative to the
// home) is in the host's mirror, which every host's fetch updates at once,
// before any host is built.
func mirrorMayChange(path string, _ bool) bool {
	return path == "app/.repo" || strings.HasPrefix(path, "app/.repo/") || path == "app/.repo.lock"
}

// hostMayChange says whether a difference at path (relative to the home)
// between before and after a deploy that failed while preparing the host
// is one docs/deploy.md allows ("pip fails"): the mirror fetched the new
// commit; the lock file names the deployment that held it last; the venv
// built for the new requirements.txt stays, incomplete, in venvs/, and
// on a host's first venv the compiled copy of pip in pip/ (new entries
// only); and the folders where the release and that venv were made have a
// new modification time.
func hostMayChange(path string, wasThere bool) bool {
	switch {
	case mirrorMayChange(path, wasThere):
		return true
	case path == "app/.pushdeploy.lock":
		return true
	case (strings.HasPrefix(path, "app/venvs/") || strings.HasPrefix(path, "app/pip/")) && !wasThere:
		return true
	case path == "app/releases" || path == "app/venvs" || path == "app/pip":
		return true
	}
	return false
}

// treeState is testhosts.TreeState, failing the test on error.
func treeState(t *testing.T, dir string) string {
	t.Helper()
	s, err := testhosts.TreeState(dir)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// stateDiff lists the paths whose TreeState lines differ between before
// and after, except those allowed says may change (nil: none may).
func stateDiff(before, after string, allowed func(path string, wasThere bool) bool) string {
	lines := func(s string) map[string]string {
		m := map[string]string{}
		for _, l := range strings.Split(s, "\n") {
			if l != "" {
				// Paths here hold no spaces: the first field is the path.
				p, _, _ := strings.Cut(l, " ")
				m[p] = l
			}
		}
		return m
	}
	b, a := lines(before), lines(after)
	paths := map[string]bool{}
	for p := range b {
		paths[p] = true
	}
	for p := range a {
		paths[p] = true
	}
	var diff []string
	for _, p := range slices.Sorted(maps.Keys(paths)) {
		old, wasThere := b[p]
		if a[p] == old || (allowed != nil && allowed(p, wasThere)) {
			continue
		}
		if wasThere {
			diff = append(diff, "- "+old)
		}
		if l, ok := a[p]; ok {
			diff = append(diff, "+ "+l)
		}
	}
	return strings.Join(diff, "\n")
}

// checkStepTimeout deploys a commit whose before-switch hook sleeps for a
// minute, with DEPLOY_STEP_TIMEOUT=3s: the first host fails in that step
// with a message that says so, no host switches, the half-built release is
// removed, and the hook is gone from the host (killed, not left running),
// so the host's locks are free. current is rel on every host throughout.
func checkStepTimeout(t *testing.T, e *e2e, rel string) {
	// The requirements of rel: its venv is reused, so the steps before
	// the hook are quick even with a step timeout of 3s.
	hook := "#!/bin/sh\necho $$ >\"$HOME/hook.pid\"\nsleep 60\n"
	e.commit("2.0", map[string]string{".pushdeploy/before-switch": hook})
	releasesBefore := map[string][]string{}
	for _, h := range e.env.Hosts {
		releasesBefore[h.Name] = releases(t, h)
	}
	e.vars["DEPLOY_STEP_TIMEOUT"] = "3s"
	r := e.pushdeploy("deploy")
	delete(e.vars, "DEPLOY_STEP_TIMEOUT")
	first := e.env.Hosts[0]
	if want := "host " + first.Name + ": before-switch: timed out after 3s (DEPLOY_STEP_TIMEOUT)"; r.code != 1 || !strings.Contains(r.stderr, want) {
		t.Fatalf("deploy with a hook that outlasts DEPLOY_STEP_TIMEOUT: exit %d, want 1 and %q\n%s", r.code, want, r.stderr)
	}
	for _, h := range e.env.Hosts {
		if got, want := current(h), "releases/"+rel; got != want {
			t.Errorf("%s: current -> %q after a timed-out deploy, want %q", h.Name, got, want)
		}
		if got := releases(t, h); !slices.Equal(got, releasesBefore[h.Name]) {
			t.Errorf("%s: releases %v after a timed-out deploy, want %v", h.Name, got, releasesBefore[h.Name])
		}
	}
	pid, err := os.ReadFile(first.Path("hook.pid"))
	if err != nil {
		t.Fatalf("the hook never ran on %s: %v", first.Name, err)
	}
	// The host's timeout and the deployer's SIGTERM end the hook as the
	// step fails; give the kernel a moment to reap it, far less than the
	// minute it would sleep.
	uid := uidOf(t, first)
	var left []string
	for end := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		left = left[:0]
		for p, args := range procsOf(uid) {
			if strconv.Itoa(p) == strings.TrimSpace(string(pid)) || strings.Contains(args, "sleep 60") {
				left = append(left, fmt.Sprintf("%d %s", p, args))
			}
		}
		if len(left) == 0 || time.Now().After(end) {
			break
		}
	}
	if len(left) > 0 {
		t.Errorf("%s: the timed-out hook still runs: %v", first.Name, left)
	}
	if !e.lockFree(first) {
		t.Errorf("%s: the deploy lock is still held after the timed-out deploy", first.Name)
	}
	if out, err := e.env.SSH(context.Background(), first, "flock", "-n", "app/.pushdeploy.active", "true").CombinedOutput(); err != nil {
		t.Errorf("%s: %s is still held after the timed-out deploy: %v %s", first.Name, ".pushdeploy.active", err, out)
	}
}

// checkNoRequirements deploys a commit without requirements.txt (and
// without the hook of checkStepTimeout): the release gets a venv whose
// python runs, pip reports that there is nothing to install, and the
// earlier requirement is not in that venv.
func checkNoRequirements(t *testing.T, e *e2e) {
	sha, err := e.env.Remove(context.Background(), []string{"requirements.txt", ".pushdeploy/before-switch"}, "no requirements")
	if err != nil {
		t.Fatal(err)
	}
	dep := e.mustDeploy()
	if dep.Commit != sha {
		t.Fatalf("deployed %s, want %s", dep.Commit, sha)
	}
	for _, h := range e.env.Hosts {
		if _, err := os.Stat(h.Path("app/current/requirements.txt")); !os.IsNotExist(err) {
			t.Errorf("%s: the release has a requirements.txt (%v)", h.Name, err)
		}
		if got := e.onHost(h, "app/current/venv/bin/python", "-c", "import sys; print(sys.prefix != sys.base_prefix)"); got != "True" {
			t.Errorf("%s: app/current/venv/bin/python is not a venv's python: %q", h.Name, got)
		}
		out, err := e.env.SSH(context.Background(), h, "app/current/venv/bin/python", "-c", "import pdtestdep").CombinedOutput()
		if err == nil || !strings.Contains(string(out), "No module named 'pdtestdep'") {
			t.Errorf("%s: import pdtestdep in a venv built without requirements.txt: %v %s", h.Name, err, out)
		}
	}
	// What pip said is in the step's output tail, kept in the history.
	for host, steps := range e.stepOutputs(dep.ID) {
		if pip := steps["pip"]; !strings.Contains(pip, "no requirements.txt: nothing to install") {
			t.Errorf("%s: output of pip %q, want it to say there is nothing to install", host, pip)
		}
	}
}

// stepOutputs reads what each step of deployment id printed (its output
// tail) from the history the command line records in DEPLOY_DATA_DIR:
// host -> step -> output.
func (e *e2e) stepOutputs(id string) map[string]map[string]string {
	e.t.Helper()
	st, err := history.Open(context.Background(), e.vars["DEPLOY_DATA_DIR"], history.Options{})
	if err != nil {
		e.t.Fatal(err)
	}
	defer st.Close()
	got, ok, err := st.Deployment(context.Background(), id)
	if err != nil || !ok || len(got.Hosts) == 0 {
		e.t.Fatalf("deployment %s in the history: %v %v (%d hosts)", id, ok, err, len(got.Hosts))
	}
	out := map[string]map[string]string{}
	for _, h := range got.Hosts {
		out[h.Host.String()] = map[string]string{}
		for _, s := range h.Steps {
			out[h.Host.String()][string(s.Name)] = s.Output
		}
	}
	return out
}

func TestEndToEndUnknownHostKeyIsRefusedBeforeAnyChange(t *testing.T) {
	e := newE2E(t, 3)
	e.commit("1.0", nil)
	// known_hosts without host 3's key.
	data, err := os.ReadFile(e.env.KnownHosts)
	if err != nil {
		t.Fatal(err)
	}
	third := e.env.Hosts[2]
	var kept []string
	for _, l := range strings.Split(string(data), "\n") {
		if l != "" && l != third.HostKeyLine {
			kept = append(kept, l)
		}
	}
	known := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(known, []byte(strings.Join(kept, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e.vars["DEPLOY_KNOWN_HOSTS"] = known

	r := e.pushdeploy("deploy")
	if r.code != 1 {
		t.Fatalf("exit %d, want 1\n%s", r.code, r.stderr)
	}
	fp := fingerprint(t, third.HostKeyLine)
	for _, want := range []string{"host " + third.Name + ": connect:", "unknown", fmt.Sprintf("%s:%d", third.Addr, third.Port), fp} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("error lacks %q:\n%s", want, r.stderr)
		}
	}
	for _, h := range e.env.Hosts {
		if _, err := os.Stat(h.Path("app")); !os.IsNotExist(err) {
			t.Errorf("%s changed although host 3's key is unknown (%v)", h.Name, err)
		}
	}

	// A changed key (host 3 listed with host 1's key) is refused too.
	bad := strings.Replace(third.HostKeyLine, strings.Fields(third.HostKeyLine)[2], strings.Fields(e.env.Hosts[0].HostKeyLine)[2], 1)
	if err := os.WriteFile(known, []byte(strings.Join(append(kept, bad), "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r = e.pushdeploy("check")
	if r.code != 1 || !strings.Contains(r.stdout, "CHANGED") {
		t.Errorf("check with a changed key: exit %d, want 1 naming the changed key\n%s%s", r.code, r.stdout, r.stderr)
	}
}

func TestEndToEndCheck(t *testing.T) {
	e := newE2E(t, 2)
	sha := e.commit("1.0", nil)
	r := e.pushdeploy("check")
	if r.code != 0 {
		t.Fatalf("check: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{"repository", sha[:12], "login", "python", "git access"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("check output lacks %q:\n%s", want, r.stdout)
		}
	}
	// config, keys, repository, then login, host, python, git access per host
	if n := strings.Count(r.stdout, "ok "); n != 3+4*len(e.env.Hosts) || strings.Contains(r.stdout, "FAIL") {
		t.Errorf("want every check ok (%d):\n%s", n, r.stdout)
	}

	e.vars["DEPLOY_PYTHON"] = "python3.99"
	r = e.pushdeploy("check")
	if r.code != 1 || !strings.Contains(r.stdout, "FAIL") || !strings.Contains(r.stdout, "python3.99") {
		t.Errorf("check with a missing python: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

func TestEndToEndDeployKeyIsReadOnly(t *testing.T) {
	e := newE2E(t, 1)
	sha := e.commit("1.0", nil)
	work := t.TempDir()
	git := func(args ...string) error {
		cmd := exec.Command("git", args...)
		cmd.Dir = work
		cmd.Env = append(os.Environ(), "GIT_SSH_COMMAND="+e.env.GitSSHCommand(), "GIT_CONFIG_GLOBAL=/dev/null",
			"GIT_AUTHOR_NAME=x", "GIT_AUTHOR_EMAIL=x@x", "GIT_COMMITTER_NAME=x", "GIT_COMMITTER_EMAIL=x@x")
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	}
	if err := git("clone", "-q", e.env.RepoURL, "app"); err != nil {
		t.Fatalf("the deploy key cannot even clone: %v", err)
	}
	work = filepath.Join(work, "app")
	if err := os.WriteFile(filepath.Join(work, "evil.txt"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := git("add", "evil.txt"); err != nil {
		t.Fatal(err)
	}
	if err := git("commit", "-qm", "evil"); err != nil {
		t.Fatal(err)
	}
	err := git("push", "origin", "HEAD:release")
	if err == nil {
		t.Fatal("the deploy key pushed to the git server")
	}
	// Refused by the server's forced command, not lost on the way.
	if want := "git-readonly: refused: git-receive-pack"; !strings.Contains(err.Error(), want) {
		t.Errorf("push error lacks %q: %v", want, err)
	}
	if tip := e.remoteTip(); tip != sha {
		t.Errorf("branch release on the git server is at %s after the refused push, want %s", tip, sha)
	}
}

// remoteTip returns the commit branch release points at on the git
// server, asked with the deploy key.
func (e *e2e) remoteTip() string {
	e.t.Helper()
	cmd := exec.Command("git", "ls-remote", e.env.RepoURL, "refs/heads/release")
	cmd.Env = append(os.Environ(), "GIT_SSH_COMMAND="+e.env.GitSSHCommand(), "GIT_CONFIG_GLOBAL=/dev/null")
	out, err := cmd.CombinedOutput()
	if err != nil {
		e.t.Fatalf("git ls-remote: %v\n%s", err, out)
	}
	tip, _, _ := strings.Cut(string(out), "\t")
	return tip
}

// fingerprint returns the SHA256 fingerprint of the key in a known_hosts
// line, as ssh-keygen -l shows it: "SHA256:" and the unpadded base64 of
// the SHA-256 of the key blob.
func fingerprint(t *testing.T, knownHostsLine string) string {
	t.Helper()
	f := strings.Fields(knownHostsLine)
	if len(f) < 3 {
		t.Fatalf("known_hosts line %q has no key", knownHostsLine)
	}
	blob, err := base64.StdEncoding.DecodeString(f[2])
	if err != nil {
		t.Fatalf("known_hosts line %q: %v", knownHostsLine, err)
	}
	sum := sha256.Sum256(blob)
	return "SHA256:" + base64.RawStdEncoding.EncodeToString(sum[:])
}

// TestEndToEndHostileInput feeds shell metacharacters through every value
// that reaches a remote shell and shows that nothing runs: values git would
// refuse stop at validation (exit 2); the others arrive as literal text.
func TestEndToEndHostileInput(t *testing.T) {
	e := newE2E(t, 1)
	e.commit("1.0", nil)
	marker := filepath.Join(os.TempDir(), fmt.Sprintf("pushdeploy-pwned-%d", time.Now().UnixNano()))
	t.Cleanup(func() { os.Remove(marker) })

	refused := []struct {
		name string
		vars map[string]string
		args []string
	}{
		{"branch $()", map[string]string{"DEPLOY_BRANCH": "$(touch " + marker + ")"}, nil},
		{"branch backticks", map[string]string{"DEPLOY_BRANCH": "`touch " + marker + "`"}, nil},
		{"branch newline", map[string]string{"DEPLOY_BRANCH": "release\ntouch " + marker}, nil},
		{"branch ..", map[string]string{"DEPLOY_BRANCH": "../release"}, nil},
		{"root ..", map[string]string{"DEPLOY_ROOT": "../../tmp"}, nil},
		{"root newline", map[string]string{"DEPLOY_ROOT": "app\ntouch " + marker}, nil},
		{"commit $()", nil, []string{"--commit", "$(touch " + marker + ")"}},
		{"commit ;", nil, []string{"--commit", "abc123;touch " + marker}},
		{"commit ../", nil, []string{"--commit", "../../etc"}},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.vars {
				old, had := e.vars[k]
				e.vars[k] = v
				defer func() {
					if had {
						e.vars[k] = old
					} else {
						delete(e.vars, k)
					}
				}()
			}
			r := e.pushdeploy(append([]string{"deploy"}, tt.args...)...)
			if r.code != 2 {
				t.Errorf("exit %d, want 2 (refused)\n%s", r.code, r.stderr)
			}
			if _, err := os.Stat(marker); err == nil {
				t.Fatal("a hostile value ran a command")
			}
		})
	}

	// A root folder full of metacharacters that is still a valid path: the
	// deploy works, into a folder with exactly that name.
	e.vars["DEPLOY_ROOT"] = "app;touch " + marker + ";$(touch " + marker + ")`touch " + marker + "`"
	dep := e.mustDeploy()
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("a hostile root folder ran a command")
	}
	h := e.env.Hosts[0]
	target, err := os.Readlink(filepath.Join(h.Home, e.vars["DEPLOY_ROOT"], "current"))
	if err != nil || target != "releases/"+dep.Release {
		t.Errorf("current in the literal root folder: %q, %v", target, err)
	}
}

// TestEndToEndBranchMovesDuringRollout pushes a new commit while the first
// host runs its before-switch hook. The second host fetched at the start,
// with every host (docs/deploy.md, "The phases"), and nothing else: its
// mirror has the commit, it has no release and no hook ran there. It is
// then built after the branch has moved on, and still gets the commit
// resolved at the start.
func TestEndToEndBranchMovesDuringRollout(t *testing.T) {
	e := newE2E(t, 2)
	goOn := filepath.Join(e.env.Dir, "go-on")
	hook := "#!/bin/sh\ntouch \"$HOME/preparing\"\ni=0\nwhile [ ! -e " + goOn + " ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done\n"
	shaA := e.commit("1.0", map[string]string{".pushdeploy/before-switch": hook})

	done := make(chan result, 1)
	go func() { done <- e.pushdeploy("deploy") }()
	first, second := e.env.Hosts[0], e.env.Hosts[1]
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if _, err := os.Stat(first.Path("preparing")); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the first host never ran its hook: %+v", <-done)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got := e.onHost(second, "git", "-C", "app/.repo", "rev-parse", shaA+"^{commit}"); got != shaA {
		t.Errorf("host 2's mirror lacks the commit while host 1 builds: %q", got)
	}
	if rels := releases(t, second); len(rels) != 0 || current(second) != "" {
		t.Errorf("host 2 was changed before its turn (DEPLOY_PARALLEL is 1): releases %v, current %q", rels, current(second))
	}
	if _, err := os.Stat(second.Path("preparing")); err == nil {
		t.Error("host 2's hook ran before its turn")
	}
	shaB := e.commit("1.0", map[string]string{"NEWS": "moved on\n"})
	if err := os.WriteFile(goOn, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.code != 0 {
		t.Fatalf("deploy: exit %d\n%s", r.code, r.stderr)
	}
	if shaB == shaA {
		t.Fatal("the branch did not move")
	}
	for _, h := range e.env.Hosts {
		if rev := e.onHost(h, "cat", "app/current/REVISION"); rev != shaA {
			t.Errorf("%s: REVISION %s, want the pinned %s", h.Name, rev, shaA)
		}
		if _, err := os.Stat(h.Path("app/current/NEWS")); !os.IsNotExist(err) {
			t.Errorf("%s: the release has a file of the newer commit (%v)", h.Name, err)
		}
	}
}
