package gitsrc

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/storage/memory"

	"github.com/pushdeploy/pushdeploy/deploy"
)

// Config says where the repository is and how to reach it.
type Config struct {
	// URL is the repository, in any form deploy.ParseRepoURL reads (the
	// forms git reads): ssh://user@host:port/path, user@host:path
	// (scp-like), https://…, git://…, file://… or a local path.
	URL string
	// Branch is the release branch, the only one that is deployed.
	Branch string
	// Key is the PEM of the read-only deploy key. When empty, SSH URLs use
	// the ssh-agent at SSH_AUTH_SOCK, if there is one.
	Key []byte
	// KeyPassphrase decrypts Key when it is encrypted.
	KeyPassphrase string
	// KnownHosts is the path of the known_hosts file the git server's key
	// is checked against. Required for SSH URLs.
	KnownHosts string
	// MirrorDir is where a bare mirror of the release branch is kept, for
	// looking up requested commits; created on demand. When empty, each
	// lookup fetches the whole branch into memory.
	MirrorDir string
}

// Source is a deploy.Resolver backed by a git repository. It is safe for
// concurrent use; lookups in the mirror run one at a time.
type Source struct {
	cfg       Config
	repo      deploy.RepoURL // cfg.URL as git reads it
	repoErr   error          // why cfg.URL cannot be read, returned by every call
	agentSock string
	caBundle  []byte // extra CA certificates for https; set by tests

	mu sync.Mutex // held while the mirror is used
}

// New returns a Source for c. The ssh-agent socket is taken from
// SSH_AUTH_SOCK now, not on each Resolve.
func New(c Config) *Source {
	s := &Source{cfg: c, agentSock: os.Getenv("SSH_AUTH_SOCK")}
	s.repo, s.repoErr = deploy.ParseRepoURL(c.URL)
	return s
}

// shownURL is the repository URL as messages show it: without its password.
func (s *Source) shownURL() string { return deploy.RedactPassword(s.cfg.URL, s.cfg.URL) }

var (
	_ deploy.Resolver = (*Source)(nil)
	_ deploy.Archiver = (*Source)(nil)
)

// Resolve checks p against the repository and returns the commit to ship:
// the tip of the release branch, or p.Commit (full or a unique prefix) when
// it is reachable from that tip. It returns an error when p.Branch is not
// the release branch, p.Commit is not a hash or not on the branch, the
// branch does not exist, or the git server cannot be reached or its host
// key is unknown or changed (a *sshkeys.HostKeyError). Error messages never show
// the password of an https URL.
//
// ctx bounds the whole call except one gap in go-git v5: it opens SSH
// connections without a context, so a git server that accepts the TCP
// connection and then says nothing holds Resolve until the connection dies.
// (ctx's deadline does bound the TCP connect itself.)
func (s *Source) Resolve(ctx context.Context, p deploy.Push) (deploy.Release, error) {
	rel, err := s.resolve(ctx, p)
	if err != nil {
		var nf *branchNotFoundError
		if !errors.As(err, &nf) {
			err = fmt.Errorf("resolve branch %s on %s: %w", s.cfg.Branch, s.shownURL(), err)
		}
		return deploy.Release{}, deploy.RedactError(err, s.cfg.URL)
	}
	return rel, nil
}

func (s *Source) resolve(ctx context.Context, p deploy.Push) (deploy.Release, error) {
	if err := deploy.ValidBranch(s.cfg.Branch); err != nil {
		return deploy.Release{}, fmt.Errorf("release branch: %w", err)
	}
	if p.Branch != s.cfg.Branch {
		return deploy.Release{}, fmt.Errorf("branch %q is not the release branch %q: only the release branch is deployed", p.Branch, s.cfg.Branch)
	}
	if p.Commit != "" {
		if err := deploy.ValidCommitPrefix(p.Commit); err != nil {
			return deploy.Release{}, err
		}
	}
	if err := ctx.Err(); err != nil {
		return deploy.Release{}, err
	}

	t, err := s.open(ctx)
	if err != nil {
		return deploy.Release{}, err
	}
	defer t.close()

	tip, err := s.tip(ctx, t.auth)
	if err != nil {
		return deploy.Release{}, t.explain(err)
	}
	commit := tip
	if p.Commit != "" && !strings.EqualFold(p.Commit, tip.String()) {
		commit, err = s.find(ctx, t.auth, strings.ToLower(p.Commit))
		if err != nil {
			return deploy.Release{}, t.explain(err)
		}
	}
	return deploy.Release{
		RepoURL:     s.cfg.URL,
		Branch:      s.cfg.Branch,
		Commit:      commit.String(),
		GitHostKeys: t.hostKeyLines(),
	}, nil
}

// branchNotFoundError is returned when the remote has no release branch.
type branchNotFoundError struct {
	branch, url string
}

func (e *branchNotFoundError) Error() string {
	return fmt.Sprintf("branch %q not found on %s", e.branch, e.url)
}

// tip lists the remote's refs, which fetches no objects, and returns the
// hash the release branch points to.
func (s *Source) tip(ctx context.Context, auth transport.AuthMethod) (plumbing.Hash, error) {
	remote := git.NewRemote(memory.NewStorage(), &config.RemoteConfig{
		Name: "origin",
		URLs: []string{goGitURL(s.repo)},
	})
	refs, err := remote.ListContext(ctx, &git.ListOptions{Auth: auth, PeelingOption: git.IgnorePeeled, CABundle: s.caBundle})
	if errors.Is(err, transport.ErrEmptyRemoteRepository) {
		refs, err = nil, nil
	}
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("list refs: %w", err)
	}
	name := plumbing.NewBranchReferenceName(s.cfg.Branch)
	for _, ref := range refs {
		if ref.Name() == name && ref.Type() == plumbing.HashReference {
			return ref.Hash(), nil
		}
	}
	return plumbing.ZeroHash, &branchNotFoundError{branch: s.cfg.Branch, url: s.shownURL()}
}
