package deploy

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseReleases(t *testing.T) {
	a, b := strings.Repeat("a", 40), strings.Repeat("b", 40)
	out := "root\t/home/deploy/app\n" +
		"current\treleases/20261125183400-aaaaaaa\n" +
		"release\t20261125170000-ccccccc\t1\t1\t" + b + "\n" +
		"release\t20261125183400-aaaaaaa\t1\t1\t" + a + "\n" +
		"release\t20261125190000-ddddddd\t0\t1\t\n" +
		"release\t20261125180000-bbbbbbb\t1\t0\t" + b + "\n" +
		"release\t20261125175000-eeeeeee\t1\t1\t$(id)\n"
	got, err := parseReleases(out)
	if err != nil {
		t.Fatal(err)
	}
	at := func(s string) time.Time { tm, _ := time.Parse("20060102150405", s); return tm }
	want := HostReleases{
		Root: "/home/deploy/app", Current: "20261125183400-aaaaaaa", CurrentTarget: "releases/20261125183400-aaaaaaa",
		// The release just before current that was deployed (it has a
		// REVISION), even though its venv is gone: a rollback refuses it
		// rather than skip to ccccccc on this host alone.
		Previous: "20261125180000-bbbbbbb",
		Releases: []ReleaseInfo{
			{Name: "20261125190000-ddddddd", Time: at("20261125190000"), Missing: []string{"REVISION"}},
			{Name: "20261125183400-aaaaaaa", Time: at("20261125183400"), Commit: a, Complete: true, Current: true},
			{Name: "20261125180000-bbbbbbb", Time: at("20261125180000"), Commit: b, Missing: []string{"venv"}, Previous: true},
			{Name: "20261125175000-eeeeeee", Time: at("20261125175000"), Missing: []string{"REVISION (holds no commit)"}},
			{Name: "20261125170000-ccccccc", Time: at("20261125170000"), Commit: b, Complete: true},
		},
	}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(x, y error) bool { return x == y })); diff != "" {
		t.Errorf("parse (-want +got):\n%s", diff)
	}

	// No root folder: nothing, and no error.
	if got, err := parseReleases(""); err != nil || got.Root != "" || got.Current != "" || len(got.Releases) != 0 {
		t.Errorf("empty: %+v, %v", got, err)
	}
	// current pointing elsewhere is reported raw, not as a release.
	got, _ = parseReleases("root\t/r\ncurrent\t/tmp/x\n")
	if got.Current != "" || got.CurrentTarget != "/tmp/x" {
		t.Errorf("foreign current: %+v", got)
	}
	for _, bad := range []string{"root\trelative\n", "release\t../x\t1\t1\t" + a + "\n", "hello\n"} {
		if _, err := parseReleases(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestDisagree(t *testing.T) {
	hr := func(cur string, err error) HostReleases { return HostReleases{Current: cur, Err: err} }
	down := errors.New("down")
	tests := []struct {
		hs   []HostReleases
		want bool
	}{
		{nil, false},
		{[]HostReleases{hr("a", nil), hr("a", nil)}, false},
		{[]HostReleases{hr("a", nil), hr("b", nil)}, true},
		{[]HostReleases{hr("a", nil), hr("", nil)}, true},
		{[]HostReleases{hr("a", nil), hr("", down), hr("a", nil)}, false},
		{[]HostReleases{hr("", down), hr("a", nil), hr("b", nil)}, true},
	}
	for i, tt := range tests {
		if got := Disagree(tt.hs); got != tt.want {
			t.Errorf("%d: got %v, want %v", i, got, tt.want)
		}
	}
}

func TestReleasesListsEveryHost(t *testing.T) {
	r := newRig(t, 3)
	deps := r.deployN(2)
	r.must(os.RemoveAll(filepath.Join(r.dialer.homes["web2"], "app", "releases", deps[0].ReleaseName, "venv")))
	r.must(os.Symlink("../"+deps[1].ReleaseName+"/venv", filepath.Join(r.dialer.homes["web2"], "app", "releases", deps[0].ReleaseName, "venv")))
	r.must(os.Remove(filepath.Join(r.dialer.homes["web1"], "app", "releases", deps[0].ReleaseName, "REVISION")))
	r.dialer.err = map[string]error{"web3": errors.New("connection refused")}

	hs, err := r.d.Releases(context.Background(), r.hosts)
	if err != nil {
		t.Fatal(err)
	}
	if len(hs) != 3 || hs[0].Host.Name != "web1" || hs[2].Host.Name != "web3" {
		t.Fatalf("hosts %+v", hs)
	}
	for _, h := range hs[:2] {
		if h.Err != nil || h.Current != deps[1].ReleaseName || len(h.Releases) != 2 || !h.Releases[0].Current ||
			h.Releases[0].Commit != r.commits[1] || !strings.HasSuffix(h.Root, "/"+h.Host.Name+"/app") {
			t.Errorf("%s: %+v", h.Host.Name, h)
		}
	}
	if old := hs[0].Releases[1]; old.Complete || old.Commit != "" || hs[0].Previous != "" {
		t.Errorf("web1: release without REVISION listed as %+v (previous %q)", old, hs[0].Previous)
	}
	// A venv that is a symlink to a folder counts.
	if old := hs[1].Releases[1]; !old.Complete || !old.Previous || old.Commit != r.commits[0] || hs[1].Previous != deps[0].ReleaseName {
		t.Errorf("web2: %+v", old)
	}
	if hs[2].Err == nil || !strings.Contains(hs[2].Err.Error(), "host web3: connect: connection refused") {
		t.Errorf("web3: %v", hs[2].Err)
	}
	if Disagree(hs) {
		t.Error("web1 and web2 agree; web3 is unknown")
	}

	// A host that was never deployed to has no root: listed empty, and
	// nothing is created there.
	r.dialer.err = nil
	fresh := t.TempDir()
	r.dialer.homes["web9"] = fresh
	hs, err = r.d.Releases(context.Background(), []Host{{Name: "web9"}, r.hosts[0]})
	if err != nil || hs[0].Err != nil || hs[0].Current != "" || len(hs[0].Releases) != 0 || !Disagree(hs) {
		t.Errorf("fresh host: %+v, %v", hs[0], err)
	}
	if entries, _ := os.ReadDir(fresh); len(entries) != 0 {
		t.Errorf("listing created %v on a fresh host", entries)
	}
}
