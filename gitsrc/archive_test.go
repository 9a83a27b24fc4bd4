package gitsrc

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/google/go-cmp/cmp"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/pushdeploy/pushdeploy/deploy"
	"github.com/pushdeploy/pushdeploy/internal/sshkeys"
	"github.com/pushdeploy/pushdeploy/internal/testhosts"
)

// TestArchiveMatchesGitArchive extracts Archive's stream with the real tar
// and compares the result with what `git archive` gives.
func TestArchiveMatchesGitArchive(t *testing.T) {
	r := newCLIRepo(t)
	first, second := fillRepo(r)
	for _, mirror := range []bool{true, false} {
		name := "in memory"
		cfg := Config{URL: r.url(), Branch: "release"}
		if mirror {
			name = "mirror"
			cfg.MirrorDir = filepath.Join(t.TempDir(), "mirror.git")
		}
		t.Run(name, func(t *testing.T) {
			s := New(cfg)
			for _, commit := range []string{first, second} {
				got := archive(t, s, commit)
				var want bytes.Buffer
				runGit(t, r.dir, &want, "-c", "tar.umask=022", "archive", "--format=tar", commit)

				gotDir, wantDir := extract(t, got), extract(t, want.Bytes())
				if diff := cmp.Diff(snapshot(t, wantDir), snapshot(t, gotDir)); diff != "" {
					t.Errorf("%s: extracted tree (-git archive +Archive):\n%s", commit, diff)
				}
				if diff := cmp.Diff(names(headers(t, want.Bytes())), names(headers(t, got))); diff != "" {
					t.Errorf("%s: entry order (-git archive +Archive):\n%s", commit, diff)
				}
				checkHeaders(t, r, commit, headers(t, got))
			}
			// Spot checks, in case git archive itself changes.
			dir := extract(t, archive(t, s, second))
			snap := snapshot(t, dir)
			for rel, want := range map[string]string{
				"passwd":     "symlink -> /etc/passwd",
				"app/pkg/up": "symlink -> ../../README.md",
				"dangling":   "symlink -> does/not/exist",
				"bin":        "dir 755",
			} {
				if snap[rel] != want {
					t.Errorf("%s: got %q, want %q", rel, snap[rel], want)
				}
			}
			for rel, want := range map[string]string{"bin/run.sh": "file 755", "empty": "file 644 0 ", "README.md": "file 644"} {
				if !strings.HasPrefix(snap[rel], want) {
					t.Errorf("%s: got %q, want it to start with %q", rel, snap[rel], want)
				}
			}
			if _, ok := snap[".git"]; ok {
				t.Error("the archive has a .git folder")
			}
		})
	}
}

