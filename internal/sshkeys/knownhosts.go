package sshkeys

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"slices"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// KnownHosts is a known_hosts file, read once. It is safe for concurrent
// use.
type KnownHosts struct {
	path  string
	check ssh.HostKeyCallback
	// probe is a throwaway key, used only to ask the file which keys it
	// holds for a host (see Algorithms).
	probe ssh.PublicKey
}

// ReadKnownHosts reads the known_hosts file at path. A missing file is an
// error that matches fs.ErrNotExist.
func ReadKnownHosts(path string) (*KnownHosts, error) {
	check, err := knownhosts.New(path)
	if err != nil {
		return nil, err
	}
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	probe, err := ssh.NewPublicKey(pub)
	if err != nil {
		return nil, err
	}
	return &KnownHosts{path: path, check: check, probe: probe}, nil
}

// Path returns the file's path.
func (k *KnownHosts) Path() string { return k.path }

// Check is an ssh.HostKeyCallback: it returns nil when the file vouches
// for key as hostname's (host:port as dialed), a *HostKeyError when it
// does not, and other errors as knownhosts reports them.
func (k *KnownHosts) Check(hostname string, remote net.Addr, key ssh.PublicKey) error {
	err := k.check(hostname, remote, key)
	if err == nil {
		return nil
	}
	if hk := hostKeyError(hostname, key, k.path, err); hk != nil {
		return hk
	}
	return fmt.Errorf("check the host key of %s against %s: %w", hostname, k.path, err)
}

// Algorithms returns the host key algorithms to ask hostport (host:port)
// for: first those of the keys the file holds for it, so that a server
// with several host keys presents one that can be checked rather than one
// of another type (which would look like a changed key); then every other
// algorithm, less preferred, so that a server left with a key of another
// type still shows it and is reported as Changed rather than as a failed
// negotiation. It returns nil (x/crypto/ssh's default list) when the file
// knows no key for hostport.
func (k *KnownHosts) Algorithms(hostport string) []string {
	var ke *knownhosts.KeyError
	if !errors.As(k.check(hostport, &net.TCPAddr{IP: net.IPv4zero}, k.probe), &ke) || len(ke.Want) == 0 {
		return nil
	}
	var algos []string
	add := func(as ...string) {
		for _, a := range as {
			if !slices.Contains(algos, a) {
				algos = append(algos, a)
			}
		}
	}
	for _, w := range ke.Want {
		if t := w.Key.Type(); t == ssh.KeyAlgoRSA {
			add(ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA)
		} else {
			add(t)
		}
	}
	add(ssh.SupportedAlgorithms().HostKeys...)
	return algos
}
