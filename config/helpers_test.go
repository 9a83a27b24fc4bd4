package config

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

// cleanEnv unsets every DEPLOY_ variable (and the unprefixed names envconfig
// falls back to) for the test; t.Setenv restores them afterwards. Tests
// that call it cannot be parallel: Load reads the process environment.
func cleanEnv(t *testing.T) {
	t.Helper()
	var keys []string
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, Prefix+"_") {
			keys = append(keys, k)
		}
	}
	for _, v := range variables {
		keys = append(keys, v.key, v.alt)
	}
	for _, k := range keys {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
}

// writeKey writes a new ed25519 private key to dir/name, encrypted when
// passphrase is set, and returns its path.
func writeKey(t *testing.T, dir, name, passphrase string) string {
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
	p := filepath.Join(dir, name)
	writeFile(t, p, string(pem.EncodeToMemory(block)), 0o600)
	return p
}

// writePublicKey writes the public key of a new key to dir/name.
func writePublicKey(t *testing.T, dir, name string) string {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sp, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	writeFile(t, p, string(ssh.MarshalAuthorizedKey(sp)), 0o644)
	return p
}

func writeFile(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // umask
		t.Fatal(err)
	}
}

// fixture is a folder with what a valid configuration needs.
type fixture struct {
	dir        string
	key        string // DEPLOY_SSH_KEY
	knownHosts string
	hostsFile  string
}

// setup makes a valid configuration in a temporary folder, which becomes the
// working folder and $HOME, and sets the required variables.
func setup(t *testing.T) fixture {
	t.Helper()
	cleanEnv(t)
	dir := t.TempDir()
	t.Chdir(dir)
	t.Setenv("HOME", dir)
	f := fixture{
		dir:        dir,
		key:        writeKey(t, dir, "id_ed25519", ""),
		knownHosts: filepath.Join(dir, "known_hosts"),
		hostsFile:  filepath.Join(dir, "hosts.txt"),
	}
	writeFile(t, f.knownHosts, "", 0o644)
	writeFile(t, f.hostsFile, "# the pool\nweb1\nops@web2:2222\n", 0o644)
	t.Setenv("DEPLOY_REPO_URL", "git@bitbucket.org:team/app.git")
	t.Setenv("DEPLOY_SSH_KEY", f.key)
	t.Setenv("DEPLOY_KNOWN_HOSTS", f.knownHosts)
	return f
}

var problemRE = regexp.MustCompile(`^(DEPLOY_[A-Z0-9_]+[ :]|--env-file |[^ ]+(:[0-9]+)?: )`)

// wantProblems checks that err is an *Error whose text holds every want.
func wantProblems(t *testing.T, err error, want ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want one containing %q", want)
	}
	ce, ok := err.(*Error)
	if !ok {
		t.Fatalf("got error of type %T, want *config.Error", err)
	}
	for _, p := range ce.Problems {
		if !problemRE.MatchString(p) {
			t.Errorf("problem %q does not start with the variable, flag or file at fault", p)
		}
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("got error:\n%v\nwant it to contain %q", err, w)
		}
	}
}

// wantWarnings checks that every want is in one of the warnings, and that
// there are no warnings when want is empty.
func wantWarnings(t *testing.T, got []string, want ...string) {
	t.Helper()
	if len(want) == 0 && len(got) > 0 {
		t.Errorf("got warnings %q, want none", got)
	}
	all := strings.Join(got, "\n")
	for _, w := range want {
		if !strings.Contains(all, w) {
			t.Errorf("got warnings:\n%s\nwant one containing %q", all, w)
		}
	}
}

// Mistyped variable names for the tests, spelled as concatenations so that
// tools looking for the variables config reads do not take them for real.
const (
	typoBranch  = "DEPLOY_" + "BRNACH"
	typoColour  = "DEPLOY_" + "COLOUR"
	typoSSHKey  = "DEPLOY_" + "SSHKEY"
	typoTimeout = "DEPLOY_" + "STEP_TIMEOT"
	typoX       = "DEPLOY_" + "X"
)
