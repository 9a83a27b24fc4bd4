package gitsrc

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/pushdeploy/pushdeploy/deploy"
	"github.com/pushdeploy/pushdeploy/internal/sshkeys"
	"github.com/pushdeploy/pushdeploy/internal/testhosts"
)

// TestSSH resolves against a real sshd serving the repository to a
// read-only deploy key.
func TestSSH(t *testing.T) {
	env := testhosts.New(t, testhosts.Options{})
	ctx := testContext(t)
	first, err := env.Commit(ctx, map[string]string{"app.txt": "1"}, "first")
	if err != nil {
		t.Fatal(err)
	}
	tip, err := env.Commit(ctx, map[string]string{"app.txt": "2"}, "second")
	if err != nil {
		t.Fatal(err)
	}
	key, err := os.ReadFile(env.GitKey)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("SSH_AUTH_SOCK", "") // New reads it
	cfg := Config{URL: env.RepoURL, Branch: "release", Key: key, KnownHosts: env.KnownHosts}
	hostPort := net.JoinHostPort(env.Git.Addr, strconv.Itoa(env.Git.Port))

	t.Run("tip", func(t *testing.T) {
		got, err := New(cfg).Resolve(ctx, deploy.Push{Branch: "release"})
		if err != nil {
			t.Fatal(err)
		}
		if got.Commit != tip {
			t.Errorf("got commit %s, want %s", got.Commit, tip)
		}
		checkHostKeys(t, got.GitHostKeys, env.Git.HostKeyLine)
	})

	t.Run("commit", func(t *testing.T) {
		c := cfg
		c.MirrorDir = filepath.Join(t.TempDir(), "mirror.git")
		s := New(c)
		for range 2 { // the second fetch has nothing new
			got, err := s.Resolve(ctx, deploy.Push{Branch: "release", Commit: first[:8]})
			if err != nil {
				t.Fatal(err)
			}
			if got.Commit != first {
				t.Errorf("got commit %s, want %s", got.Commit, first)
			}
			checkHostKeys(t, got.GitHostKeys, env.Git.HostKeyLine)
		}
	})

	t.Run("agent", func(t *testing.T) {
		t.Setenv("SSH_AUTH_SOCK", serveAgent(t, key))
		c := cfg
		c.Key = nil
		got, err := New(c).Resolve(ctx, deploy.Push{Branch: "release"})
		if err != nil {
			t.Fatal(err)
		}
		if got.Commit != tip {
			t.Errorf("got commit %s, want %s", got.Commit, tip)
		}
	})

	t.Run("unknown host key", func(t *testing.T) {
		c := cfg
		c.KnownHosts = writeFile(t, "[127.0.0.1]:1 "+authorizedKey(t, newKey(t))) // another host
		_, err := New(c).Resolve(ctx, deploy.Push{Branch: "release"})
		hk := checkHostKeyError(t, err, env.Git.HostKeyLine)
		if hk.Problem != sshkeys.Unknown || len(hk.Known) != 0 {
			t.Errorf("got %v, known keys %q, want unknown, none", hk.Problem, hk.Known)
		}
		want := "host key of [" + env.Git.Addr + "]:" + strconv.Itoa(env.Git.Port) + " is unknown: it presents ssh-ed25519 SHA256:"
		if !strings.Contains(err.Error(), want) {
			t.Errorf("got error %q, want it to contain %q", err, want)
		}
		if want := "ssh-keyscan -p " + strconv.Itoa(env.Git.Port) + " " + env.Git.Addr + " >> " + c.KnownHosts; !strings.Contains(err.Error(), want) {
			t.Errorf("got error %q, want it to contain %q", err, want)
		}
	})

	t.Run("changed host key", func(t *testing.T) {
		c := cfg
		c.KnownHosts = writeFile(t, knownhosts.Line([]string{hostPort}, newKey(t).PublicKey()))
		_, err := New(c).Resolve(ctx, deploy.Push{Branch: "release", Commit: first})
		hk := checkHostKeyError(t, err, env.Git.HostKeyLine)
		if hk.Problem != sshkeys.Changed || len(hk.Known) != 1 {
			t.Errorf("got %v, known keys %q, want changed, 1", hk.Problem, hk.Known)
		}
		want := "host key of [" + env.Git.Addr + "]:" + strconv.Itoa(env.Git.Port) + " has CHANGED: it presents ssh-ed25519 SHA256:"
		if !strings.Contains(err.Error(), want) {
			t.Errorf("got error %q, want it to contain %q", err, want)
		}
	})

	// A server whose only key is of another type than known_hosts has
	// still shows it (sshkeys.KnownHosts.Algorithms): a changed key, not a
	// failed algorithm negotiation.
	t.Run("changed host key of another type", func(t *testing.T) {
		ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		pub, err := ssh.NewPublicKey(&ec.PublicKey)
		if err != nil {
			t.Fatal(err)
		}
		c := cfg
		c.KnownHosts = writeFile(t, knownhosts.Line([]string{hostPort}, pub))
		_, err = New(c).Resolve(ctx, deploy.Push{Branch: "release"})
		hk := checkHostKeyError(t, err, env.Git.HostKeyLine)
		if hk.Problem != sshkeys.Changed || len(hk.Known) != 1 || !strings.HasPrefix(hk.Known[0], "ecdsa-sha2-nistp256 ") {
			t.Errorf("got %v, known keys %q, want changed from one ecdsa key", hk.Problem, hk.Known)
		}
	})

	t.Run("wrong deploy key", func(t *testing.T) {
		c := cfg
		c.Key = newPEMKey(t)
		_, err := New(c).Resolve(ctx, deploy.Push{Branch: "release"})
		if err == nil || !strings.Contains(err.Error(), "unable to authenticate") {
			t.Fatalf("got error %v, want an authentication failure", err)
		}
	})

	t.Run("no deploy key", func(t *testing.T) {
		c := cfg
		c.Key = nil
		_, err := New(c).Resolve(ctx, deploy.Push{Branch: "release"})
		if err == nil || !strings.Contains(err.Error(), "set DEPLOY_GIT_KEY") {
			t.Fatalf("got error %v, want it to say to set DEPLOY_GIT_KEY", err)
		}
	})
}

