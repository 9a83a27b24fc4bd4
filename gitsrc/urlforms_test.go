package gitsrc

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/pushdeploy/pushdeploy/deploy"
	"github.com/pushdeploy/pushdeploy/internal/testhosts"
)

// lsRemote returns the commit git itself (the CLI) finds at branch release
// of url, or "" with its output when it fails.
func lsRemote(t *testing.T, url string, env ...string) (string, string) {
	t.Helper()
	cmd := exec.CommandContext(testContext(t), "git", "ls-remote", "--", url, "refs/heads/release")
	cmd.Env = append(os.Environ(), append([]string{"GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1", "GIT_TERMINAL_PROMPT=0"}, env...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", string(out)
	}
	tip, _, _ := strings.Cut(string(out), "\t")
	return tip, string(out)
}

// reaches resolves url's tip, looks a commit up in the mirror and
// archives it, and checks that each gets the repository whose tip is want
// (and whose file "which" says which).
func reaches(t *testing.T, cfg Config, want, which string) deploy.Release {
	t.Helper()
	cfg.Branch = "release"
	cfg.MirrorDir = filepath.Join(t.TempDir(), "mirror.git")
	s := New(cfg)
	rel, err := s.Resolve(testContext(t), deploy.Push{Branch: "release"})
	if err != nil {
		t.Fatalf("resolve: %v", err)
	}
	if rel.Commit != want {
		t.Fatalf("resolve: got %s, want %s (%s)", rel.Commit, want, which)
	}
	// A requested commit is looked up in the mirror, fetched from url.
	if got, err := s.Resolve(testContext(t), deploy.Push{Branch: "release", Commit: want[:10]}); err != nil || got.Commit != want {
		t.Fatalf("resolve %s: got %s, %v; want %s", want[:10], got.Commit, err, want)
	}
	// Push mode archives from the mirror.
	dir := extract(t, archive(t, s, want))
	if b, err := os.ReadFile(filepath.Join(dir, "which")); err != nil || string(b) != which {
		t.Errorf("archive: file which = %q, %v; want %q", b, err, which)
	}
	return rel
}

// TestRepoURLForms reaches the real git server of testhosts (git-shell
// behind a forced command, over SSH) through every form of SSH URL git
// accepts. Three repositories with different tips make the meaning of a
// path visible: ~/app.git (the git user's home), /abs/path/app.git (outside
// it) and ~other/app.git (another user's home); /~/app.git, which go-git
// asked for when given ssh://…/~/app.git, does not exist. For each URL,
// the deployer (resolve, the mirror, push mode's archive) gets the
// repository git itself gets, and the server is asked for exactly the path
// git asks for.
func TestRepoURLForms(t *testing.T) {
	env := testhosts.New(t, testhosts.Options{Hosts: 1, GitPort22: true})
	ctx := testContext(t)
	homeTip, err := env.Commit(ctx, map[string]string{"which": "home"}, "home")
	if err != nil {
		t.Fatal(err)
	}
	abs := filepath.Join(env.Dir, "srv", "git", "app.git")
	absTip, err := env.AddRepo(ctx, abs, map[string]string{"which": "abs"}, "abs")
	if err != nil {
		t.Fatal(err)
	}
	other := env.Hosts[0]
	otherTip, err := env.AddRepo(ctx, other.Path("app.git"), map[string]string{"which": "other"}, "other")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/~", filepath.Join(env.Git.Home, strings.TrimPrefix(abs, "/"))} {
		if _, err := os.Stat(p); err == nil {
			t.Fatalf("%s exists: the test could not tell the paths apart", p)
		}
	}
	key, err := os.ReadFile(env.GitKey)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("SSH_AUTH_SOCK", "") // New reads it
	gitSSH := "GIT_SSH_COMMAND=" + env.GitSSHCommand()

	g, a, p := env.Git.User, env.Git.Addr, strconv.Itoa(env.Git.Port)
	keyLine := func(port22 bool) string {
		_, key, _ := strings.Cut(env.Git.HostKeyLine, " ")
		if port22 {
			return a + " " + key
		}
		return env.Git.HostKeyLine
	}
	tests := []struct {
		url    string
		tip    string
		which  string
		port22 bool
	}{
		{g + "@" + a + ":app.git", homeTip, "home", true},
		{g + "@" + a + ":~/app.git", homeTip, "home", true},
		{g + "@" + a + ":/~/app.git", homeTip, "home", true},
		{g + "@" + a + ":" + abs, absTip, "abs", true},
		{g + "@" + a + ":~" + other.User + "/app.git", otherTip, "other", true},
		{"[" + g + "@" + a + ":" + p + "]:app.git", homeTip, "home", false},
		{g + "@[" + a + ":" + p + "]:~" + other.User + "/app.git", otherTip, "other", false},
		{"ssh://" + g + "@" + a + ":" + p + abs, absTip, "abs", false},
		{"ssh://" + g + "@" + a + ":" + p + "/~/app.git", homeTip, "home", false},
		{"ssh://" + g + "@" + a + ":" + p + "/~" + other.User + "/app.git", otherTip, "other", false},
		{"ssh://" + g + "@" + a + "/~/app.git", homeTip, "home", true},
		{"ssh://" + g + "@" + a + ":" + p + env.Git.Path("app.git"), homeTip, "home", false},
		{"git+ssh://" + g + "@" + a + ":" + p + "/~/app%2egit", homeTip, "home", false},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			before, err := env.GitRequests()
			if err != nil {
				t.Fatal(err)
			}
			gitTip, out := lsRemote(t, tt.url, gitSSH)
			if gitTip != tt.tip {
				t.Fatalf("git ls-remote got %q, want %s (%s): %s", gitTip, tt.tip, tt.which, out)
			}
			gitAsked, err := env.GitRequests()
			if err != nil {
				t.Fatal(err)
			}
			rel := reaches(t, Config{URL: tt.url, Key: key, KnownHosts: env.KnownHosts}, tt.tip, tt.which)
			checkHostKeys(t, rel.GitHostKeys, keyLine(tt.port22))
			all, err := env.GitRequests()
			if err != nil {
				t.Fatal(err)
			}
			want := gitAsked[len(before):]
			if len(want) != 1 {
				t.Fatalf("git asked %q, want one request", want)
			}
			for _, got := range all[len(gitAsked):] {
				if got != want[0] {
					t.Errorf("the deployer asked the server %q, git asked %q", got, want[0])
				}
			}
		})
	}
}

