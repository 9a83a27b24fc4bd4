package gitsrc

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/google/go-cmp/cmp"

	"github.com/pushdeploy/pushdeploy/deploy"
)

// testRepo is a bare repository on disk that the tests commit to directly,
// without a work tree.
type testRepo struct {
	t    *testing.T
	dir  string
	repo *git.Repository
	tree plumbing.Hash // every commit has the same one-file tree
	n    int
}

func newTestRepo(t *testing.T) *testRepo {
	t.Helper()
	dir := t.TempDir()
	repo, err := git.PlainInit(dir, true)
	if err != nil {
		t.Fatal(err)
	}
	r := &testRepo{t: t, dir: dir, repo: repo}
	blob := r.put(plumbing.BlobObject, func(o plumbing.EncodedObject) error {
		w, err := o.Writer()
		if err != nil {
			return err
		}
		if _, err := w.Write([]byte("hello\n")); err != nil {
			return err
		}
		return w.Close()
	})
	tree := &object.Tree{Entries: []object.TreeEntry{{Name: "README", Mode: filemode.Regular, Hash: blob}}}
	r.tree = r.put(plumbing.TreeObject, tree.Encode)
	return r
}

func (r *testRepo) put(typ plumbing.ObjectType, encode func(plumbing.EncodedObject) error) plumbing.Hash {
	r.t.Helper()
	o := r.repo.Storer.NewEncodedObject()
	o.SetType(typ)
	if err := encode(o); err != nil {
		r.t.Fatal(err)
	}
	h, err := r.repo.Storer.SetEncodedObject(o)
	if err != nil {
		r.t.Fatal(err)
	}
	return h
}

// commit adds a commit to branch, on top of from's tip (no parent when from
// does not exist), and returns its hash.
func (r *testRepo) commit(branch, from, msg string) string {
	r.t.Helper()
	r.n++
	sig := object.Signature{Name: "test", Email: "test@example.com", When: time.Unix(1700000000+int64(r.n), 0).UTC()}
	c := &object.Commit{Author: sig, Committer: sig, Message: msg, TreeHash: r.tree}
	if ref, err := r.repo.Reference(plumbing.NewBranchReferenceName(from), true); err == nil {
		c.ParentHashes = []plumbing.Hash{ref.Hash()}
	}
	h := r.put(plumbing.CommitObject, c.Encode)
	if err := r.repo.Storer.SetReference(plumbing.NewHashReference(plumbing.NewBranchReferenceName(branch), h)); err != nil {
		r.t.Fatal(err)
	}
	return h.String()
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func TestResolveTip(t *testing.T) {
	r := newTestRepo(t)
	r.commit("release", "release", "one")
	tip := r.commit("release", "release", "two")
	r.commit("main", "release", "elsewhere")

	for _, url := range []string{r.dir, "file://" + r.dir} {
		t.Run(url, func(t *testing.T) {
			s := New(Config{URL: url, Branch: "release"})
			got, err := s.Resolve(testContext(t), deploy.Push{Branch: "release"})
			if err != nil {
				t.Fatal(err)
			}
			want := deploy.Release{RepoURL: url, Branch: "release", Commit: tip}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("Resolve (-want +got):\n%s", diff)
			}
		})
	}
}

func TestResolveCommit(t *testing.T) {
	r := newTestRepo(t)
	first := r.commit("release", "release", "one")
	second := r.commit("release", "release", "two")
	onOther := r.commit("feature", "release", "feature work")
	tip := r.commit("release", "release", "three")

	// A prefix that matches none of the commits above.
	absent := "0000000"
	for _, h := range []string{first, second, onOther, tip} {
		for strings.HasPrefix(h, absent) {
			absent = absent[:6] + "1"
		}
	}

	tests := []struct {
		name    string
		commit  string
		want    string
		wantErr string
	}{
		{name: "full hash of the tip", commit: tip, want: tip},
		{name: "full hash below the tip", commit: second, want: second},
		{name: "prefix", commit: first[:7], want: first},
		{name: "short prefix", commit: second[:4], want: second},
		{name: "upper-case prefix", commit: strings.ToUpper(second[:10]), want: second},
		{name: "on another branch", commit: onOther, wantErr: "commit " + onOther + " is not on branch release"},
		{name: "prefix on another branch", commit: onOther[:8], wantErr: "commit " + onOther[:8] + " is not on branch release"},
		{name: "no such commit", commit: "0123456789abcdef0123456789abcdef01234567", wantErr: "is not on branch release"},
		{name: "no such prefix", commit: absent, wantErr: "commit " + absent + " is not on branch release"},
	}
	for _, mirror := range []bool{true, false} {
		s := New(Config{URL: r.dir, Branch: "release"})
		name := "in memory"
		if mirror {
			s.cfg.MirrorDir = filepath.Join(t.TempDir(), "data", "mirror.git")
			name = "mirror"
		}
		t.Run(name, func(t *testing.T) {
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					got, err := s.Resolve(testContext(t), deploy.Push{Branch: "release", Commit: tt.commit})
					if tt.wantErr != "" {
						if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
							t.Fatalf("Resolve: got %+v, %v; want error %q", got, err, tt.wantErr)
						}
						if want := "resolve branch release on " + r.dir + ": "; !strings.HasPrefix(err.Error(), want) {
							t.Errorf("got error %q, want it to start with %q", err, want)
						}
						return
					}
					if err != nil {
						t.Fatal(err)
					}
					want := deploy.Release{RepoURL: r.dir, Branch: "release", Commit: tt.want}
					if diff := cmp.Diff(want, got); diff != "" {
						t.Errorf("Resolve (-want +got):\n%s", diff)
					}
				})
			}
		})
	}
}

