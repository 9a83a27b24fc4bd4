package deploy

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/pushdeploy/pushdeploy/internal/testhosts"
)

// repoURLTests are the forms of repository URL git accepts, each with what
// git does with it (TestRepoURLMatchesGit checks that against git itself),
// and the ones ParseRepoURL refuses.
var repoURLTests = []struct {
	url     string
	want    RepoURL
	wantErr string
}{
	// scp-like
	{url: "git@git.example.com:app.git", want: RepoURL{Transport: "ssh", User: "git", Host: "git.example.com", Path: "app.git"}},
	{url: "git@git.example.com:~/app.git", want: RepoURL{Transport: "ssh", User: "git", Host: "git.example.com", Path: "~/app.git"}},
	{url: "git@git.example.com:/~/app.git", want: RepoURL{Transport: "ssh", User: "git", Host: "git.example.com", Path: "~/app.git"}},
	{url: "git@git.example.com:~deploy/app.git", want: RepoURL{Transport: "ssh", User: "git", Host: "git.example.com", Path: "~deploy/app.git"}},
	{url: "git@git.example.com:/srv/git/app.git", want: RepoURL{Transport: "ssh", User: "git", Host: "git.example.com", Path: "/srv/git/app.git"}},
	{url: "git@git.example.com:team/my%20app.git", want: RepoURL{Transport: "ssh", User: "git", Host: "git.example.com", Path: "team/my%20app.git"}},
	{url: "git.example.com:app.git", want: RepoURL{Transport: "ssh", Host: "git.example.com", Path: "app.git"}},
	{url: "deploy@10.0.0.5:~", want: RepoURL{Transport: "ssh", User: "deploy", Host: "10.0.0.5", Path: "~"}},
	{url: "[git@git.example.com:2222]:app.git", want: RepoURL{Transport: "ssh", User: "git", Host: "git.example.com", Port: 2222, Path: "app.git"}},
	{url: "git@[git.example.com:2222]:~/app.git", want: RepoURL{Transport: "ssh", User: "git", Host: "git.example.com", Port: 2222, Path: "~/app.git"}},
	{url: "[git.example.com:2222]:app.git", want: RepoURL{Transport: "ssh", Host: "git.example.com", Port: 2222, Path: "app.git"}},
	{url: "git@[2001:db8::1]:app.git", want: RepoURL{Transport: "ssh", User: "git", Host: "2001:db8::1", Path: "app.git"}},
	{url: "[::1]:app.git", want: RepoURL{Transport: "ssh", Host: "::1", Path: "app.git"}},
	// ssh://
	{url: "ssh://git@git.example.com/srv/app.git", want: RepoURL{Transport: "ssh", User: "git", Host: "git.example.com", Path: "/srv/app.git"}},
	{url: "ssh://git@git.example.com:2222/~/app.git", want: RepoURL{Transport: "ssh", User: "git", Host: "git.example.com", Port: 2222, Path: "~/app.git"}},
	{url: "ssh://git@git.example.com/~deploy/app.git", want: RepoURL{Transport: "ssh", User: "git", Host: "git.example.com", Path: "~deploy/app.git"}},
	{url: "ssh://git@git.example.com:2222/app.git", want: RepoURL{Transport: "ssh", User: "git", Host: "git.example.com", Port: 2222, Path: "/app.git"}},
	{url: "ssh://git.example.com/~", want: RepoURL{Transport: "ssh", Host: "git.example.com", Path: "~"}},
	{url: "ssh://git@git.example.com:/app.git", want: RepoURL{Transport: "ssh", User: "git", Host: "git.example.com", Path: "/app.git"}},
	{url: "ssh://git@[2001:db8::1]:2222/app.git", want: RepoURL{Transport: "ssh", User: "git", Host: "2001:db8::1", Port: 2222, Path: "/app.git"}},
	{url: "ssh://git@[::1]/~/app.git", want: RepoURL{Transport: "ssh", User: "git", Host: "::1", Path: "~/app.git"}},
	{url: "ssh://[git@git.example.com:2222]/x.git", want: RepoURL{Transport: "ssh", User: "git", Host: "git.example.com", Port: 2222, Path: "/x.git"}},
	{url: "ssh://git@git.example.com/my%20app.git", want: RepoURL{Transport: "ssh", User: "git", Host: "git.example.com", Path: "/my app.git"}},
	{url: "ssh://git%40corp@git.example.com/x.git", want: RepoURL{Transport: "ssh", User: "git@corp", Host: "git.example.com", Path: "/x.git"}},
	{url: "ssh://git@git.example.com%3A2222/x.git", want: RepoURL{Transport: "ssh", User: "git", Host: "git.example.com", Port: 2222, Path: "/x.git"}},
	{url: "ssh://git@git.example.com/it's!.git", want: RepoURL{Transport: "ssh", User: "git", Host: "git.example.com", Path: "/it's!.git"}},
	{url: "ssh://git@git.example.com/x?y#z", want: RepoURL{Transport: "ssh", User: "git", Host: "git.example.com", Path: "/x?y#z"}},
	{url: "git+ssh://git@git.example.com/x%20y.git", want: RepoURL{Transport: "ssh", User: "git", Host: "git.example.com", Path: "/x y.git"}},
	{url: "ssh+git://git@git.example.com/~/x.git", want: RepoURL{Transport: "ssh", User: "git", Host: "git.example.com", Path: "~/x.git"}},
	// git://
	{url: "git://git.example.com/~deploy/app.git", want: RepoURL{Transport: "git", Host: "git.example.com", Path: "~deploy/app.git"}},
	{url: "git://git.example.com:9419/app.git", want: RepoURL{Transport: "git", Host: "git.example.com", Port: 9419, Path: "/app.git"}},
	// file:// and local paths
	{url: "/srv/git/app.git", want: RepoURL{Transport: "file", Path: "/srv/git/app.git"}},
	{url: "app.git", want: RepoURL{Transport: "file", Path: "app.git"}},
	{url: "./repos/app.git", want: RepoURL{Transport: "file", Path: "./repos/app.git"}},
	{url: "~/app.git", want: RepoURL{Transport: "file", Path: "~/app.git"}},
	{url: "./a:b.git", want: RepoURL{Transport: "file", Path: "./a:b.git"}},
	{url: "repos/a:b.git", want: RepoURL{Transport: "file", Path: "repos/a:b.git"}},
	{url: "file:///srv/git/app.git", want: RepoURL{Transport: "file", Path: "/srv/git/app.git"}},
	{url: "file://localhost/srv/git/app.git", want: RepoURL{Transport: "file", Path: "/srv/git/app.git"}},
	{url: "file:///srv/git/my%20app.git", want: RepoURL{Transport: "file", Path: "/srv/git/my app.git"}},
	{url: "file:///~/app.git", want: RepoURL{Transport: "file", Path: "/~/app.git"}},
	// http(s)
	{url: "https://git.example.com/team/app.git", want: RepoURL{Transport: "https", Host: "git.example.com", Path: "/team/app.git"}},
	{url: "https://deployer:s3cr%40t@git.example.com:8443/team/app.git", want: RepoURL{Transport: "https", User: "deployer", Password: "s3cr@t", Host: "git.example.com", Port: 8443, Path: "/team/app.git"}},
	{url: "https://x-token-auth@git.example.com/a%2Fb.git?ref=1", want: RepoURL{Transport: "https", User: "x-token-auth", Host: "git.example.com", Path: "/a%2Fb.git?ref=1"}},
	{url: "http://[::1]:8080/app.git", want: RepoURL{Transport: "http", Host: "::1", Port: 8080, Path: "/app.git"}},

	// Refused: git would refuse them, read them otherwise than they look,
	// or they cannot work.
	{url: "", wantErr: "empty"},
	{url: "ssh://git@git.example.com", wantErr: "no path"},
	{url: "git@git.example.com:", wantErr: "no path"},
	{url: "file://", wantErr: "no path"},
	{url: "ssh://deployer:s3cret@git.example.com/x.git", wantErr: "takes no password"},
	{url: "ssh://git@git.example.com:0/x.git", wantErr: `port "0"`},
	{url: "ssh://git@git.example.com:65536/x.git", wantErr: `port "65536"`},
	{url: "ssh://git@git.example.com:abc/x.git", wantErr: `host "git.example.com:abc"`},
	{url: "ssh://git.example.com:2222:33/x.git", wantErr: `host "git.example.com:2222:33"`},
	{url: "git@git.example.com:-x.git", wantErr: "starts with '-'"},
	{url: "ssh://-oProxyCommand=touch%20x/y.git", wantErr: "starts with '-'"},
	{url: "ssh://-git@git.example.com/y.git", wantErr: "starts with '-'"},
	{url: "-app.git", wantErr: "starts with '-'"},
	{url: "ssh://@git.example.com/x.git", wantErr: "empty user"},
	{url: "ssh://git@/x.git", wantErr: "no host"},
	{url: "https:///x.git", wantErr: "no host"},
	{url: "ssh://git@[::1]x/y.git", wantErr: "not :port"},
	{url: "ssh://git@git.example.com%0a/y.git", wantErr: "control character"},
	{url: "https://ci:s3cret%0Aecho@git.example.com/y.git", wantErr: "control character"},
	{url: "git@git.example.com:x~y.git", wantErr: `git would ask for the path "~y.git"`},
	{url: "git@git.example.com:2222:app.git", wantErr: "scp-like URLs take no port"},
	{url: "SSH://git.example.com/x.git", wantErr: `scheme "SSH"`},
	{url: "ftp://git.example.com/x.git", wantErr: `scheme "ftp"`},
	{url: "ext::sh -c touch% x", wantErr: "remote helper"},
	{url: "fd::3", wantErr: "remote helper"},
	{url: "file://repos/app.git", wantErr: "file:// takes an absolute path"},
	{url: "https://git.example.com/x.git#main", wantErr: "#fragment"},
	{url: "git://user@git.example.com/x.git", wantErr: "take no user"},
	{url: "git@git example.com:x.git", wantErr: "characters other than"},
	{url: "https://deployer:s3cret@git.example.com:99999/x.git", wantErr: `port "99999"`},
}

