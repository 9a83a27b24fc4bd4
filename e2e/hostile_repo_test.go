package e2e

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/pushdeploy/pushdeploy/internal/testhosts"
)

// TestEndToEndHostileRepository commits content that attacks the host
// (docs/deploy.md, "What the repository may not contain") and deploys it,
// by clone and by push: each deploy fails naming the path, before any
// switch; every host stays on its complete release, byte for byte; and
// nothing is written outside the release.
func TestEndToEndHostileRepository(t *testing.T) {
	e := newE2E(t, 2)
	goodSHA := e.commit("1.0", nil)
	good := e.mustDeploy()
	ctx := context.Background()

	// World-writable, so that a write the deploy let through a symlink
	// would succeed and show here.
	outside, err := os.MkdirTemp("", "pushdeploy-outside-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(outside) })
	if err := os.Chmod(outside, 0o777); err != nil {
		t.Fatal(err)
	}
	bait := filepath.Join(outside, "requirements.txt")
	if err := os.WriteFile(bait, []byte(e.env.AppFiles("1.0")["requirements.txt"]), 0o644); err != nil {
		t.Fatal(err)
	}

	goodTree := map[string]string{}
	for _, h := range e.env.Hosts {
		state, err := testhosts.TreeState(h.Path("app/releases/" + good.Release))
		if err != nil {
			t.Fatal(err)
		}
		goodTree[h.Name] = state
	}

	tests := []struct {
		name  string
		links map[string]string // path -> symlink target
		files map[string]string
		want  string
	}{
		{"venv symlink out", map[string]string{"venv": outside}, nil, "has venv at its top level"},
		{"venv committed", nil, map[string]string{"venv/bin/python": "#!/bin/sh\necho pwned\n"}, "has venv at its top level"},
		{"REVISION symlink out", map[string]string{"REVISION": outside + "/REVISION"}, nil, "has REVISION at its top level"},
		{"REVISION committed", nil, map[string]string{"REVISION": goodSHA + "\n"}, "has REVISION at its top level"},
		{"REVISION.tmp symlink out", map[string]string{"REVISION.tmp": outside + "/x"}, nil, "has REVISION.tmp at its top level"},
		{"requirements.txt to /etc/passwd", map[string]string{"requirements.txt": "/etc/passwd"}, nil, "requirements.txt is a symlink to /etc/passwd, outside the release"},
		{"requirements.txt out of the release", map[string]string{"requirements.txt": bait}, nil, "outside the release"},
	}
	for _, fetch := range []string{"clone", "push"} {
		e.vars["DEPLOY_FETCH"] = fetch
		for _, tt := range tests {
			t.Run(fetch+"/"+tt.name, func(t *testing.T) {
				var paths []string
				if len(tt.files) > 0 {
					if _, err := e.env.Commit(ctx, tt.files, "hostile: "+tt.name); err != nil {
						t.Fatal(err)
					}
				}
				if len(tt.links) > 0 {
					if _, err := e.env.CommitSymlinks(ctx, tt.links, "hostile: "+tt.name); err != nil {
						t.Fatal(err)
					}
				}
				for p := range tt.files {
					paths = append(paths, strings.SplitN(p, "/", 2)[0])
				}
				for p := range tt.links {
					paths = append(paths, p)
				}
				t.Cleanup(func() { e.restoreApp(t, paths) })

				r := e.pushdeploy("deploy")
				if r.code != 1 || !strings.Contains(r.stderr, tt.want) {
					t.Errorf("deploy: exit %d, want 1 saying %q\n%s", r.code, tt.want, r.stderr)
				}
				for _, h := range e.env.Hosts {
					if got := current(h); got != "releases/"+good.Release {
						t.Errorf("%s: current -> %s, want the good release %s", h.Name, got, good.Release)
					}
					if got := releases(t, h); !slices.Equal(got, []string{good.Release}) {
						t.Errorf("%s: releases %v, want only %s", h.Name, got, good.Release)
					}
					if state, err := testhosts.TreeState(h.Path("app/releases/" + good.Release)); err != nil || state != goodTree[h.Name] {
						t.Errorf("%s: the good release changed (%v)", h.Name, err)
					}
					if left, _ := filepath.Glob(h.Path("app/.pushdeploy-archive-failed-*")); len(left) > 0 {
						t.Errorf("%s: failure markers left in the root: %v", h.Name, left)
					}
				}
				entries, _ := os.ReadDir(outside)
				if len(entries) != 1 {
					t.Errorf("written outside the release: %v", entries)
				}
			})
		}
	}

	// A requirements.txt that links to a file of the repository is fine.
	e.vars["DEPLOY_FETCH"] = "clone"
	if _, err := e.env.Commit(ctx, map[string]string{"requirements/prod.txt": e.env.AppFiles("2.0")["requirements.txt"]}, "requirements in a folder"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.env.CommitSymlinks(ctx, map[string]string{"requirements.txt": "requirements/prod.txt"}, "link it"); err != nil {
		t.Fatal(err)
	}
	dep := e.mustDeploy()
	for _, h := range e.env.Hosts {
		if v := e.onHost(h, "app/current/venv/bin/python", "-c", "import pdtestdep; print(pdtestdep.VERSION)"); v != "2.0" || current(h) != "releases/"+dep.Release {
			t.Errorf("%s: a requirements.txt linked within the repository: pdtestdep %q, current %s", h.Name, v, current(h))
		}
	}
}

// restoreApp removes the top-level paths a test committed and commits the
// app's own files again (requirements.txt may have been replaced by a
// symlink, which Commit would write through).
func (e *e2e) restoreApp(t *testing.T, paths []string) {
	t.Helper()
	ctx := context.Background()
	if _, err := e.env.Remove(ctx, paths, "remove hostile content"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.env.Commit(ctx, e.env.AppFiles("1.0"), "the app again"); err != nil {
		t.Fatal(err)
	}
}
