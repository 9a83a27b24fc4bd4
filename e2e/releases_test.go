package e2e

import (
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/pushdeploy/pushdeploy/internal/testhosts"
)

// recordingHook is both repository hooks (it tells which by its own
// name). It records what a hook gets (every contract variable, its
// working folder, where current points as it runs, the python on PATH)
// in $HOME/hooks/<name>.env, appends "<name> <commit>" to $HOME/hooks/log,
// and prints a line that says it is done. The before-switch hook fails
// like a migration on a host that has $HOME/fail-before-switch.
const recordingHook = `#!/bin/sh
set -eu
name=${0##*/}
mkdir -p "$HOME/hooks"
{
	env | grep -E '^(RELEASE_DIR|CURRENT_DIR|COMMIT|BRANCH|DEPLOYMENT_ID|APP_PROCESSES|APP_THREADS)=' | sort
	echo "PWD=$(pwd -P)"
	echo "current=$(readlink "$CURRENT_DIR" || true)"
	echo "python=$(command -v python)"
} >"$HOME/hooks/$name.env"
echo "$name $COMMIT" >>"$HOME/hooks/log"
if [ "$name" = before-switch ] && [ -e "$HOME/fail-before-switch" ]; then
	echo 'django.db.utils.OperationalError: no such table' >&2
	exit 1
fi
echo "$name: done with $COMMIT"
`

// TestEndToEndSharedHooksRetention: shared paths (a .env visible in the
// new release, missing folders created and linked, a missing file failing
// its host before any switch); both repository hooks with their whole
// contract, and their output kept; a before-switch hook failing on host 2
// (no host switched, host 3 untouched); retention keeping exactly
// DEPLOY_KEEP_RELEASES, never current or the release before it, also after
// failed deploys and a rollback, and leaving alone what is not a release.
func TestEndToEndSharedHooksRetention(t *testing.T) {
	e := newE2E(t, 3)
	hosts := e.env.Hosts
	e.vars["DEPLOY_SHARED_PATHS"] = ".env,media,var/uploads,static.d/"
	e.vars["DEPLOY_KEEP_RELEASES"] = "2"
	// Not the defaults, so the hooks' values must come from the config.
	e.vars["DEPLOY_APP_PROCESSES"] = "3"
	e.vars["DEPLOY_APP_THREADS"] = "7"
	for _, h := range hosts {
		e.onHost(h, "sh", "-c", `mkdir -p app/shared && echo "SECRET=$USER" > app/shared/.env`)
	}
	var deps []deploymentJSON
	var shas []string
	for i := 0; i < 3; i++ {
		shas = append(shas, e.commit("1.0", map[string]string{
			".pushdeploy/before-switch": recordingHook,
			".pushdeploy/after-switch":  recordingHook,
			// A placeholder the repository has where a shared folder goes.
			"media/README": "uploads go here\n",
			"NEWS":         strings.Repeat("x", i),
		}))
		deps = append(deps, e.mustDeploy())
	}
	for _, h := range hosts {
		checkShared(t, e, h)
		checkHooks(t, e, h, deps[2], shas, "releases/"+deps[1].Release)
		want := []string{deps[1].Release, deps[2].Release}
		if got := releases(t, h); !slices.Equal(got, want) {
			t.Errorf("%s: releases %v, want the newest 2 %v", h.Name, got, want)
		}
	}
	checkHookOutput(t, e, deps[2])

	checkFailingHookOnHost2(t, e, deps[2].Release)
	checkMissingSharedFile(t, e, deps[2].Release)
	checkRetentionAfterRollback(t, e, deps[1].Release, deps[2].Release)
}

// checkShared: the shared .env is what the release reads; media (whose
// placeholder in the repository is replaced), var/uploads (whose parent
// the release does not have) and static.d/ (a dot, but a trailing "/")
// were missing, so they were created as folders under shared/ and linked.
func checkShared(t *testing.T, e *e2e, h *testhosts.Host) {
	t.Helper()
	if env := e.onHost(h, "cat", "app/current/.env"); env != "SECRET="+h.User {
		t.Errorf("%s: shared .env in the release reads %q", h.Name, env)
	}
	for _, p := range []string{"media", "var/uploads", "static.d"} {
		if target, err := os.Readlink(h.Path("app/current/" + p)); err != nil || target != h.Home+"/app/shared/"+p {
			t.Errorf("%s: %s in the release -> %q (%v), want a link to %s/app/shared/%s", h.Name, p, target, err, h.Home, p)
		}
		if fi, err := os.Lstat(h.Path("app/shared/" + p)); err != nil || !fi.IsDir() {
			t.Errorf("%s: shared/%s was not created as a folder: %v", h.Name, p, err)
		}
	}
	if _, err := os.Lstat(h.Path("app/shared/media/README")); !os.IsNotExist(err) {
		t.Errorf("%s: the repository's media/README reached shared/media (%v)", h.Name, err)
	}
}