// checkHeaders checks what makes the stream the same on every host and
// extractable by any user.
func checkHeaders(t *testing.T, r *cliRepo, commit string, hs []*tar.Header) {
	t.Helper()
	sec, err := strconv.ParseInt(r.git("log", "-1", "--format=%ct", commit), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	mtime := time.Unix(sec, 0)
	seen := map[string]bool{}
	for _, h := range hs {
		if h.Uid != 0 || h.Gid != 0 || h.Uname != "" || h.Gname != "" {
			t.Errorf("%s: owner %d:%d %q:%q, want 0:0 and no names", h.Name, h.Uid, h.Gid, h.Uname, h.Gname)
		}
		if !h.ModTime.Equal(mtime) {
			t.Errorf("%s: mtime %v, want the committer time %v", h.Name, h.ModTime, mtime)
		}
		clean := strings.TrimSuffix(h.Name, "/")
		if !filepath.IsLocal(clean) || filepath.Clean(clean) != clean {
			t.Errorf("%s: not a clean relative path", h.Name)
		}
		if dir := filepath.Dir(clean); dir != "." && !seen[dir] {
			t.Errorf("%s: comes before its folder %s", h.Name, dir)
		}
		seen[clean] = true
	}
}

func TestArchiveDeterministic(t *testing.T) {
	r := newCLIRepo(t)
	_, commit := fillRepo(r)
	a := archive(t, New(Config{URL: r.url(), Branch: "release", MirrorDir: filepath.Join(t.TempDir(), "mirror.git")}), commit)
	b := archive(t, New(Config{URL: r.url(), Branch: "release"}), commit)
	s := New(Config{URL: r.url(), Branch: "release", MirrorDir: filepath.Join(t.TempDir(), "mirror.git")})
	c := archive(t, s, commit) // fetches
	d := archive(t, s, commit) // from the mirror
	for i, other := range [][]byte{b, c, d} {
		if !bytes.Equal(a, other) {
			t.Errorf("archive %d differs from the first (%d and %d bytes)", i+2, len(other), len(a))
		}
	}
}

// TestArchiveFetches checks that a commit missing from the mirror is
// fetched, and that one already there needs no repository.
func TestArchiveFetches(t *testing.T) {
	r := newCLIRepo(t)
	r.write("a.txt", "one\n", 0o644)
	one := r.commit("one")
	mirrorDir := filepath.Join(t.TempDir(), "data", "mirror.git")
	s := New(Config{URL: r.url(), Branch: "release", MirrorDir: mirrorDir})

	// Resolve of the tip fetches nothing, so the mirror does not exist yet.
	rel, err := s.Resolve(testContext(t), deploy.Push{Branch: "release"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(mirrorDir); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("mirror exists before Archive: %v", err)
	}
	dir := extract(t, archive(t, s, rel.Commit))
	if b, err := os.ReadFile(filepath.Join(dir, "a.txt")); err != nil || string(b) != "one\n" {
		t.Fatalf("a.txt: got %q, %v", b, err)
	}

	r.write("a.txt", "two\n", 0o644)
	two := r.commit("two")
	dir = extract(t, archive(t, s, two))
	if b, err := os.ReadFile(filepath.Join(dir, "a.txt")); err != nil || string(b) != "two\n" {
		t.Fatalf("a.txt: got %q, %v", b, err)
	}

	// Both are in the mirror now: no fetch, so the repository may be gone.
	gone := New(Config{URL: filepath.Join(t.TempDir(), "gone"), Branch: "release", MirrorDir: mirrorDir})
	for _, c := range []string{one, two} {
		archive(t, gone, c)
	}
	// One that is not: the fetch fails and says so.
	err = gone.Archive(testContext(t), strings.Repeat("ab", 20), io.Discard)
	if err == nil || !strings.Contains(err.Error(), "fetch into mirror") {
		t.Errorf("got error %v, want a failed fetch", err)
	}
}

func TestArchiveUnknownCommit(t *testing.T) {
	r := newCLIRepo(t)
	r.write("a.txt", "one\n", 0o644)
	r.commit("one")
	r.git("checkout", "-q", "-b", "other")
	r.write("a.txt", "other\n", 0o644)
	other := r.commit("not on release")
	for _, commit := range []string{other, strings.Repeat("0", 40)} {
		for _, mirror := range []string{"", filepath.Join(t.TempDir(), "mirror.git")} {
			s := New(Config{URL: r.url(), Branch: "release", MirrorDir: mirror})
			var buf bytes.Buffer
			err := s.Archive(testContext(t), commit, &buf)
			var ce *deploy.CommitError
			if !errors.As(err, &ce) || ce.Commit != commit {
				t.Errorf("mirror %q, commit %s: got error %v, want a *deploy.CommitError", mirror, commit, err)
			}
			if buf.Len() > 0 {
				t.Errorf("wrote %d bytes", buf.Len())
			}
		}
	}
}

// TestArchiveRefused checks that a commit that is not a full hash is
// refused before any git work: the mirror is not even created.
func TestArchiveRefused(t *testing.T) {
	base := t.TempDir()
	s := New(Config{URL: filepath.Join(base, "missing"), Branch: "release", MirrorDir: filepath.Join(base, "data", "mirror.git")})
	for _, commit := range []string{"", "release", "HEAD", "abc1234", strings.Repeat("A", 40), strings.Repeat("a", 39), "--output=/tmp/x", strings.Repeat("a", 40) + "\n"} {
		var buf bytes.Buffer
		err := s.Archive(testContext(t), commit, &buf)
		if err == nil || !strings.Contains(err.Error(), "is not a full commit hash") {
			t.Errorf("commit %q: got error %v, want it refused", commit, err)
		}
		if buf.Len() > 0 {
			t.Errorf("commit %q: wrote %d bytes", commit, buf.Len())
		}
	}
	if _, err := os.Stat(filepath.Join(base, "data")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the mirror's folder was created: %v", err)
	}
}

func TestArchiveSubmodule(t *testing.T) {
	r := newCLIRepo(t)
	r.write("app.py", "app\n", 0o644)
	r.write(".gitmodules", "[submodule \"libs/sub\"]\n\tpath = libs/sub\n\turl = ../sub.git\n", 0o644)
	sub := strings.Repeat("1234", 10)
	r.git("update-index", "--add", "--cacheinfo", "160000,"+sub+",libs/sub")
	r.git("update-index", "--add", "--cacheinfo", "160000,"+sub+",vendor")
	r.git("add", "app.py", ".gitmodules")
	r.git("commit", "-q", "-m", "with submodules") // not add -A: the gitlinks have no folders
	commit := r.git("rev-parse", "HEAD")

	var buf bytes.Buffer
	err := New(Config{URL: r.url(), Branch: "release"}).Archive(testContext(t), commit, &buf)
	var se *SubmoduleError
	if !errors.As(err, &se) {
		t.Fatalf("got error %v, want a *SubmoduleError", err)
	}
	if diff := cmp.Diff([]string{"libs/sub", "vendor"}, se.Paths); diff != "" {
		t.Errorf("paths (-want +got):\n%s", diff)
	}
	want := "commit " + commit + " has submodules (libs/sub, vendor): push mode cannot ship them; use DEPLOY_FETCH=clone"
	if !strings.Contains(err.Error(), want) {
		t.Errorf("got error %q, want it to contain %q", err, want)
	}
	if buf.Len() > 0 {
		t.Errorf("wrote %d bytes before refusing", buf.Len())
	}
}

// TestArchiveBadNames builds trees git itself would refuse to check out
// and checks that Archive refuses them before writing anything.
func TestArchiveBadNames(t *testing.T) {
	tests := []struct {
		name    string
		entries []string // in git order: name, or name/ for a folder
		wantErr string
	}{
		{name: "dot git", entries: []string{".git/"}, wantErr: `entry name ".git" is not allowed`},
		{name: "dot git file", entries: []string{".GIT", "a"}, wantErr: `entry name ".GIT" is not allowed`},
		{name: "dot dot", entries: []string{"../"}, wantErr: `entry name ".." is not allowed`},
		{name: "dot", entries: []string{"./"}, wantErr: `entry name "." is not allowed`},
		{name: "twice", entries: []string{"x", "x/"}, wantErr: `path "sub/x" appears twice in its tree`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newTestRepo(t)
			blob := r.put(plumbing.BlobObject, func(o plumbing.EncodedObject) error {
				w, err := o.Writer()
				if err != nil {
					return err
				}
				_, err = w.Write([]byte("x\n"))
				return errors.Join(err, w.Close())
			})
			inner := &object.Tree{Entries: []object.TreeEntry{{Name: "f", Mode: filemode.Regular, Hash: blob}}}
			innerHash := r.put(plumbing.TreeObject, inner.Encode)
			tree := &object.Tree{}
			for _, e := range tt.entries {
				if name, ok := strings.CutSuffix(e, "/"); ok {
					tree.Entries = append(tree.Entries, object.TreeEntry{Name: name, Mode: filemode.Dir, Hash: innerHash})
				} else {
					tree.Entries = append(tree.Entries, object.TreeEntry{Name: e, Mode: filemode.Regular, Hash: blob})
				}
			}
			sub := r.put(plumbing.TreeObject, tree.Encode)
			// Under a good folder, so the check is seen to recurse.
			root := &object.Tree{Entries: []object.TreeEntry{
				{Name: "a", Mode: filemode.Regular, Hash: blob},
				{Name: "sub", Mode: filemode.Dir, Hash: sub},
			}}
			r.tree = r.put(plumbing.TreeObject, root.Encode)
			commit := r.commit("release", "release", "bad")

			var buf bytes.Buffer
			err := New(Config{URL: r.dir, Branch: "release"}).Archive(testContext(t), commit, &buf)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("got error %v, want it to contain %q", err, tt.wantErr)
			}
			if buf.Len() > 0 {
				t.Errorf("wrote %d bytes before refusing", buf.Len())
			}
		})
	}
}