// TestResolveRefused checks that bad input is refused before any git call:
// the URL leads nowhere, so a git call would fail differently.
func TestResolveRefused(t *testing.T) {
	nowhere := filepath.Join(t.TempDir(), "missing")
	tests := []struct {
		name    string
		branch  string // configured; "" means release
		push    deploy.Push
		wantErr string
	}{
		{name: "other branch", push: deploy.Push{Branch: "main"}, wantErr: `branch "main" is not the release branch "release": only the release branch is deployed`},
		{name: "no branch", push: deploy.Push{}, wantErr: `branch "" is not the release branch`},
		{name: "invalid branch", push: deploy.Push{Branch: "-release"}, wantErr: `branch "-release" is not the release branch`},
		{name: "command substitution", push: deploy.Push{Branch: "release", Commit: "$(touch /tmp/x)"}, wantErr: `"$(touch /tmp/x)" is not a commit hash`},
		{name: "not hex", push: deploy.Push{Branch: "release", Commit: "zz"}, wantErr: `"zz" is not a commit hash`},
		{name: "too short", push: deploy.Push{Branch: "release", Commit: "abc"}, wantErr: `"abc" is not a commit hash`},
		{name: "option", push: deploy.Push{Branch: "release", Commit: "--all"}, wantErr: `"--all" is not a commit hash`},
		{name: "invalid release branch", branch: "rel..ease", push: deploy.Push{Branch: "rel..ease"}, wantErr: `release branch: branch name "rel..ease" contains '..'`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			branch := tt.branch
			if branch == "" {
				branch = "release"
			}
			s := New(Config{URL: nowhere, Branch: branch})
			got, err := s.Resolve(testContext(t), tt.push)
			if err == nil {
				t.Fatalf("Resolve: got %+v, want error", got)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("got error %q, want it to contain %q", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), "list refs") || strings.Contains(err.Error(), "mirror") {
				t.Errorf("got error %q: git was called", err)
			}
		})
	}
}

func TestResolveAmbiguousPrefix(t *testing.T) {
	r := newTestRepo(t)
	// Commit until two commits share their first 4 digits (about 300).
	seen := map[string]string{}
	var prefix string
	for i := 0; prefix == "" && i < 5000; i++ {
		h := r.commit("release", "release", "commit "+string(rune('a'+i%26))+strings.Repeat("x", i/26))
		if _, ok := seen[h[:4]]; ok {
			prefix = h[:4]
		}
		seen[h[:4]] = h
	}
	if prefix == "" {
		t.Fatal("no two commits share a prefix")
	}
	s := New(Config{URL: r.dir, Branch: "release"})
	_, err := s.Resolve(testContext(t), deploy.Push{Branch: "release", Commit: prefix})
	if err == nil || !strings.Contains(err.Error(), "commit prefix "+prefix+" is ambiguous on branch release") {
		t.Fatalf("got error %v, want it to say the prefix is ambiguous", err)
	}
	// One more digit of the earlier commit tells them apart.
	want := seen[prefix]
	got, err := s.Resolve(testContext(t), deploy.Push{Branch: "release", Commit: want[:12]})
	if err != nil {
		t.Fatal(err)
	}
	if got.Commit != want {
		t.Errorf("got commit %s, want %s", got.Commit, want)
	}
}

func TestResolveMissingBranch(t *testing.T) {
	empty := newTestRepo(t)
	other := newTestRepo(t)
	other.commit("main", "main", "one")

	for name, dir := range map[string]string{"empty repository": empty.dir, "other branches only": other.dir} {
		t.Run(name, func(t *testing.T) {
			for _, commit := range []string{"", "abcdef0"} {
				s := New(Config{URL: dir, Branch: "release", MirrorDir: filepath.Join(t.TempDir(), "mirror.git")})
				_, err := s.Resolve(testContext(t), deploy.Push{Branch: "release", Commit: commit})
				want := `branch "release" not found on ` + dir
				if err == nil || err.Error() != want {
					t.Errorf("commit %q: got error %v, want %q", commit, err, want)
				}
			}
		})
	}
}

