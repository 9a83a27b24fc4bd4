package gitsrc

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
	"github.com/go-git/go-git/v5/storage/filesystem"

	"github.com/pushdeploy/pushdeploy/deploy"
)

const (
	// archiveCacheSize bounds the object cache of one Archive.
	archiveCacheSize = 8 * cache.MiByte
	// largeBlob is the size above which a blob in the mirror is streamed
	// from its pack rather than read into memory.
	largeBlob = 1 << 20
	// maxLinkTarget bounds the symlink targets read into memory; a target
	// is far shorter on any real file system.
	maxLinkTarget = 64 << 10
	// maxListed is how many submodule paths an error names.
	maxListed = 5
)

// SubmoduleError is returned by Archive for a commit whose tree holds
// submodules (gitlinks): push mode ships the files of one repository only.
type SubmoduleError struct {
	Commit string
	Paths  []string // in tree order
}

func (e *SubmoduleError) Error() string {
	paths := e.Paths
	more := ""
	if len(paths) > maxListed {
		more = fmt.Sprintf(" and %d more", len(paths)-maxListed)
		paths = paths[:maxListed]
	}
	return fmt.Sprintf("commit %s has submodules (%s%s): push mode cannot ship them; use DEPLOY_FETCH=clone",
		e.Commit, strings.Join(paths, ", "), more)
}

