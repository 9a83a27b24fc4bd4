package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pushdeploy/pushdeploy/internal/pgtest"
)

// pollInterval is the tests' DEPLOY_POLL_INTERVAL: the shortest there is.
const pollInterval = time.Second

// deploymentsOf lists the deployments s's API answers (the shared
// history: every deployer's), newest first.
func (s *server) deploymentsOf() []map[string]any {
	s.t.Helper()
	code, out := s.api(http.MethodGet, "/api/deployments")
	if code != http.StatusOK {
		s.t.Fatalf("GET /api/deployments: %d %v", code, out)
	}
	var list []map[string]any
	for _, d := range out["deployments"].([]any) {
		list = append(list, d.(map[string]any))
	}
	return list
}

// awaitPolled waits until a deployment of commit with trigger poll shows
// in s's API, and returns it with how long after since it was seen.
func (s *server) awaitPolled(commit string, since time.Time) (map[string]any, time.Duration) {
	s.t.Helper()
	var found map[string]any
	var seen time.Duration
	await(s.t, "a poll deployment of "+commit[:7], 2*time.Minute, func() (bool, any) {
		for _, d := range s.deploymentsOf() {
			if d["commit"] == commit || d["payload_commit"] == commit {
				found, seen = d, time.Since(since)
				return true, nil
			}
		}
		return false, s.stderr.String()
	})
	if found["trigger"] != "poll" || found["actor"] != "poll" {
		s.t.Fatalf("the deployment of %s: %v, want trigger poll", commit[:7], found)
	}
	return found, seen
}

// gitRequestsAfter waits until the git server has answered n more
// requests than before: the poll rounds of the deployer that polls, each
// one look-up of the branch, while nothing deploys.
func (e *e2e) gitRequestsAfter(before, n int) {
	e.t.Helper()
	await(e.t, fmt.Sprintf("%d poll rounds (look-ups of the branch)", n), time.Minute, func() (bool, any) {
		now := e.gitRequests()
		return now >= before+n, now - before
	})
}

func (e *e2e) gitRequests() int {
	e.t.Helper()
	reqs, err := e.env.GitRequests()
	if err != nil {
		e.t.Fatal(err)
	}
	return len(reqs)
}

func (e *e2e) wantRevision(sha, when string) {
	e.t.Helper()
	for _, h := range e.env.Hosts {
		if rev := e.onHost(h, "cat", "app/current/REVISION"); rev != sha {
			e.t.Errorf("%s %s: REVISION %s, want %s", when, h.Name, rev, sha)
		}
	}
}

