package testhosts

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// readonlyScript is the forced command of the deploy key on the git server.
// It lets the deploy key fetch any repository the git user can read and do
// nothing else: git-shell gets the client's request exactly as sent, so
// that git-upload-pack resolves the path as on any git server (~/app.git
// and ~user/app.git from those users' homes, app.git from the git user's
// home, /path as it is). %[1]s is the file every request is appended to
// (GitRequests); Start allows only paths that need no quoting.
const readonlyScript = `#!/bin/sh
# git-readonly: the deploy key may fetch (git-upload-pack) and do nothing else.
printf '%%s\n' "${SSH_ORIGINAL_COMMAND:-a shell}" >> %[1]s
case "$SSH_ORIGINAL_COMMAND" in
"git-upload-pack '"*"'" | "git upload-pack '"*"'")
	exec git-shell -c "$SSH_ORIGINAL_COMMAND"
	;;
esac
echo "git-readonly: refused: ${SSH_ORIGINAL_COMMAND:-a shell}" >&2
exit 1
`

// startGit creates the git server, its bare repository app.git, and the
// work repository Commit uses. With port22 the server also listens on
// port 22 of its address, where scp-like URLs (which name no port) reach
// it.
func (e *Env) startGit(ctx context.Context, port22 bool) error {
	name := e.prefix + "git"
	home := filepath.Join(e.Dir, "home", name)
	e.bareDir = filepath.Join(home, "app.git")
	e.workDir = filepath.Join(e.Dir, "work")
	e.gitRequests = filepath.Join(home, "requests.log")
	script := filepath.Join(e.Dir, "bin", "git-readonly")
	if err := os.WriteFile(script, []byte(fmt.Sprintf(readonlyScript, e.gitRequests)), 0o755); err != nil {
		return fmt.Errorf("git server: %w", err)
	}
	deploy, err := publicKey(e.GitKey)
	if err != nil {
		return fmt.Errorf("git server: %w", err)
	}
	auth := e.deployKeyLine(deploy)
	addr := e.subnet.addr(gitHostByte)
	// GIT_PROTOCOL lets clients use protocol v2.
	extra := "AcceptEnv GIT_PROTOCOL"
	if port22 {
		extra += "\nListenAddress " + addr + ":22"
	}
	h, err := e.newHost(ctx, name, addr, auth, extra, func(h *Host) { e.Git = h })
	if err != nil {
		return err
	}
	if port22 {
		if err := h.waitPort22(ctx); err != nil {
			return fmt.Errorf("git server: %w", err)
		}
		e.gitPort22Line = addr + " " + strings.SplitN(h.HostKeyLine, " ", 2)[1]
	}
	e.RepoURL = fmt.Sprintf("ssh://%s@%s:%d%s", name, h.Addr, h.Port, e.bareDir)
	if err := e.initRepos(ctx); err != nil {
		return fmt.Errorf("git server: %w", err)
	}
	return nil
}

// ErrPort22 is returned by Start when Options.GitPort22 is set and port 22
// of the git server's address cannot be had (a system sshd listening on
// every address takes it).
var ErrPort22 = errors.New("port 22 of the git server's address is taken")

// waitPort22 waits until sshd says it listens on port 22 too, or that it
// cannot, and checks that port 22 speaks SSH.
func (h *Host) waitPort22(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	want := fmt.Sprintf("Server listening on %s port 22.", h.Addr)
	failed := fmt.Sprintf("Bind to port 22 on %s failed", h.Addr)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		log := h.logFrom(0)
		switch {
		case strings.Contains(log, failed):
			return fmt.Errorf("%w: %s", ErrPort22, tail(log))
		case strings.Contains(log, want):
			return banner(ctx, h.Addr, 22)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("sshd did not say it listens on port 22: %w; log:\n%s", ctx.Err(), tail(log))
		case <-tick.C:
		}
	}
}

// GitRequests returns the commands the deploy key asked the git server to
// run, oldest first, as SSH sent them (for git, "git-upload-pack 'PATH'"
// with PATH as the client wrote it).
func (e *Env) GitRequests() ([]string, error) {
	b, err := os.ReadFile(e.gitRequests)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("testhosts: git requests: %w", err)
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n"), nil
}

