package testhosts

import (
	"context"
	"fmt"
)

// Rewind force-pushes branch "release" back to sha, an earlier commit of
// it, as someone rewriting history would: the commits after sha are no
// longer on the branch. Later Commit calls build on sha.
func (e *Env) Rewind(ctx context.Context, sha string) error {
	e.gitMu.Lock()
	defer e.gitMu.Unlock()
	steps := [][]string{
		{"reset", "-q", "--hard", sha},
		{"push", "-q", "--force", e.bareDir, "HEAD:refs/heads/release"},
	}
	for _, args := range steps {
		if _, err := run(ctx, e.gitEnv, e.workDir, "git", args...); err != nil {
			return fmt.Errorf("testhosts: rewind: %w", err)
		}
	}
	if err := e.chownRepo(); err != nil {
		return fmt.Errorf("testhosts: rewind: %w", err)
	}
	return nil
}

// DeleteBranch deletes branch "release" on the git server. The next Commit
// pushes it again.
func (e *Env) DeleteBranch(ctx context.Context) error {
	e.gitMu.Lock()
	defer e.gitMu.Unlock()
	// Not a push: the server refuses to delete its HEAD branch that way.
	if _, err := run(ctx, e.gitEnv, "", "git", "-C", e.bareDir, "update-ref", "-d", "refs/heads/release"); err != nil {
		return fmt.Errorf("testhosts: delete branch: %w", err)
	}
	if err := e.chownRepo(); err != nil {
		return fmt.Errorf("testhosts: delete branch: %w", err)
	}
	return nil
}
