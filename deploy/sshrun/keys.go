package sshrun

import (
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// ParseKey parses a PEM or OpenSSH private key, decrypting it with
// passphrase when it is encrypted. The errors say what to change.
func ParseKey(pemBytes []byte, passphrase string) (ssh.Signer, error) {
	if passphrase == "" {
		s, err := ssh.ParsePrivateKey(pemBytes)
		var missing *ssh.PassphraseMissingError
		if errors.As(err, &missing) {
			return nil, errors.New("the key is encrypted and no passphrase was given")
		}
		if err != nil {
			return nil, fmt.Errorf("not a private key: %w", err)
		}
		return s, nil
	}
	s, err := ssh.ParsePrivateKeyWithPassphrase(pemBytes, []byte(passphrase))
	if errors.Is(err, x509.IncorrectPasswordError) {
		return nil, errors.New("wrong passphrase")
	}
	if err != nil {
		// An unencrypted key with a passphrase set is fine: use it as is.
		if s2, err2 := ssh.ParsePrivateKey(pemBytes); err2 == nil {
			return s2, nil
		}
		return nil, fmt.Errorf("not a private key: %w", err)
	}
	return s, nil
}

// CheckKnownHosts reports whether path is a readable known_hosts file.
func CheckKnownHosts(path string) error {
	if _, err := os.Stat(path); err != nil {
		return err
	}
	_, err := knownhosts.New(path)
	return err
}
