package sshkeys

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

// keygen makes a key with OpenSSH's ssh-keygen (args: -t, -m, …; .ci/install
// installs it, as the sshd tests need it anyway),
// encrypted with passphrase unless it is empty, and returns the private
// key file's bytes and its public key.
func keygen(t *testing.T, passphrase string, args ...string) ([]byte, ssh.PublicKey) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "key")
	args = append([]string{"-q", "-N", passphrase, "-C", "test", "-f", path}, args...)
	if out, err := exec.Command("ssh-keygen", args...).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen %q: %v: %s", args, err, out)
	}
	priv, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	line, err := os.ReadFile(path + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey(line)
	if err != nil {
		t.Fatal(err)
	}
	return priv, pub
}

func TestParse(t *testing.T) {
	t.Parallel()
	plain, plainPub := keygen(t, "", "-t", "ed25519")
	pemPlain, pemPlainPub := keygen(t, "", "-t", "rsa", "-b", "2048", "-m", "PEM")
	pemLocked, pemLockedPub := keygen(t, "pass phrase", "-t", "ecdsa", "-m", "PEM")
	sshLocked, sshLockedPub := keygen(t, "pass phrase", "-t", "ed25519")
	tests := []struct {
		name       string
		key        []byte
		passphrase string
		want       ssh.PublicKey // nil: an error
		wantErr    error
	}{
		{name: "plain", key: plain, want: plainPub},
		// The passphrase is not used, and not an error: see Parse.
		{name: "plain with a passphrase", key: plain, passphrase: "pass phrase", want: plainPub},
		{name: "encrypted", key: sshLocked, passphrase: "pass phrase", want: sshLockedPub},
		{name: "encrypted without passphrase", key: sshLocked, wantErr: ErrPassphraseNeeded},
		{name: "encrypted with a wrong passphrase", key: sshLocked, passphrase: "nope-xyz", wantErr: ErrWrongPassphrase},
		{name: "PEM plain", key: pemPlain, want: pemPlainPub},
		{name: "PEM plain with a passphrase", key: pemPlain, passphrase: "pass phrase", want: pemPlainPub},
		{name: "PEM encrypted", key: pemLocked, passphrase: "pass phrase", want: pemLockedPub},
		{name: "PEM encrypted without passphrase", key: pemLocked, wantErr: ErrPassphraseNeeded},
		{name: "PEM encrypted with a wrong passphrase", key: pemLocked, passphrase: "nope-xyz", wantErr: ErrWrongPassphrase},
		{name: "not a key", key: []byte("hello"), wantErr: ErrNotPrivateKey},
		{name: "not a key with a passphrase", key: []byte("hello"), passphrase: "secret-xyz", wantErr: ErrNotPrivateKey},
		{name: "a public key", key: ssh.MarshalAuthorizedKey(plainPub), wantErr: ErrNotPrivateKey},
		{name: "empty", key: nil, wantErr: ErrNotPrivateKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Signer(tt.key, tt.passphrase)
			_, rawErr := Parse(tt.key, tt.passphrase)
			if (err == nil) != (rawErr == nil) {
				t.Errorf("Signer: %v, but Parse: %v", err, rawErr)
			}
			if tt.want != nil {
				if err != nil {
					t.Fatalf("Signer: got %v, want a signer", err)
				}
				if got := s.PublicKey().Marshal(); !bytes.Equal(got, tt.want.Marshal()) {
					t.Errorf("Signer: got public key %s, want %s", ssh.FingerprintSHA256(s.PublicKey()), ssh.FingerprintSHA256(tt.want))
				}
				return
			}
			if !errors.Is(err, tt.wantErr) || !errors.Is(rawErr, tt.wantErr) {
				t.Errorf("got errors %v and %v, want %v", err, rawErr, tt.wantErr)
			}
			if err != nil && tt.passphrase != "" && strings.Contains(err.Error(), tt.passphrase) {
				t.Errorf("error %q reveals the passphrase", err)
			}
		})
	}
}

func TestEncrypted(t *testing.T) {
	t.Parallel()
	plain, _ := keygen(t, "", "-t", "ed25519")
	locked, _ := keygen(t, "p-xyz", "-t", "ed25519")
	pemLocked, _ := keygen(t, "pass phrase", "-t", "ecdsa", "-m", "PEM")
	tests := []struct {
		name string
		key  []byte
		want bool
	}{
		{"plain", plain, false},
		{"encrypted", locked, true},
		{"PEM encrypted", pemLocked, true},
		{"not a key", []byte("hello"), false},
	}
	for _, tt := range tests {
		if got := Encrypted(tt.key); got != tt.want {
			t.Errorf("%s: Encrypted got %v, want %v", tt.name, got, tt.want)
		}
	}
}
