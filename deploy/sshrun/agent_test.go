package sshrun

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"

	"github.com/pushdeploy/pushdeploy/deploy"
	"github.com/pushdeploy/pushdeploy/internal/testhosts"
)

// fingerprint returns the SHA256 fingerprint of the key pair at path.
func fingerprint(t *testing.T, path string) string {
	t.Helper()
	pk, _, _, _, err := ssh.ParseAuthorizedKey(readFile(t, path+".pub"))
	if err != nil {
		t.Fatal(err)
	}
	return ssh.FingerprintSHA256(pk)
}

func TestAgentForwarding(t *testing.T) {
	t.Parallel()
	env := testhosts.New(t, testhosts.Options{Hosts: 1})
	h := env.Hosts[0]
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sha, err := env.Commit(ctx, map[string]string{"README": "hello\n"}, "first")
	if err != nil {
		t.Fatal(err)
	}
	c := dial(t, newRunner(t, env, nil), h)
	deployFP, adminFP := fingerprint(t, env.GitKey), fingerprint(t, env.AdminKey)

	// Before any lending the connection has no agent at all.
	t.Run("no agent without ForwardAgent", func(t *testing.T) {
		stdout, _, err := run(t, c, deploy.Command{Args: []string{"sh", "-c", `printf '%s' "${SSH_AUTH_SOCK-unset}"`}})
		if err != nil {
			t.Fatal(err)
		}
		if stdout != "unset" {
			t.Errorf("SSH_AUTH_SOCK: got %q, want it unset", stdout)
		}
	})

	t.Run("only the deploy key is lent", func(t *testing.T) {
		// Several times: every lend on the same connection works, though
		// sshd grants forwarding only once per connection.
		for i := 0; i < 3; i++ {
			stdout, stderr, err := run(t, c, deploy.Command{Args: []string{"ssh-add", "-l"}, ForwardAgent: true})
			if err != nil {
				t.Fatalf("lend %d: ssh-add -l: %v: %s", i, err, stderr)
			}
			lines := strings.Split(strings.TrimSpace(stdout), "\n")
			if len(lines) != 1 || !strings.Contains(lines[0], deployFP) {
				t.Errorf("lend %d: ssh-add -l: got %q, want one key, %s", i, stdout, deployFP)
			}
			if strings.Contains(stdout, adminFP) {
				t.Errorf("lend %d: ssh-add -l: got %q, which holds the admin key %s", i, stdout, adminFP)
			}
		}
	})

	t.Run("the host cannot change the agent", func(t *testing.T) {
		_, _, err := run(t, c, deploy.Command{Args: []string{"ssh-add", "-D"}, ForwardAgent: true})
		var ee *deploy.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("ssh-add -D: got %v, want a refusal", err)
		}
		stdout, _, err := run(t, c, deploy.Command{Args: []string{"ssh-add", "-l"}, ForwardAgent: true})
		if err != nil || !strings.Contains(stdout, deployFP) {
			t.Errorf("ssh-add -l after -D: got %q, %v; want the deploy key still there", stdout, err)
		}
	})

	// sshd hands the connection's agent socket to every later session,
	// but nothing is lent to a command that did not ask.
	t.Run("nothing lent after the lending command ended", func(t *testing.T) {
		stdout, _, err := run(t, c, deploy.Command{Args: []string{"ssh-add", "-l"}})
		var ee *deploy.ExitError
		if !errors.As(err, &ee) || strings.Contains(stdout, deployFP) {
			t.Errorf("ssh-add -l without ForwardAgent: got %q, %v; want no identities", stdout, err)
		}
	})

	// The git server's host key, in a file the host user can read.
	known := h.Path("git_known_hosts")
	if err := os.WriteFile(known, []byte(env.Git.HostKeyLine+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	lsRemote := deploy.Command{
		Env: []string{"GIT_SSH_COMMAND=ssh -F /dev/null -o UserKnownHostsFile=" + known +
			" -o GlobalKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes -o BatchMode=yes"},
		Args: []string{"git", "ls-remote", env.RepoURL},
	}

	t.Run("the lent key fetches from the git server", func(t *testing.T) {
		cmd := lsRemote
		cmd.ForwardAgent = true
		stdout, stderr, err := run(t, c, cmd)
		if err != nil {
			t.Fatalf("git ls-remote: %v: %s", err, stderr)
		}
		if want := sha + "\trefs/heads/release"; !strings.Contains(stdout, want) {
			t.Errorf("git ls-remote: got %q, want a line %q", stdout, want)
		}
	})

	t.Run("without ForwardAgent the git server refuses", func(t *testing.T) {
		_, stderr, err := run(t, c, lsRemote)
		var ee *deploy.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("git ls-remote: got %v, want it to fail", err)
		}
		if !strings.Contains(stderr, "Permission denied") {
			t.Errorf("stderr: got %q, want the git server's refusal", stderr)
		}
	})

	if n := c.(*conn).lending.Load(); n != 0 {
		t.Errorf("after the commands: %d lends open, want 0", n)
	}
}

