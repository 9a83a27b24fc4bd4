package e2e

// End-to-end tests of the hosts-file line "local": the real binary deploys
// to the machine it runs on, without SSH, with real git, venv and pip.

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// newLocalE2E is newE2E with the single hosts-file line "local", a HOME of
// its own for the deployer (where the restart command writes), and a
// TMPDIR of its own (where the deploy key's agent socket lives).
func newLocalE2E(t *testing.T) (e *e2e, home, tmp string) {
	t.Helper()
	e = newE2E(t, 0)
	hosts := filepath.Join(t.TempDir(), "hosts.txt")
	if err := os.WriteFile(hosts, []byte("# this machine\nlocal\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	home, tmp = realDir(t), realDir(t)
	e.vars["DEPLOY_HOSTS_FILE"] = hosts
	e.vars["HOME"] = home // after the HOME the helper sets: the last one wins
	e.vars["TMPDIR"] = tmp
	// The restart command also records which DEPLOY_ variables it sees:
	// none (they hold the deployer's secrets).
	e.vars["DEPLOY_RESTART_CMD"] = restartCmd + `; env | grep '^DEPLOY_' > "$HOME/deploy.vars"; true`
	return e, home, tmp
}

// realDir is a new temporary folder by its path without symlinks, as the
// deploy reports it (pwd -P).
func realDir(t *testing.T) string {
	t.Helper()
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// localOutput runs a command here and returns its trimmed output.
func localOutput(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// checkLocalRelease checks that root's current is the release of dep, at
// commit sha, with a venv that has pdtestdep at version.
func checkLocalRelease(t *testing.T, root string, dep deploymentJSON, sha, version string) {
	t.Helper()
	if got, _ := os.Readlink(filepath.Join(root, "current")); got != "releases/"+dep.Release {
		t.Errorf("current -> %q, want releases/%s", got, dep.Release)
	}
	rev, _ := os.ReadFile(filepath.Join(root, "current", "REVISION"))
	if strings.TrimSpace(string(rev)) != sha {
		t.Errorf("REVISION %q, want %s", rev, sha)
	}
	py := filepath.Join(root, "current", "venv", "bin", "python")
	if v := localOutput(t, py, "-c", "import pdtestdep; print(pdtestdep.VERSION)"); v != version {
		t.Errorf("venv imports pdtestdep %q, want %s", v, version)
	}
}

// checkRestartEnv checks what the restart command wrote into home.
func checkRestartEnv(t *testing.T, home, root string, dep deploymentJSON) {
	t.Helper()
	relDir := root + "/releases/" + dep.Release
	env, _ := os.ReadFile(filepath.Join(home, "restart.env"))
	for _, want := range []string{
		"APP_PROCESSES=2", "APP_THREADS=15", "BRANCH=release", "COMMIT=" + dep.Commit,
		"CURRENT_DIR=" + root + "/current", "DEPLOYMENT_ID=" + dep.ID,
		"RELEASE_DIR=" + relDir, "PWD=" + relDir,
	} {
		if !strings.Contains(string(env), want+"\n") {
			t.Errorf("restart command's environment lacks %s:\n%s", want, env)
		}
	}
	if vars, err := os.ReadFile(filepath.Join(home, "deploy.vars")); err != nil || len(vars) != 0 {
		t.Errorf("the restart command saw the deployer's DEPLOY_ variables (%v):\n%s", err, vars)
	}
}

// TestEndToEndLocal deploys from the git server over SSH: the clone on
// this machine authenticates with the deploy key through a temporary
// local agent socket (nothing else can log into the git server).
func TestEndToEndLocal(t *testing.T) {
	e, home, tmp := newLocalE2E(t)
	root := filepath.Join(realDir(t), "srv", "app")
	e.vars["DEPLOY_ROOT"] = root
	sha1 := e.commit("1.0", nil)

	r := e.pushdeploy("check")
	if r.code != 0 {
		t.Fatalf("check: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// config, keys, repository, then login, host, python, git access
	if n := strings.Count(r.stdout, "ok "); n != 3+4 || !strings.Contains(r.stdout, "local") || !strings.Contains(r.stdout, "git access") {
		t.Errorf("want every check ok for local (%d):\n%s", n, r.stdout)
	}

	dep1 := e.mustDeploy()
	if dep1.Commit != sha1 || dep1.Status != "succeeded" || len(dep1.Hosts) != 1 || dep1.Hosts[0].Host != "local" {
		t.Fatalf("deployment %+v, want commit %s on local", dep1, sha1)
	}
	for _, s := range dep1.Hosts[0].Steps {
		t.Logf("  local %-9s %.2fs", s.Step, s.Seconds)
	}
	checkLocalRelease(t, root, dep1, sha1, "1.0")
	checkRestartEnv(t, home, root, dep1)
	log, _ := os.ReadFile(filepath.Join(root, "revisions.log"))
	if f := strings.Fields(string(log)); len(f) != 5 || f[1] != "deploy" || f[2] != dep1.Release || f[3] != sha1 || f[4] != dep1.ID {
		t.Errorf("revisions.log %q", log)
	}

	sha2 := e.commit("2.0", nil)
	dep2 := e.mustDeploy()
	checkLocalRelease(t, root, dep2, sha2, "2.0")
	checkRestartEnv(t, home, root, dep2)
	if got := localReleases(t, root); len(got) != 2 {
		t.Errorf("releases %v, want 2", got)
	}

	// pip fails: current stays, the half-built release is gone.
	e.commit("9.9", nil)
	r = e.pushdeploy("deploy")
	if r.code != 1 {
		t.Fatalf("deploy with a bad requirement: exit %d, want 1\n%s", r.code, r.stderr)
	}
	for _, want := range []string{"host local: pip:", "exit status 1", "No matching distribution found for pdtestdep==9.9"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("error output lacks %q:\n%s", want, r.stderr)
		}
	}
	checkLocalRelease(t, root, dep2, sha2, "2.0")
	if got := localReleases(t, root); len(got) != 2 {
		t.Errorf("releases %v after a failed deploy, want the 2 good ones", got)
	}

	// Every lent agent was stopped and its socket folder removed.
	if left, _ := filepath.Glob(filepath.Join(tmp, "pdagent-*")); len(left) != 0 {
		t.Errorf("agent socket folders left behind: %v", left)
	}
}

// TestEndToEndLocalPathRepo deploys from a repository given as a local
// path, without a deploy key, into a relative root (relative to the
// deployer's home).
func TestEndToEndLocalPathRepo(t *testing.T) {
	e, home, _ := newLocalE2E(t)
	delete(e.vars, "DEPLOY_GIT_KEY")
	e.vars["DEPLOY_ROOT"] = "app"
	repo := filepath.Join(realDir(t), "app")
	e.vars["DEPLOY_REPO_URL"] = repo
	commit := localRepo(t, repo)
	root := filepath.Join(home, "app")

	sha1 := commit(e.env.AppFiles("1.0"))
	if r := e.pushdeploy("check"); r.code != 0 || strings.Count(r.stdout, "ok ") != 3+4 {
		t.Fatalf("check: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	dep1 := e.mustDeploy()
	checkLocalRelease(t, root, dep1, sha1, "1.0")
	checkRestartEnv(t, home, root, dep1)

	sha2 := commit(e.env.AppFiles("2.0"))
	dep2 := e.mustDeploy()
	checkLocalRelease(t, root, dep2, sha2, "2.0")
	checkRestartEnv(t, home, root, dep2)
	if got := localReleases(t, root); len(got) != 2 {
		t.Errorf("releases %v, want 2", got)
	}
}

// localRepo makes a git repository at dir on branch release and returns a
// function that commits files to it and returns the commit.
func localRepo(t *testing.T, dir string) func(files map[string]string) string {
	t.Helper()
	git := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1",
			"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@t", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@t")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	git("init", "-q", "-b", "release")
	return func(files map[string]string) string {
		for name, content := range files {
			p := filepath.Join(dir, name)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		git("add", "-A")
		git("commit", "-qm", "app")
		return git("rev-parse", "HEAD")
	}
}

func localReleases(t *testing.T, root string) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(root, "releases"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}
