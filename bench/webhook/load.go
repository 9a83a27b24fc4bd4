package main

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"sync"
	"time"
)

// Request kinds in the mix.
const (
	kindRelease  = "signed push to release (expect 202)"
	kindUnsigned = "unsigned push (expect 401)"
	kindOther    = "signed push to another branch (expect 200 ignored)"
	// kindRedelivery repeats an earlier release push's delivery id (to
	// another deployer when there are several), as a forge's retry does.
	kindRedelivery = "redelivery of an earlier release push (expect 200 duplicate)"
)

var kinds = []string{kindRelease, kindUnsigned, kindOther, kindRedelivery}

// kindOf spreads the mix evenly: 1 in 20 unsigned, 1 in 20 other branch.
func kindOf(i int) string {
	switch i % 20 {
	case 7:
		return kindUnsigned
	case 17:
		return kindOther
	default:
		return kindRelease
	}
}

// shot is one request of the load, decided before the clock starts.
type shot struct {
	kind     string
	to       int    // index of the deployer it goes to
	delivery string // X-Request-UUID
	of       int    // for a redelivery, the request it repeats; else -1
}

// plan is n requests of the mix, spread round-robin over deployers. With
// redeliver > 0, that share of the requests (evenly spaced) repeats the
// delivery id of a release push sent lag requests earlier (about half a
// second at rate), to the next deployer after the one that had it, so
// that its answer is normally known by then; the earliest ones, with
// nothing to repeat yet, are release pushes.
func plan(n, deployers, rate int, redeliver float64) []shot {
	every := 0
	if redeliver > 0 {
		every = max(2, int(math.Round(1/redeliver)))
	}
	lag := max(1, rate/2)
	shots := make([]shot, n)
	for i := range shots {
		sh := shot{kind: kindOf(i), to: i % deployers, delivery: newUUID(), of: -1}
		if every > 0 && i%every == every/2 && sh.kind == kindRelease {
			for j := i - lag; j >= 0; j-- {
				if shots[j].kind == kindRelease {
					sh = shot{kind: kindRedelivery, to: (shots[j].to + 1) % deployers, delivery: shots[j].delivery, of: j}
					break
				}
			}
		}
		shots[i] = sh
	}
	return shots
}

type sample struct {
	shot
	due       time.Time // when the request should have been sent
	queued    time.Time // when the generator handed it to the workers
	sent      time.Time // when it was handed to the HTTP client
	done      time.Time
	code      int
	answer    answer
	errKind   string // "" when the answer was the expected one
	errDetail string
	deploy    string
}

type loadResult struct {
	start   time.Time
	samples []sample
}

// load sends the shots at o.rate a second, open loop: request i is due at
// start + i/rate whatever happened to the earlier ones. Shot i goes to
// targets[shots[i].to].
func load(ctx context.Context, client *http.Client, targets []*server, o options, shots []shot, releaseBody, otherBody []byte) loadResult {
	n := len(shots)
	interval := time.Second / time.Duration(o.rate)
	// The deployers share the secret: one signature each.
	releaseSig, otherSig := targets[0].sign(releaseBody), targets[0].sign(otherBody)
	samples := make([]sample, n)
	jobs := make(chan int, n)
	var wg sync.WaitGroup
	for w := 0; w < o.workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				sm := &samples[i]
				s := targets[sm.to]
				var req *http.Request
				switch sm.kind {
				case kindRelease:
					req = s.webhookRequest(sm.delivery, releaseBody, releaseSig)
				case kindRedelivery:
					req = s.webhookRequest(sm.delivery, releaseBody, releaseSig)
					req.Header.Set("X-Attempt-Number", "2")
				case kindUnsigned:
					req = s.webhookRequest(sm.delivery, releaseBody, "")
				default:
					req = s.webhookRequest(sm.delivery, otherBody, otherSig)
				}
				sm.sent = time.Now()
				code, a, err := do(client, req)
				sm.done = time.Now()
				sm.code, sm.answer, sm.deploy = code, a, a.Deployment
				sm.errKind, sm.errDetail = unexpected(sm.kind, code, a, err)
			}
		}()
	}
	start := time.Now().Add(10 * time.Millisecond)
	for i := 0; i < n; i++ {
		due := start.Add(time.Duration(i) * interval)
		if d := time.Until(due); d > 0 {
			time.Sleep(d)
		}
		if ctx.Err() != nil {
			samples = samples[:i]
			break
		}
		samples[i].shot, samples[i].due, samples[i].queued = shots[i], due, time.Now()
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	return loadResult{start: start, samples: samples}
}

// unexpected says how an answer differs from what its kind expects: ""
// when it does not. A redelivery answered 202 is unexpected here; the
// database check (check.go) decides whether it was doubled or came first.
func unexpected(kind string, code int, a answer, err error) (errKind, detail string) {
	switch {
	case err != nil && code == 0:
		return "transport error", err.Error()
	case err != nil:
		return fmt.Sprintf("%d, unreadable answer", code), err.Error()
	case kind == kindRelease && (code != http.StatusAccepted || a.Status != "queued"),
		kind == kindUnsigned && code != http.StatusUnauthorized,
		kind == kindOther && (code != http.StatusOK || a.Status != "ignored"),
		kind == kindRedelivery && !isDuplicate(code, a):
		return fmt.Sprintf("%d %s", code, a.Status), a.Error
	}
	return "", ""
}

// isDuplicate is serve's answer to a delivery id it has seen.
func isDuplicate(code int, a answer) bool {
	return code == http.StatusOK && a.Status == "ignored" && a.Reason == "duplicate delivery"
}
