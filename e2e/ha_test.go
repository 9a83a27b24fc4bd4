package e2e

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/pushdeploy/pushdeploy/internal/pgtest"
	"github.com/pushdeploy/pushdeploy/internal/testhosts"
)

// The end-to-end tests of several deployers on one PostgreSQL (issue 14):
// real serve processes, real sshd hosts, pip from a package index the
// test holds (pipGate), and a real PostgreSQL (internal/pgtest).

// haPush is one push the test sent, and its answer.
type haPush struct {
	tag, commit, delivery string
	to                    string // the deployer it was sent to
	id, status            string // the answer's deployment and status
}

// haPushTo commits the app tagged tag and pushes it to n with tag as its
// delivery id; the answer must be 202.
func haPushTo(t *testing.T, e *e2e, g *pipGate, n *haNode, tag string) haPush {
	t.Helper()
	sha := e.commitTagged(g, tag)
	code, out := n.push(tag, sha)
	if code != http.StatusAccepted || out["commit"] != sha {
		t.Fatalf("push %s of %s to %s: %d %v, want 202 naming the commit\nlog of %s:\n%s", tag, sha, n.name, code, out, n.name, tail(n.stderr.String(), 4000))
	}
	id, _ := out["deployment"].(string)
	status, _ := out["status"].(string)
	return haPush{tag: tag, commit: sha, delivery: tag, to: n.name, id: id, status: status}
}

// awaitPipStarted waits until pip of tag runs on every host.
func awaitPipStarted(t *testing.T, e *e2e, g *pipGate, tag string, n *haNode, id string) {
	t.Helper()
	await(t, "pip of "+tag+" to run on every host", 3*time.Minute, func() (bool, any) {
		return len(g.started(tag)) == len(e.env.Hosts), fmt.Sprintf("pip started on %v; deployment %v", g.started(tag), n.deployment(id))
	})
}

// notFoundFor is how long a deployer may answer 404 for a deployment that
// another deployer accepted: the deployers read each other's queue every
// second (deploy.Worker.PollEvery).
const notFoundFor = 10 * time.Second

// awaitEnd waits until deployment id has ended (neither queued nor
// running), as n sees it.
func (n *haNode) awaitEnd(id string, within time.Duration) map[string]any {
	n.t.Helper()
	var d map[string]any
	start := time.Now()
	var found time.Duration
	await(n.t, fmt.Sprintf("deployment %s to end, seen from %s", id, n.name), within, func() (bool, any) {
		code, got := n.api(http.MethodGet, "/api/deployments/"+id)
		switch {
		case code == http.StatusNotFound && time.Since(start) < notFoundFor:
			// Not known here yet: another deployer accepted it.
			return false, got
		case code != http.StatusOK:
			n.t.Fatalf("%s: GET deployment %s: %d %v (for %v)", n.name, id, code, got, time.Since(start).Round(time.Millisecond))
		}
		if d == nil && time.Since(start) > 100*time.Millisecond {
			found = time.Since(start)
		}
		d = got
		st := d["status"]
		return st != "queued" && st != "running", fmt.Sprintf("%v\nlog of %s:\n%s", d, n.name, tail(n.stderr.String(), 4000))
	})
	if found > 0 {
		n.t.Logf("%s found deployment %s %v after it was first asked", n.name, id, found.Round(time.Millisecond))
	}
	return d
}

// deployerOf is the deployer /api/deployments names as running (or having
// run) d: DEPLOY_NODE_NAME (issue 14: "/api/deployments shows the
// deployer name").
func deployerOf(d map[string]any) string {
	for _, key := range []string{"node", "deployer"} {
		if s, ok := d[key].(string); ok && s != "" {
			return s
		}
	}
	return ""
}

