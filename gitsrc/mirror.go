package gitsrc

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/storage/memory"

	"github.com/pushdeploy/pushdeploy/deploy"
)

// find fetches the release branch into the mirror and returns the commit
// reachable from its tip whose hash is, or starts with, want (lower-case).
func (s *Source) find(ctx context.Context, auth transport.AuthMethod, want string) (plumbing.Hash, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	repo, err := s.openMirror()
	if err != nil {
		return plumbing.ZeroHash, err
	}
	tip, _, err := s.fetch(ctx, repo, auth)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	return s.findOnBranch(ctx, repo, tip, want)
}

// openMirror opens the bare mirror at MirrorDir, creating it if missing,
// with a remote "origin" that names the repository as written (without a
// password) and fetches only the release branch.
func (s *Source) openMirror() (*git.Repository, error) {
	dir := s.cfg.MirrorDir
	var repo *git.Repository
	var err error
	if dir == "" {
		dir = "in memory"
		repo, err = git.Init(memory.NewStorage(), nil)
	} else {
		repo, err = openPrivate(dir) // folders 0700, files 0600
	}
	if err != nil {
		return nil, fmt.Errorf("open mirror %s: %w", dir, err)
	}
	cfg, err := repo.Config()
	if err != nil {
		return nil, fmt.Errorf("read mirror config %s: %w", dir, err)
	}
	origin := &config.RemoteConfig{
		Name:  "origin",
		URLs:  []string{s.shownURL()},
		Fetch: []config.RefSpec{s.refSpec()},
	}
	if old, ok := cfg.Remotes[origin.Name]; !ok || !sameRemote(old, origin) {
		cfg.Remotes[origin.Name] = origin
		if err := repo.SetConfig(cfg); err != nil {
			return nil, fmt.Errorf("write mirror config %s: %w", dir, err)
		}
	}
	return repo, nil
}

func sameRemote(a, b *config.RemoteConfig) bool {
	return slices.Equal(a.URLs, b.URLs) && slices.Equal(a.Fetch, b.Fetch)
}

// refSpec maps the release branch onto itself, forced: the mirror follows
// the remote even when the branch is rewritten.
func (s *Source) refSpec() config.RefSpec {
	ref := plumbing.NewBranchReferenceName(s.cfg.Branch)
	return config.RefSpec("+" + ref + ":" + ref)
}

// fetch brings the release branch of the mirror up to date and returns its
// tip, and whether there was nothing new to fetch.
func (s *Source) fetch(ctx context.Context, repo *git.Repository, auth transport.AuthMethod) (tip plumbing.Hash, upToDate bool, err error) {
	err = repo.FetchContext(ctx, &git.FetchOptions{
		RemoteName: "origin",
		RemoteURL:  goGitURL(s.repo), // the config holds the URL for people to read
		RefSpecs:   []config.RefSpec{s.refSpec()},
		Auth:       auth,
		CABundle:   s.caBundle,
		Tags:       git.NoTags,
		Force:      true,
	})
	upToDate = errors.Is(err, git.NoErrAlreadyUpToDate)
	if err != nil && !upToDate {
		return plumbing.ZeroHash, false, fmt.Errorf("fetch into mirror: %w", err)
	}
	ref, err := repo.Reference(plumbing.NewBranchReferenceName(s.cfg.Branch), true)
	if err != nil {
		return plumbing.ZeroHash, false, fmt.Errorf("fetch into mirror: %w", err)
	}
	return ref.Hash(), upToDate, nil
}

// findOnBranch walks the history of tip for the commit whose hash starts
// with want. A prefix that matches several commits is refused.
func (s *Source) findOnBranch(ctx context.Context, repo *git.Repository, tip plumbing.Hash, want string) (plumbing.Hash, error) {
	full := len(want) == len(tip.String())
	if full {
		// Not in the repository at all: no need to walk.
		if _, err := repo.CommitObject(plumbing.NewHash(want)); err != nil {
			return plumbing.ZeroHash, &deploy.CommitError{Commit: want, Branch: s.cfg.Branch}
		}
	}
	commits, err := repo.Log(&git.LogOptions{From: tip})
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("walk branch %s: %w", s.cfg.Branch, err)
	}
	defer commits.Close()
	var found []plumbing.Hash
	n := 0
	err = commits.ForEach(func(c *object.Commit) error {
		if n++; n%1000 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if strings.HasPrefix(c.Hash.String(), want) {
			found = append(found, c.Hash)
			if full || len(found) > 1 {
				return storer.ErrStop
			}
		}
		return nil
	})
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("walk branch %s: %w", s.cfg.Branch, err)
	}
	switch len(found) {
	case 0:
		return plumbing.ZeroHash, &deploy.CommitError{Commit: want, Branch: s.cfg.Branch}
	case 1:
		return found[0], nil
	default:
		return plumbing.ZeroHash, &deploy.CommitError{Commit: want, Branch: s.cfg.Branch, Reason: fmt.Sprintf("commit prefix %s is ambiguous on branch %s: it matches %s and %s (at least); give more digits",
			want, s.cfg.Branch, found[0], found[1])}
	}
}