// AddRepo creates another bare repository on the git server, at dir (an
// absolute path; its missing parent folders are created, world-readable),
// owned by the git user, whose branch release holds one new commit with
// files (as Commit writes them). It returns that commit. Commit and
// Remove go on working on app.git only; the work tree keeps the files.
func (e *Env) AddRepo(ctx context.Context, dir string, files map[string]string, msg string) (string, error) {
	if !safePath.MatchString(dir) {
		return "", fmt.Errorf("testhosts: add repo: %q is not an absolute path of letters, digits and /._-", dir)
	}
	e.gitMu.Lock()
	defer e.gitMu.Unlock()
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return "", fmt.Errorf("testhosts: add repo: %w", err)
	}
	for _, args := range [][]string{
		{"init", "-q", "--bare", dir},
		{"-C", dir, "symbolic-ref", "HEAD", "refs/heads/release"},
	} {
		if _, err := run(ctx, e.gitEnv, "", "git", args...); err != nil {
			return "", fmt.Errorf("testhosts: add repo: %w", err)
		}
	}
	if err := e.writeFiles(files); err != nil {
		return "", fmt.Errorf("testhosts: add repo: %w", err)
	}
	sha, err := e.commitAndPushTo(ctx, dir, msg)
	if err != nil {
		return "", fmt.Errorf("testhosts: add repo: %w", err)
	}
	return sha, nil
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
func (e *Env) chownRepo() error { return e.chownDir(e.bareDir) }

// chownDir gives dir and everything in it to the git user.
func (e *Env) chownDir(dir string) error {
	err := filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
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
	if err := e.writeFiles(files); err != nil {
		return "", fmt.Errorf("testhosts: commit: %w", err)
	}
	sha, err := e.commitAndPush(ctx, msg)
	if err != nil {
		return "", fmt.Errorf("testhosts: commit: %w", err)
	}
	return sha, nil
}

// CommitBranch is Commit, but pushes the new commit to branch instead of
// "release" (which stays where it was). The work tree goes on from the
// new commit: a later Commit builds on it.
func (e *Env) CommitBranch(ctx context.Context, branch string, files map[string]string, msg string) (string, error) {
	e.gitMu.Lock()
	defer e.gitMu.Unlock()
	if err := e.writeFiles(files); err != nil {
		return "", fmt.Errorf("testhosts: commit on %s: %w", branch, err)
	}
	sha, err := e.commitAndPushRef(ctx, e.bareDir, "refs/heads/"+branch, msg)
	if err != nil {
		return "", fmt.Errorf("testhosts: commit on %s: %w", branch, err)
	}
	return sha, nil
}

// PushBranch sets branch on the git server to the commit sha (which the
// server has), as a force-push of it does.
func (e *Env) PushBranch(ctx context.Context, sha, branch string) error {
	e.gitMu.Lock()
	defer e.gitMu.Unlock()
	if _, err := run(ctx, e.gitEnv, e.workDir, "git", "push", "-q", "--force", e.bareDir, sha+":refs/heads/"+branch); err != nil {
		return fmt.Errorf("testhosts: push %s to %s: %w", sha, branch, err)
	}
	return e.chownDir(e.bareDir)
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

// writeFiles writes files into the work tree, as Commit says. Called with
// gitMu held.
func (e *Env) writeFiles(files map[string]string) error {
	for rel, content := range files {
		p, err := e.workPath(rel)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		mode := os.FileMode(0o644)
		if strings.HasPrefix(content, "#!") {
			mode = 0o755
		}
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			return err
		}
		// WriteFile keeps the mode of a file that exists already.
		if err := os.Chmod(p, mode); err != nil {
			return err
		}
	}
	return nil
}

// commitAndPush commits the work tree, pushes it to app.git and returns
// the sha. Called with gitMu held.
func (e *Env) commitAndPush(ctx context.Context, msg string) (string, error) {
	return e.commitAndPushTo(ctx, e.bareDir, msg)
}

// commitAndPushTo commits the work tree, pushes it to the bare repository
// bare and returns the sha. Called with gitMu held.
func (e *Env) commitAndPushTo(ctx context.Context, bare, msg string) (string, error) {
	return e.commitAndPushRef(ctx, bare, "refs/heads/release", msg)
}

// commitIndexAndPush commits what git's index holds, pushes it to the bare
// repository bare and returns the sha. Called with gitMu held.
func (e *Env) commitIndexAndPush(ctx context.Context, bare, msg string) (string, error) {
	return e.commitIndexAndPushRef(ctx, bare, "refs/heads/release", msg)
}

// commitAndPushRef is commitAndPushTo, pushing to ref.
func (e *Env) commitAndPushRef(ctx context.Context, bare, ref, msg string) (string, error) {
	if _, err := run(ctx, e.gitEnv, e.workDir, "git", "add", "-A"); err != nil {
		return "", err
	}
	return e.commitIndexAndPushRef(ctx, bare, ref, msg)
}

// commitIndexAndPushRef is commitIndexAndPush, pushing to ref.
func (e *Env) commitIndexAndPushRef(ctx context.Context, bare, ref, msg string) (string, error) {
	if msg == "" {
		msg = "testhosts commit"
	}
	steps := [][]string{
		{"commit", "-q", "--allow-empty", "-m", msg},
		{"push", "-q", "--force", bare, "HEAD:" + ref},
	}
	for _, args := range steps {
		if _, err := run(ctx, e.gitEnv, e.workDir, "git", args...); err != nil {
			return "", err
		}
	}
	if err := e.chownDir(bare); err != nil {
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
