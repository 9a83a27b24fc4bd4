package sshrun

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"net"
	"strings"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

var ed25519GenerateKey = ed25519.GenerateKey

// HostKeyError is a host key that known_hosts does not vouch for. Nothing
// is sent to such a host: the login stops at the key exchange.
type HostKeyError struct {
	Host        string // host:port as dialed
	Type        string // key type presented, e.g. ssh-ed25519
	Fingerprint string // SHA256 fingerprint of the presented key
	KnownHosts  string // the file consulted
	Changed     bool   // true: a different key is known; false: none is
	Want        []string
}

func (e *HostKeyError) Error() string {
	if e.Changed {
		return fmt.Sprintf("host key of %s has CHANGED: it presents %s %s, but %s has %s for it; "+
			"this may be a man-in-the-middle attack: refusing to connect. If the host was really reinstalled, "+
			"remove the old line (ssh-keygen -R %s -f %s) and add the new key after checking its fingerprint",
			e.Host, e.Type, e.Fingerprint, e.KnownHosts, strings.Join(e.Want, ", "), knownhosts.Normalize(e.Host), e.KnownHosts)
	}
	host, port, _ := net.SplitHostPort(e.Host)
	return fmt.Sprintf("host key of %s is unknown: it presents %s %s, which is not in %s; "+
		"check that fingerprint with the host's administrator, then add it: ssh-keyscan -p %s %s >> %s",
		e.Host, e.Type, e.Fingerprint, e.KnownHosts, port, host, e.KnownHosts)
}

func (r *Runner) checkHostKey(hostname string, remote net.Addr, key ssh.PublicKey) error {
	err := r.hostKeys(hostname, remote, key)
	if err == nil {
		return nil
	}
	var ke *knownhosts.KeyError
	if errors.As(err, &ke) {
		he := &HostKeyError{
			Host: hostname, Type: key.Type(), Fingerprint: ssh.FingerprintSHA256(key),
			KnownHosts: r.cfg.KnownHosts, Changed: len(ke.Want) > 0,
		}
		for _, w := range ke.Want {
			he.Want = append(he.Want, fmt.Sprintf("%s %s (line %d)", w.Key.Type(), ssh.FingerprintSHA256(w.Key), w.Line))
		}
		return he
	}
	var re *knownhosts.RevokedError
	if errors.As(err, &re) {
		return fmt.Errorf("host key of %s (%s) is marked @revoked in %s", hostname, ssh.FingerprintSHA256(key), r.cfg.KnownHosts)
	}
	return err
}

// hostKeyAlgorithms returns the host key algorithms known_hosts holds keys
// for at addr, so the server is asked for a key we can check. Without this
// a server with several host keys may offer one type while known_hosts has
// another, which would look like a changed key. The other algorithms
// follow, less preferred: a host that now has only a key of another type
// must still show it, so that it is reported as CHANGED rather than as a
// failed algorithm negotiation.
func (r *Runner) hostKeyAlgorithms(addr string) []string {
	err := r.hostKeys(addr, &net.TCPAddr{IP: net.IPv4zero}, r.probeKey)
	var ke *knownhosts.KeyError
	if !errors.As(err, &ke) || len(ke.Want) == 0 {
		return nil // unknown host: let the handshake report it
	}
	var algos []string
	seen := map[string]bool{}
	add := func(a ...string) {
		for _, x := range a {
			if !seen[x] {
				seen[x] = true
				algos = append(algos, x)
			}
		}
	}
	for _, w := range ke.Want {
		switch t := w.Key.Type(); t {
		case ssh.KeyAlgoRSA:
			add(ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA)
		default:
			add(t)
		}
	}
	add(ssh.SupportedAlgorithms().HostKeys...)
	return algos
}
