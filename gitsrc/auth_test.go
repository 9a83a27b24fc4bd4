package gitsrc

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"os/user"
	"slices"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/pushdeploy/pushdeploy/deploy"
)

func TestResolveRedactsPassword(t *testing.T) {
	for _, url := range []string{
		"https://deployer:s3cr%40t-token@127.0.0.1:1/app.git",     // nothing listens on port 1
		"https://deployer:s3cr%40t-token@127.0.0.1:1/app.git\x7f", // not a URL
	} {
		s := New(Config{URL: url, Branch: "release"})
		_, err := s.Resolve(testContext(t), deploy.Push{Branch: "release"})
		if err == nil {
			t.Fatalf("%q: Resolve succeeded", url)
		}
		if msg := err.Error(); strings.Contains(msg, "s3cr") || !strings.Contains(msg, "deployer:xxxxx@127.0.0.1:1") {
			t.Errorf("got error %q, want the password blanked out", msg)
		}
	}
}

func TestSSHSetupErrors(t *testing.T) {
	t.Setenv("SSH_AUTH_SOCK", "")
	knownHosts := writeFile(t, "[127.0.0.1]:2222 "+authorizedKey(t, newKey(t)))
	encrypted := encryptedKey(t, "right")
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"no known_hosts", Config{Key: newPEMKey(t)}, "no known_hosts file is set"},
		{"missing known_hosts", Config{Key: newPEMKey(t), KnownHosts: "/nonexistent/known_hosts"}, "read known_hosts: open /nonexistent/known_hosts"},
		{"no key", Config{KnownHosts: knownHosts}, "no deploy key for an SSH repository: set DEPLOY_GIT_KEY"},
		{"not a key", Config{KnownHosts: knownHosts, Key: []byte("hello")}, "deploy key (DEPLOY_GIT_KEY): not a private key"},
		{"no passphrase", Config{KnownHosts: knownHosts, Key: encrypted}, "deploy key (DEPLOY_GIT_KEY): the key is encrypted and no passphrase was given"},
		{"wrong passphrase", Config{KnownHosts: knownHosts, Key: encrypted, KeyPassphrase: "wrong"}, "deploy key (DEPLOY_GIT_KEY): wrong passphrase"},
		{"dead agent", Config{KnownHosts: knownHosts}, "no deploy key set and the ssh-agent at SSH_AUTH_SOCK is unreachable (set DEPLOY_GIT_KEY)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.name == "dead agent" {
				t.Setenv("SSH_AUTH_SOCK", "/nonexistent/agent.sock")
			}
			tt.cfg.URL = "ssh://git@127.0.0.1:2222/app.git"
			tt.cfg.Branch = "release"
			_, err := New(tt.cfg).Resolve(testContext(t), deploy.Push{Branch: "release"})
			want := "resolve branch release on ssh://git@127.0.0.1:2222/app.git: " + tt.wantErr
			if err == nil || !strings.HasPrefix(err.Error(), want) {
				t.Errorf("got error %v, want it to start with %q", err, want)
			}
		})
	}

	// The right passphrase gets as far as dialing (nothing listens).
	c := Config{URL: "ssh://git@127.0.0.1:1/app.git", Branch: "release", KnownHosts: knownHosts, Key: encrypted, KeyPassphrase: "right"}
	_, err := New(c).Resolve(testContext(t), deploy.Push{Branch: "release"})
	if err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("got error %v, want connection refused", err)
	}
}

func encryptedKey(t *testing.T, passphrase string) []byte {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKeyWithPassphrase(priv, "", []byte(passphrase))
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(block)
}

func TestSSHUser(t *testing.T) {
	t.Setenv("SSH_AUTH_SOCK", "")
	pub := newKey(t).PublicKey()
	knownHosts := writeFile(t, knownhosts.Line([]string{"[git.example.com]:2222"}, pub))
	// A URL without a user logs in as the local user, as ssh does.
	local, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		url, user string
		algos     []string // what the host key algorithms start with; nil: the default list
	}{
		{"ssh://alice@git.example.com:2222/srv/app.git", "alice", []string{ssh.KeyAlgoED25519}},
		{"ssh://git.example.com:2222/srv/app.git", local.Username, []string{ssh.KeyAlgoED25519}},
		{"ssh://git.example.com/srv/app.git", local.Username, nil},
		{"deploy@git.example.com:org/app.git", "deploy", nil},
		{"[deploy@git.example.com:2222]:org/app.git", "deploy", []string{ssh.KeyAlgoED25519}},
		{"git.example.com:org/app.git", local.Username, nil},
		{"file:///srv/app.git", "", nil},
		{"https://bob@git.example.com/org/app.git", "", nil},
	}
	for _, tt := range tests {
		s := New(Config{URL: tt.url, Branch: "release", Key: newPEMKey(t), KnownHosts: knownHosts})
		acc, err := s.open(testContext(t))
		if err != nil {
			t.Fatalf("%s: %v", tt.url, err)
		}
		acc.close()
		a, _ := acc.auth.(*sshAuth)
		switch {
		case tt.user == "" && a != nil:
			t.Errorf("%s: got SSH auth, want none", tt.url)
		case tt.user == "":
		case a == nil:
			t.Errorf("%s: got no SSH auth, want user %s", tt.url, tt.user)
		case a.user != tt.user || !slices.Equal(a.algorithms[:min(len(a.algorithms), len(tt.algos))], tt.algos) || (tt.algos == nil) != (a.algorithms == nil):
			t.Errorf("%s: got user %q, host key algorithms %q; want %q, %q", tt.url, a.user, a.algorithms, tt.user, tt.algos)
		}
	}
}