// TestRepoURLLocalForms reads local repositories through a path (absolute,
// relative to the current folder, ~/…) and file://, and gets what git gets.
func TestRepoURLLocalForms(t *testing.T) {
	testhosts.NeedTools(t, "git", "tar")
	home := t.TempDir()
	t.Setenv("HOME", home) // the upload-pack that reads ~/app.git expands it
	repos := map[string]string{}
	for _, dir := range []string{filepath.Join(home, "app.git"), filepath.Join(home, "work", "rel.git"), filepath.Join(home, "my app.git")} {
		r := newCLIRepo(t)
		r.write("which", filepath.Base(dir), 0o644)
		r.commit("one")
		runGit(t, r.dir, nil, "clone", "-q", "--bare", r.dir, dir)
		repos[filepath.Base(dir)] = runGit(t, dir, nil, "rev-parse", "refs/heads/release")
	}
	t.Chdir(filepath.Join(home, "work"))
	tests := []struct{ url, which string }{
		{filepath.Join(home, "app.git"), "app.git"},
		{"~/app.git", "app.git"},
		{"rel.git", "rel.git"},
		{"./rel.git", "rel.git"},
		{"../work/rel.git", "rel.git"},
		{"file://" + filepath.Join(home, "app.git"), "app.git"},
		{"file://localhost" + filepath.Join(home, "app.git"), "app.git"},
		{"file://" + filepath.Join(home, "my%20app.git"), "my app.git"},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			want := repos[tt.which]
			if got, out := lsRemote(t, tt.url); got != want {
				t.Fatalf("git ls-remote got %q, want %s: %s", got, want, out)
			}
			reaches(t, Config{URL: tt.url}, want, tt.which)
		})
	}
}

