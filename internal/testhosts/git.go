package testhosts

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// readonlyScript is the forced command of the deploy key on the git server.
// %[1]s is the bare repository; Start allows only paths that need no
// quoting. git sends "git-upload-pack '/path'"; the other spellings come
// from other clients. Whatever was asked, git-shell gets the canonical
// form, never the client's string.
const readonlyScript = `#!/bin/sh
# git-readonly: the deploy key may fetch %[1]s and do nothing else.
repo=%[1]s
case "$SSH_ORIGINAL_COMMAND" in
"git-upload-pack '$repo'" | "git-upload-pack $repo" | "git upload-pack '$repo'")
	exec git-shell -c "git-upload-pack '$repo'"
	;;
esac
echo "git-readonly: refused: ${SSH_ORIGINAL_COMMAND:-a shell}" >&2
exit 1
`

// startGit creates the git server, its bare repository app.git, and the
// work repository Commit uses.
func (e *Env) startGit(ctx context.Context) error {
	name := e.prefix + "git"
	e.bareDir = filepath.Join(e.Dir, "home", name, "app.git")
	e.workDir = filepath.Join(e.Dir, "work")
	script := filepath.Join(e.Dir, "bin", "git-readonly")
	if err := os.WriteFile(script, []byte(fmt.Sprintf(readonlyScript, e.bareDir)), 0o755); err != nil {
		return fmt.Errorf("git server: %w", err)
	}
	deploy, err := publicKey(e.GitKey)
	if err != nil {
		return fmt.Errorf("git server: %w", err)
	}
	auth := fmt.Sprintf("restrict,command=%q %s", script, deploy)
	// GIT_PROTOCOL lets clients use protocol v2.
	h, err := e.newHost(ctx, name, e.subnet.addr(gitHostByte), auth, "AcceptEnv GIT_PROTOCOL", func(h *Host) { e.Git = h })
	if err != nil {
		return err
	}
	e.RepoURL = fmt.Sprintf("ssh://%s@%s:%d%s", name, h.Addr, h.Port, e.bareDir)
	if err := e.initRepos(ctx); err != nil {
		return fmt.Errorf("git server: %w", err)
	}
	return nil
}

// initRepos creates the bare repository and the work repository, and the
// private git configuration both are used with.
func (e *Env) initRepos(ctx context.Context) error {
	home := filepath.Join(e.Dir, "gitconfig")
	e.gitEnv = []string{
		"PATH=/usr/local/bin:/usr/bin:/bin",
		"HOME=" + home,
		"LANG=C",
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_TERMINAL_PROMPT=0",
	}
	// Root pushes into a repository that the git user owns, which git
	// refuses ("dubious ownership") unless told otherwise. safe.directory
	// is honoured only in the global configuration.
	global := "[safe]\n\tdirectory = *\n[init]\n\tdefaultBranch = release\n"
	if err := os.WriteFile(filepath.Join(home, ".gitconfig"), []byte(global), 0o600); err != nil {
		return fmt.Errorf("git config: %w", err)
	}
	steps := [][]string{
		{"init", "-q", "--bare", e.bareDir},
		{"-C", e.bareDir, "symbolic-ref", "HEAD", "refs/heads/release"},
		{"init", "-q", "-b", "release", e.workDir},
		{"-C", e.workDir, "config", "user.name", "testhosts"},
		{"-C", e.workDir, "config", "user.email", "testhosts@localhost"},
		{"-C", e.workDir, "config", "commit.gpgsign", "false"},
	}
	for _, args := range steps {
		if _, err := run(ctx, e.gitEnv, "", "git", args...); err != nil {
			return err
		}
	}
	return e.chownRepo()
}

// chownRepo gives the bare repository to the git user, whose git refuses
// to serve a repository that belongs to someone else.
func (e *Env) chownRepo() error {
	err := filepath.WalkDir(e.bareDir, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, e.Git.uid, e.Git.gid)
	})
	if err != nil {
		return fmt.Errorf("chown bare repository: %w", err)
	}
	return nil
}

