package gitsrc

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/pushdeploy/pushdeploy/internal/testhosts"
)

// cliRepo is a repository with a work tree, made with the git CLI, whose
// branch is "release".
type cliRepo struct {
	t   *testing.T
	dir string
	n   int
}

func newCLIRepo(t *testing.T) *cliRepo {
	t.Helper()
	testhosts.NeedTools(t, "git", "tar")
	r := &cliRepo{t: t, dir: t.TempDir()}
	r.git("init", "-q", "-b", "release")
	return r
}

// url is what a Source fetches from: the repository's .git folder.
func (r *cliRepo) url() string { return filepath.Join(r.dir, ".git") }

func (r *cliRepo) git(args ...string) string {
	r.t.Helper()
	return runGit(r.t, r.dir, nil, args...)
}

func runGit(t *testing.T, dir string, stdout io.Writer, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1",
		"GIT_AUTHOR_NAME=test", "GIT_AUTHOR_EMAIL=test@example.com",
		"GIT_COMMITTER_NAME=test", "GIT_COMMITTER_EMAIL=test@example.com")
	var out bytes.Buffer
	cmd.Stdout = &out
	if stdout != nil {
		cmd.Stdout = stdout
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("git %s: %v: %s", strings.Join(args, " "), err, stderr.String())
	}
	return strings.TrimSpace(out.String())
}

// write creates a file in the work tree; mode 0 makes a symlink to content.
func (r *cliRepo) write(rel, content string, mode os.FileMode) {
	r.t.Helper()
	p := filepath.Join(r.dir, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		r.t.Fatal(err)
	}
	_ = os.Remove(p)
	var err error
	if mode == 0 {
		err = os.Symlink(content, p)
	} else if err = os.WriteFile(p, []byte(content), mode); err == nil {
		err = os.Chmod(p, mode)
	}
	if err != nil {
		r.t.Fatal(err)
	}
}

// commit commits everything, with a committer date one day after the
// last, and returns the hash.
func (r *cliRepo) commit(msg string) string {
	r.t.Helper()
	r.n++
	date := strconv.Itoa(1700000000+86400*r.n) + " +0100"
	r.t.Setenv("GIT_COMMITTER_DATE", date)
	r.t.Setenv("GIT_AUTHOR_DATE", date)
	r.git("add", "-A")
	r.git("commit", "-q", "--allow-empty", "-m", msg)
	return r.git("rev-parse", "HEAD")
}

// bigFile is n pseudo-random bytes (incompressible, so the blob is large
// in the pack too).
func bigFile(seed uint64, n int) string {
	rng := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return string(b)
}

// fillRepo commits the tree the archive tests use, then a second commit
// that changes the 5 MB file a little (stored as a delta in packs), and
// returns both hashes.
func fillRepo(r *cliRepo) (first, second string) {
	big := bigFile(1, 5<<20)
	r.write("README.md", "hello\n", 0o644)
	r.write("app/main.py", "print('hi')\n", 0o644)
	r.write("app/pkg/deep/er/mod.py", "x = 1\n", 0o644)
	r.write("bin/run.sh", "#!/bin/sh\necho run\n", 0o755)
	r.write("link-rel", "app/main.py", 0)
	r.write("app/pkg/up", "../../README.md", 0)
	r.write("passwd", "/etc/passwd", 0)
	r.write("dangling", "does/not/exist", 0)
	r.write("empty", "", 0o644)
	r.write("dir with space/ünïcødé file ✓.txt", "unicode\n", 0o644)
	r.write("long/"+strings.Repeat("d", 90)+"/"+strings.Repeat("f", 120)+".txt", "long\n", 0o644)
	r.write("app.py", "app\n", 0o644) // sorts between "app" and "app/" in git order
	r.write("big.bin", big, 0o644)
	first = r.commit("first")
	r.write("big.bin", big[:3<<20]+"changed"+big[3<<20:], 0o644)
	r.write("bin/run.sh", "#!/bin/sh\necho run 2\n", 0o755)
	second = r.commit("second")
	return first, second
}

// extract runs the real tar -x on archive into a new folder.
func extract(t *testing.T, archive []byte) string {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command("tar", "-x", "-f", "-", "-C", dir)
	cmd.Stdin = bytes.NewReader(archive)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("tar -x: %v: %s", err, out)
	}
	return dir
}

// snapshot describes every file, folder and symlink under dir: its type,
// permissions and contents (a hash) or link target.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	got := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			got[rel] = "symlink -> " + target
		case d.IsDir():
			got[rel] = fmt.Sprintf("dir %o", info.Mode().Perm())
		case d.Type().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			got[rel] = fmt.Sprintf("file %o %d %x", info.Mode().Perm(), len(b), sha256.Sum256(b))
		default:
			got[rel] = "other " + info.Mode().String()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// headers lists the tar headers of archive, without pax global headers.
func headers(t *testing.T, archive []byte) []*tar.Header {
	t.Helper()
	var hs []*tar.Header
	tr := tar.NewReader(bytes.NewReader(archive))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return hs
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag != tar.TypeXGlobalHeader {
			hs = append(hs, h)
		}
	}
}

func names(hs []*tar.Header) []string {
	var ns []string
	for _, h := range hs {
		ns = append(ns, h.Name)
	}
	return ns
}

func archive(t *testing.T, s *Source, commit string) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := s.Archive(testContext(t), commit, &buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