// checkHostKeys checks that keys holds exactly the known_hosts line want.
func checkHostKeys(t *testing.T, keys []string, want string) {
	t.Helper()
	if len(keys) != 1 || strings.Join(strings.Fields(keys[0]), " ") != strings.Join(strings.Fields(want)[:3], " ") {
		t.Errorf("got GitHostKeys %q, want [%q]", keys, want)
	}
}

// checkHostKeyError checks that err is a *sshkeys.HostKeyError about the key of
// the known_hosts line line.
func checkHostKeyError(t *testing.T, err error, line string) *sshkeys.HostKeyError {
	t.Helper()
	var hk *sshkeys.HostKeyError
	if !errors.As(err, &hk) {
		t.Fatalf("got error %v, want a *sshkeys.HostKeyError", err)
	}
	_, _, key, _, _, perr := ssh.ParseKnownHosts([]byte(line))
	if perr != nil {
		t.Fatal(perr)
	}
	if want := ssh.FingerprintSHA256(key); hk.Fingerprint != want || !strings.Contains(err.Error(), want) {
		t.Errorf("got error %q (fingerprint %s), want the fingerprint %s", err, hk.Fingerprint, want)
	}
	return hk
}

func newKey(t *testing.T) ssh.Signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// newPEMKey returns a new ed25519 private key in OpenSSH PEM format.
func newPEMKey(t *testing.T) []byte {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(block)
}

func authorizedKey(t *testing.T, s ssh.Signer) string {
	t.Helper()
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(s.PublicKey())))
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(p, []byte(content+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// serveAgent serves an ssh-agent holding the key on a socket until the
// test ends, and returns the socket's path.
func serveAgent(t *testing.T, pemBytes []byte) string {
	t.Helper()
	priv, err := ssh.ParseRawPrivateKey(pemBytes)
	if err != nil {
		t.Fatal(err)
	}
	keyring := agent.NewKeyring()
	if err := keyring.Add(agent.AddedKey{PrivateKey: priv}); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "agent.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		l.Close()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer conn.Close()
				_ = agent.ServeAgent(keyring, conn)
			})
		}
	})
	return sock
}