// checkHooks: on h, each deploy ran before-switch then after-switch; the
// last ones (of dep) got exactly the contract variables with dep's values,
// ran in the release folder with its venv's python, before-switch while
// current still pointed at prev, after-switch once it pointed at dep.
func checkHooks(t *testing.T, e *e2e, h *testhosts.Host, dep deploymentJSON, shas []string, prev string) {
	t.Helper()
	var wantLog []string
	for _, sha := range shas {
		wantLog = append(wantLog, "before-switch "+sha, "after-switch "+sha)
	}
	if log := e.onHost(h, "cat", "hooks/log"); log != strings.Join(wantLog, "\n") {
		t.Errorf("%s: hooks ran in this order:\n%s\nwant:\n%s", h.Name, log, strings.Join(wantLog, "\n"))
	}
	relDir := h.Home + "/app/releases/" + dep.Release
	for hook, cur := range map[string]string{"before-switch": prev, "after-switch": "releases/" + dep.Release} {
		want := strings.Join([]string{
			"APP_PROCESSES=3", "APP_THREADS=7", "BRANCH=release", "COMMIT=" + dep.Commit,
			"CURRENT_DIR=" + h.Home + "/app/current", "DEPLOYMENT_ID=" + dep.ID, "RELEASE_DIR=" + relDir,
			"PWD=" + relDir, "current=" + cur, "python=" + relDir + "/venv/bin/python",
		}, "\n")
		if diff := cmp.Diff(want, e.onHost(h, "cat", "hooks/"+hook+".env")); diff != "" {
			t.Errorf("%s: what %s got (-want +got):\n%s", h.Name, hook, diff)
		}
	}
}

// checkHookOutput: what a hook prints on success is kept with its step in
// the history (GET /api/deployments/{id} serves it as output_tail); the
// progress shows it too (TestHookOutputIsLogged, TestProgressHandler).
func checkHookOutput(t *testing.T, e *e2e, dep deploymentJSON) {
	t.Helper()
	for host, steps := range e.stepOutputs(dep.ID) {
		for _, hook := range []string{"before-switch", "after-switch"} {
			if want := hook + ": done with " + dep.Commit; !strings.Contains(steps[hook], want) {
				t.Errorf("%s: output of %s in the history is %q, want it to hold %q", host, hook, steps[hook], want)
			}
		}
	}
}

// checkFailingHookOnHost2 deploys again with the before-switch hook
// failing on host 2 only. A deployment prepares every host (hooks
// included) before it switches any, and DEPLOY_PARALLEL=1 prepares them
// in order and starts no host after a failure. So: host 1 was prepared
// (its before-switch ran) and then undone, never switched; host 2 failed
// and was undone; host 3 was logged into and nothing more, byte for byte
// as it was. On hosts 1 and 2 only what docs/deploy.md allows a failed
// prepare to leave changed (prepareLeftovers).
func checkFailingHookOnHost2(t *testing.T, e *e2e, cur string) {
	t.Helper()
	hosts := e.env.Hosts
	e.onHost(hosts[1], "touch", "fail-before-switch")
	defer e.onHost(hosts[1], "rm", "fail-before-switch")
	before := map[string]string{}
	for _, h := range hosts {
		before[h.Name] = homeTree(t, h)
	}
	r := e.pushdeploy("deploy")
	if r.code != 1 || !strings.Contains(r.stderr, "host "+hosts[1].Name+": before-switch: exit status 1") || !strings.Contains(r.stderr, "no such table") {
		t.Fatalf("hook failing on host 2: exit %d, want 1 naming host 2's before-switch\n%s", r.code, r.stderr)
	}
	for i, h := range hosts {
		if got := current(h); got != "releases/"+cur {
			t.Errorf("%s: current -> %q after a failing hook on host 2", h.Name, got)
		}
		after := homeTree(t, h)
		if i == 2 {
			if diff := cmp.Diff(before[h.Name], after); diff != "" {
				t.Errorf("%s: touched by a deploy that failed on host 2 (-before +after):\n%s", h.Name, diff)
			}
			continue
		}
		if d := unexpectedChanges(before[h.Name], after, prepareLeftovers); len(d) > 0 {
			t.Errorf("%s: the failed deploy changed more than a failed prepare may: %v", h.Name, d)
		}
	}
	// Host 1 was prepared as far as its hook, and no further.
	if log := e.onHost(hosts[0], "cat", "hooks/log"); !strings.HasPrefix(lastLine(log), "before-switch ") || strings.Count(log, "\n") != 6 {
		t.Errorf("%s: hooks/log after the failed deploy, want one before-switch more:\n%s", hosts[0].Name, log)
	}
}

