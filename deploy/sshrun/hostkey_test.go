package sshrun

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/pushdeploy/pushdeploy/internal/sshkeys"
	"github.com/pushdeploy/pushdeploy/internal/testhosts"
)

// hostKey returns the public key of a known_hosts line.
func hostKey(t *testing.T, line string) ssh.PublicKey {
	t.Helper()
	f := strings.SplitN(line, " ", 2)
	if len(f) != 2 {
		t.Fatalf("known_hosts line %q: no key", line)
	}
	pk, _, _, _, err := ssh.ParseAuthorizedKey([]byte(f[1]))
	if err != nil {
		t.Fatalf("known_hosts line %q: %v", line, err)
	}
	return pk
}

// authorizedKey returns "type base64" for a public key.
func authorizedKey(t *testing.T, pub any) string {
	t.Helper()
	pk, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pk)))
}

func TestDialHostKey(t *testing.T) {
	t.Parallel()
	env := testhosts.New(t, testhosts.Options{Hosts: 1})
	h := env.Hosts[0]
	fp := ssh.FingerprintSHA256(hostKey(t, h.HostKeyLine))
	hostPort := fmt.Sprintf("[%s]:%d", h.Addr, h.Port)

	otherEd, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	otherEC, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	realKey := strings.SplitN(h.HostKeyLine, " ", 2)[1]

	tests := []struct {
		name   string
		known  string // known_hosts content
		want   sshkeys.HostKeyProblem
		wantIn []string
	}{
		{
			name:   "unknown host",
			known:  env.Git.HostKeyLine + "\n", // another host only
			want:   sshkeys.Unknown,
			wantIn: []string{"unknown", fp, "ssh-keyscan -p " + fmt.Sprint(h.Port) + " " + h.Addr, "ssh-ed25519"},
		},
		{
			name:   "changed key",
			known:  hostPort + " " + authorizedKey(t, otherEd) + "\n",
			want:   sshkeys.Changed,
			wantIn: []string{"CHANGED", fp, "ssh-keygen -R '" + hostPort + "'"},
		},
		{
			name:   "changed key of another type",
			known:  hostPort + " " + authorizedKey(t, &otherEC.PublicKey) + "\n",
			want:   sshkeys.Changed,
			wantIn: []string{"CHANGED", fp},
		},
		{
			name:   "key known for another port only",
			known:  fmt.Sprintf("[%s]:%d %s\n", h.Addr, h.Port+1, realKey),
			want:   sshkeys.Unknown,
			wantIn: []string{"unknown", fp},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			known := filepath.Join(t.TempDir(), "known_hosts")
			writeFile(t, known, tt.known)
			r := newRunner(t, env, func(c *Config) { c.KnownHosts = known })
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			c, err := r.Dial(ctx, hostOf(h))
			if err == nil {
				c.Close()
				t.Fatal("Dial: got success, want a host key error")
			}
			var hk *sshkeys.HostKeyError
			if !errors.As(err, &hk) {
				t.Fatalf("Dial: got %v (%T), want a *sshkeys.HostKeyError", err, err)
			}
			if hk.Problem != tt.want {
				t.Errorf("Problem: got %v, want %v", hk.Problem, tt.want)
			}
			if hk.Fingerprint != fp {
				t.Errorf("Fingerprint: got %s, want %s", hk.Fingerprint, fp)
			}
			if hk.KnownHosts != known {
				t.Errorf("KnownHosts: got %s, want %s", hk.KnownHosts, known)
			}
			msg := err.Error()
			for _, s := range append(tt.wantIn, hostOf(h).Address(), known) {
				if !strings.Contains(msg, s) {
					t.Errorf("error %q does not contain %q", msg, s)
				}
			}
			if strings.Contains(msg, "handshake failed") {
				t.Errorf("error %q: want x/crypto's prefix removed", msg)
			}
		})
	}

	t.Run("revoked key", func(t *testing.T) {
		known := filepath.Join(t.TempDir(), "known_hosts")
		writeFile(t, known, "@revoked "+hostPort+" "+realKey+"\n"+h.HostKeyLine+"\n")
		r := newRunner(t, env, func(c *Config) { c.KnownHosts = known })
		_, err := r.Dial(context.Background(), hostOf(h))
		var hk *sshkeys.HostKeyError
		if !errors.As(err, &hk) || hk.Problem != sshkeys.Revoked || !strings.Contains(err.Error(), "@revoked") || !strings.Contains(err.Error(), fp) {
			t.Errorf("Dial: got %v, want an error about the @revoked key %s", err, fp)
		}
	})

	// None of the refused attempts got as far as offering a key.
	log := h.LogTail()
	for _, s := range []string{"publickey", "Accepted", "Failed", "Postponed"} {
		if strings.Contains(log, s) {
			t.Errorf("sshd log has %q after refused host keys: a login was attempted:\n%s", s, log)
		}
	}
	// The log check can see a login: a good known_hosts logs in.
	dial(t, newRunner(t, env, nil), h)
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(h.LogTail(), "Accepted publickey") {
		if time.Now().After(deadline) {
			t.Fatalf("sshd log has no \"Accepted publickey\" after a login:\n%s", h.LogTail())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
