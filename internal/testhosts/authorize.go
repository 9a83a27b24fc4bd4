package testhosts

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// AuthorizeKey makes pub, the one line of a .pub file ("ssh-ed25519 AAAA…
// comment"), the only key h's sshd lets in, as writing it into a fresh
// server's ~/.ssh/authorized_keys would. On the git server (e.Git) it
// becomes the only deploy key, read-only as GitKey was: what registering a
// key at a forge as a read-only deploy key does. It is for tests that make
// their keys as a user would (ssh-keygen) instead of using AdminKey and
// GitKey; SSH and GitSSHCommand keep using those, so they stop working on
// h.
func (e *Env) AuthorizeKey(h *Host, pub string) error {
	trimmed := strings.TrimSpace(pub)
	f := strings.Fields(trimmed)
	// The key type and its base64 only: options in front of them (a forced
	// command, "restrict") are this package's to set, not the caller's.
	if strings.ContainsAny(trimmed, "\r\n") || len(f) < 2 ||
		!(strings.HasPrefix(f[0], "ssh-") || strings.HasPrefix(f[0], "ecdsa-")) {
		return fmt.Errorf("testhosts: authorize key for %s: %q is not one public key line", h.User, pub)
	}
	line := f[0] + " " + f[1]
	if h == e.Git {
		line = e.deployKeyLine(line)
	}
	path := filepath.Join(e.Dir, "authorized_keys", h.User)
	if err := os.WriteFile(path, []byte(line+"\n"), 0o644); err != nil {
		return fmt.Errorf("testhosts: authorize key for %s: %w", h.User, err)
	}
	return nil
}

// deployKeyLine is the git server's authorized_keys line for the public key
// pub ("type base64"): it may fetch, through the forced command
// git-readonly, and do nothing else.
func (e *Env) deployKeyLine(pub string) string {
	return fmt.Sprintf("restrict,command=%q %s", filepath.Join(e.Dir, "bin", "git-readonly"), pub)
}
