package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/pushdeploy/pushdeploy/internal/testhosts"
)

// homeTree fingerprints everything under a host user's home: names, types,
// modes, sizes, modification times, symlink targets and file contents.
func homeTree(t *testing.T, h *testhosts.Host) string {
	t.Helper()
	state, err := testhosts.TreeState(h.Home)
	if err != nil {
		t.Fatal(err)
	}
	return state
}

// dryRun runs pushdeploy deploy --dry-run with args and checks that no
// host's home changed.
func (e *e2e) dryRun(args ...string) result {
	e.t.Helper()
	before := map[string]string{}
	for _, h := range e.env.Hosts {
		before[h.Name] = homeTree(e.t, h)
	}
	r := e.pushdeploy(append([]string{"deploy", "--dry-run"}, args...)...)
	for _, h := range e.env.Hosts {
		if diff := cmp.Diff(before[h.Name], homeTree(e.t, h)); diff != "" {
			e.t.Errorf("%s: the dry run changed the host (-before +after):\n%s", h.Name, diff)
		}
	}
	return r
}

func TestEndToEndDryRun(t *testing.T) {
	e := newE2E(t, 3)
	e.vars["DEPLOY_KEEP_RELEASES"] = "1"
	hosts := e.env.Hosts
	sha1 := e.commit("1.0", nil)
	// Host 1 gets two releases and host 2 one, and host 2 also has a
	// release folder an interrupted deploy left (no REVISION): a deploy
	// would remove dep0 from host 1 (retention, DEPLOY_KEEP_RELEASES=1:
	// neither the new release nor dep1 before it may go) and the
	// incomplete one from host 2 (prepare).
	dep0 := e.mustDeploy("--hosts", hosts[0].Name)
	dep1 := e.mustDeploy("--hosts", hosts[0].Name+","+hosts[1].Name)
	const incomplete = "20200101000000-abcdef0"
	e.onHost(hosts[1], "mkdir", "app/releases/"+incomplete)
	wantRemoved := [][]string{{dep0.Release + " (retention)"}, {incomplete + " (incomplete)"}, {"nothing"}}
	wantOld := [][]string{{dep0.Release}, {}, {}}
	wantIncomplete := [][]string{{}, {incomplete}, {}}
	sha2 := e.commit("2.0", nil)

	r := e.dryRun()
	if r.code != 0 {
		t.Fatalf("dry run: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	t.Logf("dry run took %.2fs:\n%s", r.took.Seconds(), r.stdout)
	for _, want := range []string{sha2, "-" + sha2[:7], hosts[0].Name, hosts[1].Name, hosts[2].Name,
		dep1.Release + " -> ", hosts[2].Home + "/app (would be created)", "no problems found"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("dry run output lacks %q", want)
		}
	}
	for i, h := range hosts {
		if got := planLine(r.stdout, h.Name, "would remove"); got != strings.Join(wantRemoved[i], ", ") {
			t.Errorf("%s: the plan would remove %q, want %q", h.Name, got, strings.Join(wantRemoved[i], ", "))
		}
	}
	if _, err := os.Lstat(hosts[2].Path("app")); !os.IsNotExist(err) {
		t.Errorf("the dry run created the root of a host never deployed (%v)", err)
	}

	r = e.dryRun("--json")
	var plan planJSON
	if err := json.Unmarshal([]byte(r.stdout), &plan); err != nil || r.code != 0 {
		t.Fatalf("dry run --json: exit %d, %v\n%s%s", r.code, err, r.stdout, r.stderr)
	}
	if !plan.OK || plan.Commit != sha2 || !strings.HasSuffix(plan.Release, "-"+sha2[:7]) || len(plan.Hosts) != 3 {
		t.Errorf("plan %+v, want ok, commit %s on 3 hosts", plan, sha2)
	}
	for i, hp := range plan.Hosts {
		wantCur := dep1.Release
		if i == 2 {
			wantCur = ""
		}
		if hp.Host != hosts[i].Name || hp.Current != wantCur || len(hp.Problems) != 0 || hp.Python == "" {
			t.Errorf("host %d: %+v, want %s with current %q and no problems", i, hp, hosts[i].Name, wantCur)
		}
		if !slices.Equal(hp.RemoveOld, wantOld[i]) || !slices.Equal(hp.RemoveIncomplete, wantIncomplete[i]) {
			t.Errorf("%s: remove_old %q, remove_incomplete %q; want %q and %q",
				hp.Host, hp.RemoveOld, hp.RemoveIncomplete, wantOld[i], wantIncomplete[i])
		}
	}

	// A pinned older commit: the hosts see the branch elsewhere, and that
	// is fine.
	r = e.dryRun("--commit", sha1[:10])
	if r.code != 0 || !strings.Contains(r.stdout, "dry run: deploy "+sha1+" ") {
		t.Errorf("dry run --commit: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	// Host 3's key unknown: exit 1 naming it, and still nothing changed.
	e.withoutHostKey(hosts[2])
	r = e.dryRun()
	if r.code != 1 || !strings.Contains(r.stderr, "pushdeploy: dry run: the deploy would fail on "+hosts[2].Name+"\n") {
		t.Errorf("dry run with host 3's key unknown: exit %d, want 1 naming only host 3\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout, "PROBLEM       connect: ") || !strings.Contains(r.stdout, "SHA256:") {
		t.Errorf("the plan does not show the unknown key:\n%s", r.stdout)
	}

	// The dry runs removed nothing (dryRun compared every home as a
	// whole; this says it plainly).
	for i, want := range [][]string{{dep0.Release, dep1.Release}, {incomplete, dep1.Release}, nil} {
		if got := releases(t, hosts[i]); !slices.Equal(got, want) {
			t.Errorf("%s: releases %v after the dry runs, want %v", hosts[i].Name, got, want)
		}
	}

	// A real deploy still works after all that, and removes what the
	// plan said.
	e.vars["DEPLOY_KNOWN_HOSTS"] = e.env.KnownHosts
	dep2 := e.mustDeploy()
	for i, want := range [][]string{{dep1.Release, dep2.Release}, {dep1.Release, dep2.Release}, {dep2.Release}} {
		h := hosts[i]
		if got, want := current(h), "releases/"+dep2.Release; got != want {
			t.Errorf("%s: current -> %q after the real deploy, want %q", h.Name, got, want)
		}
		if got := releases(t, h); !slices.Equal(got, want) {
			t.Errorf("%s: releases %v after the real deploy, want %v", h.Name, got, want)
		}
	}
}

// planLine returns what the human plan says after label in host's section
// ("" when the section or the line is missing).
func planLine(plan, host, label string) string {
	_, section, ok := strings.Cut(plan, "\n"+host+"\n")
	if !ok {
		return ""
	}
	section, _, _ = strings.Cut(section, "\n\n")
	for _, l := range strings.Split(section, "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(l), label+" "); ok {
			return strings.TrimSpace(rest)
		}
	}
	return ""
}

// withoutHostKey points DEPLOY_KNOWN_HOSTS at a copy of the test hosts'
// known_hosts that lacks h's key.
func (e *e2e) withoutHostKey(h *testhosts.Host) {
	e.t.Helper()
	data, err := os.ReadFile(e.env.KnownHosts)
	if err != nil {
		e.t.Fatal(err)
	}
	var kept []string
	for _, l := range strings.Split(string(data), "\n") {
		if l != "" && l != h.HostKeyLine {
			kept = append(kept, l)
		}
	}
	known := filepath.Join(e.t.TempDir(), "known_hosts")
	if err := os.WriteFile(known, []byte(strings.Join(kept, "\n")+"\n"), 0o600); err != nil {
		e.t.Fatal(err)
	}
	e.vars["DEPLOY_KNOWN_HOSTS"] = known
}

// TestEndToEndHostsFlag: rollback, releases and check take --hosts like
// deploy, touching and reporting only the hosts named; an unknown name is
// refused with the list of the hosts there are.
func TestEndToEndHostsFlag(t *testing.T) {
	e := newE2E(t, 2)
	h1, h2 := e.env.Hosts[0], e.env.Hosts[1]
	e.commit("1.0", nil)
	first := e.mustDeploy()
	e.commit("2.0", nil)
	second := e.mustDeploy()

	if r := e.pushdeploy("rollback", "--hosts", h1.Name); r.code != 0 {
		t.Fatalf("rollback --hosts %s: exit %d\n%s", h1.Name, r.code, r.stderr)
	}
	if got, want := current(h1), "releases/"+first.Release; got != want {
		t.Errorf("%s after rollback --hosts: current -> %s, want %s", h1.Name, got, want)
	}
	if got, want := current(h2), "releases/"+second.Release; got != want {
		t.Errorf("%s (not named) after rollback --hosts: current -> %s, want %s", h2.Name, got, want)
	}

	r := e.pushdeploy("releases", "--hosts", h2.Name)
	if r.code != 0 || !strings.Contains(r.stdout, h2.Name) || strings.Contains(r.stdout, h1.Name) {
		t.Errorf("releases --hosts %s: exit %d\n%s%s", h2.Name, r.code, r.stdout, r.stderr)
	}
	r = e.pushdeploy("check", "--hosts", h2.Name)
	if r.code != 0 || !strings.Contains(r.stdout, h2.Name) || strings.Contains(r.stdout, h1.Name) || !strings.Contains(r.stdout, "1 host(s)") {
		t.Errorf("check --hosts %s: exit %d\n%s%s", h2.Name, r.code, r.stdout, r.stderr)
	}
	// Named hosts: "HOST as NAME" lines; the name is what progress,
	// output and --hosts use.
	named := filepath.Join(t.TempDir(), "hosts.txt")
	if err := os.WriteFile(named, []byte(h1.Name+" as web1\n"+h2.Name+" as web2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	e.vars["DEPLOY_HOSTS_FILE"] = named
	r = e.pushdeploy("releases", "--hosts", "web2")
	if r.code != 0 || !strings.Contains(r.stdout, "web2") || strings.Contains(r.stdout, h2.Name) || strings.Contains(r.stdout, "web1") {
		t.Errorf("releases --hosts web2 (named hosts): exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = e.pushdeploy("deploy", "--hosts", "web1")
	if r.code != 0 || !regexp.MustCompile(`(?m)^\d\d:\d\d:\d\d web1 +switch +\d`).MatchString(r.stderr) || strings.Contains(r.stderr, h1.Name) || strings.Contains(r.stderr, "web2") {
		t.Errorf("deploy --hosts web1 (named hosts): exit %d\n%s", r.code, r.stderr)
	}
	for _, cmd := range []string{"deploy", "rollback", "releases", "check"} {
		r := e.pushdeploy(cmd, "--hosts", "web9")
		if r.code != 2 || !strings.Contains(r.stderr, `"web9" is not in the hosts file; its hosts are web1, web2`) {
			t.Errorf("%s --hosts web9: exit %d, want 2 naming the hosts\n%s", cmd, r.code, r.stderr)
		}
	}
}
