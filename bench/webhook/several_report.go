package main

import (
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strings"
	"time"
)

type severalInput struct {
	o       options
	res     loadResult
	chk     checkResult
	ds      []*deployer
	runner  *deployer // the one running the deployment during the load
	running string    // that deployment
	steps   []stepSample
	m       machineUse
}

// reportSeveral prints the several-deployers benchmark's tables and its
// verdict; ok when the verdict is PASS.
func reportSeveral(w io.Writer, in severalInput) (ok bool) {
	engine := "SQLite (DEPLOY_DATA_DIR/queue.db, synchronous FULL)"
	if in.o.db == "postgres" {
		engine = fmt.Sprintf("PostgreSQL (DEPLOY_DATABASE_URL, fsync %s)", onOff(in.o.pgFsync))
	}
	from := "as soon as the deploy ran"
	if in.o.startStep != "" {
		from = "from the deploy's " + in.o.startStep + " step on h1"
	}
	fmt.Fprintf(w, "\n## Webhooks over %d deployer(s) on %s: %d req/s for %v, %s, %d hosts (%s, %d CPUs, %s)\n\n",
		len(in.ds), engine, in.o.rate, in.o.duration, from, in.o.hosts, in.m.start.UTC().Format("2006-01-02 15:04 UTC"), runtime.NumCPU(), runtime.Version())
	fmt.Fprintf(w, "Open loop, round-robin over the deployers, %d workers from %d client addresses; %.1f%% of the requests redeliver an earlier release push's delivery id to the next deployer. Load average %s before the load, %s after; the whole machine was %s busy during it (all %d cores).\n\n",
		in.o.workers, in.o.sources, 100*in.o.redeliver, in.m.load[0], in.m.load[1], percent(in.m.busyAfter-in.m.busyBefore, in.m.totalAfter-in.m.totalBefore), runtime.NumCPU())

	latencyTable(w, in)
	unexpectedList(w, in)
	checkTable(w, in)
	resourceTable(w, in)
	timeline(w, in.o, in.res, in.steps, "RSS MiB (max) of "+in.runner.name, func(s sample) bool {
		return s.kind == kindRelease || s.kind == kindRedelivery
	})

	all := in.tally()[len(in.ds)]
	problems := in.chk.problems(all.other)
	if len(problems) > 0 {
		fmt.Fprintf(w, "**Verdict: FAIL**: %s.\n\n", strings.Join(problems, "; "))
		return false
	}
	fmt.Fprintf(w, "**Verdict: PASS**: all %d deliveries answered 202 are recorded exactly once (0 lost, 0 doubled); %d of %d redeliveries to another deployer answered duplicate",
		in.chk.accepted, in.chk.duplicate, in.chk.redeliveries)
	if c := in.chk; c.first+c.refusedRedelivery+c.retried > 0 {
		fmt.Fprintf(w, " (the others rightly not: %d arrived before their original, %d refused for load, %d queued after their original was refused)", c.first, c.refusedRedelivery, c.retried)
	}
	fmt.Fprintf(w, "; %d deployments, never more than one waiting (every push joined it)", len(in.chk.jobs))
	if all.refused > 0 {
		fmt.Fprintf(w, "; **but %d of %d requests were refused for load** (503 or 429: nothing queued, the forge retries)", all.refused, all.sent)
	} else {
		fmt.Fprint(w, "; every answer as expected")
	}
	fmt.Fprint(w, ".\n\n")
	return true
}

// answerCounts are the answers of one deployer, or of all.
type answerCounts struct {
	sent, refused, other int
	lat, due             []time.Duration // of the 202 answers, from sent and from due
}

// tally counts the answers per deployer, and of all at the end: refused
// are the 503 and 429 answers (too busy: nothing queued), other the
// unexpected answers the check does not explain.
func (in severalInput) tally() []answerCounts {
	n := len(in.ds)
	c := make([]answerCounts, n+1)
	for i, s := range in.res.samples {
		if s.done.IsZero() {
			continue
		}
		for _, k := range []int{s.to, n} { // its deployer, and all
			c[k].sent++
			switch {
			case s.errKind == "" || in.chk.explained[i]:
			case tooBusy(s.code):
				c[k].refused++
			default:
				c[k].other++
			}
			if s.code == http.StatusAccepted && s.answer.Status == "queued" {
				c[k].lat = append(c[k].lat, s.done.Sub(s.sent))
				c[k].due = append(c[k].due, s.done.Sub(s.due))
			}
		}
	}
	return c
}

