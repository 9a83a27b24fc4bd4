package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/pushdeploy/pushdeploy/deploy"
	"github.com/pushdeploy/pushdeploy/internal/testhosts"
)

// The scale test with -restart-batch checks the bound for a large
// pool: a code-only redeploy of -scale hosts with DEPLOY_RESTART_BATCH set
// should take at most twice (the pool's restarts done a batch at a time) +
// (one host's prepare). The parts of the bound are measured in the same
// run, on the same hosts, just before each large deploy: a code-only
// redeploy of the first host alone (its own hosts file and DEPLOY_DATA_DIR)
// gives one host's restart step and one host's prepare phase.

// nonPrepare are the steps outside a host's prepare phase: the deployer's
// resolve, the login, and what comes at or after the switch. Every other
// step (lock, prepare, fetch, checkout, venv, pip, shared, before-switch,
// or whatever a newer pushdeploy calls them) is part of it.
var nonPrepare = map[string]bool{
	"resolve": true, "connect": true, "switch": true, "restart": true, "health": true,
	"after-switch": true, "activate": true, "retention": true, "verify": true,
}

// phases is what one pushdeploy --json result tells about its hosts'
// prepare phases and restarts.
type phases struct {
	// prepareMedian is the median over hosts of a host's prepare phase,
	// from the start of its first prepare step to the end of its last;
	// prepareSpan the same over all hosts together.
	prepareMedian, prepareSpan float64
	// restartMedian is the median over hosts of the restart step,
	// restartSpan from the first restart's start to the last's end.
	restartMedian, restartSpan float64
	// mostAtOnce is the most restart steps that ran at the same moment.
	mostAtOnce int
}

// readPhases reads the phases out of pushdeploy's --json result (the last
// line of stdout); ok is false when the result has no step start times.
func readPhases(stdout string) (phases, bool) {
	ph := phases{prepareMedian: math.NaN(), prepareSpan: math.NaN(), restartMedian: math.NaN(), restartSpan: math.NaN()}
	var res resultJSON
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if json.Unmarshal([]byte(lines[len(lines)-1]), &res) != nil || len(res.Hosts) == 0 {
		return ph, false
	}
	var prep, rest []float64
	var prepAll, restAll [][2]float64
	for _, h := range res.Hosts {
		var own [][2]float64
		for _, st := range h.Steps {
			if st.Started.IsZero() {
				return ph, false
			}
			if st.Status != "succeeded" {
				continue
			}
			start := float64(st.Started.UnixNano()) / 1e9
			iv := [2]float64{start, start + st.Seconds}
			switch {
			case st.Step == "restart":
				rest = append(rest, st.Seconds)
				restAll = append(restAll, iv)
			case !nonPrepare[st.Step]:
				own = append(own, iv)
			}
		}
		if len(own) > 0 {
			prep = append(prep, span(own))
			prepAll = append(prepAll, own...)
		}
	}
	ph.prepareMedian, ph.restartMedian = median(prep), median(rest)
	if len(prepAll) > 0 {
		ph.prepareSpan = span(prepAll)
	}
	if len(restAll) > 0 {
		ph.restartSpan = span(restAll)
	}
	ph.mostAtOnce = mostAtOnce(restAll)
	return ph, true
}

// span is from the earliest start to the latest end.
func span(iv [][2]float64) float64 {
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, x := range iv {
		lo, hi = math.Min(lo, x[0]), math.Max(hi, x[1])
	}
	return hi - lo
}

// mostAtOnce is the largest number of the intervals that overlap at one
// moment (an interval ending as another starts does not overlap it).
func mostAtOnce(iv [][2]float64) int {
	type edge struct {
		t     float64
		delta int
	}
	var es []edge
	for _, x := range iv {
		es = append(es, edge{x[0], 1}, edge{x[1], -1})
	}
	sort.Slice(es, func(i, j int) bool {
		if es[i].t != es[j].t {
			return es[i].t < es[j].t
		}
		return es[i].delta < es[j].delta // ends before starts
	})
	most, now := 0, 0
	for _, e := range es {
		now += e.delta
		most = max(most, now)
	}
	return most
}

// batchRow is one code-only redeploy of the pool with -restart-batch, and
// the one-host redeploy measured just before it.
type batchRow struct {
	parallel int
	wall     float64
	pool     phases
	one      phases
	oneWall  float64
	// logins and commands are per host of the pool, from the sshd logs.
	logins, commands []int
	// cpu is the CPU time the whole machine was busy during the pool's
	// redeploy (seconds, all cores; NaN when /proc/stat could not be read):
	// the hosts share the deployer's cores here, so cpu / cores is a
	// floor under the wall time that no order of the work beats.
	cpu float64
	// deployerCPU is pushdeploy's own CPU time during the pool's redeploy
	// (sample.cpu): the rest of cpu is the hosts'.
	deployerCPU float64
}

