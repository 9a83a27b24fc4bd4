package gitsrc

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"encoding/pem"
	"errors"
	"slices"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/pushdeploy/pushdeploy/deploy"
)

func TestRedact(t *testing.T) {
	tests := []struct {
		url, text, want string
	}{
		{"https://deployer:s3cret@git.example.com/app.git", "get https://deployer:s3cret@git.example.com/app.git: 401", "get https://deployer:xxxxx@git.example.com/app.git: 401"},
		{"https://deployer:p%40ss%2Fword@git.example.com/app.git", "p%40ss%2Fword p@ss/word", "xxxxx xxxxx"},
		{"https://tok:a b@host/x", `parse "https://tok:a b@host/x": invalid`, `parse "https://tok:xxxxx@host/x": invalid`},
		{"https://deployer@git.example.com/app.git", "https://deployer@git.example.com/app.git", "https://deployer@git.example.com/app.git"},
		{"https://git.example.com/a:b@c", "https://git.example.com/a:b@c", "https://git.example.com/a:b@c"},
		{"git@github.com:org/app.git", "git@github.com:org/app.git", "git@github.com:org/app.git"},
		{"/srv/git/app.git", "/srv/git/app.git", "/srv/git/app.git"},
	}
	for _, tt := range tests {
		if got := newRedactor(tt.url).String(tt.text); got != tt.want {
			t.Errorf("redact %q in %q: got %q, want %q", tt.url, tt.text, got, tt.want)
		}
	}
}

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

func TestHostKeyAlgorithms(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rsaPub, err := ssh.NewPublicKey(&rsaKey.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	edPub := newKey(t).PublicKey()
	path := writeFile(t, strings.Join([]string{
		knownhosts.Line([]string{"git.example.com"}, rsaPub),
		knownhosts.Line([]string{"git.example.com", "[127.0.0.1]:2222"}, edPub),
	}, "\n"))
	check, err := knownhosts.New(path)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		hostport string
		want     []string
	}{
		{"git.example.com:22", []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA, ssh.KeyAlgoED25519}},
		{"127.0.0.1:2222", []string{ssh.KeyAlgoED25519}},
		{"127.0.0.1:22", nil},
	}
	for _, tt := range tests {
		if got := hostKeyAlgorithms(check, tt.hostport); !slices.Equal(got, tt.want) {
			t.Errorf("hostKeyAlgorithms(%s): got %q, want %q", tt.hostport, got, tt.want)
		}
	}
}

func TestHostKeyErrorMessage(t *testing.T) {
	key := newKey(t).PublicKey()
	fp := ssh.FingerprintSHA256(key)
	other := newKey(t).PublicKey()
	tests := []struct {
		name, host string
		err        error
		want       string
	}{
		{"unknown", "127.0.0.1:2222", &knownhosts.KeyError{},
			"host key of [127.0.0.1]:2222 is unknown (ssh-ed25519 " + fp + "): if that is the git server's key, add it to /etc/kh: ssh-keyscan -p 2222 127.0.0.1 >> /etc/kh"},
		{"unknown on port 22", "git.example.com:22", &knownhosts.KeyError{},
			"host key of git.example.com is unknown (ssh-ed25519 " + fp + "): if that is the git server's key, add it to /etc/kh: ssh-keyscan git.example.com >> /etc/kh"},
		{"changed", "[::1]:2222", &knownhosts.KeyError{Want: []knownhosts.KnownKey{{Key: other, Filename: "/etc/kh", Line: 3}}},
			"host key of [::1]:2222 changed: the server presented ssh-ed25519 " + fp + " but /etc/kh has ssh-ed25519 " + ssh.FingerprintSHA256(other) + " (line 3); "},
		{"revoked", "git.example.com:22", &knownhosts.RevokedError{},
			"host key of git.example.com (ssh-ed25519 " + fp + ") is revoked in /etc/kh"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := newHostKeyError(tt.host, key, "/etc/kh", tt.err)
			if !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("got %q, want it to start with %q", err, tt.want)
			}
			if !errors.Is(err, tt.err) {
				t.Errorf("errors.Is(%v, %v) = false", err, tt.err)
			}
		})
	}
	if err := newHostKeyError("h:22", key, "/etc/kh", errors.New("other")); err != nil {
		t.Errorf("got %v for an error that is not about the key, want nil", err)
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
	tests := []struct {
		url, user string
		algos     []string
	}{
		{"ssh://alice@git.example.com:2222/srv/app.git", "alice", []string{ssh.KeyAlgoED25519}},
		{"ssh://git.example.com:2222/srv/app.git", "git", []string{ssh.KeyAlgoED25519}},
		{"ssh://git.example.com/srv/app.git", "git", nil},
		{"deploy@git.example.com:org/app.git", "deploy", nil},
		{"git.example.com:org/app.git", "git", nil},
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
		case a.user != tt.user || !slices.Equal(a.algorithms, tt.algos):
			t.Errorf("%s: got user %q, host key algorithms %q; want %q, %q", tt.url, a.user, a.algorithms, tt.user, tt.algos)
		}
	}
}