func TestParseRepoURL(t *testing.T) {
	for _, tt := range repoURLTests {
		got, err := ParseRepoURL(tt.url)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseRepoURL(%q): got %+v, %v; want an error containing %q", tt.url, got, err, tt.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), "s3cret") {
				t.Errorf("ParseRepoURL(%q): the error shows the password: %v", tt.url, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseRepoURL(%q): %v", tt.url, err)
			continue
		}
		if diff := cmp.Diff(tt.want, got, cmpopts.IgnoreUnexported(RepoURL{})); diff != "" {
			t.Errorf("ParseRepoURL(%q) (-want +got):\n%s", tt.url, diff)
		}
	}
}

func TestRepoURLStrings(t *testing.T) {
	tests := []struct{ url, str, without string }{
		{"https://deployer:s3cr%40t@git.example.com/app.git", "https://deployer:xxxxx@git.example.com/app.git", "https://deployer@git.example.com/app.git"},
		{"https://deployer@git.example.com/app.git", "https://deployer@git.example.com/app.git", "https://deployer@git.example.com/app.git"},
		{"https://git.example.com/a:b@c.git", "https://git.example.com/a:b@c.git", "https://git.example.com/a:b@c.git"},
		{"git@git.example.com:app.git", "git@git.example.com:app.git", "git@git.example.com:app.git"},
	}
	for _, tt := range tests {
		u, err := ParseRepoURL(tt.url)
		if err != nil {
			t.Fatal(err)
		}
		if got := u.String(); got != tt.str {
			t.Errorf("%q: String() = %q, want %q", tt.url, got, tt.str)
		}
		if got := u.WithoutPassword(); got != tt.without {
			t.Errorf("%q: WithoutPassword() = %q, want %q", tt.url, got, tt.without)
		}
	}
}