// userHZ is the unit of /proc/stat's times: USER_HZ, 100 on Linux.
const userHZ = 100

// machineCPU is the machine's busy CPU time so far, in seconds (NaN when
// /proc/stat cannot be read).
func machineCPU() float64 {
	busy, _, err := cpuTimes()
	if err != nil {
		return math.NaN()
	}
	return float64(busy) / userHZ
}

// hostCounts is, per host, the SSH logins and the remote commands its sshd
// has logged so far (LogLevel VERBOSE).
func hostCounts(env *testhosts.Env) (logins, commands []int) {
	for _, h := range env.Hosts {
		log := h.Log()
		logins = append(logins, strings.Count(log, logLogin))
		commands = append(commands, strings.Count(log, logSession))
	}
	return logins, commands
}

func minus(a, b []int) []int {
	out := make([]int, len(a))
	for i := range a {
		out[i] = a[i] - b[i]
	}
	return out
}

// batchSize is the hosts the pool restarts at once, and how many batches
// that makes.
func (o options) batchSize() (size, batches int) {
	return restartBatches(o.restartBatch, o.scale)
}

// restartBatches is what DEPLOY_RESTART_BATCH=spec makes of a pool of n
// hosts: the hosts restarted at once, and how many batches. A spec that
// is empty or not valid (pushdeploy would refuse it) is one host at a
// time, the default.
func restartBatches(spec string, n int) (size, batches int) {
	rb, _ := deploy.ParseRestartBatch(spec) // the zero value on error
	size = rb.Size(n)
	return size, (n + size - 1) / size
}

// batchTest deploys to o.scale hosts once, then, -scale-runs times for
// each DEPLOY_PARALLEL of -parallel, times a code-only redeploy of the
// first host alone and then one of the whole pool, all with
// DEPLOY_RESTART_BATCH=o.restartBatch.
func (b *bench) batchTest(ctx context.Context, env *testhosts.Env, vars map[string]string) ([]batchRow, error) {
	one := make(map[string]string, len(vars))
	for k, v := range vars {
		one[k] = v
	}
	one["DEPLOY_HOSTS_FILE"] = filepath.Join(env.Dir, "hosts-first-only")
	one["DEPLOY_DATA_DIR"] = filepath.Join(env.Dir, "deployer-data-first-only")
	if err := os.WriteFile(one["DEPLOY_HOSTS_FILE"], []byte(env.Hosts[0].Name+"\n"), 0o644); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(one["DEPLOY_DATA_DIR"], 0o700); err != nil {
		return nil, err
	}
	change := 0
	commit := func() (string, error) {
		change++
		marker := fmt.Sprintf("# batch change %d at %s", change, time.Now().Format(time.RFC3339Nano))
		files := env.AppFiles("1.0")
		files["app.py"] += "\n" + marker + "\n"
		if _, err := env.Commit(ctx, files, "a code change"); err != nil {
			return "", err
		}
		sameSecond()
		return marker, nil
	}
	var rows []batchRow
	for r := 1; r <= b.o.scaleRuns; r++ {
		for _, p := range b.o.parallel {
			extra := []string{"DEPLOY_PARALLEL=" + strconv.Itoa(p), "DEPLOY_RESTART_BATCH=" + b.o.restartBatch}
			row := batchRow{parallel: p}
			if _, err := commit(); err != nil {
				return rows, err
			}
			s, out, err := b.opOut(ctx, env, one, extra)
			if err != nil {
				return rows, fmt.Errorf("one host's code-only redeploy, DEPLOY_PARALLEL=%d: %w", p, err)
			}
			row.oneWall = s.wall.Seconds()
			row.one, _ = readPhases(out)

			marker, err := commit()
			if err != nil {
				return rows, err
			}
			l0, c0 := hostCounts(env)
			s, out, err = b.opOut(ctx, env, vars, extra)
			row.cpu = s.machineCPU
			if err != nil {
				return rows, fmt.Errorf("code-only redeploy, DEPLOY_PARALLEL=%d: %w", p, err)
			}
			l1, c1 := hostCounts(env)
			row.logins, row.commands = minus(l1, l0), minus(c1, c0)
			if err := verify(ctx, env, b.o.port, "1.0", marker); err != nil {
				return rows, fmt.Errorf("code-only redeploy, DEPLOY_PARALLEL=%d: %w", p, err)
			}
			row.wall = s.wall.Seconds()
			row.deployerCPU = s.cpu
			row.pool, _ = readPhases(out)
			note("  run %d/%d, DEPLOY_PARALLEL=%d: %d hosts %.2fs (prepare phase %s, restarts %s, at most %d at once; machine CPU busy %s s, pushdeploy's own %s s; per host: logins %s, commands %s); the first host alone %.2fs (prepare %s, restart %s); load %s",
				r, b.o.scaleRuns, p, len(env.Hosts), row.wall, fmtSec(row.pool.prepareSpan), fmtSec(row.pool.restartSpan), row.pool.mostAtOnce, fmtSec(row.cpu), fmtSec(row.deployerCPU),
				spanInts(row.logins), spanInts(row.commands), row.oneWall, fmtSec(row.one.prepareMedian), fmtSec(row.one.restartMedian), loadAvg())
			rows = append(rows, row)
		}
	}
	return rows, nil
}