// checkPushesDeployed checks that every push was deployed, or coalesced
// into a deployment of a later tip: the deployment its answer named
// succeeded with its commit or a later push's, or was interrupted (the
// deployer running it died) and a later deployment succeeded with a later
// push's commit.
func checkPushesDeployed(t *testing.T, pushes []haPush, deps map[string]map[string]any) {
	t.Helper()
	order := map[string]int{} // commit -> index of its push
	for i, p := range pushes {
		order[p.commit] = i
	}
	succeeded := func(d map[string]any) (int, bool) {
		c, _ := d["commit"].(string)
		i, ok := order[c]
		return i, ok && d["status"] == "succeeded"
	}
	for i, p := range pushes {
		d, ok := deps[p.id]
		if !ok {
			t.Errorf("push %s (%s): its deployment %s is not in the history", p.tag, p.commit, p.id)
			continue
		}
		if j, ok := succeeded(d); ok {
			if j < i {
				t.Errorf("push %s: deployment %s deployed the earlier %s", p.tag, p.id, pushes[j].tag)
			}
			continue
		}
		if d["status"] != "interrupted" {
			t.Errorf("push %s: deployment %s is %v, want succeeded (or interrupted and deployed later)", p.tag, p.id, d["status"])
			continue
		}
		later := false
		for _, o := range deps {
			if j, ok := succeeded(o); ok && j > i && timeOf(t, o, "started").After(timeOf(t, d, "started")) {
				later = true
			}
		}
		if !later {
			t.Errorf("push %s: deployment %s was interrupted and no later deployment deployed a later push", p.tag, p.id)
		}
	}
	// And never back: in the order they started, the deployments that
	// succeeded deployed ever later pushes.
	var ok []map[string]any
	for _, d := range deps {
		if _, s := succeeded(d); s {
			ok = append(ok, d)
		}
	}
	sort.Slice(ok, func(i, j int) bool { return timeOf(t, ok[i], "started").Before(timeOf(t, ok[j], "started")) })
	for i := 1; i < len(ok); i++ {
		if a, b := order[ok[i-1]["commit"].(string)], order[ok[i]["commit"].(string)]; b <= a {
			t.Errorf("deployment %s deployed %s after %s had deployed the later %s", ok[i]["id"], pushes[b].tag, ok[i-1]["id"], pushes[a].tag)
		}
	}
}

// checkNoOverlap checks from the history that no two deployments of the app
// ran at the same time: each finished before the next one started.
func checkNoOverlap(t *testing.T, deps []map[string]any) {
	t.Helper()
	deps = slices.Clone(deps)
	sort.Slice(deps, func(i, j int) bool { return timeOf(t, deps[i], "started").Before(timeOf(t, deps[j], "started")) })
	for i := 1; i < len(deps); i++ {
		prev, next := deps[i-1], deps[i]
		fin, start := timeOf(t, prev, "finished"), timeOf(t, next, "started")
		if fin.IsZero() || start.IsZero() || fin.After(start) {
			t.Errorf("deployments overlap: %v (%v, started %v, finished %v) and %v (started %v, on %s)",
				prev["id"], prev["status"], prev["started"], prev["finished"], next["id"], next["started"], deployerOf(next))
		}
	}
}

// checkHostsSequential checks from what the hosts did that deployments
// never interleaved on a host: the pip runs the gate saw and the restarts
// in ha.log, in time order, go deployment by deployment; once a host has
// done something for a later deployment, nothing of an earlier one
// follows. tagIDs maps a commit tag to the deployment that deployed its
// commit.
func checkHostsSequential(t *testing.T, e *e2e, g *pipGate, tagIDs map[string]string) {
	t.Helper()
	type event struct {
		at   time.Time
		id   string
		what string
	}
	for _, h := range e.env.Hosts {
		var evs []event
		for _, f := range g.all() {
			if f.User == h.User {
				if id, ok := tagIDs[f.Tag]; ok {
					evs = append(evs, event{f.At, id, "pip of " + f.Tag})
				}
			}
		}
		for _, r := range restarts(t, h) {
			evs = append(evs, event{r.Switched, r.ID, "switch"}, event{r.At, r.ID, "restart"})
		}
		sort.SliceStable(evs, func(i, j int) bool { return evs[i].at.Before(evs[j].at) })
		done := map[string]bool{}
		last := ""
		var seq []string
		for _, ev := range evs {
			seq = append(seq, fmt.Sprintf("%s %s %s", ev.at.Format("15:04:05.000"), ev.id, ev.what))
			if ev.id == last {
				continue
			}
			if done[ev.id] {
				t.Errorf("%s: deployment %s did something (%s) after a later deployment had started on the host:\n%s", h.Name, ev.id, ev.what, strings.Join(seq, "\n"))
			}
			if last != "" {
				done[last] = true
			}
			last = ev.id
		}
		t.Logf("%s: %s", h.Name, strings.Join(seq, "; "))
	}
}

