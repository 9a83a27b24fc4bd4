package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLoosePermissions: every file holding a secret that others can read
// is warned about, naming the file and the chmod that fixes it; private
// ones are not.
func TestLoosePermissions(t *testing.T) {
	for _, mode := range []os.FileMode{0o600, 0o640, 0o604, 0o644} {
		t.Run(mode.String(), func(t *testing.T) {
			f := setup(t)
			gitKey := filepath.Join(f.dir, "git_key")
			writeKey(t, f.dir, "git_key", "")
			env := filepath.Join(f.dir, "deploy.env")
			writeFile(t, env, "DEPLOY_GIT_KEY="+gitKey+"\nDEPLOY_API_TOKEN=t0ken\nDEPLOY_WEBHOOK_SECRET=s3cret\n", mode)
			for _, p := range []string{f.key, gitKey, env} {
				if err := os.Chmod(p, mode); err != nil {
					t.Fatal(err)
				}
			}
			_, warnings, err := Load("", false)
			if err != nil {
				t.Fatal(err)
			}
			all := strings.Join(warnings, "\n")
			if mode&0o077 == 0 {
				if all != "" {
					t.Errorf("private files: warnings %q, want none", all)
				}
				return
			}
			for _, want := range []string{
				"DEPLOY_SSH_KEY: other users can read " + f.key + fmt.Sprintf(" (mode %04o)", mode),
				"run chmod 600 " + f.key,
				"DEPLOY_GIT_KEY: other users can read " + gitKey,
				"run chmod 600 " + gitKey,
				"deploy.env holds DEPLOY_API_TOKEN, DEPLOY_WEBHOOK_SECRET but other users can read it",
				"run chmod 600 deploy.env",
			} {
				if !strings.Contains(all, want) {
					t.Errorf("warnings:\n%s\nwant one containing %q", all, want)
				}
			}
			if strings.Contains(all, "t0ken") || strings.Contains(all, "s3cret") {
				t.Errorf("a warning quotes a secret:\n%s", all)
			}
		})
	}
}
