package gitsrc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/go-git/go-git/v5/plumbing/transport"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/pushdeploy/pushdeploy/internal/sshkeys"
)

// access is how one Resolve reaches the repository: the go-git auth method
// (nil for file and git URLs, and http(s) URLs without a user) and the
// host keys it accepted.
type access struct {
	auth  transport.AuthMethod
	keys  *hostKeys // nil when the URL is not SSH
	agent io.Closer // the ssh-agent connection, if one is used
}

// open prepares the access for s.cfg.URL. For SSH URLs it reads the
// known_hosts file and the deploy key (or connects to the ssh-agent).
func (s *Source) open(ctx context.Context) (*access, error) {
	if s.repoErr != nil {
		return nil, s.repoErr
	}
	ep := s.repo
	if ep.Transport != "ssh" {
		return &access{auth: httpAuth(ep)}, nil
	}
	if s.cfg.KnownHosts == "" {
		return nil, errors.New("no known_hosts file is set to check the git server's host key against")
	}
	known, err := sshkeys.ReadKnownHosts(s.cfg.KnownHosts)
	if err != nil {
		return nil, fmt.Errorf("read known_hosts: %w", err)
	}
	port := ep.Port
	if port <= 0 {
		port = gitssh.DefaultPort
	}
	user := ep.User
	if user == "" {
		if user, err = localUser(); err != nil {
			return nil, err
		}
	}
	a := &sshAuth{
		user:       user,
		keys:       &hostKeys{known: known},
		algorithms: known.Algorithms(net.JoinHostPort(ep.Host, strconv.Itoa(port))),
	}
	if deadline, ok := ctx.Deadline(); ok {
		a.deadline = deadline
	}
	acc := &access{auth: a, keys: a.keys}
	switch {
	case len(s.cfg.Key) > 0:
		signer, err := sshkeys.Signer(s.cfg.Key, s.cfg.KeyPassphrase)
		if err != nil {
			return nil, fmt.Errorf("deploy key (DEPLOY_GIT_KEY): %w", err)
		}
		a.methods = []ssh.AuthMethod{ssh.PublicKeys(signer)}
	case s.agentSock != "":
		var d net.Dialer
		conn, err := d.DialContext(ctx, "unix", s.agentSock)
		if err != nil {
			return nil, fmt.Errorf("no deploy key set and the ssh-agent at SSH_AUTH_SOCK is unreachable (set DEPLOY_GIT_KEY): %w", err)
		}
		acc.agent = conn
		a.methods = []ssh.AuthMethod{ssh.PublicKeysCallback(agent.NewClient(conn).Signers)}
	default:
		return nil, errors.New("no deploy key for an SSH repository: set DEPLOY_GIT_KEY to the read-only deploy key (or run with an ssh-agent at SSH_AUTH_SOCK)")
	}
	return acc, nil
}

func (a *access) close() {
	if a.agent != nil {
		a.agent.Close()
	}
}

// explain returns the host key error behind err, if there was one: go-git
// reports it as a failed handshake, with the reason deep inside.
func (a *access) explain(err error) error {
	if a.keys != nil {
		if hk := a.keys.failure(); hk != nil {
			return hk
		}
	}
	return err
}

// hostKeyLines returns the known_hosts lines of the keys accepted so far.
func (a *access) hostKeyLines() []string {
	if a.keys == nil {
		return nil
	}
	return a.keys.accepted()
}

// sshAuth is the go-git SSH auth method of one Resolve. Unlike go-git's
// own, it asks the server first for the host key algorithms known_hosts
// has keys of (sshkeys.KnownHosts.Algorithms), and sets a dial timeout from
// the context's deadline.
type sshAuth struct {
	user       string
	methods    []ssh.AuthMethod
	keys       *hostKeys
	algorithms []string
	deadline   time.Time
}

var _ gitssh.AuthMethod = (*sshAuth)(nil)

func (a *sshAuth) Name() string   { return gitssh.PublicKeysName }
func (a *sshAuth) String() string { return "user: " + a.user + ", name: " + a.Name() }

// ClientConfig is called by go-git for each connection.
func (a *sshAuth) ClientConfig() (*ssh.ClientConfig, error) {
	c := &ssh.ClientConfig{
		User:              a.user,
		Auth:              a.methods,
		HostKeyCallback:   a.keys.callback,
		HostKeyAlgorithms: a.algorithms,
	}
	if !a.deadline.IsZero() {
		// go-git dials without a context; this bounds the TCP connect.
		c.Timeout = max(time.Until(a.deadline), time.Millisecond)
	}
	return c, nil
}

// hostKeys checks host keys against known_hosts and records, as
// known_hosts lines, the ones it accepts.
type hostKeys struct {
	known *sshkeys.KnownHosts

	mu    sync.Mutex // the callback runs in x/crypto/ssh's key exchange goroutine
	lines []string
	err   *sshkeys.HostKeyError
}

func (h *hostKeys) callback(hostname string, remote net.Addr, key ssh.PublicKey) error {
	err := h.known.Check(hostname, remote, key)
	h.mu.Lock()
	defer h.mu.Unlock()
	if err != nil {
		var hk *sshkeys.HostKeyError
		if errors.As(err, &hk) && h.err == nil {
			h.err = hk
		}
		return err
	}
	if cert, ok := key.(*ssh.Certificate); ok {
		// Accepted through a @cert-authority line: hand on the plain key,
		// which the hosts' ssh matches whatever they negotiate.
		key = cert.Key
	}
	line := knownhosts.Line([]string{knownhosts.Normalize(hostname)}, key)
	if !slices.Contains(h.lines, line) {
		h.lines = append(h.lines, line)
	}
	return nil
}

func (h *hostKeys) accepted() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.lines)
}

func (h *hostKeys) failure() *sshkeys.HostKeyError {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.err
}
