package main

import (
	"fmt"
	"net/http"
	"sort"
	"strings"
)

// checkResult is what the database says of the deliveries the load sent
// (check).
type checkResult struct {
	// accepted is how many delivery ids were answered 202 (once or more).
	accepted int
	// once: of those, recorded exactly once, naming the deployment the
	// 202 answer named.
	once int
	// Problems, each a list of delivery ids:
	lost     []string // answered 202, not recorded
	doubled  []string // recorded twice, or answered 202 twice (a redelivery not recognised)
	wrongJob []string // recorded naming another deployment than its 202 answer did
	// refusedRecorded were answered only with a refusal (4xx, 5xx: "nothing
	// was queued"), yet recorded.
	refusedRecorded []string
	// strangers are recorded ids the load never sent as a release push
	// (unsigned ones, other branches, ids nobody sent).
	strangers []string
	// unanswered: ids whose requests got no answer (transport error); the
	// deployer may or may not have recorded them, both are right.
	unanswered, unansweredRecorded int

	// Redeliveries of an id already sent, and how they were answered:
	// duplicate (naming the original's deployment); first: the redelivery
	// got the 202 and the original, which arrived later, the duplicate;
	// other: anything else (counted in doubled when it was a second 202).
	// refusedRedelivery: refused for load (tooBusy); retried: the
	// original was refused or got no answer, and the redelivery got the
	// 202.
	redeliveries, duplicate, first, otherRedelivery int
	refusedRedelivery, retried                      int
	// explained are the samples whose unexpected answer is the right one:
	// an original answered duplicate after its redelivery got the 202, a
	// redelivery answered 202 after its original was refused.
	explained map[int]bool

	jobs []jobRow
	// named counts the 202 answers per deployment they named.
	named map[string]int
}

// check compares the answers of the load with the delivery ids and jobs in
// the database. known are delivery ids sent outside the load (the first
// push), which may be recorded.
func check(samples []sample, rows []deliveryRow, jobs []jobRow, known []string) checkResult {
	res := checkResult{explained: map[int]bool{}, jobs: jobs, named: map[string]int{}}
	recorded := map[string][]deliveryRow{}
	for _, r := range rows {
		recorded[r.id] = append(recorded[r.id], r)
	}
	byID := map[string][]int{} // delivery id -> indexes of its samples
	var ids []string
	for i, s := range samples {
		if _, seen := byID[s.delivery]; !seen {
			ids = append(ids, s.delivery)
		}
		byID[s.delivery] = append(byID[s.delivery], i)
	}
	for _, id := range ids {
		res.checkDelivery(id, byID[id], samples, recorded[id])
	}
	res.checkRedeliveries(samples)
	for _, id := range known {
		delete(recorded, id)
	}
	for id := range recorded {
		if _, sent := byID[id]; !sent {
			res.strangers = append(res.strangers, id)
		}
	}
	sort.Strings(res.strangers)
	return res
}

func (res *checkResult) checkDelivery(id string, idx []int, samples []sample, rows []deliveryRow) {
	if k := samples[idx[0]].kind; k != kindRelease && k != kindRedelivery {
		if len(rows) > 0 {
			res.strangers = append(res.strangers, id)
		}
		return
	}
	accepted, answered := 0, 0
	named := ""
	for _, i := range idx {
		s := samples[i]
		if s.code != 0 {
			answered++
		}
		if s.code == http.StatusAccepted && s.answer.Status == "queued" {
			accepted++
			named = s.deploy
			res.named[s.deploy]++
		}
	}
	switch {
	case accepted > 1 || len(rows) > 1:
		res.doubled = append(res.doubled, id)
	case accepted == 1 && len(rows) == 0:
		res.lost = append(res.lost, id)
	case accepted == 1 && rows[0].job != named:
		res.wrongJob = append(res.wrongJob, id)
	case accepted == 1:
		res.once++
	case answered < len(idx):
		res.unanswered++
		if len(rows) > 0 {
			res.unansweredRecorded++
		}
	case len(rows) > 0 && refusedOnly(idx, samples):
		res.refusedRecorded = append(res.refusedRecorded, id)
	}
	if accepted > 0 {
		res.accepted++
	}
}

// tooBusy is a deployer's refusal for load: 503 (all its places for
// bodies taken, or its database unreachable) or 429 (this client's
// places): nothing was queued; the forge tries again later.
func tooBusy(code int) bool {
	return code == http.StatusServiceUnavailable || code == http.StatusTooManyRequests
}

// refusedOnly: every answer said nothing was queued.
func refusedOnly(idx []int, samples []sample) bool {
	for _, i := range idx {
		if samples[i].code < 400 {
			return false
		}
	}
	return true
}

func (res *checkResult) checkRedeliveries(samples []sample) {
	for i, s := range samples {
		if s.kind != kindRedelivery || s.of < 0 || s.of >= len(samples) {
			continue
		}
		res.redeliveries++
		orig := samples[s.of]
		origAccepted := orig.code == http.StatusAccepted && orig.answer.Status == "queued"
		accepted := s.code == http.StatusAccepted && s.answer.Status == "queued"
		switch {
		case isDuplicate(s.code, s.answer) && (origAccepted && s.deploy == orig.deploy || orig.code == 0):
			// (an original without an answer may have been recorded)
			res.duplicate++
		case accepted && isDuplicate(orig.code, orig.answer) && orig.deploy == s.deploy:
			res.first++
			res.explained[i], res.explained[s.of] = true, true
		case tooBusy(s.code):
			res.refusedRedelivery++
		case accepted && (tooBusy(orig.code) || orig.code == 0):
			// The retry queued what the original could not.
			res.retried++
			res.explained[i] = true
		default:
			res.otherRedelivery++
		}
	}
}

// problems lists what fails the run; unexpected is the number of
// unexpected answers not explained by the check.
func (res checkResult) problems(unexpected int) []string {
	var out []string
	add := func(n int, format string, args ...any) {
		if n > 0 {
			out = append(out, fmt.Sprintf(format, args...))
		}
	}
	add(len(res.lost), "%d lost (answered 202, not in the database: %s)", len(res.lost), some(res.lost))
	add(len(res.doubled), "%d doubled (%s)", len(res.doubled), some(res.doubled))
	add(len(res.wrongJob), "%d recorded under another deployment than their answer named (%s)", len(res.wrongJob), some(res.wrongJob))
	add(len(res.refusedRecorded), "%d refused yet recorded (%s)", len(res.refusedRecorded), some(res.refusedRecorded))
	add(len(res.strangers), "%d recorded that should not be (%s)", len(res.strangers), some(res.strangers))
	add(res.otherRedelivery, "%d of %d redeliveries not answered duplicate", res.otherRedelivery, res.redeliveries)
	add(unexpected, "%d unexpected answers", unexpected)
	// One app: every push joins the one waiting deployment, which runs
	// when the one before has finished (the first push's, or, when that
	// ended during the load, the next).
	states := map[string]int{}
	jobs := map[string]bool{}
	for _, j := range res.jobs {
		states[j.state]++
		jobs[j.id] = true
	}
	add(states["waiting"]-1, "%d deployments waiting at once, want 1 at most", states["waiting"])
	add(states["running"]-1, "%d deployments running at once, want 1 at most", states["running"])
	for id := range res.named {
		add(btoi(!jobs[id]), "the 202 answers named %s, not in the queue", id)
	}
	return out
}

// some is the first few of ids.
func some(ids []string) string {
	if len(ids) > 3 {
		return strings.Join(ids[:3], ", ") + ", …"
	}
	return strings.Join(ids, ", ")
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