// Archive writes the files of commit, a full hash (as Resolve returns),
// to w as a tar stream for `tar -x` on a host: directories (0755) before
// their contents, regular files 0644 or 0755 as git records them, symlinks
// with their target exactly as stored (never followed), no .git folder.
// The stream is deterministic: git tree order, every mtime the commit's
// committer time, uid and gid 0 and no owner names, so every host gets the
// same tree and a user other than root can extract it. Attributes such as
// export-ignore are not applied: the host gets what a clone checks out.
//
// The commit is read from the mirror at MirrorDir; when it is not there
// yet, the release branch is fetched into the mirror first (or, without a
// MirrorDir, into memory for this call). Archive does not check that the
// commit is still on the branch; Resolve does.
//
// It returns an error, before writing anything, when commit is not a full
// hash, is not in the repository after the fetch (a *deploy.CommitError),
// has submodules (a *SubmoduleError) or has a path a checkout would refuse
// (".", "..", ".git", a name given twice). Once writing has started, an
// error from w or the end of ctx stops it (ctx.Err() is wrapped in the
// error) and w holds a truncated stream. It does not close w. Archive is
// safe for concurrent use; only the fetch into the mirror runs one at a
// time. Error messages never show the password of an https URL.
func (s *Source) Archive(ctx context.Context, commit string, w io.Writer) error {
	if err := deploy.ValidCommit(commit); err != nil {
		return fmt.Errorf("archive: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("archive commit %s: %w", commit, err)
	}
	err := s.archive(ctx, plumbing.NewHash(commit), w)
	if err != nil {
		return deploy.RedactError(fmt.Errorf("archive commit %s of %s: %w", commit, s.shownURL(), err), s.cfg.URL)
	}
	return nil
}

func (s *Source) archive(ctx context.Context, h plumbing.Hash, w io.Writer) error {
	st, c, err := s.archiveCommit(ctx, h)
	if err != nil {
		return err
	}
	defer closeStorer(st)
	a := &archiver{ctx: ctx, st: st, mtime: time.Unix(c.Committer.When.Unix(), 0)}
	var subs []string
	err = a.walk(c.TreeHash, "", func(path string, e object.TreeEntry) error {
		if e.Mode == filemode.Submodule {
			subs = append(subs, path)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if len(subs) > 0 {
		return &SubmoduleError{Commit: h.String(), Paths: subs}
	}
	a.tw = tar.NewWriter(w)
	if err := a.walk(c.TreeHash, "", a.write); err != nil {
		return err
	}
	if err := a.tw.Close(); err != nil {
		return fmt.Errorf("write archive: %w", err)
	}
	return nil
}

// archiveCommit makes sure the commit is in the mirror, fetching the
// release branch when it is not, and returns the storage to read it from
// and the commit.
func (s *Source) archiveCommit(ctx context.Context, h plumbing.Hash) (storer.EncodedObjectStorer, *object.Commit, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	repo, err := s.openMirror()
	if err != nil {
		return nil, nil, err
	}
	if _, err := object.GetCommit(repo.Storer, h); errors.Is(err, plumbing.ErrObjectNotFound) {
		t, err := s.open(ctx)
		if err != nil {
			return nil, nil, err
		}
		defer t.close()
		if _, _, err := s.fetch(ctx, repo, t.auth); err != nil {
			return nil, nil, t.explain(err)
		}
	}
	st := repo.Storer
	if fs, ok := st.(*filesystem.Storage); ok {
		// A storage of this call's own, which streams large blobs and
		// keeps a small cache, read while other calls fetch: go-git
		// writes a pack's index before the pack, so a pack it lists is
		// complete.
		st = filesystem.NewStorageWithOptions(fs.Filesystem(), cache.NewObjectLRU(archiveCacheSize),
			filesystem.Options{KeepDescriptors: true, LargeObjectThreshold: largeBlob})
	}
	c, err := object.GetCommit(st, h)
	if err != nil {
		closeStorer(st)
		if errors.Is(err, plumbing.ErrObjectNotFound) {
			return nil, nil, &deploy.CommitError{Commit: h.String(), Branch: s.cfg.Branch}
		}
		return nil, nil, fmt.Errorf("read commit: %w", err)
	}
	return st, c, nil
}

func closeStorer(st storer.EncodedObjectStorer) {
	if c, ok := st.(io.Closer); ok {
		_ = c.Close() // read only: nothing to lose
	}
}

// archiver writes the tree of one commit as tar entries.
type archiver struct {
	ctx   context.Context // of the one Archive call that owns it
	st    storer.EncodedObjectStorer
	tw    *tar.Writer
	mtime time.Time
}

// walk calls fn for every entry under the tree h, in tree order, a
// directory before its contents, with the entry's path ("/"-separated,
// relative). It refuses names a checkout would refuse.
func (a *archiver) walk(h plumbing.Hash, dir string, fn func(path string, e object.TreeEntry) error) error {
	tree, err := object.GetTree(a.st, h)
	if err != nil {
		return fmt.Errorf("read tree /%s: %w", dir, err)
	}
	seen := make(map[string]bool, len(tree.Entries))
	for _, e := range tree.Entries {
		if err := a.ctx.Err(); err != nil {
			return err
		}
		path := dir + e.Name
		if err := checkName(e.Name); err != nil {
			return fmt.Errorf("tree /%s: %w", dir, err)
		}
		if seen[e.Name] {
			return fmt.Errorf("path %q appears twice in its tree", path)
		}
		seen[e.Name] = true
		if err := fn(path, e); err != nil {
			return err
		}
		if e.Mode == filemode.Dir {
			if err := a.walk(e.Hash, path+"/", fn); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkName refuses tree entry names that could place a file outside the
// release folder or inside a .git folder. Git itself never writes them.
func checkName(name string) error {
	switch {
	case name == "", name == ".", name == "..":
		return fmt.Errorf("entry name %q is not allowed", name)
	case strings.ContainsAny(name, "/\x00"):
		return fmt.Errorf("entry name %q contains a slash or NUL", name)
	case strings.EqualFold(name, ".git"):
		return fmt.Errorf("entry name %q is not allowed", name)
	}
	return nil
}

// write writes the tar entry of one tree entry (submodules were refused
// before anything was written).
func (a *archiver) write(path string, e object.TreeEntry) error {
	hdr := &tar.Header{Name: path, ModTime: a.mtime, Format: tar.FormatPAX}
	var blob *object.Blob
	var err error
	switch e.Mode {
	case filemode.Dir:
		hdr.Typeflag, hdr.Name, hdr.Mode = tar.TypeDir, path+"/", 0o755
	case filemode.Regular, filemode.Deprecated, filemode.Executable:
		hdr.Typeflag, hdr.Mode = tar.TypeReg, 0o644
		if e.Mode == filemode.Executable {
			hdr.Mode = 0o755
		}
		if blob, err = object.GetBlob(a.st, e.Hash); err != nil {
			return fmt.Errorf("read %s: %w", path, err)
		}
		hdr.Size = blob.Size
	case filemode.Symlink:
		hdr.Typeflag, hdr.Mode = tar.TypeSymlink, 0o777
		if hdr.Linkname, err = a.linkTarget(e.Hash); err != nil {
			return fmt.Errorf("read symlink %s: %w", path, err)
		}
	default:
		return fmt.Errorf("path %s has an unknown mode %s", path, e.Mode)
	}
	if err := a.tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("write archive: %s: %w", path, err)
	}
	if blob == nil {
		return nil
	}
	return a.copyBlob(path, blob)
}

// copyBlob streams the contents of a regular file into the archive.
func (a *archiver) copyBlob(path string, blob *object.Blob) error {
	r, err := blob.Reader()
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	defer r.Close()
	n, err := io.Copy(a.tw, &ctxReader{ctx: a.ctx, r: r})
	switch {
	case a.ctx.Err() != nil:
		return a.ctx.Err()
	case err != nil:
		return fmt.Errorf("write archive: %s: %w", path, err)
	case n != blob.Size:
		return fmt.Errorf("read %s: got %d bytes, want %d", path, n, blob.Size)
	}
	return nil
}

// linkTarget returns the contents of a symlink's blob.
func (a *archiver) linkTarget(h plumbing.Hash) (string, error) {
	blob, err := object.GetBlob(a.st, h)
	if err != nil {
		return "", err
	}
	if blob.Size > maxLinkTarget {
		return "", fmt.Errorf("target of %d bytes is longer than %d", blob.Size, maxLinkTarget)
	}
	r, err := blob.Reader()
	if err != nil {
		return "", err
	}
	defer r.Close()
	b, err := io.ReadAll(io.LimitReader(r, maxLinkTarget+1))
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// ctxReader stops reading once ctx is done, so a large file does not hold
// Archive after its context has ended.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (r *ctxReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(p)
}