// latencyTable prints the round trips of the 202 answers per deployer and
// overall.
func latencyTable(w io.Writer, in severalInput) {
	fmt.Fprintln(w, "Round trip (ms) of the `202 queued` answers (each committed to the database before it was sent), from the moment the request was handed to the HTTP client until its answer was read; the last column from the moment it was due by the open-loop schedule (adds the time a request waited for a free worker of the load generator, and its timer's delays):")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| deployer | requests | 202 answers | p50 | p90 | p99 | max | refused for load (503, 429) | other unexpected answers | p99 from due |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	c := in.tally()
	n := len(in.ds)
	for k := 0; k <= n; k++ {
		name := "**all**"
		if k < n {
			name = in.ds[k].name
			if in.ds[k] == in.runner {
				name += " (running the deploy)"
			}
		}
		st, dst := percentiles(c[k].lat), percentiles(c[k].due)
		fmt.Fprintf(w, "| %s | %d | %d | %s | %s | %s | %s | %d | %d | %s |\n", name, c[k].sent, st.n, ms(st.p50), ms(st.p90), ms(st.p99), ms(st.max), c[k].refused, c[k].other, ms(dst.p99))
	}
	fmt.Fprintln(w)
	var last time.Time
	for _, s := range in.res.samples {
		if s.done.After(last) {
			last = s.done
		}
	}
	if wall := last.Sub(in.res.start); wall > 0 {
		fmt.Fprintf(w, "Answered: %.0f requests a second (%d in %.2f s, from the first request due to the last answer), %.0f of them 202.\n\n",
			float64(c[n].sent)/wall.Seconds(), c[n].sent, wall.Seconds(), float64(len(c[n].lat))/wall.Seconds())
	}
}

// unexpectedList prints the unexpected answers by request kind and answer.
func unexpectedList(w io.Writer, in severalInput) {
	errs, example := map[string]int{}, map[string]string{}
	explained := 0
	for i, s := range in.res.samples {
		switch {
		case s.errKind == "" || s.done.IsZero():
		case in.chk.explained[i]:
			explained++
		default:
			k := s.kind + ": " + s.errKind
			errs[k]++
			example[k] = s.errDetail
		}
	}
	if len(errs) == 0 {
		fmt.Fprintln(w, "Unexpected answers: none.")
	} else {
		fmt.Fprintln(w, "Unexpected answers, by request kind:")
		fmt.Fprintln(w)
		listErrors(w, errs, example)
	}
	if explained > 0 {
		fmt.Fprintf(w, "\n%d more answers were not the ones their kind expects, rightly: a redelivery arrived before its original, so the redelivery got the 202 and the original the duplicate (counted once).\n", explained)
	}
	fmt.Fprintln(w)
}

func checkTable(w io.Writer, in severalInput) {
	c := in.chk
	fmt.Fprintln(w, "From the database (queue_deliveries, queue_jobs), after the load:")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| delivery ids answered 202 | recorded once, under the deployment named | lost | doubled | refused, yet recorded | recorded, never sent as a release push | no answer (of them recorded) | deployments |")
	fmt.Fprintln(w, "|---:|---:|---:|---:|---:|---:|---:|---:|")
	fmt.Fprintf(w, "| %d | %d | **%d** | **%d** | %d | %d | %d (%d) | %d |\n\n",
		c.accepted, c.once, len(c.lost), len(c.doubled), len(c.refusedRecorded), len(c.strangers), c.unanswered, c.unansweredRecorded, len(c.jobs))
	fmt.Fprintf(w, "Redeliveries, each to another deployer than its original: %d; answered duplicate naming the original's deployment %d; arrived first (202, the original then duplicate) %d; refused for load %d; queued after their original was refused %d; anything else **%d**.\n\n",
		c.redeliveries, c.duplicate, c.first, c.refusedRedelivery, c.retried, c.otherRedelivery)
	fmt.Fprintln(w, "Deployments in the queue (expected: the running one, and one waiting that every push joined; one more when the first ended during the load and the waiting one started):")
	fmt.Fprintln(w)
	for _, j := range c.jobs {
		role := ""
		switch {
		case j.id == in.running:
			role = ", started before the load"
		case c.named[j.id] > 0:
			role = fmt.Sprintf(", named by %d of the 202 answers", c.named[j.id])
		}
		owner := ""
		if j.owner != "" {
			owner = " on " + j.owner
		}
		fmt.Fprintf(w, "- %s %s%s%s\n", j.id, j.state, owner, role)
	}
	fmt.Fprintln(w)
}

func resourceTable(w io.Writer, in severalInput) {
	wall := in.m.stop.Sub(in.m.start)
	fmt.Fprintf(w, "CPU during the load (%.2f s):\n\n", wall.Seconds())
	fmt.Fprintln(w, "| process | CPU s | of one core | VmRSS before → after | after SIGTERM |")
	fmt.Fprintln(w, "|---|---:|---:|---|---|")
	for _, d := range in.ds {
		shut := "exit 0"
		if d.shutdown.err != nil {
			shut = d.shutdown.err.Error()
		}
		cpu := d.cpuAfter - d.cpuBefore
		fmt.Fprintf(w, "| serve %s | %.2f | %s | %s → %s | %s in %.1f s |\n", d.name, cpu.Seconds(), percent(cpu, wall), mib(d.memBefore.rssKB), mib(d.memAfter.rssKB), shut, d.shutdown.took.Seconds())
	}
	if in.o.db == "postgres" {
		cpu := in.m.dbAfter - in.m.dbBefore
		fmt.Fprintf(w, "| PostgreSQL (all its processes) | %.2f | %s | | |\n", cpu.Seconds(), percent(cpu, wall))
	}
	self := rusageCPU(in.m.self[1]) - rusageCPU(in.m.self[0])
	fmt.Fprintf(w, "| load generator | %.2f | %s | | |\n\n", self.Seconds(), percent(self, wall))
}

func percent(part, whole time.Duration) string {
	if whole <= 0 {
		return "?"
	}
	return fmt.Sprintf("%.0f%%", 100*part.Seconds()/whole.Seconds())
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}
