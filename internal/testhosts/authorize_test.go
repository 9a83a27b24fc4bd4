package testhosts_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pushdeploy/pushdeploy/internal/testhosts"
)

// TestAuthorizeKey: a key made with ssh-keygen, authorized on an app host,
// logs in there and the admin key no longer does; authorized on the git
// server, it may fetch and nothing else, and the old deploy key is refused.
func TestAuthorizeKey(t *testing.T) {
	t.Parallel()
	e := testhosts.New(t, testhosts.Options{Hosts: 1})
	ctx := t.Context()
	h := e.Hosts[0]
	key := filepath.Join(t.TempDir(), "mine")
	output(t, exec.CommandContext(ctx, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "a user's key", "-f", key))
	pub, err := os.ReadFile(key + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	ssh := func(key string, h *testhosts.Host, args ...string) *exec.Cmd {
		a := []string{"-F", "/dev/null", "-i", key, "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none",
			"-o", "UserKnownHostsFile=" + e.KnownHosts, "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes",
			"-p", itoa(h.Port), h.User + "@" + h.Addr}
		return exec.CommandContext(ctx, "ssh", append(a, args...)...)
	}

	for _, bad := range []string{"", "not a key", `command="id" ` + string(pub), string(pub) + string(pub)} {
		if err := e.AuthorizeKey(h, bad); err == nil {
			t.Errorf("AuthorizeKey(%q) succeeded, want an error", bad)
		}
	}

	if err := e.AuthorizeKey(h, string(pub)); err != nil {
		t.Fatal(err)
	}
	if got := output(t, ssh(key, h, "id", "-un")); got != h.User {
		t.Errorf("the authorized key logs in as %q, want %s", got, h.User)
	}
	if out := fails(t, ssh(e.AdminKey, h, "true")); !strings.Contains(out, "Permission denied") {
		t.Errorf("the admin key after AuthorizeKey: want Permission denied, got %s", out)
	}

	if _, err := e.Commit(ctx, map[string]string{"a.txt": "a\n"}, "first"); err != nil {
		t.Fatal(err)
	}
	if err := e.AuthorizeKey(e.Git, string(pub)); err != nil {
		t.Fatal(err)
	}
	gitSSH := strings.Join([]string{"ssh", "-F", "/dev/null", "-i", key, "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none",
		"-o", "UserKnownHostsFile=" + e.KnownHosts, "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes"}, " ")
	cmd := exec.CommandContext(ctx, "git", "ls-remote", e.RepoURL, "release")
	cmd.Env = append(os.Environ(), "GIT_SSH_COMMAND="+gitSSH)
	if out := output(t, cmd); !strings.HasSuffix(out, "refs/heads/release") {
		t.Errorf("git ls-remote with the authorized key: %q", out)
	}
	if out := fails(t, ssh(key, e.Git, "id")); !strings.Contains(out, "refused") {
		t.Errorf("the authorized deploy key running id: want refused, got %s", out)
	}
	if out := fails(t, ssh(e.GitKey, e.Git, "id")); !strings.Contains(out, "Permission denied") {
		t.Errorf("the old deploy key after AuthorizeKey: want Permission denied, got %s", out)
	}
}
