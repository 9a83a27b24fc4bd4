package gitsrc

import (
	"errors"
	"fmt"
	"net"
	"strings"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/pushdeploy/pushdeploy/deploy"
)

// HostKeyError reports a git server whose host key does not match the
// known_hosts file: unknown (Known is empty), changed, or revoked.
type HostKeyError struct {
	// Host is the server as written in known_hosts: "git.example.com",
	// or "[127.0.0.1]:2222" when the port is not 22.
	Host string
	// Type and Fingerprint (SHA256:…) describe the key the server presented.
	Type        string
	Fingerprint string
	// Known holds the fingerprints known_hosts has for Host.
	Known []string
	// Revoked is set when the presented key is marked @revoked.
	Revoked bool
	// KnownHosts is the path of the known_hosts file.
	KnownHosts string
	// Err is the *knownhosts.KeyError or *knownhosts.RevokedError.
	Err error
}

func (e *HostKeyError) Error() string {
	presented := e.Type + " " + e.Fingerprint
	switch {
	case e.Revoked:
		return fmt.Sprintf("host key of %s (%s) is revoked in %s", e.Host, presented, e.KnownHosts)
	case len(e.Known) == 0:
		return fmt.Sprintf("host key of %s is unknown (%s): if that is the git server's key, add it to %s: %s",
			e.Host, presented, e.KnownHosts, e.keyscan())
	default:
		return fmt.Sprintf("host key of %s changed: the server presented %s but %s has %s; "+
			"someone may be impersonating the server, check with its owner before changing %s",
			e.Host, presented, e.KnownHosts, strings.Join(e.Known, ", "), e.KnownHosts)
	}
}

func (e *HostKeyError) Unwrap() error { return e.Err }

// keyscan returns the command that adds the server's keys to known_hosts.
func (e *HostKeyError) keyscan() string {
	cmd := "ssh-keyscan "
	host, port, err := net.SplitHostPort(e.Host)
	if err != nil {
		host = e.Host // port 22: known_hosts names the host alone
	} else {
		cmd += "-p " + deploy.Quote(port) + " "
	}
	return cmd + deploy.Quote(host) + " >> " + deploy.Quote(e.KnownHosts)
}

// newHostKeyError turns an error of a knownhosts callback into a
// *HostKeyError, or returns nil when it is about something else.
func newHostKeyError(hostname string, key ssh.PublicKey, knownHosts string, err error) *HostKeyError {
	e := &HostKeyError{
		Host:        knownhosts.Normalize(hostname),
		Type:        key.Type(),
		Fingerprint: ssh.FingerprintSHA256(key),
		KnownHosts:  knownHosts,
		Err:         err,
	}
	var ke *knownhosts.KeyError
	var re *knownhosts.RevokedError
	switch {
	case errors.As(err, &re):
		e.Revoked = true
	case errors.As(err, &ke):
		for _, k := range ke.Want {
			e.Known = append(e.Known, fmt.Sprintf("%s %s (line %d)", k.Key.Type(), ssh.FingerprintSHA256(k.Key), k.Line))
		}
	default:
		return nil
	}
	return e
}