// TestEndToEndPoll: two deployers on one PostgreSQL with
// DEPLOY_POLL_INTERVAL=1s and real hosts. A push whose webhook never
// came is deployed within an interval (plus a look-up of the branch),
// trigger poll, by the deployer that holds the app's poll turn; the other
// never polls while it holds it. A rollback from the command line then
// stands through several poll rounds. When the deployer that polls stops,
// it gives its turn up and the other takes it: the rollback stands
// through that one's rounds too (it knows it from the database only), and
// it deploys the next push.
func TestEndToEndPoll(t *testing.T) {
	e := newE2E(t, 2)
	e.vars["DEPLOY_DATABASE_URL"] = pgtest.Start(t).NewDatabase(t)
	e.vars["DEPLOY_POLL_INTERVAL"] = pollInterval.String()
	sha1 := e.commit("1.0", nil)
	a := e.serve()
	await(t, "the first deployer to take the app's poll turn", time.Minute, func() (bool, any) {
		return strings.Contains(a.stderr.String(), "this deployer polls the app's branch now"), a.stderr.String()
	})

	// Polling deploys only after a first deployment: a webhook's.
	code, out := a.webhook("d-1", bitbucketPush("release", sha1), true)
	if code != http.StatusAccepted {
		t.Fatalf("push: %d %v", code, out)
	}
	if d := a.waitDone(out["deployment"].(string)); d["status"] != "succeeded" {
		t.Fatalf("first deployment: %v\n%s", d, a.stderr)
	}
	b := e.serve()
	await(t, "the second deployer to find the turn taken", time.Minute, func() (bool, any) {
		return strings.Contains(b.stderr.String(), "another deployer polls the app's branch"), b.stderr.String()
	})

	// A push without a webhook.
	sha2 := e.commit("2.0", nil)
	polled, took := a.awaitPolled(sha2, time.Now())
	t.Logf("the push was queued %.2fs after it (poll interval %s)", took.Seconds(), pollInterval)
	// One interval and a tenth (jitter), and the round's own look-up of
	// the branch, which on a loaded machine has been seen to take seconds.
	if limit := pollInterval*11/10 + 10*time.Second; took > limit {
		t.Errorf("the push was queued %s after it, want within %s", took, limit)
	}
	if d := a.waitDone(polled["id"].(string)); d["status"] != "succeeded" || d["commit"] != sha2 {
		t.Fatalf("poll deployment: %v\n%s", d, a.stderr)
	}
	e.wantRevision(sha2, "after the poll deployment")

	// A rollback from the command line, recorded in the same database.
	r := e.pushdeploy("rollback", "--json")
	if r.code != 0 {
		t.Fatalf("rollback: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	e.wantRevision(sha1, "after the rollback")
	count := len(a.deploymentsOf())
	e.gitRequestsAfter(e.gitRequests(), 4)
	if n := len(a.deploymentsOf()); n != count {
		t.Errorf("%d deployments after poll rounds that followed the rollback, want %d: the rollback was undone\n%v", n, count, a.deploymentsOf()[0])
	}
	e.wantRevision(sha1, "after poll rounds that followed the rollback")

	// Only the deployer holding the turn polled.
	if n := strings.Count(a.stderr.String(), "poll: a new tip on the branch"); n != 1 {
		t.Errorf("the first deployer queued %d poll deployments, want 1\n%s", n, a.stderr)
	}
	for _, line := range []string{"this deployer polls", "poll: a new tip on the branch"} {
		if strings.Contains(b.stderr.String(), line) {
			t.Errorf("the second deployer, while the first held the turn, logged %q:\n%s", line, b.stderr)
		}
	}

	// The first deployer stops and gives its turn up: the second takes
	// it over. It has no deployment of its own in memory: the
	// rollback in the database stands through its rounds too. Then it
	// deploys the next push.
	if err := a.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	var exit error
	await(t, "the first deployer to exit after SIGTERM", time.Minute, func() (bool, any) {
		select {
		case exit = <-a.exited:
			return true, nil
		default:
			return false, a.stderr.String()
		}
	})
	if exit != nil {
		t.Errorf("the first deployer exited with %v\n%s", exit, a.stderr)
	}
	if !strings.Contains(a.stderr.String(), "poll: this deployer no longer polls the app's branch") {
		t.Errorf("the first deployer did not give its turn up as it stopped:\n%s", a.stderr)
	}
	stopped := time.Now()
	await(t, "the second deployer to take the turn over", time.Minute, func() (bool, any) {
		return strings.Contains(b.stderr.String(), "this deployer polls the app's branch now"), b.stderr.String()
	})
	t.Logf("the second deployer took the turn over %.1fs after the first stopped", time.Since(stopped).Seconds())
	e.gitRequestsAfter(e.gitRequests(), 4)
	if n := len(b.deploymentsOf()); n != count {
		t.Errorf("%d deployments after the second deployer's poll rounds, want %d: the rollback was undone\n%v", n, count, b.deploymentsOf()[0])
	}
	e.wantRevision(sha1, "after the second deployer's poll rounds")
	sha3 := e.commit("1.0", map[string]string{"NEWS": "3\n"})
	polled, _ = b.awaitPolled(sha3, time.Now())
	if d := b.waitDone(polled["id"].(string)); d["status"] != "succeeded" {
		t.Fatalf("the second deployer's poll deployment: %v\n%s", d, b.stderr)
	}
	e.wantRevision(sha3, "after the second deployer's poll deployment")
}
