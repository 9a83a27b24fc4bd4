package testhosts

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// CommitSymlinks makes each path (relative to the repository root) a
// symlink to its target, replacing what is there, then commits and pushes
// like Commit. Targets are written as given: they may point anywhere, as a
// hostile repository's would.
func (e *Env) CommitSymlinks(ctx context.Context, links map[string]string, msg string) (string, error) {
	e.gitMu.Lock()
	defer e.gitMu.Unlock()
	for rel, target := range links {
		p, err := e.workPath(rel)
		if err != nil {
			return "", fmt.Errorf("testhosts: commit symlinks: %w", err)
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return "", fmt.Errorf("testhosts: commit symlinks: %w", err)
		}
		if err := os.RemoveAll(p); err != nil {
			return "", fmt.Errorf("testhosts: commit symlinks: %w", err)
		}
		if err := os.Symlink(target, p); err != nil {
			return "", fmt.Errorf("testhosts: commit symlinks: %w", err)
		}
	}
	sha, err := e.commitAndPush(ctx, msg)
	if err != nil {
		return "", fmt.Errorf("testhosts: commit symlinks: %w", err)
	}
	return sha, nil
}

// CommitLongSymlink commits path as a symlink to target through git's
// index alone, then pushes like Commit: for targets no file system takes
// (longer than PATH_MAX), which a repository can still hold. The work
// tree does not get the link, so the next Commit removes it again.
func (e *Env) CommitLongSymlink(ctx context.Context, path, target, msg string) (string, error) {
	e.gitMu.Lock()
	defer e.gitMu.Unlock()
	if _, err := e.workPath(path); err != nil {
		return "", fmt.Errorf("testhosts: commit long symlink: %w", err)
	}
	blob := filepath.Join(e.Dir, "long-symlink-target")
	if err := os.WriteFile(blob, []byte(target), 0o644); err != nil {
		return "", fmt.Errorf("testhosts: commit long symlink: %w", err)
	}
	out, err := run(ctx, e.gitEnv, e.workDir, "git", "hash-object", "-w", blob)
	if err != nil {
		return "", fmt.Errorf("testhosts: commit long symlink: %w", err)
	}
	entry := "120000," + strings.TrimSpace(out) + "," + path
	if _, err := run(ctx, e.gitEnv, e.workDir, "git", "update-index", "--add", "--cacheinfo", entry); err != nil {
		return "", fmt.Errorf("testhosts: commit long symlink: %w", err)
	}
	sha, err := e.commitIndexAndPush(ctx, e.bareDir, msg)
	if err != nil {
		return "", fmt.Errorf("testhosts: commit long symlink: %w", err)
	}
	return sha, nil
}
