package config

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/pushdeploy/pushdeploy/deploy"
	"github.com/pushdeploy/pushdeploy/internal/sshkeys"
)

// files checks the local files the configuration names and loads them.
func (v *validator) files() {
	c := v.c
	if v.on("DEPLOY_DATA_DIR") {
		v.expand("DEPLOY_DATA_DIR", &c.DataDir)
		if c.DataDir == "" || hasControl(c.DataDir) {
			v.add("DEPLOY_DATA_DIR: %q is not a folder name; set where the deployer keeps its state, e.g. ./data", c.DataDir)
		}
	}
	if v.on("DEPLOY_HOSTS_FILE") {
		v.appFiles()
	}
}

// appFiles checks and loads the hosts file and the keys.
func (v *validator) appFiles() {
	c := v.c

	jump, err := ParseJump(c.SSHJump, c.SSHUser)
	if err != nil {
		v.add("DEPLOY_SSH_JUMP: %q: %v", c.SSHJump, err)
	}
	if v.expand("DEPLOY_HOSTS_FILE", &c.HostsFile) {
		c.Hosts = v.hosts(c.HostsFile, HostDefaults{User: c.SSHUser, Jump: jump})
	}

	if c.SSHKey == "" {
		if needsSSH(c.Hosts) {
			v.add("DEPLOY_SSH_KEY is required: the admin private key (a file) that logs into the hosts (only a pool of `local` hosts needs none)")
		}
	} else if v.expand("DEPLOY_SSH_KEY", &c.SSHKey) {
		c.SSHKeyPEM = v.key("DEPLOY_SSH_KEY", c.SSHKey, "DEPLOY_SSH_KEY_PASSPHRASE", c.SSHKeyPassphrase)
	}
	if c.GitKey != "" && v.expand("DEPLOY_GIT_KEY", &c.GitKey) {
		c.GitKeyPEM = v.key("DEPLOY_GIT_KEY", c.GitKey, "DEPLOY_GIT_KEY_PASSPHRASE", c.GitKeyPassphrase)
	}

	if c.KnownHosts == "" {
		v.add("DEPLOY_KNOWN_HOSTS is empty; set the known_hosts file, e.g. ~/.ssh/known_hosts")
	} else if v.expand("DEPLOY_KNOWN_HOSTS", &c.KnownHosts) {
		v.knownHosts(c.KnownHosts)
	}
}

// expand replaces a leading ~ or ~/ in *p with the home folder; false when
// that is impossible (the problem is added).
func (v *validator) expand(key string, p *string) bool {
	if *p != "~" && !strings.HasPrefix(*p, "~/") {
		return true
	}
	home, err := os.UserHomeDir()
	if err != nil {
		v.add("%s: cannot expand ~ in %q: %v; write the full path", key, *p, err)
		return false
	}
	*p = filepath.Join(home, strings.TrimPrefix(*p, "~"))
	return true
}

func (v *validator) hosts(file string, def HostDefaults) []deploy.Host {
	f, err := os.Open(file)
	if err != nil {
		v.add("DEPLOY_HOSTS_FILE: cannot read %s: %v; list the hosts there, one a line, [user@]host[:port]", file, pathError(err))
		return nil
	}
	defer f.Close()
	hosts, err := ParseHosts(f, file, def)
	var ce *Error
	if errors.As(err, &ce) {
		v.probs = append(v.probs, ce.Problems...)
		return nil
	}
	if err != nil {
		v.add("DEPLOY_HOSTS_FILE: %s: %v", file, err)
		return nil
	}
	if len(hosts) == 0 {
		v.add("DEPLOY_HOSTS_FILE: %s lists no hosts; add one host a line, [user@]host[:port]", file)
	}
	return hosts
}

// key reads and parses the private key file of variable key, and returns its
// content. It warns when others can read the file, and when a passphrase is
// set for a key that has none: the key is used as it is (sshkeys.Parse),
// but whoever set the passphrase believes the file is protected, and it is
// not.
func (v *validator) key(key, file, passKey, pass string) []byte {
	data, err := os.ReadFile(file)
	if err != nil {
		v.add("%s: cannot read %s: %v", key, file, pathError(err))
		return nil
	}
	if fi, err := os.Stat(file); err == nil && fi.Mode().Perm()&0o077 != 0 {
		v.warn("%s: other users can read %s (mode %04o); run chmod 600 %s", key, file, fi.Mode().Perm(), file)
	}
	if _, err := sshkeys.Parse(data, pass); err != nil {
		v.add("%s", keyProblem(key, file, passKey, data, err))
		return nil
	}
	if pass != "" && !sshkeys.Encrypted(data) {
		v.warn("%s: %s is not encrypted, so %s is not used (the key is used as it is); "+
			"to protect the key, encrypt it with ssh-keygen -p -f %s, or unset %s", key, file, passKey, file, passKey)
	}
	return data
}

// keyProblem explains why sshkeys.Parse refused a key file.
func keyProblem(key, file, passKey string, data []byte, err error) string {
	trimmed := bytes.TrimSpace(data)
	switch {
	case errors.Is(err, sshkeys.ErrPassphraseNeeded):
		return fmt.Sprintf("%s: %s is encrypted: set %s to its passphrase", key, file, passKey)
	case errors.Is(err, sshkeys.ErrWrongPassphrase):
		return fmt.Sprintf("%s: wrong passphrase for %s", passKey, file)
	case bytes.HasPrefix(trimmed, []byte("ssh-")) || bytes.HasPrefix(trimmed, []byte("ecdsa-")) ||
		bytes.Contains(trimmed, []byte("PUBLIC KEY")):
		return fmt.Sprintf("%s: %s is a public key; name the private key file (without .pub)", key, file)
	}
	return fmt.Sprintf("%s: %s is not a private key (%v); expected an OpenSSH or PEM private key file", key, file, err)
}

func (v *validator) knownHosts(file string) {
	_, err := sshkeys.ReadKnownHosts(file)
	if err == nil {
		return
	}
	// The example names a host that is reached over SSH: the line
	// "local" has no SSH server to scan.
	fix := fmt.Sprintf("add the git server's key with ssh-keyscan GITSERVER >> %s, then check its fingerprint (ssh-keygen -lf %s) against the one the git server publishes", file, file)
	for _, h := range v.c.Hosts {
		if !h.Local {
			fix = fmt.Sprintf("add each host's key with ssh-keyscan -p %d %s >> %s, then check the fingerprints (ssh-keygen -lf %s) against the hosts' own", h.Port, h.Addr, file, file)
			break
		}
	}
	if errors.Is(err, fs.ErrNotExist) {
		v.add("DEPLOY_KNOWN_HOSTS: %s does not exist; %s", file, fix)
		return
	}
	v.add("DEPLOY_KNOWN_HOSTS: cannot use %s: %v; fix the file or %s", file, pathError(err), fix)
}

// pathError drops the operation and path of a *fs.PathError, which the
// messages name already.
func pathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// needsSSH says whether the pool has a host reached over SSH (an unreadable
// hosts file counts as one: its problem is reported already, and the key
// will be needed once it is fixed).
func needsSSH(hosts []deploy.Host) bool {
	if len(hosts) == 0 {
		return true
	}
	for _, h := range hosts {
		if !h.Local {
			return true
		}
	}
	return false
}
