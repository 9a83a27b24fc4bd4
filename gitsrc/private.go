package gitsrc

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/go-git/go-billy/v5"
	"github.com/go-git/go-billy/v5/osfs"
	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/storage/filesystem"
)

// privateFS is a folder of the operating system's file system as go-git
// sees it, except that everything it creates is private to the deployer's
// user: folders 0700, files 0600, whatever the umask. go-billy's osfs
// creates them 0755 and 0666 (less the umask), and a process-wide umask
// would be inherited by the commands run for `local` hosts. It has no
// Chmod (billy.Change): nothing can widen a mode.
type privateFS struct {
	billy.Filesystem
}

const (
	privateDir  = 0o700
	privateFile = 0o600
)

func (p privateFS) mkdirFor(name string) error {
	if dir := filepath.Dir(name); dir != "." && dir != "/" {
		return p.Filesystem.MkdirAll(dir, privateDir)
	}
	return nil
}

func (p privateFS) Create(name string) (billy.File, error) {
	return p.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_TRUNC, privateFile)
}

func (p privateFS) OpenFile(name string, flag int, perm os.FileMode) (billy.File, error) {
	if flag&os.O_CREATE != 0 {
		if err := p.mkdirFor(name); err != nil {
			return nil, err
		}
	}
	return p.Filesystem.OpenFile(name, flag, perm&privateFile)
}

func (p privateFS) MkdirAll(name string, _ os.FileMode) error {
	return p.Filesystem.MkdirAll(name, privateDir)
}

func (p privateFS) Rename(from, to string) error {
	if err := p.mkdirFor(to); err != nil {
		return err
	}
	return p.Filesystem.Rename(from, to)
}

func (p privateFS) TempFile(dir, prefix string) (billy.File, error) {
	if dir != "" {
		if err := p.Filesystem.MkdirAll(dir, privateDir); err != nil {
			return nil, err
		}
	}
	return p.Filesystem.TempFile(dir, prefix) // os.CreateTemp: 0600
}

func (p privateFS) Symlink(target, link string) error {
	if err := p.mkdirFor(link); err != nil {
		return err
	}
	return p.Filesystem.Symlink(target, link)
}

func (p privateFS) Chroot(dir string) (billy.Filesystem, error) {
	fs, err := p.Filesystem.Chroot(dir)
	if err != nil {
		return nil, err
	}
	return privateFS{fs}, nil
}

func (p privateFS) Capabilities() billy.Capability { return billy.Capabilities(p.Filesystem) }

// openPrivate opens the bare repository at dir, or creates it (and its
// parent folders) private to the deployer's user.
func openPrivate(dir string) (*git.Repository, error) {
	if err := os.MkdirAll(dir, privateDir); err != nil {
		return nil, fmt.Errorf("create mirror: %w", err)
	}
	st := filesystem.NewStorage(privateFS{osfs.New(dir, osfs.WithBoundOS())}, cache.NewObjectLRUDefault())
	repo, err := git.Open(st, nil)
	if errors.Is(err, git.ErrRepositoryNotExists) {
		repo, err = git.Init(st, nil)
	}
	return repo, err
}
