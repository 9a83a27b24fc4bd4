package deploy

import (
	"bytes"
	"context"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/pushdeploy/pushdeploy/internal/testhosts"
)

// TestHostGitKeepsThePasswordOffCommandLines: the commands that reach the
// repository from a host (fetch, check's and the dry run's ls-remote)
// carry an http(s) URL without its password, which goes on their input.
func TestHostGitKeepsThePasswordOffCommandLines(t *testing.T) {
	for _, tt := range []struct {
		url, password, hostURL string
	}{
		{"https://deployer:s3cr%2Fet-pw@git.example.com/team/app.git", "s3cr/et-pw", "https://deployer@git.example.com/team/app.git"},
		{"http://ci:pa%24%28touch%20x%29%27ss@127.0.0.1:8080/app.git", "pa$(touch x)'ss", "http://ci@127.0.0.1:8080/app.git"},
		{"ssh://git@git.example.com/team/app.git", "", "ssh://git@git.example.com/team/app.git"},
		{"https://git.example.com/public.git", "", "https://git.example.com/public.git"},
	} {
		rel := Release{RepoURL: tt.url, Branch: "release", Commit: strings.Repeat("a", 40), GitHostKeys: []string{"git.example.com ssh-ed25519 AAAA"}}
		for name, cmd := range map[string]Command{"fetch": fetchCommand("/srv/app", rel, true), "ls-remote": lsRemote(rel, true)} {
			line := cmd.String()
			if tt.password != "" && (strings.Contains(line, tt.password) || strings.Contains(line, "s3cr%2Fet") || strings.Contains(line, "%27ss")) {
				t.Errorf("%s of %s: the password is on the command line: %s", name, tt.url, line)
			}
			if !strings.Contains(line, Quote(tt.hostURL)) {
				t.Errorf("%s of %s: the command does not name %s: %s", name, tt.url, tt.hostURL, line)
			}
			in, err := io.ReadAll(cmd.Stdin)
			if err != nil {
				t.Fatal(err)
			}
			if want := tt.password + "\ngit.example.com ssh-ed25519 AAAA\n"; string(in) != want {
				t.Errorf("%s of %s: input %q, want %q", name, tt.url, in, want)
			}
		}
	}
}

// recordingDialer notes the command line of every command run through it.
type recordingDialer struct {
	Dialer
	mu    sync.Mutex
	lines []string
}

func (d *recordingDialer) Dial(ctx context.Context, h Host) (Conn, error) {
	c, err := d.Dialer.Dial(ctx, h)
	if err != nil {
		return nil, err
	}
	return &recordingConn{Conn: c, d: d}, nil
}

type recordingConn struct {
	Conn
	d *recordingDialer
}

func (c *recordingConn) Run(ctx context.Context, cmd Command) error {
	c.d.mu.Lock()
	c.d.lines = append(c.d.lines, cmd.String())
	c.d.mu.Unlock()
	return c.Conn.Run(ctx, cmd)
}

// TestHTTPSPasswordStaysOffTheHost deploys (clone mode) from a real git
// server over https with basic auth, the password in the repository URL:
// the host's git gets in, and neither any command line the deploy, check
// or dry run sent nor any file on the host (the mirror's config above all)
// holds the password.
func TestHTTPSPasswordStaysOffTheHost(t *testing.T) {
	r := newRig(t, 1)
	sha := r.commit("flask")
	root := t.TempDir()
	r.src.Git("clone", "-q", "--bare", r.repo, filepath.Join(root, "app.git"))
	const password = "gitpw-Qx7Lm2Vb9Nc"
	srv := testhosts.ServeHTTPGit(t, root, "deployer", password, true)
	t.Setenv("GIT_SSL_CAINFO", srv.CAFile) // the host's git trusts the test server
	t.Setenv("GIT_CONFIG_GLOBAL", "/dev/null")
	url := strings.Replace(srv.URL, "https://", "https://deployer:"+password+"@", 1) + "/app.git"
	r.d.Resolver = fakeResolver{rel: Release{RepoURL: url, Branch: "release", Commit: sha}}
	rec := &recordingDialer{Dialer: r.d.Dialer}
	r.d.Dialer = rec

	dep, err := r.deploy()
	if err != nil {
		t.Fatalf("deploy: %v", err)
	}
	home := r.dialer.homes["web1"]
	if rev, _ := os.ReadFile(filepath.Join(home, "app", "current", "REVISION")); strings.TrimSpace(string(rev)) != sha {
		t.Fatalf("REVISION %q, want %s (release %s)", rev, sha, dep.ReleaseName)
	}
	for _, res := range r.d.Check(context.Background(), r.hosts) {
		if res.Err != nil {
			t.Errorf("check %s %s: %v", res.Host, res.Name, res.Err)
		}
	}
	// (The dry run finds the stand-in python wanting; its git access is
	// the point here.)
	plan, _ := r.d.Plan(context.Background(), r.hosts, Push{Branch: "release"})
	for _, p := range plan.Hosts[0].Problems {
		if strings.HasPrefix(p, "git access") {
			t.Errorf("dry run: %s", p)
		}
	}
	authorized := 0
	for _, req := range srv.Requests() {
		if req.User == "deployer" && req.Status == 200 {
			authorized++
		}
	}
	if authorized == 0 {
		t.Error("the server answered no request with the password: the host did not use it")
	}

	if len(rec.lines) < 5 {
		t.Fatalf("only %d commands recorded", len(rec.lines))
	}
	for _, line := range rec.lines {
		if strings.Contains(line, password) {
			t.Errorf("a command line holds the password: %s", line)
		}
	}
	config, err := os.ReadFile(filepath.Join(home, "app", ".repo", "config"))
	if err != nil || !strings.Contains(string(config), "https://deployer@") {
		t.Errorf("the mirror's config: %v\n%s", err, config)
	}
	err = filepath.WalkDir(home, func(p string, e fs.DirEntry, err error) error {
		if err != nil || !e.Type().IsRegular() {
			return err
		}
		if holds(t, p, password) {
			t.Errorf("%s holds the password", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// holds reports whether the file at p contains s.
func holds(t *testing.T, p, s string) bool {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Contains(b, []byte(s))
}
