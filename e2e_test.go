package main

// End-to-end tests: the real pushdeploy binary against real sshd hosts on
// loopback, a real git server reached over SSH with a read-only key, and
// real python3 -m venv and pip (with wheels built locally).

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

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
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// restartCmd records the environment the restart command gets.
const restartCmd = `env | grep -E '^(RELEASE_DIR|CURRENT_DIR|COMMIT|BRANCH|DEPLOYMENT_ID|APP_PROCESSES|APP_THREADS)=' | sort > "$HOME/restart.env"; echo "PWD=$(pwd -P)" >> "$HOME/restart.env"`

type e2e struct {
	t    *testing.T
	env  *testhosts.Env
	vars map[string]string
}

func newE2E(t *testing.T, hosts int) *e2e {
	t.Helper()
	env := testhosts.New(t, testhosts.Options{Hosts: hosts})
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

// pushdeploy runs the binary with only our variables in its environment.
func (e *e2e) pushdeploy(args ...string) result {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Dir = e.t.TempDir() // no deploy.env there
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for k, v := range e.vars {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
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
	// Release names have a one-second resolution.
	time.Sleep(1100 * time.Millisecond)
	r := e.pushdeploy(append([]string{"deploy", "--json"}, args...)...)
	if r.code != 0 {
		e.t.Fatalf("deploy: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	var dep deploymentJSON
	if err := json.Unmarshal([]byte(r.stdout), &dep); err != nil {
		e.t.Fatalf("deploy --json output: %v\n%s", err, r.stdout)
	}
	e.t.Logf("deploy %s to %d hosts: %.2fs wall", dep.Release, len(dep.Hosts), r.took.Seconds())
	return dep
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
	sha1 := e.commit("1.0", nil)
	dep1 := e.mustDeploy()

	if dep1.Commit != sha1 || dep1.Status != "succeeded" || len(dep1.Hosts) != 3 {
		t.Fatalf("deployment %+v, want commit %s on 3 hosts", dep1, sha1)
	}
	for _, s := range dep1.Hosts[0].Steps {
		t.Logf("  %s %-9s %.2fs", dep1.Hosts[0].Host, s.Step, s.Seconds)
	}
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

	// A new commit makes a second release and flips current to it.
	sha2 := e.commit("2.0", nil)
	dep2 := e.mustDeploy()
	for _, h := range e.env.Hosts {
		if got, want := current(h), "releases/"+dep2.Release; got != want {
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

	// A requirement pip cannot install fails on the first host: it keeps
	// its current release, the others are not touched, nothing is left.
	e.commit("9.9", nil)
	time.Sleep(1100 * time.Millisecond)
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
		if got, want := current(h), "releases/"+dep2.Release; got != want {
			t.Errorf("%s: current -> %q after a failed deploy, want %q", h.Name, got, want)
		}
		if got := releases(t, h); len(got) != 2 {
			t.Errorf("%s: releases %v after a failed deploy, want the 2 good ones", h.Name, got)
		}
	}
	for _, h := range e.env.Hosts[1:] {
		if lines := strings.Count(e.onHost(h, "cat", "app/revisions.log"), "\n") + 1; lines != 2 {
			t.Errorf("%s: touched by the failed deploy (%d revisions.log lines)", h.Name, lines)
		}
	}

	// A commit that is not on the branch is refused as bad input.
	r = e.pushdeploy("deploy", "--commit", strings.Repeat("ab", 20))
	if r.code != 2 || !strings.Contains(r.stderr, "is not on branch release") {
		t.Errorf("--commit not on the branch: exit %d, want 2\n%s", r.code, r.stderr)
	}

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
	fp := strings.Fields(third.HostKeyLine)
	for _, want := range []string{"connect", "unknown", fmt.Sprintf("%s:%d", third.Addr, third.Port), "SHA256:"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("error lacks %q:\n%s", want, r.stderr)
		}
	}
	_ = fp
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
	e.commit("1.0", nil)
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
	if err := git("push", "origin", "HEAD:release"); err == nil {
		t.Fatal("the deploy key pushed to the git server")
	}
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
// host runs its before-switch hook: the second host, preparing after it,
// fetches a branch that has moved on, and still gets the commit resolved at
// the start.
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
	if _, err := os.Stat(second.Path("app/.repo")); err == nil {
		t.Fatal("host 2 fetched before host 1 was prepared (DEPLOY_PARALLEL is 1)")
	}
	shaB := e.commit("1.0", map[string]string{"NEWS": "moved on\n"})
	if err := os.WriteFile(goOn, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.code != 0 {
		t.Fatalf("deploy: exit %d\n%s", r.code, r.stderr)
	}
	if tip := e.onHost(second, "git", "-C", "app/.repo", "rev-parse", "refs/heads/release"); tip != shaB {
		t.Fatalf("the branch did not move before host 2 fetched (its mirror's tip %s, want %s)", tip, shaB)
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