func TestResolveNoRepository(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "missing")
	s := New(Config{URL: dir, Branch: "release"})
	_, err := s.Resolve(testContext(t), deploy.Push{Branch: "release"})
	want := "resolve branch release on " + dir + ": list refs: "
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("got error %v, want it to start with %q", err, want)
	}
}

func TestResolveCanceled(t *testing.T) {
	r := newTestRepo(t)
	r.commit("release", "release", "one")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	s := New(Config{URL: r.dir, Branch: "release"})
	if _, err := s.Resolve(ctx, deploy.Push{Branch: "release"}); !errors.Is(err, context.Canceled) {
		t.Fatalf("got error %v, want context.Canceled", err)
	}
}

// TestResolveBranchMoves checks that each Resolve sees the branch as it is
// now, and that the mirror fetches only what is new.
func TestResolveBranchMoves(t *testing.T) {
	ctx := testContext(t)
	r := newTestRepo(t)
	first := r.commit("release", "release", "one")
	mirrorDir := filepath.Join(t.TempDir(), "data", "mirror.git")
	s := New(Config{URL: r.dir, Branch: "release", MirrorDir: mirrorDir})

	resolve := func(commit, want string) {
		t.Helper()
		got, err := s.Resolve(ctx, deploy.Push{Branch: "release", Commit: commit})
		if err != nil {
			t.Fatal(err)
		}
		if got.Commit != want {
			t.Fatalf("Resolve(%q): got commit %s, want %s", commit, got.Commit, want)
		}
	}
	fetch := func(wantTip string, wantUpToDate bool) {
		t.Helper()
		repo, err := s.openMirror()
		if err != nil {
			t.Fatal(err)
		}
		tip, upToDate, err := s.fetch(ctx, repo, nil)
		if err != nil {
			t.Fatal(err)
		}
		if tip.String() != wantTip || upToDate != wantUpToDate {
			t.Fatalf("fetch: got tip %s, up to date %v; want %s, %v", tip, upToDate, wantTip, wantUpToDate)
		}
	}

	resolve("", first)
	second := r.commit("release", "release", "two")
	resolve("", second)
	resolve(first[:7], first) // creates the mirror, fetches both
	fetch(second, true)

	third := r.commit("release", "release", "three")
	resolve("", third)
	resolve(second, second) // fetches only the third
	fetch(third, true)

	// Rewritten history: the mirror follows, and the old tip is off the branch.
	r.commit("rewrite", "nothing", "new root")
	ref, err := r.repo.Reference(plumbing.NewBranchReferenceName("rewrite"), true)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.repo.Storer.SetReference(plumbing.NewHashReference(plumbing.NewBranchReferenceName("release"), ref.Hash())); err != nil {
		t.Fatal(err)
	}
	_, err = s.Resolve(ctx, deploy.Push{Branch: "release", Commit: third})
	if err == nil || !strings.Contains(err.Error(), "is not on branch release") {
		t.Fatalf("got error %v, want the old tip refused", err)
	}

	// The mirror is bare, and its origin names the repository.
	mirror, err := git.PlainOpen(mirrorDir)
	if err != nil {
		t.Fatal(err)
	}
	origin, err := mirror.Remote("origin")
	if err != nil {
		t.Fatal(err)
	}
	if got := origin.Config().URLs; len(got) != 1 || got[0] != r.dir {
		t.Errorf("mirror origin: got URLs %q, want %q", got, r.dir)
	}
	if _, err := os.Stat(filepath.Join(mirrorDir, "HEAD")); err != nil {
		t.Errorf("mirror is not bare: %v", err)
	}
}

// TestMirrorURLChange checks that a mirror follows a new repository URL.
func TestMirrorURLChange(t *testing.T) {
	ctx := testContext(t)
	mirrorDir := filepath.Join(t.TempDir(), "mirror.git")
	a, b := newTestRepo(t), newTestRepo(t)
	onA := a.commit("release", "release", "repo a")
	a.commit("release", "release", "repo a tip")
	onB := b.commit("release", "release", "repo b")
	b.commit("release", "release", "repo b tip")

	if _, err := New(Config{URL: a.dir, Branch: "release", MirrorDir: mirrorDir}).Resolve(ctx, deploy.Push{Branch: "release", Commit: onA}); err != nil {
		t.Fatal(err)
	}
	s := New(Config{URL: b.dir, Branch: "release", MirrorDir: mirrorDir})
	if _, err := s.Resolve(ctx, deploy.Push{Branch: "release", Commit: onB}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Resolve(ctx, deploy.Push{Branch: "release", Commit: onA}); err == nil {
		t.Error("a commit of the old repository was accepted")
	}
}