// opOut is b.op for pushdeploy's deploy, with its stdout (the --json
// result) kept.
func (b *bench) opOut(ctx context.Context, env *testhosts.Env, vars map[string]string, extra []string) (sample, string, error) {
	var out string
	s, err := b.opWith(ctx, toolPushdeploy, "deploy", env, vars, extra, func(stdout string) { out = stdout })
	return s, out, err
}

// batchTable prints the pool's redeploys with restart batches, and the
// issue's bound for them.
func (b *bench) batchTable(p func(string, ...any), rows []batchRow) {
	o := b.o
	size, batches := o.batchSize()
	cores := runtime.NumCPU()
	p("\n### Scale with restart batches: %d hosts, code-only redeploy, DEPLOY_RESTART_BATCH=%s (pushdeploy)\n\n", o.scale, o.restartBatch)
	p("DEPLOY_RESTART_BATCH=%s of %d hosts restarts %d at once: %d batches. ", o.restartBatch, o.scale, size, batches)
	p("Medians of %d run(s) on one set of hosts after one first deploy, (min–max). ", o.scaleRuns)
	p("Before each redeploy of the pool, the first host alone was redeployed (a code-only change, its own hosts file and DEPLOY_DATA_DIR), ")
	p("for one host's prepare phase (from its first prepare step's start to its last's end: lock to before-switch) and its restart step, as the deployer times them. ")
	p("Logins and remote commands per host are counted in the hosts' sshd logs. ")
	p("Machine CPU: the time the machine's %d cores were busy during the redeploy (/proc/stat), whatever ran it; the test hosts share those cores, so it over %d cores is a floor under the wall time. pushdeploy's own CPU is its process's user and system time (wait4); the rest of the machine's busy time is the hosts' side (their sshd, shells, git, the app's restarts).\n\n", cores, cores)
	p("| DEPLOY_PARALLEL | wall s | machine CPU busy s | pushdeploy's own CPU s | floor on %d cores s | prepare phase, all hosts s | a host's prepare steps, first start to last end (waits for its turn included) s | restarts, first start to last end s | a host's restart s | most restarts at once | logins per host | remote commands per host |\n", cores)
	p("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, par := range o.parallel {
		rs := rowsOf(rows, par)
		var logins, cmds []int
		for _, r := range rs {
			logins = append(logins, r.logins...)
			cmds = append(cmds, r.commands...)
		}
		most := 0
		for _, r := range rs {
			most = max(most, r.pool.mostAtOnce)
		}
		p("| %d | %s | %s | %s | %s | %s | %s | %s | %s | %d | %s | %s |\n", par,
			cell(batchVals(rs, func(r batchRow) float64 { return r.wall })),
			cell(batchVals(rs, func(r batchRow) float64 { return r.cpu })),
			cell(batchVals(rs, func(r batchRow) float64 { return r.deployerCPU })),
			cell(batchVals(rs, func(r batchRow) float64 { return r.cpu / float64(cores) })),
			cell(batchVals(rs, func(r batchRow) float64 { return r.pool.prepareSpan })),
			cell(batchVals(rs, func(r batchRow) float64 { return r.pool.prepareMedian })),
			cell(batchVals(rs, func(r batchRow) float64 { return r.pool.restartSpan })),
			cell(batchVals(rs, func(r batchRow) float64 { return r.pool.restartMedian })),
			most, spanInts(logins), spanInts(cmds))
	}
	if len(rows) == 0 {
		p("| – | failed | | | | | | | | | | |\n")
	}

	p("\n### Goal: %d hosts, code-only, DEPLOY_RESTART_BATCH=%s, within 2× of (%d hosts' restarts done %d at a time) + one host's prepare\n\n", o.scale, o.restartBatch, o.scale, size)
	p("Bound = 2 × (%d batches × one host's restart + one host's prepare), with the first host's own redeploy measured just before each pool redeploy (medians).\n\n", batches)
	p("| DEPLOY_PARALLEL | one host: restart s | one host: prepare s | one host: wall s | bound s | %d hosts: wall s | |\n|---:|---:|---:|---:|---:|---:|---|\n", o.scale)
	for _, par := range o.parallel {
		rs := rowsOf(rows, par)
		restart, prep, bound := boundOf(rs, batches)
		wall := median(batchVals(rs, func(r batchRow) float64 { return r.wall }))
		p("| %d | %s | %s | %s | 2 × (%d × %s + %s) = %s | %s | %s |\n", par, fmtSec(restart), fmtSec(prep),
			fmtSec(median(batchVals(rs, func(r batchRow) float64 { return r.oneWall }))),
			batches, fmtSec(restart), fmtSec(prep), fmtSec(bound), fmtSec(wall),
			verdict(wall <= bound, !math.IsNaN(wall) && !math.IsNaN(bound)))
	}
	b.restartFloor(p, size, batches, cores, rows)
}