// cancelWriter cancels its context once more than after bytes were
// written to it.
type cancelWriter struct {
	n, after int
	cancel   context.CancelFunc
}

func (w *cancelWriter) Write(p []byte) (int, error) {
	w.n += len(p)
	if w.n > w.after {
		w.cancel()
	}
	return len(p), nil
}

func TestArchiveCanceled(t *testing.T) {
	r := newCLIRepo(t)
	_, commit := fillRepo(r)
	s := New(Config{URL: r.url(), Branch: "release", MirrorDir: filepath.Join(t.TempDir(), "mirror.git")})
	full := len(archive(t, s, commit))

	t.Run("before", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		var buf bytes.Buffer
		if err := s.Archive(ctx, commit, &buf); !errors.Is(err, context.Canceled) || buf.Len() > 0 {
			t.Errorf("got error %v and %d bytes, want context.Canceled and none", err, buf.Len())
		}
	})
	t.Run("in a large file", func(t *testing.T) {
		// Everything but big.bin is small: the cancel falls inside it.
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		w := &cancelWriter{after: 1 << 20, cancel: cancel}
		err := s.Archive(ctx, commit, w)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("got error %v, want context.Canceled", err)
		}
		if w.n > 2<<20 || w.n >= full {
			t.Errorf("wrote %d of %d bytes after the cancel at 1 MiB", w.n, full)
		}
	})
}

