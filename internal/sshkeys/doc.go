// Package sshkeys is pushdeploy's one reading of SSH keys: it parses the
// private keys (the admin key, the deploy key) with their passphrases,
// checks host keys against a known_hosts file, and chooses the host key
// algorithms to ask a server for. Its failures are typed —
// ErrPassphraseNeeded, ErrWrongPassphrase, ErrNotPrivateKey and
// *HostKeyError (Unknown, Changed or Revoked, with the fingerprint) — so
// that deploy/sshrun, gitsrc and config decide with errors.Is and
// errors.As, never on message text. It wraps golang.org/x/crypto/ssh for
// keys only: it does not dial, and it does not log.
package sshkeys
