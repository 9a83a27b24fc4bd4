package gitsrc

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os/user"
	"strconv"
	"strings"

	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/plumbing/transport/client"
	"github.com/go-git/go-git/v5/plumbing/transport/file"
	gitproto "github.com/go-git/go-git/v5/plumbing/transport/git"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"

	"github.com/pushdeploy/pushdeploy/deploy"
)

// go-git reads repository URLs itself, and not as git does: it asks an SSH
// server for "/~/app.git" where git asks for "~/app.git", takes
// host:2222:app.git for a port, and cannot dial a bracketed IPv6 address
// (issue 11). So go-git never gets the user's URL. It gets one of the
// schemes below, made by goGitURL from what deploy.ParseRepoURL read, and
// the transport behind each scheme hands go-git's own transport exactly
// that endpoint: the path as git sends it, the host unbracketed where
// go-git joins it with the port itself.

// schemePrefix starts the schemes go-git is given; the rest is the
// transport ("ssh", "git", "file", "http", "https").
const schemePrefix = "pushdeploy+"

func init() {
	// go-git's registry of transports is a plain map: written here, once,
	// before anything can read it.
	for name, inner := range map[string]transport.Transport{
		"ssh":   gitssh.DefaultClient,
		"git":   gitproto.DefaultClient,
		"file":  file.DefaultClient,
		"http":  githttp.DefaultClient,
		"https": githttp.DefaultClient,
	} {
		client.InstallProtocol(schemePrefix+name, exactTransport{name: name, inner: inner})
	}
}

// goGitURL returns the URL to give go-git for u. It carries u's user, host,
// port and path, the path after one '/' of its own (go-git parses it with
// net/url, which gives the escaped path back exactly). It never carries a
// password: auth does.
func goGitURL(u deploy.RepoURL) string {
	g := url.URL{Scheme: schemePrefix + u.Transport, Path: "/" + u.Path}
	if u.Host != "" {
		g.Host = u.Host
		if strings.Contains(u.Host, ":") {
			g.Host = "[" + u.Host + "]"
		}
		if u.Port != 0 {
			g.Host = net.JoinHostPort(u.Host, strconv.Itoa(u.Port))
		}
	}
	if u.User != "" && u.Transport == "ssh" {
		g.User = url.User(u.User)
	}
	return g.String()
}

// exactTransport is one of go-git's transports behind a scheme of ours.
type exactTransport struct {
	name  string
	inner transport.Transport
}

var _ transport.Transport = exactTransport{}

// endpoint turns the endpoint go-git parsed from a goGitURL into the one
// its own transport must get.
func (t exactTransport) endpoint(ep *transport.Endpoint) *transport.Endpoint {
	e := *ep // keeps what go-git set besides the URL: TLS and proxy options
	e.Protocol = t.name
	e.Path = strings.TrimPrefix(ep.Path, "/")
	e.Password = ""
	if t.name == "ssh" || t.name == "git" {
		// These join host and port with net.JoinHostPort, which adds
		// the brackets itself; http writes the host as it is into the
		// request URL.
		e.Host = strings.TrimSuffix(strings.TrimPrefix(ep.Host, "["), "]")
	}
	return &e
}

func (t exactTransport) NewUploadPackSession(ep *transport.Endpoint, auth transport.AuthMethod) (transport.UploadPackSession, error) {
	return t.inner.NewUploadPackSession(t.endpoint(ep), auth)
}

func (t exactTransport) NewReceivePackSession(*transport.Endpoint, transport.AuthMethod) (transport.ReceivePackSession, error) {
	return nil, errors.New("pushdeploy only reads from the repository")
}

// localUser is the login of an SSH URL that names none: as for ssh, the
// name of the user running the deployer.
func localUser() (string, error) {
	u, err := user.Current()
	if err != nil || u.Username == "" {
		return "", fmt.Errorf("the repository URL names no user and this process's user has no name (%v); write user@host", err)
	}
	return u.Username, nil
}

// httpAuth is the basic auth of an http(s) URL with a user, nil otherwise.
func httpAuth(u deploy.RepoURL) transport.AuthMethod {
	if u.User == "" || (u.Transport != "http" && u.Transport != "https") {
		return nil
	}
	return &githttp.BasicAuth{Username: u.User, Password: u.Password}
}