// TestRepoURLHTTPS reads a repository over https with basic auth from
// the URL, from git's own git-http-backend, and gets what git gets; a
// wrong password or none is refused, and no message shows the password.
func TestRepoURLHTTPS(t *testing.T) {
	testhosts.NeedTools(t, "git", "tar")
	root := t.TempDir()
	r := newCLIRepo(t)
	r.write("which", "https", 0o644)
	r.commit("one")
	bare := filepath.Join(root, "team", "app.git")
	runGit(t, r.dir, nil, "clone", "-q", "--bare", r.dir, bare)
	tip := runGit(t, bare, nil, "rev-parse", "refs/heads/release")
	const password = "s3cr%40t pass" // %-encoded in the URL: s3cr@t pass
	srv := testhosts.ServeHTTPGit(t, root, "deployer", "s3cr@t pass", true)
	host := strings.TrimPrefix(srv.URL, "https://")
	url := "https://deployer:" + strings.ReplaceAll(password, " ", "%20") + "@" + host + "/team/app.git"

	if got, out := lsRemote(t, url, "GIT_SSL_CAINFO="+srv.CAFile); got != tip {
		t.Fatalf("git ls-remote got %q, want %s: %s", got, tip, out)
	}
	gitAsked := srv.Requests()
	s := New(Config{URL: url, Branch: "release", MirrorDir: filepath.Join(t.TempDir(), "mirror.git")})
	s.caBundle = srv.CA
	rel, err := s.Resolve(testContext(t), deploy.Push{Branch: "release", Commit: tip[:8]})
	if err != nil || rel.Commit != tip {
		t.Fatalf("resolve: got %s, %v; want %s", rel.Commit, err, tip)
	}
	dir := extract(t, archive(t, s, tip))
	if b, err := os.ReadFile(filepath.Join(dir, "which")); err != nil || string(b) != "https" {
		t.Errorf("archive: file which = %q, %v; want https", b, err)
	}
	// go-git sends the credentials at once, git after a 401: the
	// authenticated requests are for the same path, as the same user.
	authed := func(rs []testhosts.HTTPRequest) []testhosts.HTTPRequest {
		return slices.DeleteFunc(slices.Clone(rs), func(r testhosts.HTTPRequest) bool { return r.Status != 200 })
	}
	gitFirst, goFirst := authed(gitAsked)[0], authed(srv.Requests()[len(gitAsked):])[0]
	if gitFirst != goFirst || goFirst.User != "deployer" {
		t.Errorf("the deployer asked %+v, git asked %+v", goFirst, gitFirst)
	}
	mirrorConfig, err := os.ReadFile(filepath.Join(s.cfg.MirrorDir, "config"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(mirrorConfig), "s3cr") || !strings.Contains(string(mirrorConfig), "deployer:xxxxx@") {
		t.Errorf("the mirror's config does not blank out the password:\n%s", mirrorConfig)
	}

	for name, u := range map[string]string{
		"wrong password": "https://deployer:s3cr%40t-wrong@" + host + "/team/app.git",
		"no password":    "https://" + host + "/team/app.git",
	} {
		s := New(Config{URL: u, Branch: "release"})
		s.caBundle = srv.CA
		_, err := s.Resolve(testContext(t), deploy.Push{Branch: "release"})
		if err == nil || !strings.Contains(err.Error(), "authentication required") {
			t.Errorf("%s: got %v, want authentication required", name, err)
		}
		if err != nil && strings.Contains(err.Error(), "s3cr") {
			t.Errorf("%s: the error shows the password: %v", name, err)
		}
	}
}
