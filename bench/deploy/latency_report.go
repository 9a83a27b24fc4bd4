package main

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// fmtDelay is "0 ms" or "25 ms".
func fmtDelay(d time.Duration) string {
	return strconv.FormatFloat(ms(d), 'f', -1, 64) + " ms"
}

// note is the counts for the progress line: "  host: 1 login, 9 commands,
// 1 git login" when every host did the same.
func (t *trips) note() string {
	if t == nil {
		return ""
	}
	return fmt.Sprintf("  per host: logins %s, commands %s, git logins %s; deployer's git logins %d",
		spanInts(t.logins), spanInts(t.commands), spanInts(t.gitLogins), t.deployerGit)
}

// spanInts is "9", or "8–9" when the values differ.
func spanInts(v []int) string {
	if len(v) == 0 {
		return "–"
	}
	lo, hi := slices.Min(v), slices.Max(v)
	if lo == hi {
		return strconv.Itoa(lo)
	}
	return fmt.Sprintf("%d–%d", lo, hi)
}

func (b *bench) networkHeader(p func(string, ...any)) {
	var ds []string
	for _, d := range b.o.delays {
		ds = append(ds, fmtDelay(d))
	}
	p("- network: every SSH connection (deployer to host, host to git server, deployer to git server) goes through a TCP proxy of this benchmark ")
	p("that delivers each byte a fixed delay after it arrived, each way (round trip: twice the delay), in order, with no bandwidth limit and no loss, ")
	p("and makes a new connection cost one round trip more, as TCP's handshake does; ")
	p("delays each way: %s", strings.Join(ds, ", "))
	if slices.Contains(b.o.delays, 0) {
		p(" (0 ms: through the proxy, not delayed)")
	}
	p(". ")
	p("The hosts file, known_hosts and DEPLOY_REPO_URL (which the hosts clone from) name the proxies' addresses, and known_hosts only those\n")
	p("- counted on the hosts, for each operation: SSH logins and remote commands (session channels that ran a command) from each host's sshd log ")
	p("(LogLevel VERBOSE: \"Accepted publickey\", \"Starting session\"); each host's logins to the git server at the git server's proxy, ")
	p("by the Unix user owning the client's socket (one user per host; the deployer is root)\n")
}

func (b *bench) selfCheckTable(p func(string, ...any)) {
	p("\n### The proxy, checked before the runs\n\n")
	p("A TCP echo server behind the proxy (one byte there and back on a new connection, then 20 more times), 8 MB sent through it, and an OpenSSH login to a test host (`ssh host true`, 3 times) through it:\n\n")
	p("| delay each way | new connection: first round trip ms | then: round trip, median (least) ms | OpenSSH login s | 8 MB through it, MB/s |\n|---:|---:|---:|---:|---:|\n")
	p("| no proxy | – | – | %.3f | – |\n", b.directLogin.Seconds())
	for _, c := range b.checks {
		p("| %s | %.2f | %.2f (%.2f) | %.3f | %.0f |\n", fmtDelay(c.delay), ms(c.echoFirst), ms(c.echoMedian), ms(c.echoMin), c.login.Seconds(), c.mbps)
	}
}

// latencySummary is the wall times of every delay in one table, with what
// the delay added to each tool's time over the first delay's.
func (b *bench) latencySummary(p func(string, ...any), n int) {
	if len(b.o.delays) < 2 {
		return // the wall time table above has it all
	}
	d0 := b.o.delays[0]
	p("\n### Wall time by delay, %d hosts (s)\n\n", n)
	p("| scenario | delay each way | original script | pushdeploy | original / pushdeploy | script: added over %s | pushdeploy: added over %s |\n", fmtDelay(d0), fmtDelay(d0))
	p("|---|---:|---:|---:|---:|---:|---:|\n")
	for _, scn := range scenarios {
		base := func(tool string) float64 { return median(values(b.results[key{tool, n, scn, d0}], wallOf)) }
		for _, d := range b.o.delays {
			orig := b.results[key{toolOriginal, n, scn, d}]
			pd := b.results[key{toolPushdeploy, n, scn, d}]
			mo, mp := median(values(orig, wallOf)), median(values(pd, wallOf))
			addO, addP := "–", "–"
			if d != d0 {
				addO, addP = fmtSec(mo-base(toolOriginal)), fmtSec(mp-base(toolPushdeploy))
			}
			p("| %s | %s | %s | %s | %s | %s | %s |\n", scn, fmtDelay(d), cell(values(orig, wallOf)), cell(values(pd, wallOf)), ratio(mo, mp), addO, addP)
		}
	}
}

