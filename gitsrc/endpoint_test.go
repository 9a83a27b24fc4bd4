package gitsrc

import (
	"strings"
	"testing"

	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/google/go-cmp/cmp"

	"github.com/pushdeploy/pushdeploy/deploy"
)

// endpointURLs are forms whose endpoint go-git gets wrong when it parses
// them itself, and some it gets right.
var endpointURLs = []string{
	"ssh://git@git.example.com:2222/~/app.git",
	"ssh://git@git.example.com/~deploy/app.git",
	"ssh://git@[2001:db8::1]:2222/app.git",
	"ssh://git@[fe80::1%25eth0]/app.git",
	"ssh://git@git.example.com/it's%20a%3F%23%25.git",
	"git@git.example.com:/~/app.git",
	"git@git.example.com:app.git",
	"[git@git.example.com:2222]:app.git",
	"git@[::1]:app.git",
	"git://[::1]:9418/~deploy/app.git",
	"/srv/git/app.git",
	"repos/app.git",
	"~/app.git",
	"file:///srv/git/my%20app.git",
	"https://deployer:s3cret@git.example.com:8443/team/a%2Fb.git",
	"http://[::1]:8080/app.git",
}

// TestGoGitEndpoint shows that go-git's own transport gets the endpoint
// ParseRepoURL read: the path exactly as git sends it, the host and port,
// the SSH user, and never a password.
func TestGoGitEndpoint(t *testing.T) {
	for _, s := range endpointURLs {
		checkEndpoint(t, s)
	}
}

func FuzzGoGitEndpoint(f *testing.F) {
	for _, s := range endpointURLs {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if _, err := deploy.ParseRepoURL(s); err == nil {
			checkEndpoint(t, s)
		}
	})
}

func checkEndpoint(t *testing.T, s string) {
	t.Helper()
	u, err := deploy.ParseRepoURL(s)
	if err != nil {
		t.Fatal(err)
	}
	g := goGitURL(u)
	ep, err := transport.NewEndpoint(g)
	if err != nil {
		t.Fatalf("%s: go-git cannot parse %q: %v", s, g, err)
	}
	got := exactTransport{name: u.Transport}.endpoint(ep)
	host := u.Host
	if strings.HasPrefix(u.Transport, "http") && strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	user := u.User
	if u.Transport != "ssh" {
		user = "" // http's goes in the auth
	}
	want := transport.Endpoint{Protocol: u.Transport, User: user, Host: host, Port: u.Port, Path: u.Path}
	if !cmp.Equal(*got, want) {
		t.Errorf("%s: go-git's transport gets %+v (from %q), want %+v", s, *got, g, want)
	}
	if u.Password != "" && strings.Contains(g, u.Password) {
		t.Errorf("%s: go-git gets the password in %q", s, g)
	}
}