func TestRedactPassword(t *testing.T) {
	tests := []struct {
		url, text, want string
	}{
		{"https://deployer:s3cret@git.example.com/app.git", "get https://deployer:s3cret@git.example.com/app.git: 401", "get https://deployer:xxxxx@git.example.com/app.git: 401"},
		{"https://deployer:p%40ss%2Fword@git.example.com/app.git", "p%40ss%2Fword p@ss/word p%40ss%2Fword", "xxxxx xxxxx xxxxx"},
		{"https://deployer:a%20b@git.example.com/app.git", "a b a%20b", "xxxxx xxxxx"},
		{"https://tok:a b@host/x", `parse "https://tok:a b@host/x": invalid`, `parse "https://tok:xxxxx@host/x": invalid`},
		{"ssh://deployer:s3cret@git.example.com/app.git", "ssh://deployer:s3cret@git.example.com/app.git", "ssh://deployer:xxxxx@git.example.com/app.git"},
		{"deployer:s3cret@git.example.com:app.git", "deployer:s3cret@git.example.com:app.git", "deployer:xxxxx@git.example.com:app.git"},
		{"https://deployer@git.example.com/app.git", "https://deployer@git.example.com/app.git", "https://deployer@git.example.com/app.git"},
		{"https://git.example.com/a:b@c", "https://git.example.com/a:b@c", "https://git.example.com/a:b@c"},
		{"git@github.com:org/app.git", "git@github.com:org/app.git", "git@github.com:org/app.git"},
		{"/srv/git/a:b@c", "/srv/git/a:b@c", "/srv/git/a:b@c"},
	}
	for _, tt := range tests {
		if got := RedactPassword(tt.text, tt.url); got != tt.want {
			t.Errorf("RedactPassword(%q, %q) = %q, want %q", tt.text, tt.url, got, tt.want)
		}
	}
}

