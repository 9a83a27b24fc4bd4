package testhosts

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
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