// restartFloor says what the bound asks of this machine's CPUs: the pool's
// restarts alone (b.restartCost each) over its cores, against the bound,
// which counts a batch as one restart's wall time, as if every host of it
// had cores of its own.
func (b *bench) restartFloor(p func(string, ...any), size, batches, cores int, rows []batchRow) {
	o := b.o
	if math.IsNaN(b.restartCost) || len(rows) == 0 {
		return
	}
	cost := b.restartCost
	restart, _, bound := boundOf(rows, batches)
	floor := float64(o.scale) * cost / float64(cores)
	p("\nWhat the bound asks of this machine: one host's restart, run alone %d times on the first host (as its user, in its current release, without SSH) on a quiet machine, ", restartRuns)
	p("keeps the machine's CPUs busy %.3f s each (the test app's Python server starting, and the check that it listens). ", cost)
	p("The pool's %d restarts alone are then %s CPU-seconds, at least %s s on %d cores whatever the deployer does, ", o.scale, fmtSec(float64(o.scale)*cost), fmtSec(floor), cores)
	p("against a bound of %s s (all DEPLOY_PARALLEL values), which counts each batch of %d restarts as one restart's %s s: ", fmtSec(bound), size, fmtSec(restart))
	if restart > 0 {
		p("that is %d hosts restarting on %.1f cores' worth of CPU at once. ", size, float64(size)*cost/restart)
	}
	if floor >= bound {
		p("On this machine the restarts alone exceed the bound, so no deployer meets it here: it needs hosts with CPUs of their own.")
	} else {
		p("The restarts alone leave %s s of the bound for everything else.", fmtSec(bound-floor))
	}
	machine := median(batchVals(rows, func(r batchRow) float64 { return r.cpu }))
	own := median(batchVals(rows, func(r batchRow) float64 { return r.deployerCPU }))
	if !math.IsNaN(machine) && !math.IsNaN(own) {
		hosts := machine - own
		p(" Of a pool redeploy's %s CPU-seconds (medians), pushdeploy's own process used %s; the hosts' side used the other %s, %s s on %d cores by itself (%.3f CPU-seconds a host, the app's restart included).",
			fmtSec(machine), fmtSec(own), fmtSec(hosts), fmtSec(hosts/float64(cores)), cores, hosts/float64(o.scale))
	}
	p("\n")
}

// boundOf is the bound for the pool's redeploys rs, from the
// one-host redeploys measured before them (medians): 2 × (batches × one
// host's restart + one host's prepare), with those two parts.
func boundOf(rs []batchRow, batches int) (restart, prep, bound float64) {
	restart = median(batchVals(rs, func(r batchRow) float64 { return r.one.restartMedian }))
	prep = median(batchVals(rs, func(r batchRow) float64 { return r.one.prepareMedian }))
	return restart, prep, 2 * (float64(batches)*restart + prep)
}

func rowsOf(rows []batchRow, parallel int) []batchRow {
	var out []batchRow
	for _, r := range rows {
		if r.parallel == parallel {
			out = append(out, r)
		}
	}
	return out
}

func batchVals(rs []batchRow, f func(batchRow) float64) []float64 {
	out := make([]float64, 0, len(rs))
	for _, r := range rs {
		out = append(out, f(r))
	}
	return out
}
