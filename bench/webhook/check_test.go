package main

import (
	"net/http"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// The database check on hand-made answers and rows: each problem it must
// find, and the orders of arrival that are right.
func TestCheck(t *testing.T) {
	queued := func(id, delivery string) sample {
		return sample{shot: shot{kind: kindRelease, delivery: delivery, of: -1}, done: time.Now(), code: http.StatusAccepted, answer: answer{Status: "queued", Deployment: id}, deploy: id}
	}
	dup := func(of int, id, delivery string) sample {
		return sample{shot: shot{kind: kindRedelivery, delivery: delivery, of: of}, done: time.Now(), code: http.StatusOK, answer: answer{Status: "ignored", Reason: "duplicate delivery", Deployment: id}, deploy: id}
	}
	redelivered202 := func(of int, id, delivery string) sample {
		s := queued(id, delivery)
		s.kind, s.of = kindRedelivery, of
		return s
	}
	origDup := func(id, delivery string) sample {
		s := dup(-1, id, delivery)
		s.kind = kindRelease
		return s
	}
	unsigned := func(delivery string) sample {
		return sample{shot: shot{kind: kindUnsigned, delivery: delivery, of: -1}, done: time.Now(), code: http.StatusUnauthorized}
	}
	unavailable := func(delivery string) sample {
		return sample{shot: shot{kind: kindRelease, delivery: delivery, of: -1}, done: time.Now(), code: http.StatusServiceUnavailable}
	}
	noAnswer := func(delivery string) sample {
		return sample{shot: shot{kind: kindRelease, delivery: delivery, of: -1}, done: time.Now()}
	}
	row := func(delivery, job string) deliveryRow {
		return deliveryRow{app: "default", provider: "bitbucket-cloud", id: delivery, job: job}
	}
	twoJobs := []jobRow{{id: "run", state: "running", owner: "d1"}, {id: "J", state: "waiting"}}
	type want struct {
		accepted, once, duplicate, first, other     int
		refusedRedelivery, retried                  int
		lost, doubled, wrongJob, refused, strangers []string
		unanswered, unansweredRecorded              int
		problems                                    int
	}
	tests := []struct {
		name    string
		samples []sample
		rows    []deliveryRow
		want    want
	}{
		{
			name:    "every 202 recorded once, the redelivery a duplicate",
			samples: []sample{queued("J", "a"), queued("J", "b"), dup(0, "J", "a")},
			rows:    []deliveryRow{row("a", "J"), row("b", "J"), row("start", "run")},
			want:    want{accepted: 2, once: 2, duplicate: 1},
		},
		{
			name:    "lost: answered 202, not recorded",
			samples: []sample{queued("J", "a"), queued("J", "b")},
			rows:    []deliveryRow{row("a", "J")},
			want:    want{accepted: 2, once: 1, lost: []string{"b"}, problems: 1},
		},
		{
			name:    "doubled: the redelivery to another deployer got a 202 too",
			samples: []sample{queued("J", "a"), redelivered202(0, "J", "a")},
			rows:    []deliveryRow{row("a", "J")},
			want:    want{accepted: 1, doubled: []string{"a"}, other: 1, problems: 2},
		},
		{
			name:    "doubled: recorded twice (another app or provider)",
			samples: []sample{queued("J", "a")},
			rows:    []deliveryRow{row("a", "J"), {app: "other", provider: "bitbucket-cloud", id: "a", job: "J"}},
			want:    want{accepted: 1, doubled: []string{"a"}, problems: 1},
		},
		{
			name:    "recorded under another deployment than the answer named",
			samples: []sample{queued("J", "a")},
			rows:    []deliveryRow{row("a", "K")},
			want:    want{accepted: 1, wrongJob: []string{"a"}, problems: 1},
		},
		{
			name:    "the redelivery arrived first: it has the 202, the original the duplicate",
			samples: []sample{origDup("J", "a"), redelivered202(0, "J", "a")},
			rows:    []deliveryRow{row("a", "J")},
			want:    want{accepted: 1, once: 1, first: 1},
		},
		{
			name:    "the redelivery refused for load: nothing doubled",
			samples: []sample{queued("J", "a"), {shot: shot{kind: kindRedelivery, delivery: "a", of: 0}, done: time.Now(), code: http.StatusServiceUnavailable}},
			rows:    []deliveryRow{row("a", "J")},
			want:    want{accepted: 1, once: 1, refusedRedelivery: 1},
		},
		{
			name:    "the original refused for load, its redelivery queued",
			samples: []sample{unavailable("a"), redelivered202(0, "J", "a")},
			rows:    []deliveryRow{row("a", "J")},
			want:    want{accepted: 1, once: 1, retried: 1},
		},
		{
			name:    "the original refused (nothing queued), yet its redelivery a duplicate",
			samples: []sample{unavailable("a"), dup(0, "J", "a")},
			rows:    []deliveryRow{row("a", "J")},
			want:    want{other: 1, problems: 1},
		},
		{
			name:    "503 (nothing queued) yet recorded",
			samples: []sample{queued("J", "a"), unavailable("b")},
			rows:    []deliveryRow{row("a", "J"), row("b", "J")},
			want:    want{accepted: 1, once: 1, refused: []string{"b"}, problems: 1},
		},
		{
			name:    "no answer: recorded or not, both right",
			samples: []sample{queued("J", "a"), noAnswer("b"), noAnswer("c")},
			rows:    []deliveryRow{row("a", "J"), row("b", "J")},
			want:    want{accepted: 1, once: 1, unanswered: 2, unansweredRecorded: 1},
		},
		{
			name:    "an unsigned push, and an id never sent, recorded",
			samples: []sample{queued("J", "a"), unsigned("u")},
			rows:    []deliveryRow{row("a", "J"), row("u", "J"), row("zzz", "J")},
			want:    want{accepted: 1, once: 1, strangers: []string{"u", "zzz"}, problems: 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := check(tt.samples, tt.rows, twoJobs, []string{"start"})
			got := want{
				accepted: c.accepted, once: c.once, duplicate: c.duplicate, first: c.first, other: c.otherRedelivery,
				refusedRedelivery: c.refusedRedelivery, retried: c.retried,
				lost: c.lost, doubled: c.doubled, wrongJob: c.wrongJob, refused: c.refusedRecorded, strangers: c.strangers,
				unanswered: c.unanswered, unansweredRecorded: c.unansweredRecorded,
				problems: len(c.problems(0)),
			}
			if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(want{})); diff != "" {
				t.Errorf("check (-want +got):\n%s\nproblems: %q", diff, c.problems(0))
			}
		})
	}
}