func TestAgentForwardingWithoutDeployKey(t *testing.T) {
	t.Parallel()
	env := testhosts.New(t, testhosts.Options{Hosts: 1})
	c := dial(t, newRunner(t, env, func(c *Config) { c.GitKey = nil }), env.Hosts[0])
	_, _, err := run(t, c, deploy.Command{Args: []string{"true"}, ForwardAgent: true})
	if err == nil || !strings.Contains(err.Error(), "no deploy key") {
		t.Errorf("Run: got %v, want an error saying no deploy key is set", err)
	}
	if _, _, err := run(t, c, deploy.Command{Args: []string{"true"}}); err != nil {
		t.Errorf("Run without forwarding: %v", err)
	}
}

// TestLentAgent checks what a host can do with the forwarded agent, with
// and without a command that asked for it.
func TestLentAgent(t *testing.T) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	keyring := agent.NewKeyring()
	if err := keyring.Add(agent.AddedKey{PrivateKey: priv, Comment: "deploy key"}); err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	pub := signer.PublicKey()
	data := []byte("session id")
	var lending atomic.Int32
	a := &lentAgent{inner: keyring, lending: &lending}

	refusesChanges := func(t *testing.T) {
		t.Helper()
		if _, err := a.Signers(); err == nil {
			t.Error("Signers: got no error")
		}
		if err := a.Add(agent.AddedKey{PrivateKey: priv}); err == nil {
			t.Error("Add: got no error")
		}
		if err := a.Remove(pub); err == nil {
			t.Error("Remove: got no error")
		}
		if err := a.RemoveAll(); err == nil {
			t.Error("RemoveAll: got no error")
		}
		if err := a.Lock([]byte("x")); err == nil {
			t.Error("Lock: got no error")
		}
		if err := a.Unlock([]byte("x")); err == nil {
			t.Error("Unlock: got no error")
		}
		if _, err := a.Extension("session-bind@openssh.com", nil); !errors.Is(err, agent.ErrExtensionUnsupported) {
			t.Errorf("Extension: got %v, want ErrExtensionUnsupported", err)
		}
	}
	refuses := func(t *testing.T) {
		t.Helper()
		keys, err := a.List()
		if err != nil || len(keys) != 0 {
			t.Errorf("List: got %d keys, %v; want none", len(keys), err)
		}
		if _, err := a.Sign(pub, data); !errors.Is(err, errNotLent) {
			t.Errorf("Sign: got %v, want errNotLent", err)
		}
		if _, err := a.SignWithFlags(pub, data, agent.SignatureFlagRsaSha256); !errors.Is(err, errNotLent) {
			t.Errorf("SignWithFlags: got %v, want errNotLent", err)
		}
		refusesChanges(t)
	}

	t.Run("before lending", refuses)
	t.Run("while lent", func(t *testing.T) {
		lending.Add(1)
		defer lending.Add(-1)
		keys, err := a.List()
		if err != nil || len(keys) != 1 || keys[0].Comment != "deploy key" {
			t.Fatalf("List: got %v, %v; want the deploy key", keys, err)
		}
		sig, err := a.Sign(pub, data)
		if err != nil {
			t.Fatalf("Sign: %v", err)
		}
		if err := pub.Verify(data, sig); err != nil {
			t.Errorf("signature does not verify: %v", err)
		}
		sig, err = a.SignWithFlags(pub, data, 0)
		if err != nil {
			t.Fatalf("SignWithFlags: %v", err)
		}
		if err := pub.Verify(data, sig); err != nil {
			t.Errorf("signature does not verify: %v", err)
		}
		refusesChanges(t)
	})
	t.Run("after the command ended", refuses)
	// The refusals did not touch the keyring behind it.
	if keys, err := keyring.List(); err != nil || len(keys) != 1 {
		t.Errorf("keyring: got %d keys, %v; want the deploy key kept", len(keys), err)
	}
}
