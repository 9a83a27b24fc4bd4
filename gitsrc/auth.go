package gitsrc

import (
	"context"
	"crypto/ed25519"
	"crypto/x509"
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
)

// access is how one Resolve reaches the repository: the go-git auth method
// (nil when the URL is not SSH) and the host keys it accepted.
type access struct {
	auth  transport.AuthMethod
	keys  *hostKeys // nil when the URL is not SSH
	agent io.Closer // the ssh-agent connection, if one is used
}

// open prepares the access for s.cfg.URL. For SSH URLs it reads the
// known_hosts file and the deploy key (or connects to the ssh-agent).
func (s *Source) open(ctx context.Context) (*access, error) {
	ep, err := transport.NewEndpoint(s.cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("repository URL: %w", err)
	}
	if ep.Protocol != "ssh" {
		return &access{}, nil
	}
	if s.cfg.KnownHosts == "" {
		return nil, errors.New("no known_hosts file is set to check the git server's host key against")
	}
	check, err := knownhosts.New(s.cfg.KnownHosts)
	if err != nil {
		return nil, fmt.Errorf("read known_hosts: %w", err)
	}
	port := ep.Port
	if port <= 0 {
		port = gitssh.DefaultPort
	}
	user := ep.User
	if user == "" {
		user = gitssh.DefaultUsername
	}
	a := &sshAuth{
		user:       user,
		keys:       &hostKeys{check: check, knownHosts: s.cfg.KnownHosts},
		algorithms: hostKeyAlgorithms(check, net.JoinHostPort(ep.Host, strconv.Itoa(port))),
	}
	if deadline, ok := ctx.Deadline(); ok {
		a.deadline = deadline
	}
	acc := &access{auth: a, keys: a.keys}
	switch {
	case len(s.cfg.Key) > 0:
		signer, err := parseKey(s.cfg.Key, s.cfg.KeyPassphrase)
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
// own, it sets the host key algorithms to those known_hosts has for the
// server, and a dial timeout from the context's deadline.
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

// hostKeyAlgorithms returns the host key algorithms of the keys that check
// knows for hostport, so a server with several keys presents one of those
// rather than one of another type (which would look like a changed key).
// It returns nil, the default list, when the host is not known.
func hostKeyAlgorithms(check ssh.HostKeyCallback, hostport string) []string {
	probe, err := ssh.NewPublicKey(ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize)).Public())
	if err != nil {
		return nil
	}
	var ke *knownhosts.KeyError
	if !errors.As(check(hostport, &net.TCPAddr{}, probe), &ke) {
		return nil
	}
	var algos []string
	for _, k := range ke.Want {
		for _, a := range keyAlgorithms(k.Key.Type()) {
			if !slices.Contains(algos, a) {
				algos = append(algos, a)
			}
		}
	}
	return algos
}

// keyAlgorithms returns the host key algorithms that use keys of a type,
// best first.
func keyAlgorithms(keyType string) []string {
	if keyType == ssh.KeyAlgoRSA {
		return []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA}
	}
	return []string{keyType}
}

// hostKeys checks host keys against known_hosts and records, as
// known_hosts lines, the ones it accepts.
type hostKeys struct {
	check      ssh.HostKeyCallback
	knownHosts string

	mu    sync.Mutex // the callback runs in x/crypto/ssh's key exchange goroutine
	lines []string
	err   *HostKeyError
}

func (h *hostKeys) callback(hostname string, remote net.Addr, key ssh.PublicKey) error {
	err := h.check(hostname, remote, key)
	h.mu.Lock()
	defer h.mu.Unlock()
	if err != nil {
		hk := newHostKeyError(hostname, key, h.knownHosts, err)
		if hk == nil {
			return err
		}
		if h.err == nil {
			h.err = hk
		}
		return hk
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

func (h *hostKeys) failure() *HostKeyError {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.err
}

// parseKey parses a PEM or OpenSSH private key, decrypting it with
// passphrase when it is encrypted.
func parseKey(pemBytes []byte, passphrase string) (ssh.Signer, error) {
	s, err := ssh.ParsePrivateKey(pemBytes)
	var missing *ssh.PassphraseMissingError
	switch {
	case err == nil:
		return s, nil
	case !errors.As(err, &missing):
		return nil, fmt.Errorf("not a private key: %w", err)
	case passphrase == "":
		return nil, errors.New("the key is encrypted and no passphrase was given")
	}
	s, err = ssh.ParsePrivateKeyWithPassphrase(pemBytes, []byte(passphrase))
	if errors.Is(err, x509.IncorrectPasswordError) {
		return nil, errors.New("wrong passphrase")
	}
	if err != nil {
		return nil, fmt.Errorf("not a private key: %w", err)
	}
	return s, nil
}
