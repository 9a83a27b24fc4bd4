package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/pushdeploy/pushdeploy/internal/testhosts"
)

// serveHTTPSCopy serves a copy of the git server's app.git over https
// (srv.URL + "/app.git") to user and password alone.
func (e *e2e) serveHTTPSCopy(user, password string) *testhosts.HTTPGit {
	e.t.Helper()
	root := e.t.TempDir()
	clone := exec.Command("git", "clone", "-q", "--bare", "--", e.env.RepoURL, filepath.Join(root, "app.git"))
	clone.Env = append(os.Environ(), "GIT_SSH_COMMAND="+e.env.GitSSHCommand(), "GIT_CONFIG_GLOBAL=/dev/null")
	if out, err := clone.CombinedOutput(); err != nil {
		e.t.Fatalf("git clone: %v\n%s", err, out)
	}
	return testhosts.ServeHTTPGit(e.t, root, user, password, true)
}

// TestEndToEndRepoPasswordStaysOffHosts: in clone mode the hosts fetch
// from an https repository (git-http-backend behind basic auth) whose URL
// holds the password. The host's git gets in, and the password is in no
// file of the host (the mirror's config above all) and in no command line
// of the host user's processes seen while check and the deploy ran (read
// from /proc as often as it can be: a leak can be missed, never made up).
func TestEndToEndRepoPasswordStaysOffHosts(t *testing.T) {
	e := newE2E(t, 1)
	e.commit("1.0", nil)
	const password = "gitpw-Hs4Jd8Kq1Zr6" // distinctive, as in secrets_test.go
	srv := e.serveHTTPSCopy("deployer", password)
	h := e.env.Hosts[0]
	// The host's git trusts the test server's certificate.
	if err := os.WriteFile(h.Path("ca.pem"), srv.CA, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(h.Path(".gitconfig"), []byte("[http]\n\tsslCAInfo = "+h.Path("ca.pem")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	e.vars["SSL_CERT_FILE"] = srv.CAFile // and so does the deployer
	e.vars["DEPLOY_REPO_URL"] = strings.Replace(srv.URL, "https://", "https://deployer:"+password+"@", 1) + "/app.git"
	c := &corpus{t: t, parts: map[string][]byte{}}

	uid := uidOf(t, h)
	seen := map[string]bool{}
	watch := func(run func()) {
		done := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() {
			for {
				for _, cmdline := range procsOf(uid) {
					seen[cmdline] = true
				}
				select {
				case <-done:
					return
				default:
				}
			}
		})
		run()
		close(done)
		wg.Wait()
	}
	watch(func() {
		r := e.pushdeploy("check")
		c.addResult("check", r)
		if r.code != 0 || !strings.Contains(r.stdout, "git access") {
			t.Errorf("check: exit %d, want 0 with the host's git access:\n%s%s", r.code, r.stdout, r.stderr)
		}
	})
	var dep deploymentJSON
	watch(func() { dep = e.mustDeploy() })
	if rev := e.onHost(h, "cat", "app/current/REVISION"); rev != dep.Commit {
		t.Errorf("REVISION %s, want %s", rev, dep.Commit)
	}
	config, err := os.ReadFile(h.Path("app/.repo/config"))
	if err != nil || !strings.Contains(string(config), "https://deployer@") {
		t.Errorf("the mirror's config: %v\n%s", err, config)
	}
	git := 0
	for cmdline := range seen {
		c.add("command line of a host process", []byte(cmdline+"\n"))
		if strings.Contains(cmdline, "git") {
			git++
		}
	}
	t.Logf("%d command lines of the host user seen, %d of them naming git", len(seen), git)
	if n := c.addTree("host", h.Home); n == 0 {
		t.Error("no file on the host")
	}
	for _, leak := range c.leaks([]string{password}, nil) {
		t.Errorf("LEAK: %s", leak)
	}
}
