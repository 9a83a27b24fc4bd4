package e2e

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pushdeploy/pushdeploy/deploy"
	"github.com/pushdeploy/pushdeploy/internal/testhosts"
)

// rootFingerprint lists everything under the host's root folder: names,
// types, modes, sizes, modification times, symlink targets and a hash of
// every file's content. Two equal fingerprints mean the tree is byte for
// byte the same.
func rootFingerprint(t *testing.T, h *testhosts.Host) string {
	t.Helper()
	state, err := testhosts.TreeState(h.Path("app"))
	if err != nil {
		t.Fatal(err)
	}
	return state
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

func (e *e2e) listReleases() deploy.ReleasesReport {
	e.t.Helper()
	r := e.pushdeploy("releases", "--json")
	if r.code != 0 {
		e.t.Fatalf("releases: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	var out deploy.ReleasesReport
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		e.t.Fatalf("releases --json: %v\n%s", err, r.stdout)
	}
	return out
}

func TestEndToEndRollback(t *testing.T) {
	e := newE2E(t, 3)
	var shas []string
	var deps []deploymentJSON
	// (The test wheels are pdtestdep 1.0 and 2.0.)
	for i, v := range []string{"1.0", "2.0", "1.0"} {
		shas = append(shas, e.commit(v, map[string]string{"NEWS": strconv.Itoa(i) + "\n"}))
		deps = append(deps, e.mustDeploy())
	}

	// releases --json: three per host, newest first, current and previous marked.
	list := e.listReleases()
	if list.Disagree || len(list.Hosts) != 3 {
		t.Fatalf("releases: %+v", list)
	}
	for i, h := range list.Hosts {
		if h.Host != e.env.Hosts[i].Name || h.Current != deps[2].Release || h.Previous != deps[1].Release || len(h.Releases) != 3 || h.Error != "" {
			t.Errorf("host %d: %+v", i, h)
			continue
		}
		for j, r := range h.Releases {
			want := deps[2-j]
			if r.Name != want.Release || r.Commit != shas[2-j] || !r.Complete || r.Current != (j == 0) || r.Previous != (j == 1) ||
				r.Time.Format("20060102150405") != want.Release[:14] {
				t.Errorf("%s: release %d: %+v", h.Host, j, r)
			}
		}
	}

	// A dry run logs in, checks and plans, and changes nothing at all:
	// not the root, and nothing else in the login's home either.
	before := map[string]string{}
	for _, h := range e.env.Hosts {
		before[h.Name] = homeTree(t, h)
	}
	r := e.pushdeploy("rollback", "--dry-run")
	if r.code != 0 || strings.Count(r.stdout, deps[2].Release+" -> "+deps[1].Release) != 3 || !strings.Contains(r.stdout, "lock, switch, restart") {
		t.Errorf("rollback --dry-run: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = e.pushdeploy("rollback", "--dry-run", "--json", "--to", "20200101000000-abcdef0")
	if r.code != 1 || !strings.Contains(r.stdout, `"ok":false`) || !strings.Contains(r.stderr, "does not exist") {
		t.Errorf("rollback --dry-run to a missing release: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, h := range e.env.Hosts {
		if diff := cmp.Diff(before[h.Name], homeTree(t, h)); diff != "" {
			t.Errorf("%s: changed by a rollback dry run (-before +after):\n%s", h.Name, diff)
		}
	}

	// rollback: every host back on the second release, restarted with it.
	r = e.pushdeploy("rollback", "--json")
	if r.code != 0 {
		t.Fatalf("rollback: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	var rb rollbackJSON
	if err := json.Unmarshal([]byte(r.stdout), &rb); err != nil {
		t.Fatalf("rollback --json: %v\n%s", err, r.stdout)
	}
	if rb.Action != "rollback" || rb.Status != "succeeded" || rb.Release != deps[1].Release || rb.Commit != shas[1] {
		t.Errorf("rollback result %+v", rb)
	}
	for _, h := range e.env.Hosts {
		if got := current(h); got != "releases/"+deps[1].Release {
			t.Errorf("%s: current -> %q, want %s", h.Name, got, deps[1].Release)
		}
		if v := e.onHost(h, "app/current/venv/bin/python", "-c", "import pdtestdep; print(pdtestdep.VERSION)"); v != "2.0" {
			t.Errorf("%s: current venv has pdtestdep %q, want 2.0", h.Name, v)
		}
		if f := strings.Fields(lastLine(e.onHost(h, "cat", "app/revisions.log"))); len(f) != 5 || f[1] != "rollback" || f[2] != deps[1].Release || f[3] != shas[1] || f[4] != rb.ID {
			t.Errorf("%s: revisions.log ends with %q", h.Name, f)
		}
		relDir := h.Home + "/app/releases/" + deps[1].Release
		env, _ := os.ReadFile(h.Path("restart.env"))
		for _, want := range []string{"COMMIT=" + shas[1], "RELEASE_DIR=" + relDir, "PWD=" + relDir, "DEPLOYMENT_ID=" + rb.ID} {
			if !strings.Contains(string(env), want+"\n") {
				t.Errorf("%s: restart environment lacks %s:\n%s", h.Name, want, env)
			}
		}
	}

	// --to the first release.
	r = e.pushdeploy("rollback", "--to", deps[0].Release)
	if r.code != 0 || !strings.Contains(r.stdout, "rolled back 3 host(s) to "+deps[0].Release) {
		t.Fatalf("rollback --to: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, h := range e.env.Hosts {
		if got := current(h); got != "releases/"+deps[0].Release {
			t.Errorf("%s: current -> %q, want %s", h.Name, got, deps[0].Release)
		}
	}

	// Bad release names are usage errors: nothing is contacted.
	for _, bad := range []string{"../x", "a/b", "$(id)", deps[0].Release + "/.."} {
		if r := e.pushdeploy("rollback", "--to", bad); r.code != 2 || !strings.Contains(r.stderr, "--to") {
			t.Errorf("--to %q: exit %d, want 2\n%s", bad, r.code, r.stderr)
		}
	}

	// The target lacks REVISION on host 2: no host is switched.
	second := e.env.Hosts[1]
	e.onHost(second, "rm", "app/releases/"+deps[2].Release+"/REVISION")
	logs := map[string]string{}
	for _, h := range e.env.Hosts {
		logs[h.Name] = e.onHost(h, "cat", "app/revisions.log")
	}
	r = e.pushdeploy("rollback", "--to", deps[2].Release)
	if r.code != 1 {
		t.Fatalf("rollback to a release incomplete on host 2: exit %d, want 1\n%s", r.code, r.stderr)
	}
	for _, want := range []string{"no host was changed", "1 of 3 host(s) (" + second.Name + ")", "host " + second.Name + ": verify: release " + deps[2].Release + " is incomplete", "REVISION"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("error lacks %q:\n%s", want, r.stderr)
		}
	}
	for _, h := range e.env.Hosts {
		if got := current(h); got != "releases/"+deps[0].Release {
			t.Errorf("%s: switched to %q by a refused rollback", h.Name, got)
		}
		if log := e.onHost(h, "cat", "app/revisions.log"); log != logs[h.Name] {
			t.Errorf("%s: revisions.log changed by a refused rollback", h.Name)
		}
	}

	// Hosts that disagree about current are flagged.
	third := e.env.Hosts[2]
	e.onHost(third, "sh", "-c", `cd app && ln -sfn "releases/$1" current.new && mv -T current.new current`, "sh", deps[1].Release)
	r = e.pushdeploy("releases")
	if r.code != 0 || !strings.Contains(r.stdout, "warning: hosts disagree about current") ||
		!strings.Contains(r.stdout, third.Name+"="+deps[1].Release) || !strings.Contains(r.stdout, "no (missing REVISION)") {
		t.Errorf("releases with a mixed pool: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if list := e.listReleases(); !list.Disagree {
		t.Errorf("releases --json: disagree is false for a mixed pool")
	}
}

// TestEndToEndRollbackWaitsForADeploy: a rollback while a deploy holds a
// host's lock waits DEPLOY_LOCK_TIMEOUT, then fails naming the deployment
// that holds it; the host is never interleaved.
func TestEndToEndRollbackWaitsForADeploy(t *testing.T) {
	e := newE2E(t, 2)
	e.commit("1.0", nil)
	first := e.mustDeploy()
	e.commit("2.0", nil)
	second := e.mustDeploy()
	e.commit("1.0", map[string]string{"NEWS": "third\n"})

	goOn := filepath.Join(e.env.Dir, "go-on-rollback")
	e.vars["DEPLOY_RESTART_CMD"] = `touch "$HOME/restarting"; i=0; while [ ! -e ` + goOn + ` ] && [ $i -lt 1200 ]; do sleep 0.1; i=$((i+1)); done`
	done := make(chan result, 1)
	go func() { done <- e.pushdeploy("deploy", "--json") }()
	host1 := e.env.Hosts[0]
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if _, err := os.Stat(host1.Path("restarting")); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the deploy never reached its restart: %+v", <-done)
		}
		time.Sleep(100 * time.Millisecond)
	}

	e.vars["DEPLOY_RESTART_CMD"] = restartCmd
	e.vars["DEPLOY_LOCK_TIMEOUT"] = "2s"
	r := e.pushdeploy("rollback")
	if err := os.WriteFile(goOn, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	d := <-done
	if d.code != 0 {
		t.Fatalf("the deploy failed: %s", d.stderr)
	}
	var third deploymentJSON
	if err := json.Unmarshal([]byte(d.stdout), &third); err != nil {
		t.Fatal(err)
	}
	if r.code != 1 || !strings.Contains(r.stderr, "host "+host1.Name+": lock: host busy") || !strings.Contains(r.stderr, "locked by deployment "+third.ID+" since ") {
		t.Errorf("rollback during a deploy: exit %d, want 1 naming deployment %s\n%s", r.code, third.ID, r.stderr)
	}
	// The deploy finished undisturbed on every host.
	for _, h := range e.env.Hosts {
		if got := current(h); got != "releases/"+third.Release {
			t.Errorf("%s: current -> %q, want the deploy's %s", h.Name, got, third.Release)
		}
		log := e.onHost(h, "cat", "app/revisions.log")
		if strings.Contains(log, " rollback ") {
			t.Errorf("%s: a rollback line although the rollback was refused:\n%s", h.Name, log)
		}
	}
	// Now the lock is free: the rollback goes through.
	r = e.pushdeploy("rollback")
	if r.code != 0 {
		t.Fatalf("rollback after the deploy: exit %d\n%s", r.code, r.stderr)
	}
	for _, h := range e.env.Hosts {
		if got := current(h); got != "releases/"+second.Release {
			t.Errorf("%s: current -> %q, want %s", h.Name, got, second.Release)
		}
	}
	_ = first
}

// TestEndToEndRollbackAPI: POST /api/rollback queues a rollback that the
// serve worker carries out, to each host's previous release or to the
// release the body names; a release one host lacks fails the rollback
// before any host is switched, naming that host. GET /api/releases lists
// every host, and says when they disagree about current.
func TestEndToEndRollbackAPI(t *testing.T) {
	e := newE2E(t, 2)
	e.commit("1.0", nil)
	first := e.mustDeploy()
	e.commit("2.0", nil)
	second := e.mustDeploy()
	s := e.serve()

	code, list := s.api(http.MethodGet, "/api/releases")
	hosts, _ := list["hosts"].([]any)
	if code != 200 || len(hosts) != 2 || list["disagree"] != false {
		t.Fatalf("GET /api/releases: %d %v", code, list)
	}
	if rels := hosts[0].(map[string]any)["releases"].([]any); len(rels) != 2 {
		t.Errorf("releases of host 1: %v", rels)
	}

	post := func(body string) (int, map[string]any) {
		req, _ := http.NewRequest(http.MethodPost, s.url+"/api/rollback", bytes.NewReader([]byte(body)))
		req.Header.Set("Authorization", "Bearer "+s.token)
		return s.do(req)
	}
	if code, out := post(`{"release":"../../etc"}`); code != 400 {
		t.Errorf("hostile release: %d %v", code, out)
	}
	code, out := post("")
	if code != 202 || out["status"] != "queued" || out["deployment"] == "" {
		t.Fatalf("POST /api/rollback: %d %v", code, out)
	}
	d := s.waitDone(out["deployment"].(string))
	if d["status"] != "succeeded" || d["action"] != "rollback" || d["release"] != first.Release {
		t.Errorf("rollback deployment: %v\n%s", d, s.stderr)
	}
	for _, h := range e.env.Hosts {
		if got := current(h); got != "releases/"+first.Release {
			t.Errorf("%s: current -> %q, want %s", h.Name, got, first.Release)
		}
	}

	// {"release": …} on the first release: the default (the release
	// before current) does not exist there, so only the body can take
	// the hosts forward to the second.
	code, out = post(`{"release":"` + second.Release + `"}`)
	if code != 202 {
		t.Fatalf("POST /api/rollback to %s: %d %v", second.Release, code, out)
	}
	d = s.waitDone(out["deployment"].(string))
	if d["status"] != "succeeded" || d["release"] != second.Release || d["requested_release"] != second.Release {
		t.Errorf("rollback to %s: %v\n%s", second.Release, d, s.stderr)
	}
	for _, h := range e.env.Hosts {
		if got := current(h); got != "releases/"+second.Release {
			t.Errorf("%s: current -> %q, want %s", h.Name, got, second.Release)
		}
	}

	// A release host 2 lacks: the deployment fails naming host 2, and host
	// 1, which has it, is not switched either.
	host1, host2 := e.env.Hosts[0], e.env.Hosts[1]
	e.onHost(host2, "rm", "-rf", "app/releases/"+first.Release)
	logs := map[string]string{}
	for _, h := range e.env.Hosts {
		logs[h.Name] = e.onHost(h, "cat", "app/revisions.log")
	}
	code, out = post(`{"release":"` + first.Release + `"}`)
	if code != 202 {
		t.Fatalf("POST /api/rollback to a release host 2 lacks: %d %v", code, out)
	}
	d = s.waitDone(out["deployment"].(string))
	msg, _ := d["error"].(string)
	for _, want := range []string{"no host was changed", "(" + host2.Name + ")", "host " + host2.Name + ": ", "release " + first.Release + " does not exist"} {
		if d["status"] != "failed" || !strings.Contains(msg, want) {
			t.Errorf("rollback to a release host 2 lacks: status %v, error lacks %q:\n%s", d["status"], want, msg)
		}
	}
	if strings.Contains(msg, "host "+host1.Name+": ") {
		t.Errorf("the error blames host 1, which has the release:\n%s", msg)
	}
	for _, h := range e.env.Hosts {
		if got := current(h); got != "releases/"+second.Release {
			t.Errorf("%s: switched to %q by a refused rollback", h.Name, got)
		}
		if log := e.onHost(h, "cat", "app/revisions.log"); log != logs[h.Name] {
			t.Errorf("%s: revisions.log changed by a refused rollback:\n%s", h.Name, log)
		}
	}

	// Host 1 put back on the first release by hand: the hosts disagree,
	// and the answer says which host is where.
	e.onHost(host1, "sh", "-c", `cd app && ln -sfn "releases/$1" current.new && mv -T current.new current`, "sh", first.Release)
	code, list = s.api(http.MethodGet, "/api/releases")
	hosts, _ = list["hosts"].([]any)
	if code != 200 || list["disagree"] != true || len(hosts) != 2 {
		t.Fatalf("GET /api/releases with hosts on different releases: %d %v", code, list)
	}
	for i, want := range []string{first.Release, second.Release} {
		hm, _ := hosts[i].(map[string]any)
		if hm["host"] != e.env.Hosts[i].Name || hm["current"] != want {
			t.Errorf("GET /api/releases: host %d is %v with current %v, want %s on %s", i, hm["host"], hm["current"], e.env.Hosts[i].Name, want)
		}
	}
}
