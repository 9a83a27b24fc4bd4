package e2e

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// checkUploadRefused checks a push-mode deploy whose upload could not be
// made whole: exit 1 naming the first host, the upload step and each of
// reasons, and every host as it was (current, and no new release folder).
func checkUploadRefused(t *testing.T, e *e2e, first deploymentJSON, reasons ...string) {
	t.Helper()
	r := e.pushdeploy("deploy")
	failed(t, r, 1, append([]string{e.env.Hosts[0].Name, "upload"}, reasons...)...)
	t.Logf("the deploy said:\n%s", r.stderr)
	for _, h := range e.env.Hosts {
		if got, want := current(h), "releases/"+first.Release; got != want {
			t.Errorf("%s: current -> %q, want %q (untouched)", h.Name, got, want)
		}
		if got := releases(t, h); !slices.Equal(got, []string{first.Release}) {
			t.Errorf("%s: releases %v, want only %s (no half release left)", h.Name, got, first.Release)
		}
	}
}

// TestEndToEndPushUploadOversizedSymlink: a commit holding a symlink whose
// target is longer than the deployer ships (70 KB), in the tree after
// README and before app.py. The archive stops between two entries (README
// is 512 bytes, so its tar entry needs no padding), which GNU tar takes as
// a whole archive: the deploy used to go on with a release holding README
// alone.
func TestEndToEndPushUploadOversizedSymlink(t *testing.T) {
	e := newE2E(t, 2)
	e.vars["DEPLOY_FETCH"] = "push"
	e.commit("1.0", map[string]string{"README": strings.Repeat("the app.\n", 512/8)[:511] + "\n"})
	first := e.mustDeploy()
	if _, err := e.env.CommitLongSymlink(context.Background(), "app.link", strings.Repeat("x/", 35000), "a 70 KB symlink target"); err != nil {
		t.Fatal(err)
	}
	checkUploadRefused(t, e, first, "symlink app.link", "longer than")
}

// TestEndToEndPushUploadUnreadableObject: a file's object in the
// deployer's mirror is damaged, so the archive fails while streaming it.
func TestEndToEndPushUploadUnreadableObject(t *testing.T) {
	e := newE2E(t, 2)
	e.vars["DEPLOY_FETCH"] = "push"
	var big strings.Builder
	for i := 0; big.Len() < 256<<10; i++ {
		big.WriteString("line " + strconv.Itoa(i) + " of a file that compresses well\n")
	}
	e.commit("1.0", map[string]string{"big.txt": big.String()})
	first := e.mustDeploy()

	// The next commit changes app.py only: the deployer fetches it into
	// its mirror, and reads big.txt from the pack it fetched before.
	mirror := filepath.Join(e.vars["DEPLOY_DATA_DIR"], "mirror.git")
	damageObject(t, mirror, first.Commit+":big.txt")
	e.commit("1.0", map[string]string{"big.txt": big.String(), "app.py": "# changed\n" + e.env.AppFiles("1.0")["app.py"]})
	checkUploadRefused(t, e, first, "big.txt")
}

// damageObject overwrites the middle of the compressed data of the object
// named rev (as git rev-parse reads it) in the packs of repo.
func damageObject(t *testing.T, repo, rev string) {
	t.Helper()
	git := func(args ...string) string {
		out, err := exec.Command("git", append([]string{"-C", repo}, args...)...).Output()
		if err != nil {
			t.Fatalf("git %v: %v", args, err)
		}
		return strings.TrimSpace(string(out))
	}
	id := git("rev-parse", rev)
	idx, err := filepath.Glob(filepath.Join(repo, "objects", "pack", "*.idx"))
	if err != nil || len(idx) == 0 {
		t.Fatalf("no pack in the mirror %s (%v)", repo, err)
	}
	for _, ix := range idx {
		// "SHA type size size-in-pack offset" per object
		for _, line := range strings.Split(git("verify-pack", "-v", ix), "\n") {
			f := strings.Fields(line)
			if len(f) < 5 || f[0] != id {
				continue
			}
			size, _ := strconv.ParseInt(f[3], 10, 64)
			offset, _ := strconv.ParseInt(f[4], 10, 64)
			pack := strings.TrimSuffix(ix, ".idx") + ".pack"
			if err := os.Chmod(pack, 0o600); err != nil { // packs are read-only
				t.Fatal(err)
			}
			p, err := os.OpenFile(pack, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			if _, err := p.WriteAt(bytes.Repeat([]byte{0xff}, int(size/4)), offset+size/3); err != nil {
				t.Fatal(err)
			}
			return
		}
	}
	t.Fatalf("object %s (%s) is in no pack of %s", id, rev, repo)
}
