package sshkeys

import (
	"crypto/x509"
	"errors"
	"fmt"

	"golang.org/x/crypto/ssh"
)

// The failures of Parse and Signer. None of them shows the passphrase.
var (
	// ErrPassphraseNeeded: the key is encrypted and the passphrase is empty.
	ErrPassphraseNeeded = errors.New("the key is encrypted and no passphrase was given")
	// ErrWrongPassphrase: the key is encrypted and the passphrase does not
	// decrypt it.
	ErrWrongPassphrase = errors.New("wrong passphrase")
	// ErrNotPrivateKey: the bytes are not a private key in a format we read
	// (OpenSSH or PEM); the wrapped message says what x/crypto/ssh saw.
	ErrNotPrivateKey = errors.New("not a private key")
)

// Parse parses a private key in OpenSSH or PEM format and returns it as
// ssh.ParseRawPrivateKey does (*rsa.PrivateKey, *ecdsa.PrivateKey,
// *ed25519.PrivateKey, …), ready for an agent keyring.
//
// A passphrase given for a key that is not encrypted is not an error: the
// key is used as it is (see Encrypted, with which config warns about it).
// That keeps a deploy working when a key's passphrase was removed but the
// variable was left set, and it means a key is always read the same way
// whatever the passphrase: it is decrypted only when it is encrypted, so a
// wrong passphrase is always reported as ErrWrongPassphrase.
func Parse(pemBytes []byte, passphrase string) (any, error) {
	raw, err := ssh.ParseRawPrivateKey(pemBytes)
	var missing *ssh.PassphraseMissingError
	switch {
	case err == nil:
		return raw, nil
	case !errors.As(err, &missing):
		return nil, fmt.Errorf("%w: %v", ErrNotPrivateKey, err)
	case passphrase == "":
		return nil, ErrPassphraseNeeded
	}
	raw, err = ssh.ParseRawPrivateKeyWithPassphrase(pemBytes, []byte(passphrase))
	if errors.Is(err, x509.IncorrectPasswordError) {
		return nil, ErrWrongPassphrase
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotPrivateKey, err)
	}
	return raw, nil
}

// Signer is Parse returning an ssh.Signer.
func Signer(pemBytes []byte, passphrase string) (ssh.Signer, error) {
	raw, err := Parse(pemBytes, passphrase)
	if err != nil {
		return nil, err
	}
	s, err := ssh.NewSignerFromKey(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotPrivateKey, err)
	}
	return s, nil
}

// Encrypted says whether pemBytes is a private key that needs a passphrase.
func Encrypted(pemBytes []byte) bool {
	_, err := ssh.ParseRawPrivateKey(pemBytes)
	var missing *ssh.PassphraseMissingError
	return errors.As(err, &missing)
}
