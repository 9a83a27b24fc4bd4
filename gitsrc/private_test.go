package gitsrc

import (
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/pushdeploy/pushdeploy/deploy"
)

// TestMirrorIsPrivate: the mirror, and the data folder it creates, are
// private to the deployer's user (folders 0700, files 0600) whatever the
// umask, while the process umask is left alone (local hosts' commands
// inherit it).
func TestMirrorIsPrivate(t *testing.T) {
	r := newTestRepo(t)
	one := r.commit("release", "release", "one")
	data := filepath.Join(t.TempDir(), "data")
	s := New(Config{URL: r.dir, Branch: "release", MirrorDir: filepath.Join(data, "mirror.git")})
	// A commit asked for is looked up in the mirror.
	if _, err := s.Resolve(testContext(t), deploy.Push{Branch: "release", Commit: one}); err != nil {
		t.Fatal(err)
	}
	// A second fetch adds a pack and moves the branch; a new Source
	// opens the existing mirror.
	tip := r.commit("release", "release", "two")
	s = New(Config{URL: r.dir, Branch: "release", MirrorDir: filepath.Join(data, "mirror.git")})
	got, err := s.Resolve(testContext(t), deploy.Push{Branch: "release", Commit: tip[:8]})
	if err != nil || got.Commit != tip {
		t.Fatalf("second resolve: %v %v, want %s", got, err, tip)
	}
	n := 0
	err = filepath.WalkDir(data, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := os.Lstat(path)
		if err != nil {
			return err
		}
		n++
		if perm := fi.Mode().Perm(); perm&0o077 != 0 {
			t.Errorf("%s: mode %04o, want no access for group and others", path, perm)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 10 {
		t.Errorf("only %d entries under %s: no mirror was written", n, data)
	}
}