type failWriter struct{ err error }

func (w failWriter) Write([]byte) (int, error) { return 0, w.err }

func TestArchiveWriteError(t *testing.T) {
	r := newCLIRepo(t)
	r.write("a.txt", "one\n", 0o644)
	commit := r.commit("one")
	broken := errors.New("broken pipe")
	err := New(Config{URL: r.url(), Branch: "release"}).Archive(testContext(t), commit, failWriter{broken})
	if !errors.Is(err, broken) || !strings.Contains(err.Error(), "write archive") {
		t.Errorf("got error %v, want it to wrap the writer's", err)
	}
}

// TestArchiveConcurrent archives from one Source at once, as the deployer
// does for several hosts; the first calls race to fetch into the mirror.
func TestArchiveConcurrent(t *testing.T) {
	r := newCLIRepo(t)
	first, second := fillRepo(r)
	s := New(Config{URL: r.url(), Branch: "release", MirrorDir: filepath.Join(t.TempDir(), "mirror.git")})
	ctx := testContext(t)
	const n = 6
	got := make([][]byte, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			commit := first
			if i%2 == 1 {
				commit = second
			}
			var buf bytes.Buffer
			errs[i] = s.Archive(ctx, commit, &buf)
			got[i] = buf.Bytes()
		})
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("archive %d: %v", i, errs[i])
		}
		if !bytes.Equal(got[i], got[i%2]) {
			t.Errorf("archive %d differs from archive %d", i, i%2)
		}
	}
	if bytes.Equal(got[0], got[1]) {
		t.Error("the two commits gave the same archive")
	}
}

// TestArchiveSSH archives the tip of a repository served over SSH to a
// read-only deploy key.
func TestArchiveSSH(t *testing.T) {
	env := testhosts.New(t, testhosts.Options{})
	ctx := testContext(t)
	files := map[string]string{
		"app.py":         "print('app')\n",
		"bin/restart.sh": "#!/bin/sh\necho restart\n",
		"requirements":   "",
	}
	if _, err := env.Commit(ctx, map[string]string{"app.py": "old\n"}, "first"); err != nil {
		t.Fatal(err)
	}
	tip, err := env.Commit(ctx, files, "second")
	if err != nil {
		t.Fatal(err)
	}
	key, err := os.ReadFile(env.GitKey)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("SSH_AUTH_SOCK", "") // New reads it
	for _, mirror := range []string{"", filepath.Join(t.TempDir(), "mirror.git")} {
		s := New(Config{URL: env.RepoURL, Branch: "release", Key: key, KnownHosts: env.KnownHosts, MirrorDir: mirror})
		rel, err := s.Resolve(ctx, deploy.Push{Branch: "release"})
		if err != nil {
			t.Fatal(err)
		}
		if rel.Commit != tip {
			t.Fatalf("Resolve: got %s, want %s", rel.Commit, tip)
		}
		snap := snapshot(t, extract(t, archive(t, s, rel.Commit)))
		for rel, content := range files {
			mode := "644"
			if strings.HasPrefix(content, "#!") {
				mode = "755"
			}
			want := fmt.Sprintf("file %s %d %x", mode, len(content), sha256.Sum256([]byte(content)))
			if snap[rel] != want {
				t.Errorf("mirror %q: %s: got %q, want %q", mirror, rel, snap[rel], want)
			}
		}
	}

	// A git server whose key is not the known one is refused.
	hostPort := net.JoinHostPort(env.Git.Addr, strconv.Itoa(env.Git.Port))
	changed := writeFile(t, knownhosts.Line([]string{hostPort}, newKey(t).PublicKey()))
	s := New(Config{URL: env.RepoURL, Branch: "release", Key: key, KnownHosts: changed})
	err = s.Archive(ctx, tip, io.Discard)
	var hk *sshkeys.HostKeyError
	if !errors.As(err, &hk) {
		t.Errorf("got error %v, want a *sshkeys.HostKeyError", err)
	}
}
