package sshrun

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/pushdeploy/pushdeploy/deploy"
	"github.com/pushdeploy/pushdeploy/internal/sshkeys"
	"github.com/pushdeploy/pushdeploy/internal/testhosts"
)

// newKey returns a fresh ed25519 private key in OpenSSH format, encrypted
// with passphrase unless it is empty.
func newKey(t *testing.T, passphrase string) []byte {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var block *pem.Block
	if passphrase == "" {
		block, err = ssh.MarshalPrivateKey(priv, "test")
	} else {
		block, err = ssh.MarshalPrivateKeyWithPassphrase(priv, "test", []byte(passphrase))
	}
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(block)
}

// encryptCopy copies the key pair at path and encrypts the copy with
// passphrase using OpenSSH's ssh-keygen. It returns the copy's bytes.
func encryptCopy(t *testing.T, path, passphrase string) []byte {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(dst, readFile(t, path), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("ssh-keygen", "-q", "-p", "-P", "", "-N", passphrase, "-f", dst).CombinedOutput()
	if err != nil {
		t.Fatalf("ssh-keygen -p: %v: %s", err, out)
	}
	return readFile(t, dst)
}

func TestNewErrors(t *testing.T) {
	t.Parallel()
	known := filepath.Join(t.TempDir(), "known_hosts")
	writeFile(t, known, "")
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"missing known_hosts", Config{Key: newKey(t, ""), KnownHosts: known + ".missing"}, "known hosts"},
		{"admin key garbage", Config{Key: []byte("x"), KnownHosts: known}, "admin key"},
		{"admin key encrypted, no passphrase", Config{Key: newKey(t, "p"), KnownHosts: known}, "admin key"},
		{"deploy key garbage", Config{Key: newKey(t, ""), GitKey: []byte("x"), KnownHosts: known}, "deploy key"},
		{"deploy key wrong passphrase", Config{Key: newKey(t, ""), GitKey: newKey(t, "p"), GitKeyPassphrase: "q", KnownHosts: known}, "deploy key"},
	}
	// No admin key at all is allowed: a pool of only local hosts needs none
	// (config requires one as soon as a host is reached over SSH).
	if r, err := New(Config{KnownHosts: known}); err != nil {
		t.Errorf("New without an admin key: %v", err)
	} else {
		r.Close()
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := New(tt.cfg)
			if err == nil {
				r.Close()
				t.Fatal("New: got success")
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("New: got %q, want it to name %q", err, tt.wantErr)
			}
		})
	}
}

// TestNewPassphrase logs in with the admin key encrypted by ssh-keygen.
func TestNewPassphrase(t *testing.T) {
	t.Parallel()
	env := testhosts.New(t, testhosts.Options{Hosts: 1})
	h := env.Hosts[0]
	locked := encryptCopy(t, env.AdminKey, "pass phrase")
	tests := []struct {
		name       string
		key        []byte
		passphrase string
		wantNewErr bool
	}{
		{name: "right passphrase", key: locked, passphrase: "pass phrase"},
		{name: "wrong passphrase", key: locked, passphrase: "pass", wantNewErr: true},
		{name: "no passphrase", key: locked, wantNewErr: true},
		{name: "plain key, passphrase ignored", key: readFile(t, env.AdminKey), passphrase: "pass phrase"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := New(Config{Key: tt.key, Passphrase: tt.passphrase, KnownHosts: env.KnownHosts})
			if tt.wantNewErr {
				if err == nil {
					r.Close()
					t.Fatal("New: got success, want an error")
				}
				if !strings.Contains(err.Error(), "admin key") {
					t.Errorf("New: got %q, want it to name the admin key", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			defer r.Close()
			c := dial(t, r, h)
			if _, _, err := run(t, c, deploy.Command{Args: []string{"true"}}); err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
}

// checkAuthError checks that err is a failed login, not a host key problem.
func checkAuthError(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		t.Fatal("Dial: got success, want an authentication error")
	}
	var hk *sshkeys.HostKeyError
	if errors.As(err, &hk) {
		t.Fatalf("Dial: got host key error %v, want an authentication error", err)
	}
	if !strings.Contains(err.Error(), "unable to authenticate") {
		t.Errorf("Dial: got %q, want an authentication error", err)
	}
}

func TestDialWrongKey(t *testing.T) {
	t.Parallel()
	env := testhosts.New(t, testhosts.Options{Hosts: 1})
	h := env.Hosts[0]
	tests := []struct {
		name string
		key  []byte
	}{
		{"fresh key", newKey(t, "")},
		// The deploy key opens the git server, not the app hosts.
		{"deploy key", readFile(t, env.GitKey)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRunner(t, env, func(c *Config) { c.Key = tt.key })
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			c, err := r.Dial(ctx, hostOf(h))
			if err == nil {
				c.Close()
			}
			checkAuthError(t, err)
			if !strings.Contains(err.Error(), h.User+"@"+hostOf(h).Address()) {
				t.Errorf("Dial: got %q, want it to name %s@%s", err, h.User, hostOf(h).Address())
			}
		})
	}
	t.Run("wrong user", func(t *testing.T) {
		r := newRunner(t, env, nil)
		hh := hostOf(h)
		hh.User = env.Git.User
		_, err := r.Dial(context.Background(), hh)
		checkAuthError(t, err)
	})
}

// TestClose checks that Close empties the keyrings: no new login, no more
// lending, while connections already made keep running commands.
func TestClose(t *testing.T) {
	t.Parallel()
	env := testhosts.New(t, testhosts.Options{Hosts: 1})
	h := env.Hosts[0]
	r := newRunner(t, env, nil)
	c := dial(t, r, h)
	if err := r.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := r.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}

	_, err := r.Dial(context.Background(), hostOf(h))
	checkAuthError(t, err)

	if _, _, err := run(t, c, deploy.Command{Args: []string{"true"}}); err != nil {
		t.Errorf("Run on a connection made before Close: %v", err)
	}
	stdout, _, err := run(t, c, deploy.Command{Args: []string{"ssh-add", "-l"}, ForwardAgent: true})
	var ee *deploy.ExitError
	if !errors.As(err, &ee) || strings.Contains(stdout, fingerprint(t, env.GitKey)) {
		t.Errorf("ssh-add -l after Close: got %q, %v; want no identities", stdout, err)
	}
}
