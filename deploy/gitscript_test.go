package deploy

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pushdeploy/pushdeploy/internal/testhosts"
)

// TestGitTrustsOnlyTheGivenKeys runs git.sh on a real host, as its user,
// whose ssh configuration vouches for the git server's key by other means:
// a global known_hosts file, or a KnownHostsCommand. Given keys that do not
// cover the git server, the fetch must still refuse it; given its key, it
// gets past the key check (and fails to log in: no deploy key is lent).
func TestGitTrustsOnlyTheGivenKeys(t *testing.T) {
	env := testhosts.New(t, testhosts.Options{Hosts: 1})
	h := env.Hosts[0]
	vouch := h.Path("vouched_known_hosts")
	if err := os.WriteFile(vouch, []byte(env.Git.HostKeyLine+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// The git server's own key, under a name that is not the server's.
	f := strings.Fields(env.Git.HostKeyLine)
	other := "[127.0.0.1]:1 " + strings.Join(f[1:], " ")
	if err := os.MkdirAll(h.Path(".ssh"), 0o755); err != nil {
		t.Fatal(err)
	}
	const refused = "Host key verification failed"
	for _, tt := range []struct{ name, config string }{
		{"GlobalKnownHostsFile", "GlobalKnownHostsFile " + vouch + "\n"},
		{"KnownHostsCommand", "KnownHostsCommand /bin/cat " + vouch + "\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if err := os.WriteFile(h.Path(".ssh/config"), []byte(tt.config), 0o644); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.Remove(h.Path(".ssh/config")) })
			run := func(keys ...string) string {
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				cmd := env.SSH(ctx, h, script(gitScript, "git", "ls-remote", "--", env.RepoURL)...)
				_, stdin := hostGit(Release{RepoURL: env.RepoURL, GitHostKeys: keys})
				cmd.Stdin = stdin
				var stderr bytes.Buffer
				cmd.Stderr = &stderr
				if err := cmd.Run(); err == nil {
					t.Fatalf("git ls-remote succeeded without the deploy key\n%s", stderr.String())
				}
				return stderr.String()
			}
			if out := run(other); !strings.Contains(out, refused) {
				t.Errorf("with keys that do not cover the git server, and the host's %s vouching for it: got\n%s\nwant %q", tt.name, out, refused)
			}
			if out := run(env.Git.HostKeyLine); strings.Contains(out, refused) {
				t.Errorf("with the git server's key: the key was refused\n%s", out)
			}
		})
	}
}