// prepareLeftovers says whether a path (relative to the home) may differ
// after a deploy that prepared the host and then removed its release: the
// lock file names the last holder, the releases folder has a new
// modification time, and what the hook itself wrote outside the release
// (docs/hooks.md: a revert does not undo it).
func prepareLeftovers(path string) bool {
	return path == "app/.pushdeploy.lock" || path == "app/releases" || path == "hooks" || strings.HasPrefix(path, "hooks/")
}

// unexpectedChanges lists the paths whose TreeState line differs between
// before and after (changed, added or removed) that allowed does not allow.
func unexpectedChanges(before, after string, allowed func(path string) bool) []string {
	lines := func(s string) map[string]string {
		m := map[string]string{}
		for _, l := range strings.Split(s, "\n") {
			if p, _, ok := strings.Cut(l, " "); ok {
				m[p] = l
			}
		}
		return m
	}
	b, a := lines(before), lines(after)
	var out []string
	for p, l := range b {
		if a[p] != l && !allowed(p) {
			out = append(out, p)
		}
	}
	for p := range a {
		if _, ok := b[p]; !ok && !allowed(p) {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}

// checkMissingSharedFile removes the shared .env from host 3: the deploy
// fails there in the shared step, naming the host, the file and how to
// fix it; hosts 1 and 2 were prepared (their before-switch hooks ran) and
// none was switched.
func checkMissingSharedFile(t *testing.T, e *e2e, cur string) {
	t.Helper()
	hosts := e.env.Hosts
	third := hosts[2]
	env := e.onHost(third, "cat", "app/shared/.env")
	e.onHost(third, "rm", "app/shared/.env")
	logs := map[string]string{}
	for _, h := range hosts {
		logs[h.Name] = e.onHost(h, "cat", "app/revisions.log")
	}
	r := e.pushdeploy("deploy")
	for _, want := range []string{
		"host " + third.Name + ": shared: exit status 1",
		"shared file " + third.Home + "/app/shared/.env is missing: create it on this host (DEPLOY_SHARED_PATHS lists .env)",
	} {
		if r.code != 1 || !strings.Contains(r.stderr, want) {
			t.Errorf("deploy without host 3's shared .env: exit %d, want 1 and %q\n%s", r.code, want, r.stderr)
		}
	}
	for i, h := range hosts {
		if got := current(h); got != "releases/"+cur {
			t.Errorf("%s: current -> %q after a deploy that failed on host 3", h.Name, got)
		}
		if log := e.onHost(h, "cat", "app/revisions.log"); log != logs[h.Name] {
			t.Errorf("%s: revisions.log changed by a deploy that failed on host 3:\n%s", h.Name, log)
		}
		if got := releases(t, h); len(got) != 2 {
			t.Errorf("%s: releases %v after a failed deploy, want the 2 kept before", h.Name, got)
		}
		// shared comes before before-switch: hosts 1 and 2 ran it, host 3
		// stopped before it.
		if ran := strings.HasPrefix(lastLine(e.onHost(h, "cat", "hooks/log")), "before-switch "); ran != (i < 2) {
			t.Errorf("%s: before-switch ran: %v, want %v", h.Name, ran, i < 2)
		}
	}
	e.onHost(third, "sh", "-c", `printf '%s\n' "$1" >app/shared/.env`, "sh", env)
}

// checkRetentionAfterRollback: after a rollback to the oldest kept
// release (oldest), a deploy with DEPLOY_KEEP_RELEASES=1 keeps the new
// current and the release before it (oldest, older than newer, which
// goes). A folder under releases/ not named like a release, and a file
// named like the oldest release (which once stopped the cleanup), are
// left alone.
func checkRetentionAfterRollback(t *testing.T, e *e2e, oldest, newer string) {
	t.Helper()
	if r := e.pushdeploy("rollback", "--to", oldest); r.code != 0 {
		t.Fatalf("rollback --to %s: exit %d\n%s", oldest, r.code, r.stderr)
	}
	const stray = "19990101000000-0000000"
	for _, h := range e.env.Hosts {
		e.onHost(h, "sh", "-c", `mkdir app/releases/keep-me && echo mine >app/releases/keep-me/notes && echo file >app/releases/`+stray)
	}
	e.vars["DEPLOY_KEEP_RELEASES"] = "1"
	dep := e.mustDeploy()
	for _, h := range e.env.Hosts {
		want := []string{stray, oldest, dep.Release, "keep-me"}
		if got := releases(t, h); !slices.Equal(got, want) {
			t.Errorf("%s: releases %v after a deploy with DEPLOY_KEEP_RELEASES=1, want %v (%s removed)", h.Name, got, want, newer)
		}
		if got := e.onHost(h, "cat", "app/releases/keep-me/notes", "app/releases/"+stray); got != "mine\nfile" {
			t.Errorf("%s: retention changed what is not a release: %q", h.Name, got)
		}
		if got := current(h); got != "releases/"+dep.Release {
			t.Errorf("%s: current -> %q, want %s", h.Name, got, dep.Release)
		}
	}
}