// Commit writes files (path relative to the repository root, with "/"
// separators, to content) into the work tree, commits everything on branch
// "release" and force-pushes it to the git server. It returns the full sha
// of the new commit. The commit is made even when nothing changed, so every
// call gives a new sha. Files are written 0644, or 0755 when their content
// starts with "#!" (scripts, such as repository hooks), creating folders as
// needed; use Remove to delete files.
func (e *Env) Commit(ctx context.Context, files map[string]string, msg string) (string, error) {
	e.gitMu.Lock()
	defer e.gitMu.Unlock()
	for rel, content := range files {
		p, err := e.workPath(rel)
		if err != nil {
			return "", fmt.Errorf("testhosts: commit: %w", err)
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return "", fmt.Errorf("testhosts: commit: %w", err)
		}
		mode := os.FileMode(0o644)
		if strings.HasPrefix(content, "#!") {
			mode = 0o755
		}
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			return "", fmt.Errorf("testhosts: commit: %w", err)
		}
		// WriteFile keeps the mode of a file that exists already.
		if err := os.Chmod(p, mode); err != nil {
			return "", fmt.Errorf("testhosts: commit: %w", err)
		}
	}
	sha, err := e.commitAndPush(ctx, msg)
	if err != nil {
		return "", fmt.Errorf("testhosts: commit: %w", err)
	}
	return sha, nil
}

// Remove deletes paths (files or folders, relative to the repository root)
// from the work tree and then commits and pushes like Commit. A path that
// is not in the repository is an error.
func (e *Env) Remove(ctx context.Context, paths []string, msg string) (string, error) {
	e.gitMu.Lock()
	defer e.gitMu.Unlock()
	args := []string{"rm", "-r", "-q", "--"}
	for _, rel := range paths {
		if _, err := e.workPath(rel); err != nil {
			return "", fmt.Errorf("testhosts: remove: %w", err)
		}
		args = append(args, filepath.FromSlash(rel))
	}
	if _, err := run(ctx, e.gitEnv, e.workDir, "git", args...); err != nil {
		return "", fmt.Errorf("testhosts: remove: %w", err)
	}
	sha, err := e.commitAndPush(ctx, msg)
	if err != nil {
		return "", fmt.Errorf("testhosts: remove: %w", err)
	}
	return sha, nil
}

// workPath checks that rel names something inside the work tree, outside
// .git, and returns its local path.
func (e *Env) workPath(rel string) (string, error) {
	local := filepath.FromSlash(rel)
	if !filepath.IsLocal(local) {
		return "", fmt.Errorf("path %q is not inside the repository", rel)
	}
	for _, part := range strings.Split(filepath.ToSlash(filepath.Clean(local)), "/") {
		if part == ".git" {
			return "", fmt.Errorf("path %q is inside .git", rel)
		}
	}
	return filepath.Join(e.workDir, local), nil
}

// commitAndPush commits the work tree, pushes it and returns the sha.
// Called with gitMu held.
func (e *Env) commitAndPush(ctx context.Context, msg string) (string, error) {
	if msg == "" {
		msg = "testhosts commit"
	}
	steps := [][]string{
		{"add", "-A"},
		{"commit", "-q", "--allow-empty", "-m", msg},
		{"push", "-q", "--force", e.bareDir, "HEAD:refs/heads/release"},
	}
	for _, args := range steps {
		if _, err := run(ctx, e.gitEnv, e.workDir, "git", args...); err != nil {
			return "", err
		}
	}
	if err := e.chownRepo(); err != nil {
		return "", err
	}
	out, err := run(ctx, e.gitEnv, e.workDir, "git", "rev-parse", "HEAD")
	if err != nil {
		return "", err
	}
	sha := strings.TrimSpace(out)
	if len(sha) != 40 {
		return "", errors.New("git rev-parse HEAD: not a sha: " + sha)
	}
	return sha, nil
}
