package sshkeys

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

var _ ssh.HostKeyCallback = (*KnownHosts)(nil).Check

// writeKnownHosts writes the lines to a known_hosts file and returns its path.
func writeKnownHosts(t *testing.T, lines ...string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(p, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func readKnownHosts(t *testing.T, path string) *KnownHosts {
	t.Helper()
	k, err := ReadKnownHosts(path)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func pubKey(t *testing.T) ssh.PublicKey {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pk, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pk
}

func TestReadKnownHosts(t *testing.T) {
	t.Parallel()
	good := writeKnownHosts(t, knownhosts.Line([]string{"[127.0.0.1]:2222"}, pubKey(t)))
	if k, err := ReadKnownHosts(good); err != nil || k.Path() != good {
		t.Errorf("good file: got %v, %v", k, err)
	}
	if _, err := ReadKnownHosts(filepath.Join(t.TempDir(), "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: got %v, want fs.ErrNotExist", err)
	}
	if _, err := ReadKnownHosts(writeKnownHosts(t, "host ssh-ed25519 !!!notbase64")); err == nil {
		t.Error("malformed file: got no error")
	}
}

// TestCheck runs the callback on each kind of key, and checks the
// *HostKeyError and its message (which says what to do).
func TestCheck(t *testing.T) {
	t.Parallel()
	key, other, revoked := pubKey(t), pubKey(t), pubKey(t)
	fp, otherFP := ssh.FingerprintSHA256(key), ssh.FingerprintSHA256(other)
	path := writeKnownHosts(t,
		knownhosts.Line([]string{"[127.0.0.1]:2222", "git.example.com"}, key),
		knownhosts.Line([]string{"[::1]:2222"}, other),
		// @revoked applies to the key whatever host presents it.
		"@revoked * "+strings.TrimSpace(string(ssh.MarshalAuthorizedKey(revoked))),
		knownhosts.Line([]string{"[127.0.0.1]:2223"}, revoked),
	)
	k := readKnownHosts(t, path)
	tests := []struct {
		name, hostname string
		key            ssh.PublicKey  // nil: key
		want           HostKeyProblem // 0: accepted
		wantKnown      []string
		wantMsg        string
	}{
		{name: "known", hostname: "127.0.0.1:2222"},
		{name: "known on port 22", hostname: "git.example.com:22"},
		{name: "unknown", hostname: "127.0.0.1:2224", want: Unknown,
			wantMsg: "host key of [127.0.0.1]:2224 is unknown: it presents ssh-ed25519 " + fp + ", which is not in " + path +
				"; check that fingerprint with the server's administrator, then add it: ssh-keyscan -p 2224 127.0.0.1 >> " + path},
		{name: "unknown on port 22", hostname: "web1.example.com:22", want: Unknown,
			wantMsg: "host key of web1.example.com is unknown: it presents ssh-ed25519 " + fp + ", which is not in " + path +
				"; check that fingerprint with the server's administrator, then add it: ssh-keyscan web1.example.com >> " + path},
		{name: "unknown IPv6 on port 22", hostname: "[::1]:22", want: Unknown,
			wantMsg: "host key of ::1 is unknown: it presents ssh-ed25519 " + fp + ", which is not in " + path +
				"; check that fingerprint with the server's administrator, then add it: ssh-keyscan ::1 >> " + path},
		{name: "changed", hostname: "[::1]:2222", want: Changed, wantKnown: []string{"ssh-ed25519 " + otherFP + " (line 2)"},
			wantMsg: "host key of [::1]:2222 has CHANGED: it presents ssh-ed25519 " + fp + ", but " + path + " has ssh-ed25519 " + otherFP +
				" (line 2) for it; this may be a man-in-the-middle attack: refusing to connect. If the server was really reinstalled, " +
				"remove the old line (ssh-keygen -R '[::1]:2222' -f " + path + ") and add the new key after checking its fingerprint"},
		{name: "revoked", hostname: "127.0.0.1:2223", key: revoked, want: Revoked,
			wantMsg: "host key of [127.0.0.1]:2223 (ssh-ed25519 " + ssh.FingerprintSHA256(revoked) + ") is marked @revoked in " + path + ": refusing to connect"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			presented := key
			if tt.key != nil {
				presented = tt.key
			}
			err := k.Check(tt.hostname, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 22}, presented)
			if tt.want == 0 {
				if err != nil {
					t.Fatalf("got %v, want the key accepted", err)
				}
				return
			}
			var hk *HostKeyError
			if !errors.As(err, &hk) {
				t.Fatalf("got %v (%T), want a *HostKeyError", err, err)
			}
			if hk.Problem != tt.want || hk.Fingerprint != ssh.FingerprintSHA256(presented) || hk.Type != ssh.KeyAlgoED25519 || hk.KnownHosts != path ||
				!slices.Equal(hk.Known, tt.wantKnown) {
				t.Errorf("got %+v, want problem %v, fingerprint %s, known %q", hk, tt.want, ssh.FingerprintSHA256(presented), tt.wantKnown)
			}
			if err.Error() != tt.wantMsg {
				t.Errorf("message:\ngot  %s\nwant %s", err, tt.wantMsg)
			}
			var ke *knownhosts.KeyError
			var re *knownhosts.RevokedError
			if !errors.As(err, &ke) && !errors.As(err, &re) {
				t.Errorf("%v does not wrap knownhosts' own error", err)
			}
		})
	}
	if err := k.Check("no-port", &net.TCPAddr{}, key); err == nil || errors.As(err, new(*HostKeyError)) {
		t.Errorf("a hostname without a port: got %v, want an error that is not a *HostKeyError", err)
	}
}

func TestAlgorithms(t *testing.T) {
	t.Parallel()
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rsaPub, err := ssh.NewPublicKey(&rsaKey.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	k := readKnownHosts(t, writeKnownHosts(t,
		knownhosts.Line([]string{"git.example.com"}, rsaPub),
		knownhosts.Line([]string{"git.example.com", "[127.0.0.1]:2222"}, pubKey(t)),
	))
	tests := []struct {
		hostport string
		first    []string // the algorithms of the known keys, in order
	}{
		{"git.example.com:22", []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA, ssh.KeyAlgoED25519}},
		{"127.0.0.1:2222", []string{ssh.KeyAlgoED25519}},
		{"127.0.0.1:22", nil},
	}
	for _, tt := range tests {
		got := k.Algorithms(tt.hostport)
		if tt.first == nil {
			if got != nil {
				t.Errorf("Algorithms(%s): got %q, want nil (the default list) for an unknown host", tt.hostport, got)
			}
			continue
		}
		if !slices.Equal(got[:min(len(got), len(tt.first))], tt.first) {
			t.Errorf("Algorithms(%s): got %q, want it to start with %q", tt.hostport, got, tt.first)
		}
		// The rest follow, so that a key of another type is seen (and
		// reported as changed), each algorithm once.
		for _, a := range ssh.SupportedAlgorithms().HostKeys {
			if !slices.Contains(got, a) {
				t.Errorf("Algorithms(%s): got %q, want %s among them", tt.hostport, got, a)
			}
		}
		for i, a := range got {
			if slices.Contains(got[:i], a) {
				t.Errorf("Algorithms(%s): got %q, %s twice", tt.hostport, got, a)
			}
		}
	}
}