// Two deployments waiting, or running, at once fail; a deployment after
// the first, when that ended during the load, does not.
func TestCheckDeployments(t *testing.T) {
	samples := []sample{
		{shot: shot{kind: kindRelease, delivery: "a", of: -1}, done: time.Now(), code: http.StatusAccepted, answer: answer{Status: "queued", Deployment: "J"}, deploy: "J"},
		{shot: shot{kind: kindRelease, delivery: "b", of: -1}, done: time.Now(), code: http.StatusAccepted, answer: answer{Status: "queued", Deployment: "K"}, deploy: "K"},
	}
	rows := []deliveryRow{{id: "a", job: "J"}, {id: "b", job: "K"}}
	tests := []struct {
		name string
		jobs []jobRow
		want int
	}{
		{"handed over", []jobRow{{id: "run", state: "finished"}, {id: "J", state: "running"}, {id: "K", state: "waiting"}}, 0},
		{"two waiting", []jobRow{{id: "run", state: "running"}, {id: "J", state: "waiting"}, {id: "K", state: "waiting"}}, 1},
		{"two running", []jobRow{{id: "run", state: "running"}, {id: "J", state: "running"}, {id: "K", state: "waiting"}}, 1},
		{"named, not there", []jobRow{{id: "run", state: "running"}, {id: "J", state: "waiting"}}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := check(samples, rows, tt.jobs, nil).problems(0); len(got) != tt.want {
				t.Errorf("problems = %q, want %d", got, tt.want)
			}
		})
	}
	if got := check(samples[:1], rows[:1], []jobRow{{id: "J", state: "waiting"}}, nil).problems(1); len(got) != 1 {
		t.Errorf("problems = %q, want 1 (an unexpected answer)", got)
	}
}

// The plan: round-robin, the mix, and redeliveries of earlier release
// pushes to the next deployer.
func TestPlan(t *testing.T) {
	shots := plan(2000, 3, 1000, 0.01)
	redeliveries := 0
	for i, s := range shots {
		if s.kind != kindRedelivery {
			if s.to != i%3 || s.of != -1 {
				t.Fatalf("shot %d: to %d of %d", i, s.to, s.of)
			}
			continue
		}
		redeliveries++
		o := shots[s.of]
		if o.kind != kindRelease || o.delivery != s.delivery || s.to != (o.to+1)%3 || i-s.of < 500 {
			t.Errorf("shot %d repeats %d (%s to %d) to %d", i, s.of, o.kind, o.to, s.to)
		}
	}
	if redeliveries != 15 { // 1 in 100, none in the first 500
		t.Errorf("%d redeliveries, want 15", redeliveries)
	}
	if n := len(plan(100, 1, 100, 0)); n != 100 {
		t.Errorf("len = %d", n)
	}
}