// tripsTable is the SSH logins and remote commands of each operation, per
// host, over all runs and hosts.
func (b *bench) tripsTable(p func(string, ...any), n int) {
	p("\n### SSH logins and remote commands per host, %d hosts\n\n", n)
	p("Counted for each operation, over every run and host (a range when they differ). ")
	p("Each remote command costs at least two round trips (opening a session channel waits for the host's confirmation, starting the command for its reply) plus its exit status' way back; ")
	p("an OpenSSH or Go SSH login costs several (see the self-check's login times).\n\n")
	p("| scenario | delay each way | tool | logins to the host | remote commands on the host | the host's logins to the git server | the deployer's logins to the git server |\n")
	p("|---|---:|---|---:|---:|---:|---:|\n")
	for _, scn := range scenarios {
		for _, d := range b.o.delays {
			for _, tool := range b.o.tools {
				var logins, cmds, git, dep []int
				other := 0
				for _, s := range b.results[key{tool, n, scn, d}] {
					if s.trips == nil {
						continue
					}
					logins = append(logins, s.trips.logins...)
					cmds = append(cmds, s.trips.commands...)
					git = append(git, s.trips.gitLogins...)
					dep = append(dep, s.trips.deployerGit)
					other += s.trips.otherGit
				}
				extra := ""
				if other > 0 {
					extra = fmt.Sprintf(" (and %d of an unknown user)", other)
				}
				p("| %s | %s | %s | %s | %s | %s | %s%s |\n", scn, fmtDelay(d), tool, spanInts(logins), spanInts(cmds), spanInts(git), spanInts(dep), extra)
			}
		}
	}
}

// latencyGoals checks the targets for a network with a round-trip time:
// at the largest delay and, when measured, with no delay.
func (b *bench) latencyGoals(p func(string, ...any), n int) {
	dMax := slices.Max(b.o.delays)
	get := func(tool, scn string, d time.Duration, f func(sample) float64) float64 {
		return median(values(b.results[key{tool, n, scn, d}], f))
	}
	p("\n### Targets (%d hosts)\n\n| target | measured | |\n|---|---|---|\n", n)
	row := func(what string, d time.Duration, scn string, want float64) {
		o, pd := get(toolOriginal, scn, d, wallOf), get(toolPushdeploy, scn, d, wallOf)
		r := o / pd
		where := fmtDelay(d) + " each way"
		if d == 0 {
			where = "loopback (0 ms, through the proxy)"
		}
		p("| %s, %s: ≥ %g× faster than the script | script %s s, pushdeploy %s s: %s faster | %s |\n", what, where, want, fmtSec(o), fmtSec(pd), ratio(o, pd), verdict(r >= want, !math.IsNaN(r)))
	}
	row("code-only redeploy", dMax, scCode, 8)
	if slices.Contains(b.o.delays, 0) {
		row("code-only redeploy", 0, scCode, 15)
		row("first deploy", 0, scFirst, 3)
	}

	rb := b.results[key{toolPushdeploy, n, scRollback, dMax}]
	wall := median(values(rb, wallOf))
	restart := median(values(rb, restartOf))
	connect := median(values(rb, func(s sample) float64 { return s.connectMax }))
	rtt := 2 * dMax.Seconds()
	limit := connect + rtt + restart
	known := !math.IsNaN(wall) && !math.IsNaN(connect)
	p("| rollback, %s each way: ≤ connect + one round trip + the restarts, each restart counted from its start on the host | %s s; connect %s s (slowest host) + %s s + restarts %s s = %s s | %s |\n",
		fmtDelay(dMax), fmtSec(wall), fmtSec(connect), fmtSec(rtt), fmtSec(restart), fmtSec(limit), verdict(wall <= limit, known))
	// A batch can start restarting only once the deployer has heard that
	// the batch before it is done and has told it so: one round trip a
	// batch that no order of the work avoids. Counted in, each restart
	// is as long as the deployer sees it when it is a command of its own
	// (the way the "today" figure was measured).
	handoffs := b.o.rollbackBatches(n)
	limitSeen := limit + float64(handoffs)*rtt
	p("| rollback, %s each way: ≤ connect + one round trip + the restarts, each restart counted with the round trip that hands it its turn | %s s; connect %s s + %s s + (restarts %s s + %d × %s s) = %s s | %s |\n",
		fmtDelay(dMax), fmtSec(wall), fmtSec(connect), fmtSec(rtt), fmtSec(restart), handoffs, fmtSec(rtt), fmtSec(limitSeen), verdict(wall <= limitSeen, known))

	var per []int
	for _, s := range b.results[key{toolPushdeploy, n, scCode, dMax}] {
		if s.trips == nil {
			continue
		}
		for i := range s.trips.logins {
			per = append(per, s.trips.logins[i]+s.trips.commands[i])
		}
	}
	worst := -1
	if len(per) > 0 {
		worst = slices.Max(per)
	}
	p("| code-only redeploy, %s each way: logins + remote commands per host ≤ 4 | %s | %s |\n", fmtDelay(dMax), spanInts(per), verdict(worst >= 0 && worst <= 4, worst >= 0))
}

// rollbackBatches is how many restart batches a rollback of n hosts makes
// with the DEPLOY_RESTART_BATCH that -pd-env gives pushdeploy (1 host at a
// time when none does).
func (o options) rollbackBatches(n int) int {
	batch := ""
	for _, kv := range o.pdEnv {
		if v, ok := strings.CutPrefix(kv, "DEPLOY_RESTART_BATCH="); ok {
			batch = v
		}
	}
	_, batches := restartBatches(batch, n)
	return batches
}