// checkComplete checks that every host serves a complete release of
// commit: current points at a release with REVISION (written last) and a
// venv, and the restart command last ran for it.
func checkComplete(t *testing.T, e *e2e, commit string) {
	t.Helper()
	for _, h := range e.env.Hosts {
		target := current(h)
		if !strings.HasPrefix(target, "releases/") {
			t.Errorf("%s: current -> %q, want a release", h.Name, target)
			continue
		}
		if rev, err := os.ReadFile(h.Path("app/" + target + "/REVISION")); err != nil || strings.TrimSpace(string(rev)) != commit {
			t.Errorf("%s: %s/REVISION %q (%v), want %s", h.Name, target, rev, err, commit)
		}
		if !exists(h.Path("app/" + target + "/venv/bin/python")) {
			t.Errorf("%s: %s has no venv", h.Name, target)
		}
		if rs := restarts(t, h); len(rs) == 0 || rs[len(rs)-1].Commit != commit {
			t.Errorf("%s: the last restart was not of %s: %v", h.Name, commit, rs)
		}
	}
}

// revisionLines counts the lines of h's revisions.log naming deployment id.
func revisionLines(t *testing.T, h *testhosts.Host, id string) int {
	t.Helper()
	raw, err := os.ReadFile(h.Path("app/revisions.log"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(string(raw), "\n") {
		if f := strings.Fields(line); len(f) == 5 && f[4] == id {
			n++
		}
	}
	return n
}

// byID indexes deployments by id, failing on an id listed twice (a
// deployment recorded twice).
func byID(t *testing.T, deps []map[string]any) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	for _, d := range deps {
		id, _ := d["id"].(string)
		if _, dup := out[id]; dup {
			t.Errorf("deployment %s is listed twice in the history", id)
		}
		out[id] = d
	}
	return out
}

// TestEndToEndHAThreeDeployers runs three deployers on one database and the
// same two hosts. Pushes go to all three; the deployer running a
// deployment is SIGKILLed while pip runs on the hosts: another marks the
// deployment interrupted and deploys the newest tip. Over the whole run
// every pushed tip is deployed or coalesced into a later one, no two
// deployments overlap (by the history and by the hosts), a redelivery to
// another deployer is a duplicate, and the hosts end on a complete release.
func TestEndToEndHAThreeDeployers(t *testing.T) {
	e := newE2E(t, 2)
	db := pgtest.New(t)
	g := newPipGate(t, e.env)
	nodes := []*haNode{e.haNode("d1", db), e.haNode("d2", db), e.haNode("d3", db)}
	byName := map[string]*haNode{}
	for _, n := range nodes {
		byName[n.name] = n
	}

	// The first deployment is held in pip on every host.
	g.hold("c1")
	p1 := haPushTo(t, e, g, nodes[0], "c1")
	if p1.status != "queued" || p1.id == "" {
		t.Fatalf("first push: %+v, want queued", p1)
	}
	awaitPipStarted(t, e, g, "c1", nodes[0], p1.id)
	runnerName := queueOwner(t, db, p1.id)
	runner := byName[runnerName]
	if runner == nil {
		t.Fatalf("the queue says %q runs %s, none of the deployers", runnerName, p1.id)
	}
	var others []*haNode
	for _, n := range nodes {
		if n != runner {
			others = append(others, n)
		}
	}
	if got := deployerOf(others[0].deployment(p1.id)); got != runnerName {
		t.Errorf("%s's /api/deployments/%s names deployer %q, want %q (DEPLOY_NODE_NAME of the one running it)", others[0].name, p1.id, got, runnerName)
	}

	// Pushes while it runs, one to each deployer: they make one waiting
	// deployment, whichever deployer answered.
	p2 := haPushTo(t, e, g, others[0], "c2")
	p3 := haPushTo(t, e, g, others[1], "c3")
	p4 := haPushTo(t, e, g, runner, "c4")
	for _, p := range []haPush{p3, p4} {
		if p.id != p2.id || (p.status != "queued" && p.status != "coalesced") {
			t.Errorf("push %s to %s: %s %s, want it joined the waiting %s", p.tag, p.to, p.status, p.id, p2.id)
		}
	}
	// A redelivery of c3 to another deployer than the one it went to.
	code, out := others[0].push(p3.delivery, p3.commit)
	if code != http.StatusOK || out["deployment"] != p3.id || out["reason"] != "duplicate delivery" {
		t.Errorf("redelivery of %s to %s: %d %v, want 200 ignored (duplicate delivery) naming %s", p3.delivery, others[0].name, code, out, p3.id)
	}

	// SIGKILL the deployer in the middle of pip; the orphaned pip runs
	// go on to their end (they hold the hosts' active lock until then).
	if d := others[0].deployment(p1.id); d["status"] != "running" {
		t.Fatalf("deployment %s is %v before the kill, want running", p1.id, d["status"])
	}
	killed := time.Now()
	runner.kill()
	g.release("c1")
	d1 := others[0].awaitEnd(p1.id, 4*time.Minute)
	if d1["status"] != "interrupted" {
		t.Fatalf("deployment %s after its deployer %s was killed: %v, want interrupted", p1.id, runnerName, d1)
	}
	if msg, _ := d1["error"].(string); !strings.Contains(msg, runnerName) {
		t.Errorf("deployment %s is interrupted with error %q, which does not name its deployer %s", p1.id, msg, runnerName)
	}
	t.Logf("%s was killed at %s; %s recorded interrupted %v later (finished %v)", runnerName, killed.Format("15:04:05.000"), p1.id, time.Since(killed).Round(time.Millisecond), d1["finished"])
	d2 := others[1].awaitEnd(p2.id, 4*time.Minute)
	if d2["status"] != "succeeded" || d2["commit"] != p4.commit {
		t.Fatalf("the waiting deployment %s: %v, want the newest tip %s (c4) deployed", p2.id, d2, p4.commit)
	}
	if by := deployerOf(d2); by == runnerName || (by == "" && queueOwner(t, db, p2.id) == runnerName) {
		t.Errorf("deployment %s ran on %q, the killed deployer", p2.id, by)
	}

	// The queue goes on: a push to the other survivor.
	p5 := haPushTo(t, e, g, others[1], "c5")
	if d := others[0].awaitEnd(p5.id, 4*time.Minute); d["status"] != "succeeded" || d["commit"] != p5.commit {
		t.Fatalf("the push after the failover: %v, want %s deployed", d, p5.commit)
	}

	pushes := []haPush{p1, p2, p3, p4, p5}
	list := others[1].deployments()
	deps := byID(t, list)
	if len(list) != 3 {
		t.Errorf("%d deployments in the history, want 3 (%s interrupted, %s and %s)", len(list), p1.id, p2.id, p5.id)
	}
	checkPushesDeployed(t, pushes, deps)
	checkNoOverlap(t, list)
	tagIDs := map[string]string{}
	for _, p := range pushes {
		for id, d := range deps {
			if d["commit"] == p.commit {
				tagIDs[p.tag] = id
			}
		}
	}
	checkHostsSequential(t, e, g, tagIDs)
	checkComplete(t, e, p5.commit)
}

// TestEndToEndHADatabaseRestart stops the database while a deployment runs
// (pip held on the hosts) and starts it again: webhooks during the outage
// get 503 and /healthz 503 naming the database; the deployment goes on (the
// hosts switch) and ends while the database is down, and is recorded once
// when the database is back; a push then is 202 again.
func TestEndToEndHADatabaseRestart(t *testing.T) {
	e := newE2E(t, 2)
	srv := pgtest.Start(t)
	db := srv.NewDatabase(t)
	g := newPipGate(t, e.env)
	// The outage (the checks below while the database is down) must stay
	// within the lease: a release build's, not haLease.
	e.vars["PUSHDEPLOY_E2E_QUEUE_LEASE"] = "30s"
	nodes := []*haNode{e.haNode("d1", db), e.haNode("d2", db)}

	g.hold("c1")
	p1 := haPushTo(t, e, g, nodes[0], "c1")
	awaitPipStarted(t, e, g, "c1", nodes[0], p1.id)
	srv.Stop(t)
	stopped := time.Now()
	// The deployment goes on without the database (pip, then the switch
	// of every host), while the checks of the outage run: the outage
	// stays well within the claim's lease, which the deployer renews once
	// the database is back.
	g.release("c1")

	// A webhook during the outage is refused, 503, so that the forge
	// sends it again; /healthz says why.
	sha2 := e.commitTagged(g, "c2")
	for _, n := range nodes {
		start := time.Now()
		code, body := n.pushRaw("c2", sha2)
		if code != http.StatusServiceUnavailable {
			t.Errorf("push to %s while the database is down: %d %s, want 503", n.name, code, body)
		}
		t.Logf("push to %s while the database is down: %d in %v", n.name, code, time.Since(start).Round(time.Millisecond))
		// /healthz reuses a check of the database for 5 s
		// (webhook.historyCheckEvery): one made just before the stop
		// still says ok until then.
		await(t, "/healthz of "+n.name+" to answer 503 naming the database while it is down", 30*time.Second, func() (bool, any) {
			code, body := n.healthz()
			return code == http.StatusServiceUnavailable && strings.Contains(strings.ToLower(body), "database"), fmt.Sprintf("%d %s", code, body)
		})
	}

	await(t, "the hosts to switch to c1 while the database is down", 3*time.Minute, func() (bool, any) {
		n := 0
		for _, h := range e.env.Hosts {
			for _, r := range restarts(t, h) {
				if r.ID == p1.id {
					n++
				}
			}
		}
		return n == len(e.env.Hosts), fmt.Sprintf("%d hosts switched; log of d1:\n%s\nlog of d2:\n%s", n, tail(nodes[0].stderr.String(), 3000), tail(nodes[1].stderr.String(), 3000))
	})
	// It has ended, and its deployer tries to record the end, which waits
	// for the database.
	await(t, "the deployer to try to record the end of "+p1.id+" while the database is down", 2*time.Minute, func() (bool, any) {
		for _, n := range nodes {
			for _, line := range strings.Split(n.stderr.String(), "\n") {
				if strings.Contains(line, p1.id) && strings.Contains(line, "cannot record the end") {
					return true, nil
				}
			}
		}
		return false, fmt.Sprintf("log of d1:\n%s\nlog of d2:\n%s", tail(nodes[0].stderr.String(), 3000), tail(nodes[1].stderr.String(), 3000))
	})
	srv.Start(t)
	t.Logf("the database was down for %v", time.Since(stopped).Round(time.Millisecond))

	d1 := nodes[1].awaitEnd(p1.id, 3*time.Minute)
	if d1["status"] != "succeeded" || d1["commit"] != p1.commit {
		t.Fatalf("deployment %s after the database came back: %v, want succeeded", p1.id, d1)
	}
	// The forge sends the refused delivery again: nothing of it was
	// stored, so it is queued now, not a duplicate.
	code, out := nodes[1].push("c2", sha2)
	if code != http.StatusAccepted || out["status"] != "queued" {
		t.Fatalf("push c2 again after the outage: %d %v, want 202 queued", code, out)
	}
	p2 := out["deployment"].(string)
	if d := nodes[0].awaitEnd(p2, 3*time.Minute); d["status"] != "succeeded" || d["commit"] != sha2 {
		t.Fatalf("deployment of c2 after the outage: %v", d)
	}

	list := nodes[0].deployments()
	deps := byID(t, list)
	if _, ok := deps[p1.id]; !ok || len(list) != 2 {
		t.Errorf("history after the outage: %d deployments %v, want %s and %s once each", len(list), list, p1.id, p2)
	}
	for _, h := range e.env.Hosts {
		if n := revisionLines(t, h, p1.id); n != 1 {
			t.Errorf("%s: revisions.log has %d lines of %s, want 1", h.Name, n, p1.id)
		}
	}
	checkNoOverlap(t, list)
	checkHostsSequential(t, e, g, map[string]string{"c1": p1.id, "c2": p2})
	checkComplete(t, e, sha2)
}

// TestEndToEndHANetworkCut cuts one deployer from the database (a proxy
// between them that stops passing bytes) while it runs a deployment held in
// pip: the other deployer takes the app over once the claim's lease ends,
// and the cut deployer, let go on afterwards, never switches a host; when
// its network returns, its late outcome does not overwrite the
// interruption.
func TestEndToEndHANetworkCut(t *testing.T) {
	e := newE2E(t, 2)
	srv := pgtest.Shared(t)
	db := srv.NewDatabase(t)
	proxy := srv.Proxy(t)
	g := newPipGate(t, e.env)
	cut := e.haNode("cut", proxy.Via(t, db))

	// Alone, cut takes the first deployment; the other deployer starts
	// once it runs.
	g.hold("c1")
	p1 := haPushTo(t, e, g, cut, "c1")
	awaitPipStarted(t, e, g, "c1", cut, p1.id)
	if owner := queueOwner(t, db, p1.id); owner != "cut" {
		t.Fatalf("the queue says %q runs %s, want cut, the only deployer", owner, p1.id)
	}
	direct := e.haNode("direct", db)

	proxy.Cut()
	cutAt := time.Now()
	p2 := haPushTo(t, e, g, direct, "c2")
	d1 := direct.awaitEnd(p1.id, 4*time.Minute)
	taken := time.Now()
	if d1["status"] != "interrupted" {
		t.Fatalf("deployment %s of the cut deployer: %v, want interrupted", p1.id, d1)
	}
	lost := timeOf(t, d1, "finished")
	if lost.IsZero() || lost.After(taken) {
		lost = taken
	}
	t.Logf("cut at %s; %s recorded interrupted at %s (%v after the cut)", cutAt.Format("15:04:05.000"), p1.id, lost.Format("15:04:05.000"), lost.Sub(cutAt).Round(time.Millisecond))

	// Only now may the cut deployer's pip go on: it must switch no host.
	g.release("c1")
	d2 := direct.awaitEnd(p2.id, 4*time.Minute)
	if d2["status"] != "succeeded" || d2["commit"] != p2.commit {
		t.Fatalf("deployment %s on the deployer that took over: %v, want %s deployed", p2.id, d2, p2.commit)
	}
	if by := deployerOf(d2); by != "direct" {
		t.Errorf("deployment %s names deployer %q, want direct", p2.id, by)
	}
	for _, h := range e.env.Hosts {
		for _, r := range restarts(t, h) {
			if r.ID == p1.id && (r.Switched.After(lost) || r.At.After(lost)) {
				t.Errorf("%s: the cut deployer switched (at %s) or restarted (at %s) for %s after it lost its claim (%s)",
					h.Name, r.Switched.Format("15:04:05.000"), r.At.Format("15:04:05.000"), p1.id, lost.Format("15:04:05.000"))
			}
		}
		if n := revisionLines(t, h, p1.id); n != 0 {
			t.Errorf("%s: revisions.log has %d switches of %s, whose pip was held until after its claim was lost", h.Name, n, p1.id)
		}
	}

	// The record of the interruption, as the deployer that took over
	// made it (the cut one cannot reach the database yet).
	interrupted := direct.deployment(p1.id)

	// The network returns: the cut deployer works again, and its late
	// outcome of p1 is refused: the record stays the other deployer's.
	proxy.Restore()
	await(t, "the cut deployer to reach the database again", 2*time.Minute, func() (bool, any) {
		code, body := cut.healthz()
		return code == http.StatusOK, fmt.Sprintf("%d %s", code, body)
	})
	p3 := haPushTo(t, e, g, cut, "c3")
	if d := cut.awaitEnd(p3.id, 4*time.Minute); d["status"] != "succeeded" || d["commit"] != p3.commit {
		t.Fatalf("push to the cut deployer after the network returned: %v", d)
	}
	list := direct.deployments()
	deps := byID(t, list)
	if d := deps[p1.id]; d == nil || d["status"] != "interrupted" {
		t.Errorf("deployment %s after the cut deployer came back: %v, want still interrupted", p1.id, d)
	} else {
		for _, key := range []string{"finished", "error"} {
			if d[key] != interrupted[key] {
				t.Errorf("deployment %s: %s %q after the cut deployer came back, was %q as the deployer that took over recorded it: the cut deployer wrote over the record after it lost its claim", p1.id, key, d[key], interrupted[key])
			}
		}
	}
	if len(list) != 3 {
		t.Errorf("%d deployments in the history, want 3", len(list))
	}
	// The cut deployer's deployment ran on (its pip) after the other
	// took the app over, until it stopped at its next safe point; the
	// host locks kept the two apart on the hosts.
	checkHostsSequential(t, e, g, map[string]string{"c1": p1.id, "c2": p2.id, "c3": p3.id})
	checkComplete(t, e, p3.commit)
	if t.Failed() {
		for _, line := range strings.Split(cut.stderr.String(), "\n") {
			if strings.Contains(line, p1.id) && !strings.Contains(line, `"msg":"http"`) {
				t.Logf("cut: %s", line)
			}
		}
	}
}

// pushRaw sends a signed push of commit to n and returns the status and
// body, whatever they are.
func (n *haNode) pushRaw(delivery, commit string) (int, string) {
	n.t.Helper()
	client := &http.Client{Timeout: 2 * time.Minute}
	resp, err := client.Do(n.webhookRequest(delivery, bitbucketPush("release", commit), true))
	if err != nil {
		n.t.Fatalf("push to %s: %v", n.name, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// healthz is GET /healthz on n: its status and body.
func (n *haNode) healthz() (int, string) {
	n.t.Helper()
	client := &http.Client{Timeout: time.Minute}
	resp, err := client.Get(n.url + "/healthz")
	if err != nil {
		n.t.Fatalf("healthz of %s: %v", n.name, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}
