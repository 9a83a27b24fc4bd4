package cli

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/pushdeploy/pushdeploy/config"
)

// starterHosts is the hosts.txt `pushdeploy init` writes: nothing deployed
// until the user names their hosts.
const starterHosts = `# The pool: one host a line, in the order hosts are deployed.
# [user@]host[:port]; the user defaults to DEPLOY_SSH_USER (deploy).
# IPv6 addresses in brackets: deploy@[2001:db8::3]:2222.
#web1.example.com
#web2.example.com
`

func newInitCommand(c *common) *cobra.Command {
	dir := "."
	cmd := &cobra.Command{
		Use:   "init [--dir DIR]",
		Short: "write a starter deploy.env and hosts.txt, and say what comes next",
		Long: `Write a commented starter deploy.env (the variables you must set
uncommented; every other one commented out with its default) and an empty
hosts.txt into DIR, then print the next steps. Files that exist are never
overwritten: init stops and names them.`,
		Example: `  pushdeploy init
  pushdeploy init --dir /etc/pushdeploy`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runInit(dir, cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVar(&dir, "dir", dir, "write the files into `DIR`")
	return cmd
}

func runInit(dir string, stdout io.Writer) error {
	var env bytes.Buffer
	if err := config.Usage(&env); err != nil {
		return err
	}
	files := []struct {
		name string
		data []byte
		mode os.FileMode
	}{
		// 0600: it will hold passphrases and tokens.
		{config.DefaultEnvFile, env.Bytes(), 0o600},
		{"hosts.txt", []byte(starterHosts), 0o644},
	}
	for _, f := range files {
		if _, err := os.Lstat(filepath.Join(dir, f.name)); err == nil {
			return usagef("init: %s exists; init never overwrites: move it away or edit it", filepath.Join(dir, f.name))
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("init: %w", err)
	}
	for _, f := range files {
		path := filepath.Join(dir, f.name)
		if err := writeNew(path, f.data, f.mode); err != nil {
			return fmt.Errorf("init: %w", err)
		}
		fmt.Fprintf(stdout, "wrote %s\n", path)
	}
	fmt.Fprint(stdout, `
Next:
  1. In deploy.env set DEPLOY_REPO_URL (e.g. git@bitbucket.org:team/app.git) and
     DEPLOY_SSH_KEY (the admin key that logs into the hosts); usually also
     DEPLOY_GIT_KEY (a read-only deploy key) and DEPLOY_ROOT.
  2. In hosts.txt list your hosts, one a line.
  3. Put the hosts' and the git server's keys in DEPLOY_KNOWN_HOSTS
     (ssh-keyscan, then check the fingerprints).
  4. pushdeploy check              everything a deploy needs, changing nothing
  5. pushdeploy deploy --dry-run   what a deploy would do
  6. pushdeploy deploy
Guide: docs/getting-started.md
`)
	return nil
}

// writeNew creates path with data, failing if it exists (even if it
// appeared since it was looked for).
func writeNew(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if errors.Is(err, os.ErrExist) {
		return fmt.Errorf("%s exists; init never overwrites: move it away or edit it", path)
	}
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
