package e2e

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/pushdeploy/pushdeploy/internal/testhosts"
)

// checkLines decodes the JSON lines of check --json by check name (the
// repository's, then the host's).
func checkLines(t *testing.T, out string) map[string]map[string]any {
	t.Helper()
	got := map[string]map[string]any{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("check --json line %q: %v", line, err)
		}
		got[m["check"].(string)] = m
	}
	return got
}

// TestEndToEndRepoURLForms runs check, in clone mode, with each form of
// SSH URL git accepts, against the git server of testhosts where
// ~/app.git, /abs/path/app.git and ~other/app.git are different
// repositories: the deployer and the host (its own git, with the lent
// key) must both find the tip of the repository the URL means. A deploy
// through ssh://…/~/app.git (clone mode) and one through an scp-like
// ~other path (push mode) ship those repositories' commits.
func TestEndToEndRepoURLForms(t *testing.T) {
	e := newE2EWith(t, testhosts.Options{Hosts: 1, GitPort22: true})
	ctx := context.Background()
	homeTip := e.commit("1.0", map[string]string{"which": "home"})
	abs := filepath.Join(e.env.Dir, "srv", "git", "app.git")
	files := e.env.AppFiles("1.0")
	files["which"] = "abs"
	absTip, err := e.env.AddRepo(ctx, abs, files, "abs")
	if err != nil {
		t.Fatal(err)
	}
	other := e.env.Hosts[0]
	files["which"] = "other"
	otherTip, err := e.env.AddRepo(ctx, other.Path("other.git"), files, "other")
	if err != nil {
		t.Fatal(err)
	}
	g, a, p := e.env.Git.User, e.env.Git.Addr, strconv.Itoa(e.env.Git.Port)
	tests := []struct{ url, tip string }{
		{g + "@" + a + ":app.git", homeTip},
		{g + "@" + a + ":~/app.git", homeTip},
		{g + "@" + a + ":" + abs, absTip},
		{g + "@" + a + ":~" + other.User + "/other.git", otherTip},
		{"[" + g + "@" + a + ":" + p + "]:~/app.git", homeTip},
		{"ssh://" + g + "@" + a + ":" + p + "/~/app.git", homeTip},
		{"ssh://" + g + "@" + a + ":" + p + "/~" + other.User + "/other.git", otherTip},
		{"ssh://" + g + "@" + a + "/~/app.git", homeTip},
		{"ssh://" + g + "@" + a + ":" + p + abs, absTip},
	}
	for _, tt := range tests {
		e.vars["DEPLOY_REPO_URL"] = tt.url
		r := e.pushdeploy("check", "--json")
		lines := checkLines(t, r.stdout)
		repo, access := lines["repository"], lines["git access"]
		if r.code != 0 || repo["ok"] != true || access["ok"] != true {
			t.Errorf("%s: check exit %d:\n%s%s", tt.url, r.code, r.stdout, r.stderr)
			continue
		}
		if want := tt.url + " release at " + tt.tip[:12]; repo["detail"] != want {
			t.Errorf("%s: check says %q, want %q", tt.url, repo["detail"], want)
		}
	}

	// The path a URL names, and nothing else: /app.git does not exist.
	e.vars["DEPLOY_REPO_URL"] = "ssh://" + g + "@" + a + ":" + p + "/app.git"
	r := e.pushdeploy("check")
	if r.code != 1 || !strings.Contains(r.stdout, "FAIL") || !strings.Contains(r.stdout, "repository not found") {
		t.Errorf("check of /app.git: exit %d, want 1 and repository not found:\n%s%s", r.code, r.stdout, r.stderr)
	}

	for _, tt := range []struct{ url, fetch, tip string }{
		{"ssh://" + g + "@" + a + ":" + p + "/~/app.git", "clone", homeTip},
		{g + "@" + a + ":~" + other.User + "/other.git", "push", otherTip},
	} {
		e.vars["DEPLOY_REPO_URL"], e.vars["DEPLOY_FETCH"] = tt.url, tt.fetch
		if dep := e.mustDeploy(); dep.Commit != tt.tip {
			t.Errorf("%s (%s): deployed %s, want %s", tt.url, tt.fetch, dep.Commit, tt.tip)
		}
		if rev := e.onHost(other, "cat", "app/current/REVISION"); rev != tt.tip {
			t.Errorf("%s (%s): REVISION %q, want %s", tt.url, tt.fetch, rev, tt.tip)
		}
	}
}

// TestEndToEndRepoPasswordNeverShows resolves and deploys (push mode)
// from an https repository whose URL carries a password, served by git's
// own git-http-backend behind basic auth, and with a wrong password: no
// output of check (text and --json) or deploy, and no file in the data
// folder, holds the password.
func TestEndToEndRepoPasswordNeverShows(t *testing.T) {
	e := newE2E(t, 1)
	e.commit("1.0", nil)
	const password = "gitpw-Rk5Tz8Qe2Wv" // distinctive, as in secrets_test.go
	srv := e.serveHTTPSCopy("deployer", password)
	host := strings.TrimPrefix(srv.URL, "https://")
	good := "https://deployer:" + password + "@" + host + "/app.git"
	wrong := "https://deployer:" + password + "-WRONG@" + host + "/app.git"
	e.vars["SSL_CERT_FILE"] = srv.CAFile // the deployer trusts the test server
	e.vars["DEPLOY_FETCH"] = "push"
	c := &corpus{t: t, parts: map[string][]byte{}}

	e.vars["DEPLOY_REPO_URL"] = good
	r := e.pushdeploy("check")
	c.addResult("check", r)
	if want := "https://deployer:xxxxx@" + host + "/app.git release at "; r.code != 0 || !strings.Contains(r.stdout, want) {
		t.Errorf("check: exit %d, want 0 and %q:\n%s%s", r.code, want, r.stdout, r.stderr)
	}
	r = e.pushdeploy("check", "--json")
	c.addResult("check --json", r)
	if want := `"detail":"https://deployer:xxxxx@` + host + `/app.git release at `; r.code != 0 || !strings.Contains(r.stdout, want) {
		t.Errorf("check --json: exit %d, want 0 and %q:\n%s%s", r.code, want, r.stdout, r.stderr)
	}
	_, r = e.mustDeployJSON()
	c.addResult("deploy", r)
	_, r = e.mustDeployHuman("--commit", e.remoteTip()[:10])
	c.addResult("deploy --commit", r)

	e.vars["DEPLOY_REPO_URL"] = wrong
	for _, args := range [][]string{{"check"}, {"check", "--json"}, {"deploy"}, {"deploy", "--json"}} {
		r := e.pushdeploy(args...)
		c.addResult(strings.Join(args, " ")+" (wrong password)", r)
		if r.code != 1 || !strings.Contains(r.stdout+r.stderr, "authentication required") {
			t.Errorf("%s with a wrong password: exit %d, want 1 and authentication required:\n%s%s", args, r.code, r.stdout, r.stderr)
		}
	}
	if n := c.addTree("data", e.vars["DEPLOY_DATA_DIR"]); n == 0 {
		t.Error("no file in the data folder")
	}
	probe := &corpus{t: t, parts: map[string][]byte{"probe": []byte("x " + password + " y")}}
	if got := probe.leaks([]string{password}, nil); len(got) != 1 {
		t.Fatalf("the search finds %q in the probe, want 1 leak", got)
	}
	for _, leak := range c.leaks([]string{password}, nil) {
		t.Errorf("LEAK: %s", leak)
	}
}