func FuzzParseRepoURL(f *testing.F) {
	for _, tt := range repoURLTests {
		f.Add(tt.url)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := ParseRepoURL(s)
		if err != nil {
			return
		}
		if u.Password != "" && strings.Contains(u.String(), u.Password) {
			t.Errorf("%q: String() %q shows the password", s, u.String())
		}
		if u.Transport != "http" && u.Transport != "https" && u.Password != "" {
			t.Errorf("%q: a password for %s", s, u.Transport)
		}
		if u.Transport == "ssh" && (strings.HasPrefix(u.Path, "-") || strings.HasPrefix(u.Host, "-") || strings.HasPrefix(u.User, "-")) {
			t.Errorf("%q: %+v starts with '-'", s, u)
		}
	})
}

// gitOracle runs real git against fake programs that record what git
// asks for: an ssh that writes its arguments to a file and runs the remote
// command locally, and an upload-pack (named with --upload-pack) that
// writes the path it was given.
type gitOracle struct {
	t   *testing.T
	dir string
}

func newGitOracle(t *testing.T) *gitOracle {
	t.Helper()
	testhosts.NeedTools(t, "git")
	o := &gitOracle{t: t, dir: t.TempDir()}
	ssh := `#!/bin/sh
for a in "$@"; do printf '%s\0' "$a"; done > "$(dirname "$0")/ssh-args"
for last in "$@"; do :; done
exec sh -c "$last"
`
	up := `#!/bin/sh
printf '%s' "$1" > "$(dirname "$0")/path"
exit 1
`
	for name, content := range map[string]string{"ssh": ssh, "upload-pack": up} {
		if err := os.WriteFile(filepath.Join(o.dir, name), []byte(content), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return o
}

// ask runs git ls-remote on url and returns what ssh was told (nil args
// for a local transport) and the path upload-pack got.
func (o *gitOracle) ask(url string) (sshArgs []string, path string, ok bool) {
	o.t.Helper()
	for _, f := range []string{"ssh-args", "path"} {
		os.Remove(filepath.Join(o.dir, f))
	}
	out := o.run(url, "--upload-pack="+filepath.Join(o.dir, "upload-pack"))
	p, err := os.ReadFile(filepath.Join(o.dir, "path"))
	if err != nil {
		o.t.Logf("%s: git ran no upload-pack: %s", url, out)
		return nil, "", false
	}
	if a, err := os.ReadFile(filepath.Join(o.dir, "ssh-args")); err == nil {
		sshArgs = strings.Split(strings.TrimSuffix(string(a), "\x00"), "\x00")
	}
	return sshArgs, string(p), true
}

// run runs git ls-remote on url and returns its output; it fails, as
// the programs it talks to are fakes.
func (o *gitOracle) run(url string, args ...string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "git", append(append([]string{"ls-remote"}, args...), url)...)
	cmd.Dir = o.dir
	cmd.Env = append(os.Environ(), "GIT_SSH_COMMAND="+filepath.Join(o.dir, "ssh"), "GIT_SSH_VARIANT=ssh",
		"GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1", "GIT_TERMINAL_PROMPT=0")
	out, _ := cmd.CombinedOutput()
	return string(out)
}

// TestRepoURLMatchesGit checks every ssh, file and local form of
// repoURLTests against git itself: the login, host, port and path
// ParseRepoURL gives are the ones git hands to ssh and upload-pack.
func TestRepoURLMatchesGit(t *testing.T) {
	o := newGitOracle(t)
	for _, tt := range repoURLTests {
		if tt.wantErr != "" || (tt.want.Transport != "ssh" && tt.want.Transport != "file") {
			continue
		}
		sshArgs, path, ok := o.ask(tt.url)
		if !ok {
			t.Errorf("%s: git did not run upload-pack", tt.url)
			continue
		}
		got := RepoURL{Transport: "file", Path: path}
		if sshArgs != nil {
			got.Transport = "ssh"
			for i := 0; i < len(sshArgs)-1; i++ {
				switch a := sshArgs[i]; {
				case a == "-o":
					i++
				case a == "-p":
					got.Port, _ = strconv.Atoi(sshArgs[i+1])
					i++
				case strings.HasPrefix(a, "-"):
				default:
					// ssh splits user@host at the last '@'.
					if at := strings.LastIndexByte(a, '@'); at >= 0 {
						got.User, got.Host = a[:at], a[at+1:]
					} else {
						got.Host = a
					}
				}
			}
		}
		if diff := cmp.Diff(tt.want, got, cmpopts.IgnoreUnexported(RepoURL{})); diff != "" {
			t.Errorf("%s: ParseRepoURL differs from git (-ParseRepoURL +git):\n%s", tt.url, diff)
		}
	}
	// Those refused for reading otherwise than they look are read so by git.
	for url, want := range map[string]string{
		"git@git.example.com:x~y.git":      "~y.git",
		"git@git.example.com:2222:app.git": "2222:app.git",
	} {
		if _, path, _ := o.ask(url); path != want {
			t.Errorf("%s: git asked for %q, want %q", url, path, want)
		}
	}
}

// TestRepoURLMatchesGitServers checks git:// and http(s) forms against
// servers on loopback: what git asks them for is what ParseRepoURL gives.
func TestRepoURLMatchesGitServers(t *testing.T) {
	o := newGitOracle(t)

	// git://: the first pkt-line is "git-upload-pack PATH\0host=HOST\0",
	// after 4 hex digits of length.
	var lc net.ListenConfig
	l, err := lc.Listen(t.Context(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	requests := make(chan string, 1)
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			line, _ := bufio.NewReader(c).ReadString(0)
			c.Close()
			requests <- line
		}
	})
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	for _, path := range []string{"/srv/app.git", "/~deploy/app.git", "/~/app.git", "/my%20app.git"} {
		url := "git://127.0.0.1:" + strconv.Itoa(port) + path
		u, err := ParseRepoURL(url)
		if err != nil {
			t.Fatal(err)
		}
		o.run(url)
		select {
		case got := <-requests:
			if want := "git-upload-pack " + u.Path + "\x00"; len(got) < 4 || got[4:] != want {
				t.Errorf("%s: git sent %q, want %q after the length", url, got, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: git sent nothing", url)
		}
	}

	// http: the path and query of the first request, and the credentials
	// git sends once asked for them.
	type request struct{ uri, user, pass string }
	got := make(chan request, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pass, ok := r.BasicAuth()
		if !ok {
			w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
			http.Error(w, "who are you", http.StatusUnauthorized)
			return
		}
		got <- request{r.URL.RequestURI(), user, pass}
		http.Error(w, "not here", http.StatusNotFound)
	}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	for _, url := range []string{
		"http://deployer:s3cr%40t%20x@" + host + "/team/app.git",
		"http://x-token-auth:t%2Fk@" + host + "/a%2Fb%20c.git",
	} {
		u, err := ParseRepoURL(url)
		if err != nil {
			t.Fatal(err)
		}
		o.run(url)
		select {
		case r := <-got:
			want := request{u.Path + "/info/refs?service=git-upload-pack", u.User, u.Password}
			if r != want {
				t.Errorf("%s: git asked %+v, want %+v", url, r, want)
			}
		default:
			t.Errorf("%s: git sent no authenticated request", url)
		}
	}
}

// TestCheckRedactsPassword: no result of Check shows the repository's
// password, neither the repository's detail nor a host's error quoting the
// URL.
func TestCheckRedactsPassword(t *testing.T) {
	const url = "https://deployer:s3cr%40t@git.example.com/app.git"
	host := Host{Name: "web1", Addr: "web1", User: "deploy"}
	d := &Deployer{
		Dialer:      &fakeDialer{err: map[string]error{"web1": errors.New("cannot reach " + url + " (password s3cr@t)")}},
		Resolver:    fakeResolver{rel: Release{RepoURL: url, Branch: "release", Commit: strings.Repeat("a", 40)}},
		StepTimeout: time.Minute,
	}
	results := d.Check(t.Context(), []Host{host})
	if len(results) != 2 {
		t.Fatalf("got %d results, want 2: %+v", len(results), results)
	}
	if want := "https://deployer:xxxxx@git.example.com/app.git release at aaaaaaaaaaaa"; results[0].Detail != want {
		t.Errorf("repository detail %q, want %q", results[0].Detail, want)
	}
	for _, r := range results {
		shown := r.Detail
		if r.Err != nil {
			shown += " " + r.Err.Error()
		}
		if strings.Contains(shown, "s3cr") {
			t.Errorf("%s %s shows the password: %s", r.Host, r.Name, shown)
		}
	}
	if results[1].Err == nil || !strings.Contains(results[1].Err.Error(), "cannot reach https://deployer:xxxxx@") {
		t.Errorf("host error %v, want it kept with the password blanked out", results[1].Err)
	}
}
