package sshkeys

import (
	"errors"
	"fmt"
	"net"
	"strings"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/pushdeploy/pushdeploy/deploy"
)

// HostKeyProblem is what is wrong with a host key.
type HostKeyProblem int

const (
	// Unknown: known_hosts has no key for the server.
	Unknown HostKeyProblem = iota + 1
	// Changed: known_hosts has other keys for the server than the one it
	// presented (of the same type or not).
	Changed
	// Revoked: the key the server presented is marked @revoked.
	Revoked
)

func (p HostKeyProblem) String() string {
	switch p {
	case Unknown:
		return "unknown"
	case Changed:
		return "changed"
	case Revoked:
		return "revoked"
	}
	return fmt.Sprintf("HostKeyProblem(%d)", int(p))
}

// HostKeyError is a server's host key that known_hosts does not vouch for.
// The login stops at the key exchange: nothing is sent to such a server.
type HostKeyError struct {
	Problem HostKeyProblem
	// Host is the server as known_hosts names it: "web1" for port 22,
	// "[127.0.0.1]:2222" for another port.
	Host string
	// Type (e.g. ssh-ed25519) and Fingerprint (SHA256:…) describe the key
	// the server presented.
	Type        string
	Fingerprint string
	// Known holds the keys known_hosts has for Host, as "type fingerprint
	// (line N)"; empty unless Problem is Changed.
	Known []string
	// KnownHosts is the path of the known_hosts file.
	KnownHosts string
	// Err is the *knownhosts.KeyError or *knownhosts.RevokedError.
	Err error
}

func (e *HostKeyError) Error() string {
	presented := e.Type + " " + e.Fingerprint
	switch e.Problem {
	case Revoked:
		return fmt.Sprintf("host key of %s (%s) is marked @revoked in %s: refusing to connect", e.Host, presented, e.KnownHosts)
	case Changed:
		return fmt.Sprintf("host key of %s has CHANGED: it presents %s, but %s has %s for it; "+
			"this may be a man-in-the-middle attack: refusing to connect. If the server was really reinstalled, "+
			"remove the old line (ssh-keygen -R %s -f %s) and add the new key after checking its fingerprint",
			e.Host, presented, e.KnownHosts, strings.Join(e.Known, ", "), deploy.Quote(e.Host), deploy.Quote(e.KnownHosts))
	}
	return fmt.Sprintf("host key of %s is unknown: it presents %s, which is not in %s; "+
		"check that fingerprint with the server's administrator, then add it: %s",
		e.Host, presented, e.KnownHosts, e.keyscan())
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

// hostKeyError turns an error of a knownhosts callback into a
// *HostKeyError, or returns nil when it is about something else.
func hostKeyError(hostname string, key ssh.PublicKey, knownHosts string, err error) *HostKeyError {
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
		e.Problem = Revoked
	case errors.As(err, &ke) && len(ke.Want) == 0:
		e.Problem = Unknown
	case errors.As(err, &ke):
		e.Problem = Changed
		for _, k := range ke.Want {
			e.Known = append(e.Known, fmt.Sprintf("%s %s (line %d)", k.Key.Type(), ssh.FingerprintSHA256(k.Key), k.Line))
		}
	default:
		return nil
	}
	return e
}
