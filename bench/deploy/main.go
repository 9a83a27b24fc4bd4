// Command deploy is a benchmark (not a test) of how long deploys take: the
// team's original shell script (original.sh, next to this file) against
// pushdeploy, on the same kind of real loopback test hosts the end-to-end
// tests use (internal/testhosts: an sshd and a Unix user per host, a git
// server reached over SSH with a deploy key, offline wheels).
//
// As root, after .ci/install, from the repository root:
//
//	go run ./bench/deploy                       # the full run (see -h)
//	go run ./bench/deploy -runs 1 -skip-scale   # a quick check
//
// It builds pushdeploy from the working tree (or measures -bin), then for
// each number of hosts (-hosts) and each run (-runs), for each tool on its
// own fresh set of test hosts (new users, empty homes, a new git server, an
// empty DEPLOY_DATA_DIR), times four operations in a row:
//
//  1. first deploy onto empty hosts (app.py and a requirements.txt that
//     installs pdtestdep 1.0);
//  2. code-only redeploy (one line of app.py changed);
//  3. requirements change (a new pdtestdep version, built for this run);
//  4. rollback to the release before (2's).
//
// Both tools restart a real app server on every host
// (DEPLOY_RESTART_CMD = testhosts' RestartCmd: stop the old server, start the
// release's app.py, wait until it listens). After each operation every host
// is checked: the app answers with the expected pdtestdep version and
// current/app.py is the expected code.
//
// Besides wall time it records the mixed-version window (from the first
// host's switch of current to the last host's: for pushdeploy the start
// times of the "switch" steps in its --json result, for the script the host's
// clock printed just before each ln -sfn; and, for both, the modification
// times of the current symlinks, which both tools create anew at the
// switch), the deployer's peak RSS (ru_maxrss as GNU time reports it),
// the restart command's own time, and pushdeploy's time per step.
//
// Then (unless -skip-scale) it deploys to -scale hosts once and times a
// code-only redeploy for each DEPLOY_PARALLEL of -parallel (-scale-runs
// times each). With -restart-batch (e.g. 10%) those redeploys run with
// that DEPLOY_RESTART_BATCH, each after a code-only redeploy of the first
// host alone, which gives one host's prepare phase and restart step in the
// same run; the report checks the bound 2 × (batches × one host's restart
// + one host's prepare) (batch.go), and sets it against this machine's
// CPUs: the machine's busy time during each pool redeploy, pushdeploy's own
// part of it, and one restart's CPU time (restartcpu.go) times the pool,
// over the cores. -scale-only runs the scale test alone:
//
//	go run ./bench/deploy -scale-only -scale 50 -restart-batch 10% -parallel 1 -scale-runs 3
//
// With -delay (latency mode, e.g. -delay 0,25ms -hosts 8; no scale test
// then), every SSH connection goes through a TCP proxy of this program
// (proxy.go) that delivers each byte a fixed delay after it arrived, each
// way: one proxy per app host's sshd and one for the git server, listening
// on the host's own loopback address. The hosts file, known_hosts (the
// proxies' addresses only) and DEPLOY_REPO_URL name the proxies, and the
// hosts clone from that URL, so deployer to host, host to git server and
// deployer to git server all pay the delay; for the script, the hosts'
// ~/.ssh/known_hosts names the git server's proxy. Each delay is measured
// in every run, for both tools. Before the runs a self-check times a TCP
// echo round trip (it must be at least twice the delay), 8 MB and an
// OpenSSH login through the proxy. For each operation it counts, per
// host, the SSH logins and remote commands (sessions that ran a command)
// from the host's sshd log (LogLevel VERBOSE), and the host's logins to
// the git server at the git server's proxy, which tells the hosts apart by
// the Unix user owning the client's socket (/proc/net/tcp).
//
// It prints markdown tables on stdout (medians of -runs, with the range)
// and progress on stderr.
package main

import (
	"bufio"
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pushdeploy/pushdeploy/deploy"
	"github.com/pushdeploy/pushdeploy/internal/testhosts"
)

//go:embed original.sh
var originalScript []byte

const (
	toolOriginal   = "original"
	toolPushdeploy = "pushdeploy"
)

// Scenarios, in the order each sequence runs them.
const (
	scFirst    = "first deploy"
	scCode     = "code-only redeploy"
	scReqs     = "requirements change"
	scRollback = "rollback"
)

var scenarios = []string{scFirst, scCode, scReqs, scRollback}

type options struct {
	hosts     []int
	runs      int
	scale     int
	parallel  []int
	skipScale bool
	port      int
	tools     []string
	pdEnv     []string
	verbose   bool
	opTimeout time.Duration
	// bin is a pushdeploy binary to measure instead of building one.
	bin string
	// delays are the one-way delays of the latency mode; nil: no
	// proxies, the tools talk to the test hosts directly.
	delays []time.Duration
	// restartBatch is DEPLOY_RESTART_BATCH for the scale test's
	// redeploys ("": pushdeploy's default, and no bound checked);
	// scaleOnly runs the scale test alone, scaleRuns times per
	// DEPLOY_PARALLEL.
	restartBatch string
	scaleOnly    bool
	scaleRuns    int
	// quiet is the share of the CPUs (0 to 1) the machine may use before
	// an operation starts, for at most quietMax; 0: do not wait.
	quiet    float64
	quietMax time.Duration
}

// latency says whether the benchmark runs in latency mode (-delay).
func (o options) latency() bool { return o.delays != nil }

func main() {
	var o options
	hosts := flag.String("hosts", "2,8", "numbers of hosts, comma list")
	flag.IntVar(&o.runs, "runs", 3, "runs per tool and number of hosts; the tables show medians")
	flag.IntVar(&o.scale, "scale", 50, "hosts for the scale test")
	parallel := flag.String("parallel", "1,4,16", "DEPLOY_PARALLEL values for the scale test, comma list")
	flag.BoolVar(&o.skipScale, "skip-scale", false, "skip the scale test")
	flag.BoolVar(&o.scaleOnly, "scale-only", false, "run the scale test alone (no -hosts sequences), e.g. -scale-only -restart-batch 10% -parallel 1")
	flag.IntVar(&o.scaleRuns, "scale-runs", 1, "code-only redeploys per DEPLOY_PARALLEL in the scale test; its tables show medians")
	flag.StringVar(&o.restartBatch, "restart-batch", "", "DEPLOY_RESTART_BATCH (`N or N%`) for the scale test's redeploys; then it also redeploys one host alone before each and checks the bound 2 × (restarts in batches + one host's prepare)")
	flag.IntVar(&o.port, "port", 8000, "port of the app servers (each host has its own address)")
	tools := flag.String("tools", toolOriginal+","+toolPushdeploy, "tools to measure, comma list")
	flag.Func("pd-env", "`KEY=VALUE` set for pushdeploy only (repeatable), e.g. -pd-env DEPLOY_FETCH=push", func(s string) error {
		if !strings.HasPrefix(s, "DEPLOY_") || !strings.Contains(s, "=") {
			return errors.New("want DEPLOY_NAME=VALUE")
		}
		o.pdEnv = append(o.pdEnv, s)
		return nil
	})
	flag.BoolVar(&o.verbose, "v", false, "print every command's output on stderr")
	flag.StringVar(&o.bin, "bin", "", "measure this pushdeploy `binary` (default: build the working tree), e.g. one built from an older commit")
	flag.DurationVar(&o.opTimeout, "op-timeout", 15*time.Minute, "bound of one deploy or rollback")
	flag.Func("quiet", "before each operation, wait until the machine's CPUs are at most `SHARE` busy (e.g. 50%: one of 2 cores), measured over 2 s, for at most -quiet-max", func(s string) (err error) {
		o.quiet, err = parsePercent(s)
		return err
	})
	flag.DurationVar(&o.quietMax, "quiet-max", 5*time.Minute, "with -quiet, the longest an operation waits for the machine to be quiet")
	flag.Func("delay", "latency mode: put a proxy that delays every byte by `D` each way (round trip 2×D) in front of every host's sshd and the git server; a comma list (0,25ms) measures each; 0 still goes through the proxy; no scale test", func(s string) error {
		for _, f := range strings.Split(s, ",") {
			d, err := time.ParseDuration(strings.TrimSpace(f))
			if f == "0" {
				d, err = 0, nil
			}
			if err != nil || d < 0 {
				return errors.New("want a comma list of durations such as 0,25ms")
			}
			o.delays = append(o.delays, d)
		}
		return nil
	})
	flag.Parse()
	var err error
	if o.hosts, err = intList(*hosts); err == nil {
		o.parallel, err = intList(*parallel)
	}
	if err == nil && (o.runs < 1 || o.scale < 1 || o.scaleRuns < 1) {
		err = errors.New("-runs, -scale and -scale-runs must be positive")
	}
	if err == nil && o.restartBatch != "" {
		if _, perr := deploy.ParseRestartBatch(o.restartBatch); perr != nil {
			err = fmt.Errorf("-restart-batch: %w", perr)
		}
	}
	if err == nil && o.scaleOnly && (o.skipScale || o.latency()) {
		err = errors.New("-scale-only goes with neither -skip-scale nor -delay")
	}
	for _, t := range strings.Split(*tools, ",") {
		if t != toolOriginal && t != toolPushdeploy {
			err = fmt.Errorf("-tools: unknown tool %q", t)
		}
		o.tools = append(o.tools, t)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench/deploy:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err = run(ctx, o)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench/deploy:", err)
		os.Exit(1)
	}
}

func intList(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q: want a comma list of positive numbers", s)
		}
		out = append(out, n)
	}
	return out, nil
}

func note(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s  %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
}

// sample is one timed operation.
type sample struct {
	wall time.Duration
	// window is the mixed-version window as the tool reports it (switch
	// step starts, or the script's timestamps before ln); mtimeWindow is
	// the spread of the current symlinks' modification times. NaN when
	// unknown.
	window, mtimeWindow float64
	// restart is the time spent in the restart command (union over hosts).
	restart float64
	rssKiB  int64
	// steps is pushdeploy's seconds per step, summed over hosts;
	// connectMax is its slowest host's connect step (NaN: unknown).
	steps      map[string]float64
	connectMax float64
	// parallelIgnored: pushdeploy warned that DEPLOY_PARALLEL is not used.
	parallelIgnored bool
	// trips is what the operation did over SSH (latency mode only).
	trips *trips
	// load is the 1-minute load average when the operation started, and
	// busy the machine's CPU share just before (-quiet; else -1).
	load, busy float64
	// cpu is the tool's own CPU time (user + system, of its process and
	// the children it waited for, as wait4 reports it; with GNU time in
	// between, its few milliseconds too): for pushdeploy, the deployer's
	// part of the machine's busy time, the hosts' being the rest.
	cpu float64
	// machineCPU is the whole machine's busy CPU time from the tool's
	// start to its end (/proc/stat; NaN: unread).
	machineCPU float64
}

// key names one cell of results.
type key struct {
	tool     string
	hosts    int
	scenario string
	delay    time.Duration // one way, in latency mode
}

type bench struct {
	o       options
	bin     string // pushdeploy
	script  string // original.sh
	tmp     string
	results map[key][]sample
	fails   []string
	version int // the last pdtestdep version built
	// checks is the proxy self-check of each delay, and directLogin an
	// OpenSSH login's time without a proxy (latency mode).
	checks      []selfCheck
	directLogin time.Duration
	// batch is the scale test's redeploys with -restart-batch.
	batch []batchRow
	// restartCost is one host's restart in CPU-seconds (restartCPU; NaN:
	// not measured).
	restartCost float64
	// loads are the 1-minute load averages every operation started at.
	loads []float64
}

func run(ctx context.Context, o options) error {
	began := time.Now()
	if err := testhosts.Check(); err != nil {
		return fmt.Errorf("this machine cannot run the benchmark (run .ci/install as root first): %w", err)
	}
	tmp, err := os.MkdirTemp("", "pushdeploy-bench-deploy-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	b := &bench{o: o, tmp: tmp, results: map[key][]sample{}, version: 2, restartCost: math.NaN()}

	var tree string
	if o.bin != "" {
		if b.bin, err = filepath.Abs(o.bin); err != nil {
			return err
		}
		out, err := exec.CommandContext(ctx, b.bin, "version").Output()
		if err != nil {
			return fmt.Errorf("-bin %s: version: %w", o.bin, err)
		}
		tree = fmt.Sprintf("the binary %s: %s", o.bin, strings.TrimSpace(string(out)))
	} else {
		note("building pushdeploy from the working tree")
		b.bin = filepath.Join(tmp, "pushdeploy")
		if out, err := exec.CommandContext(ctx, "go", "build", "-o", b.bin, "github.com/pushdeploy/pushdeploy").CombinedOutput(); err != nil {
			return fmt.Errorf("go build: %v\n%s", err, out)
		}
		tree = treeVersion(ctx)
	}
	b.script = filepath.Join(tmp, "original.sh")
	if err := os.WriteFile(b.script, originalScript, 0o755); err != nil {
		return err
	}
	load0 := loadAvg()

	delays := []time.Duration{0}
	if o.latency() {
		delays = o.delays
		note("proxy self-check")
		if b.checks, b.directLogin, err = proxySelfCheck(ctx, o.delays); err != nil {
			return fmt.Errorf("proxy self-check: %w", err)
		}
		note("  OpenSSH login without a proxy: %.3fs", b.directLogin.Seconds())
		for _, c := range b.checks {
			note("  delay %s each way: TCP round trip %.2f ms (least %.2f ms), a new connection's first %.2f ms, OpenSSH login %.3fs, %.0f MB/s",
				fmtDelay(c.delay), ms(c.echoMedian), ms(c.echoMin), ms(c.echoFirst), c.login.Seconds(), c.mbps)
		}
	}

	runs := o.runs
	if o.scaleOnly {
		runs = 0
	}
	for r := 1; r <= runs; r++ {
		for _, d := range delays {
			for _, n := range o.hosts {
				tools := slices.Clone(o.tools)
				if r%2 == 0 {
					// Alternate the order, so neither tool always runs on
					// a machine the other has just warmed or loaded.
					slices.Reverse(tools)
				}
				for _, tool := range tools {
					if err := ctx.Err(); err != nil {
						return err
					}
					note("run %d/%d: %s, %d hosts%s", r, o.runs, tool, n, delayNote(o, d))
					if err := b.sequence(ctx, tool, n, r, d); err != nil {
						if ctx.Err() != nil {
							return err
						}
						msg := fmt.Sprintf("run %d, %s, %d hosts%s: %v", r, tool, n, delayNote(o, d), err)
						note("FAILED: %s", msg)
						b.fails = append(b.fails, msg)
					}
				}
			}
		}
	}
	var sc []scaleRow
	if !o.skipScale && !o.latency() && slices.Contains(o.tools, toolPushdeploy) {
		sc, err = b.scaleTest(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return err
			}
			msg := fmt.Sprintf("scale test, %d hosts: %v", o.scale, err)
			note("FAILED: %s", msg)
			b.fails = append(b.fails, msg)
		}
	}
	b.report(os.Stdout, tree, load0, loadAvg(), time.Since(began), sc)
	if len(b.fails) > 0 {
		return fmt.Errorf("%d measurement(s) failed (see above)", len(b.fails))
	}
	return nil
}

// hostsEnv starts n fresh test hosts. For pushdeploy the hosts' own
// known_hosts (which trusts the git server) is removed, as in the
// end-to-end tests: pushdeploy hands the hosts the key it verified. The
// script relies on that file, as the original did (DEPLOY_HOST_KNOWN_HOSTS).
func hostsEnv(ctx context.Context, n int, tool string) (*testhosts.Env, time.Duration, error) {
	start := time.Now()
	env, err := testhosts.Start(ctx, testhosts.Options{Hosts: n})
	if err != nil {
		return nil, 0, err
	}
	if tool == toolPushdeploy {
		for _, h := range env.Hosts {
			if err := os.Remove(h.Path(".ssh/known_hosts")); err != nil && !os.IsNotExist(err) {
				_ = env.Close()
				return nil, 0, err
			}
		}
	}
	return env, time.Since(start), nil
}

func closeEnv(env *testhosts.Env) {
	if err := env.Close(); err != nil {
		note("close test hosts: %v", err)
	}
}

// delayNote is ", 25ms each way" in latency mode.
func delayNote(o options, d time.Duration) string {
	if !o.latency() {
		return ""
	}
	return ", " + fmtDelay(d) + " each way"
}

// vars are the settings both tools get, as environment variables; with
// nw, the hosts, their keys and the repository are reached through its
// proxies.
func (b *bench) vars(env *testhosts.Env, dataDir string, nw *network) map[string]string {
	v := b.directVars(env, dataDir)
	if nw != nil {
		v["DEPLOY_REPO_URL"] = nw.repoURL
		v["DEPLOY_HOSTS_FILE"] = nw.hostsFile
		v["DEPLOY_KNOWN_HOSTS"] = nw.knownHosts
	}
	return v
}

func (b *bench) directVars(env *testhosts.Env, dataDir string) map[string]string {
	return map[string]string{
		"DEPLOY_REPO_URL":    env.RepoURL,
		"DEPLOY_HOSTS_FILE":  env.HostsFile,
		"DEPLOY_ROOT":        "app",
		"DEPLOY_SSH_KEY":     env.AdminKey,
		"DEPLOY_KNOWN_HOSTS": env.KnownHosts,
		"DEPLOY_GIT_KEY":     env.GitKey,
		"DEPLOY_DATA_DIR":    dataDir,
		"DEPLOY_RESTART_CMD": env.RestartCmd(b.o.port),
	}
}

// sequence runs the four scenarios with one tool on fresh hosts.
func (b *bench) sequence(ctx context.Context, tool string, n, runNo int, delay time.Duration) error {
	env, took, err := hostsEnv(ctx, n, tool)
	if err != nil {
		return err
	}
	defer closeEnv(env)
	note("  %d hosts up in %.1fs", n, took.Seconds())
	var nw *network
	if b.o.latency() {
		if nw, err = proxyNetwork(ctx, env, delay, tool); err != nil {
			return err
		}
		defer nw.Close()
	}
	vars := b.vars(env, filepath.Join(env.Dir, "deployer-data"), nw)
	if err := os.MkdirAll(vars["DEPLOY_DATA_DIR"], 0o700); err != nil {
		return err
	}

	step := func(sc, action, wantVersion, marker string) error {
		var before tally
		if nw != nil {
			before = nw.tally(env)
		}
		s, err := b.op(ctx, tool, action, env, vars, nil)
		if err != nil {
			return fmt.Errorf("%s: %w", sc, err)
		}
		if nw != nil {
			tr := nw.since(env, before)
			s.trips = &tr
		}
		if err := verify(ctx, env, b.o.port, wantVersion, marker); err != nil {
			return fmt.Errorf("%s: after %s: %w", sc, tool, err)
		}
		note("  %-20s %7.2fs  window %s  restart %.2fs  rss %.1f MB%s  (load %.2f%s)", sc, s.wall.Seconds(), fmtSec(s.window), s.restart, mb(s.rssKiB), s.trips.note(), s.load, busyNote(s.busy))
		k := key{tool, n, sc, delay}
		b.results[k] = append(b.results[k], s)
		return nil
	}

	if _, err := env.Commit(ctx, env.AppFiles("1.0"), "app with pdtestdep 1.0"); err != nil {
		return err
	}
	if err := step(scFirst, "deploy", "1.0", ""); err != nil {
		return err
	}

	marker := fmt.Sprintf("# code change of run %d at %s", runNo, time.Now().Format(time.RFC3339Nano))
	files := env.AppFiles("1.0")
	files["app.py"] += "\n" + marker + "\n"
	if _, err := env.Commit(ctx, files, "a code change"); err != nil {
		return err
	}
	sameSecond()
	if err := step(scCode, "deploy", "1.0", marker); err != nil {
		return err
	}

	b.version++
	v := fmt.Sprintf("%d.0", b.version)
	if _, err := env.BuildWheel("pdtestdep", v, map[string]string{"pdtestdep/__init__.py": fmt.Sprintf("VERSION = %q\n", v)}); err != nil {
		return err
	}
	files = env.AppFiles(v)
	files["app.py"] += "\n" + marker + "\n"
	if _, err := env.Commit(ctx, files, "pdtestdep "+v); err != nil {
		return err
	}
	sameSecond()
	if err := step(scReqs, "deploy", v, marker); err != nil {
		return err
	}

	sameSecond()
	return step(scRollback, "rollback", "1.0", marker)
}

// sameSecond waits out the second: both tools name releases by the second,
// and the script's clone fails into an existing folder. Not timed.
func sameSecond() { time.Sleep(1100 * time.Millisecond) }

// op runs one deploy or rollback with tool and measures it.
func (b *bench) op(ctx context.Context, tool, action string, env *testhosts.Env, vars map[string]string, extra []string) (sample, error) {
	return b.opWith(ctx, tool, action, env, vars, extra, nil)
}

// opWith is op that also hands the tool's stdout to result, when not nil.
func (b *bench) opWith(ctx context.Context, tool, action string, env *testhosts.Env, vars map[string]string, extra []string, result func(stdout string)) (sample, error) {
	busy, err := b.o.waitQuiet(ctx)
	if err != nil {
		return sample{}, err
	}
	load := load1()
	b.loads = append(b.loads, load)
	ctx, cancel := context.WithTimeout(ctx, b.o.opTimeout)
	defer cancel()
	name, args := "bash", []string{b.script, action}
	if tool == toolPushdeploy {
		name, args = b.bin, []string{action, "--json"}
	}
	rssFile := filepath.Join(b.tmp, "maxrss")
	_ = os.Remove(rssFile)
	if gnuTime != "" {
		// GNU time forks the tool from its own small process and writes
		// the tool's ru_maxrss (KiB) to rssFile. The ru_maxrss Go's Wait
		// reports is no use: Go starts children with vfork semantics, and
		// the kernel counts the parent's (this benchmark's) peak RSS, the
		// memory the child had until its exec, into the child's maxrss.
		name, args = gnuTime, append([]string{"-f", "%M", "-o", rssFile, name}, args...)
	}
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = b.tmp // no deploy.env there
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "LANG=C.UTF-8"}
	for k, v := range vars {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	if tool == toolPushdeploy {
		cmd.Env = append(cmd.Env, b.o.pdEnv...)
	}
	cmd.Env = append(cmd.Env, extra...)
	// Its own process group, sent SIGTERM when the bound passes: the tool
	// stops its remote commands, the script kills its ssh-agent.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if b.o.verbose {
		cmd.Stdout = io.MultiWriter(&stdout, os.Stderr)
		cmd.Stderr = io.MultiWriter(&stderr, os.Stderr)
	}
	cpu0 := machineCPU()
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return sample{}, err
	}
	var hwm chan int64
	if gnuTime == "" {
		hwm = make(chan int64, 1)
		go pollHWM(cmd.Process.Pid, hwm)
	}
	err = cmd.Wait()
	s := sample{machineCPU: machineCPU() - cpu0, wall: time.Since(start), window: math.NaN(), mtimeWindow: math.NaN(), connectMax: math.NaN(), load: load, busy: busy, cpu: math.NaN()}
	if ps := cmd.ProcessState; ps != nil {
		s.cpu = (ps.UserTime() + ps.SystemTime()).Seconds()
	}
	if err != nil {
		return s, fmt.Errorf("%s %s: %v\nstdout (tail):\n%s\nstderr (tail):\n%s", tool, action, err, tail(stdout.String()), tail(stderr.String()))
	}
	if hwm != nil {
		s.rssKiB = <-hwm
	} else if data, err := os.ReadFile(rssFile); err == nil {
		f := strings.Fields(string(data))
		if len(f) > 0 {
			s.rssKiB, _ = strconv.ParseInt(f[len(f)-1], 10, 64)
		}
	}
	if tool == toolPushdeploy {
		parsePushdeployLog(stderr.String(), len(env.Hosts), &s)
		parsePushdeployResult(stdout.String(), len(env.Hosts), &s)
	} else {
		parseScriptLog(stderr.String(), len(env.Hosts), &s)
	}
	s.mtimeWindow = currentMtimeWindow(env)
	if result != nil {
		result(stdout.String())
	}
	return s, nil
}

// gnuTime is GNU time, which measures the tools' peak RSS; without it the
// benchmark polls the tool's VmHWM instead (pollHWM), which can miss a peak
// in the tool's last 20 ms and, for the script, sees bash alone.
var gnuTime = func() string {
	const p = "/usr/bin/time"
	if fi, err := os.Stat(p); err == nil && fi.Mode()&0o111 != 0 {
		return p
	}
	return ""
}()

// pollHWM reads VmHWM (KiB) of pid every 20 ms until the process is gone
// and sends the last value read.
func pollHWM(pid int, out chan<- int64) {
	var last int64
	for {
		data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
		found := false
		for _, l := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
				if n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64); err == nil {
					last, found = n, true
				}
			}
		}
		if err != nil || !found { // gone, or a zombie
			out <- last
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func tail(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > 40 {
		lines = lines[len(lines)-40:]
	}
	return "    " + strings.Join(lines, "\n    ")
}

// logLine is a line of pushdeploy's --json log (stderr).
type logLine struct {
	Time     time.Time `json:"time"`
	Msg      string    `json:"msg"`
	Host     string    `json:"host"`
	Step     string    `json:"step"`
	Duration *float64  `json:"duration_s"`
}

// parsePushdeployLog reads the steps out of pushdeploy's JSON log: each
// "step done" line has the step's end time and its duration.
func parsePushdeployLog(log string, hosts int, s *sample) {
	s.steps = map[string]float64{}
	var switches []float64
	var restarts [][2]float64
	sc := bufio.NewScanner(strings.NewReader(log))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var l logLine
		if json.Unmarshal(sc.Bytes(), &l) != nil {
			continue
		}
		if strings.Contains(l.Msg, "does not use it yet") || strings.Contains(sc.Text(), "does not use it yet") {
			if strings.Contains(sc.Text(), "DEPLOY_PARALLEL") {
				s.parallelIgnored = true
			}
		}
		if l.Msg != "step done" || l.Step == "" || l.Duration == nil || l.Time.IsZero() {
			continue
		}
		end := float64(l.Time.UnixNano()) / 1e9
		start := end - *l.Duration
		s.steps[l.Step] += *l.Duration
		switch l.Step {
		case "connect":
			s.connectMax = maxKnown(s.connectMax, *l.Duration)
		case "switch":
			switches = append(switches, start)
		case "restart":
			restarts = append(restarts, [2]float64{start, end})
		}
	}
	if len(switches) == hosts {
		s.window = spread(switches)
	}
	s.restart = union(restarts)
}

// resultJSON is the part of pushdeploy's --json result (stdout) read here.
type resultJSON struct {
	Hosts []struct {
		Host  string `json:"host"`
		Steps []struct {
			Step    string    `json:"step"`
			Status  string    `json:"status"`
			Started time.Time `json:"started"`
			Seconds float64   `json:"duration_s"`
		} `json:"steps"`
	} `json:"hosts"`
}

// parsePushdeployResult takes the steps from pushdeploy's --json result
// when its steps carry their start time (nanoseconds, where the log has
// milliseconds); otherwise what parsePushdeployLog found stays.
func parsePushdeployResult(stdout string, hosts int, s *sample) {
	var res resultJSON
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if json.Unmarshal([]byte(lines[len(lines)-1]), &res) != nil || len(res.Hosts) == 0 {
		return
	}
	steps := map[string]float64{}
	connectMax := math.NaN()
	var switches []float64
	var restarts [][2]float64
	for _, h := range res.Hosts {
		for _, st := range h.Steps {
			if st.Started.IsZero() {
				return
			}
			if st.Status != "succeeded" {
				continue
			}
			start := float64(st.Started.UnixNano()) / 1e9
			steps[st.Step] += st.Seconds
			switch st.Step {
			case "connect":
				connectMax = maxKnown(connectMax, st.Seconds)
			case "switch":
				switches = append(switches, start)
			case "restart":
				restarts = append(restarts, [2]float64{start, start + st.Seconds})
			}
		}
	}
	s.steps = steps
	s.connectMax = connectMax
	s.window = math.NaN()
	if len(switches) == hosts {
		s.window = spread(switches)
	}
	s.restart = union(restarts)
}

var (
	scriptSwitch  = regexp.MustCompile(`(?m)^(\d+\.\d+) switching `)
	scriptRestart = regexp.MustCompile(`(?m)^(\d+\.\d+) (restarting|restarted)$`)
)

// parseScriptLog reads the host-side timestamps original.sh prints.
func parseScriptLog(log string, hosts int, s *sample) {
	var switches []float64
	for _, m := range scriptSwitch.FindAllStringSubmatch(log, -1) {
		t, _ := strconv.ParseFloat(m[1], 64)
		switches = append(switches, t)
	}
	if len(switches) == hosts {
		s.window = spread(switches)
	}
	var restarts [][2]float64
	var from float64
	for _, m := range scriptRestart.FindAllStringSubmatch(log, -1) {
		t, _ := strconv.ParseFloat(m[1], 64)
		if m[2] == "restarting" {
			from = t
		} else {
			restarts = append(restarts, [2]float64{from, t})
		}
	}
	s.restart = union(restarts)
}

// maxKnown is the larger of a and b, where a may be NaN (none yet).
func maxKnown(a, b float64) float64 {
	if math.IsNaN(a) {
		return b
	}
	return math.Max(a, b)
}

func spread(ts []float64) float64 {
	if len(ts) == 0 {
		return math.NaN()
	}
	return slices.Max(ts) - slices.Min(ts)
}

// union is the length of the union of the intervals.
func union(iv [][2]float64) float64 {
	sort.Slice(iv, func(i, j int) bool { return iv[i][0] < iv[j][0] })
	total, curS, curE := 0.0, math.Inf(-1), math.Inf(-1)
	for _, x := range iv {
		if x[0] > curE {
			if curE > curS {
				total += curE - curS
			}
			curS, curE = x[0], x[1]
		} else if x[1] > curE {
			curE = x[1]
		}
	}
	if curE > curS {
		total += curE - curS
	}
	return total
}

// currentMtimeWindow is the spread of the modification times of every
// host's current symlink: both tools create the link anew when they switch.
func currentMtimeWindow(env *testhosts.Env) float64 {
	var ts []float64
	for _, h := range env.Hosts {
		fi, err := os.Lstat(h.Path("app/current"))
		if err != nil || fi.Mode()&os.ModeSymlink == 0 {
			return math.NaN()
		}
		ts = append(ts, float64(fi.ModTime().UnixNano())/1e9)
	}
	return spread(ts)
}

// verify checks every host: its app server answers /health with the
// dependency version wantVersion, and current/app.py has marker.
func verify(ctx context.Context, env *testhosts.Env, port int, wantVersion, marker string) error {
	client := &http.Client{Timeout: 5 * time.Second}
	for _, h := range env.Hosts {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.HealthURL(port), nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return fmt.Errorf("host %s: app server: %w", h.Name, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.HasPrefix(string(body), "ok "+wantVersion) {
			return fmt.Errorf("host %s: app server answers %d %q, want ok %s", h.Name, resp.StatusCode, body, wantVersion)
		}
		code, err := os.ReadFile(h.Path("app/current/app.py"))
		if err != nil {
			return fmt.Errorf("host %s: %w", h.Name, err)
		}
		if marker != "" && !strings.Contains(string(code), marker) {
			return fmt.Errorf("host %s: current/app.py is not the expected code", h.Name)
		}
	}
	return nil
}

// scaleRow is one code-only redeploy of the scale test.
type scaleRow struct {
	parallel int
	sample
}

// scaleTest deploys to o.scale hosts once (with the largest
// DEPLOY_PARALLEL), then times a code-only redeploy for each
// DEPLOY_PARALLEL.
func (b *bench) scaleTest(ctx context.Context) ([]scaleRow, error) {
	n := b.o.scale
	note("scale test: starting %d hosts", n)
	env, took, err := hostsEnv(ctx, n, toolPushdeploy)
	if err != nil {
		return nil, err
	}
	defer closeEnv(env)
	note("  %d hosts up in %.1fs", n, took.Seconds())
	vars := b.vars(env, filepath.Join(env.Dir, "deployer-data"), nil)
	if err := os.MkdirAll(vars["DEPLOY_DATA_DIR"], 0o700); err != nil {
		return nil, err
	}
	if _, err := env.Commit(ctx, env.AppFiles("1.0"), "app with pdtestdep 1.0"); err != nil {
		return nil, err
	}
	// The first deploy builds a venv on every host: as many at once as
	// helps on this machine, whatever -parallel measures.
	pmax := max(slices.Max(b.o.parallel), 16)
	s, err := b.op(ctx, toolPushdeploy, "deploy", env, vars, []string{"DEPLOY_PARALLEL=" + strconv.Itoa(pmax)})
	if err != nil {
		return nil, fmt.Errorf("first deploy: %w", err)
	}
	if err := verify(ctx, env, b.o.port, "1.0", ""); err != nil {
		return nil, fmt.Errorf("first deploy: %w", err)
	}
	note("  first deploy, DEPLOY_PARALLEL=%d: %.2fs (not in the table)", pmax, s.wall.Seconds())
	if b.o.restartBatch != "" {
		b.batch, err = b.batchTest(ctx, env, vars)
		if err != nil {
			return nil, err
		}
		b.restartCost, err = b.restartCPU(ctx, env)
		if err == nil {
			note("  one host's restart alone: %s CPU-seconds (%d runs)", fmtSec(b.restartCost), restartRuns)
		}
		return nil, err
	}
	var rows []scaleRow
	var parallel []int
	for range b.o.scaleRuns {
		parallel = append(parallel, b.o.parallel...)
	}
	for i, p := range parallel {
		marker := fmt.Sprintf("# scale change %d at %s", i, time.Now().Format(time.RFC3339Nano))
		files := env.AppFiles("1.0")
		files["app.py"] += "\n" + marker + "\n"
		if _, err := env.Commit(ctx, files, "a code change"); err != nil {
			return rows, err
		}
		sameSecond()
		s, err := b.op(ctx, toolPushdeploy, "deploy", env, vars, []string{"DEPLOY_PARALLEL=" + strconv.Itoa(p)})
		if err != nil {
			return rows, fmt.Errorf("code-only redeploy, DEPLOY_PARALLEL=%d: %w", p, err)
		}
		if err := verify(ctx, env, b.o.port, "1.0", marker); err != nil {
			return rows, fmt.Errorf("code-only redeploy, DEPLOY_PARALLEL=%d: %w", p, err)
		}
		note("  code-only redeploy, DEPLOY_PARALLEL=%d: %.2fs  window %s", p, s.wall.Seconds(), fmtSec(s.window))
		rows = append(rows, scaleRow{p, s})
	}
	return rows, nil
}

// ---- statistics and the report ----

func median(xs []float64) float64 {
	var v []float64
	for _, x := range xs {
		if !math.IsNaN(x) {
			v = append(v, x)
		}
	}
	if len(v) == 0 {
		return math.NaN()
	}
	sort.Float64s(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

func values(ss []sample, f func(sample) float64) []float64 {
	out := make([]float64, len(ss))
	for i, s := range ss {
		out[i] = f(s)
	}
	return out
}

func wallOf(s sample) float64 { return s.wall.Seconds() }

func fmtSec(x float64) string {
	if math.IsNaN(x) {
		return "–"
	}
	if x < 10 {
		return fmt.Sprintf("%.2f", x)
	}
	return fmt.Sprintf("%.1f", x)
}

func mb(kib int64) float64 { return float64(kib) * 1024 / 1e6 }

// cell is the median with the range of the runs when there is more than one.
func cell(xs []float64) string {
	m := median(xs)
	if math.IsNaN(m) {
		return "–"
	}
	var v []float64
	for _, x := range xs {
		if !math.IsNaN(x) {
			v = append(v, x)
		}
	}
	if len(v) < 2 {
		return fmtSec(m)
	}
	return fmt.Sprintf("%s (%s–%s)", fmtSec(m), fmtSec(slices.Min(v)), fmtSec(slices.Max(v)))
}

func ratio(a, b float64) string {
	if math.IsNaN(a) || math.IsNaN(b) || b == 0 {
		return "–"
	}
	return fmt.Sprintf("%.1f×", a/b)
}

func (b *bench) report(w io.Writer, tree string, load0, load1 string, took time.Duration, sc []scaleRow) {
	o := b.o
	p := func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
	p("\n## Deploy speed: original script vs pushdeploy\n\n")
	p("- pushdeploy: %s\n", tree)
	p("- machine: %d cores, %s, %s; load average %s at the start, %s at the end\n", runtime.NumCPU(), kernel(), runtime.Version(), load0, load1)
	if len(b.loads) > 0 {
		p("- 1-minute load average as each operation started: %.2f–%.2f (median %.2f)", slices.Min(b.loads), slices.Max(b.loads), median(b.loads))
		if o.quiet > 0 {
			p("; each waited (at most %s) until the CPUs were at most %.0f%% busy over 2 s", o.quietMax, 100*o.quiet)
		}
		p("\n")
	}
	if !o.scaleOnly {
		p("- %d run(s) per tool and host count, each on fresh test hosts; medians, (min–max) of the runs\n", o.runs)
	}
	if len(o.pdEnv) > 0 {
		p("- pushdeploy settings: %s\n", strings.Join(o.pdEnv, " "))
	}
	p("- restart command: testhosts RestartCmd (stop the app server, start the release's app.py, wait until it listens)\n")
	if o.latency() {
		b.networkHeader(p)
	}
	p("- total wall time of this benchmark: %s\n", took.Round(time.Second))
	if o.latency() {
		b.selfCheckTable(p)
	}

	nGoal := goalHosts(o.hosts)
	delays := []time.Duration{0}
	if o.latency() {
		delays = o.delays
	}
	for _, d := range delays {
		if o.scaleOnly {
			break
		}
		b.tables(p, d)
		b.stepTable(p, nGoal, d)
	}

	switch {
	case o.latency():
		b.latencySummary(p, nGoal)
		b.tripsTable(p, nGoal)
		b.latencyGoals(p, nGoal)
	case o.restartBatch != "":
		b.batchTable(p, b.batch)
		if !o.scaleOnly {
			b.goals(p, nGoal)
		}
	default:
		b.scaleTable(p, sc)
		if !o.scaleOnly {
			b.goals(p, nGoal)
		}
	}
	if len(b.fails) > 0 {
		p("\n### Failed measurements\n\n")
		for _, f := range b.fails {
			p("- %s\n", strings.SplitN(f, "\n", 2)[0])
		}
	}
}

// delayTitle is ", 25ms each way" for headings in latency mode.
func (b *bench) delayTitle(d time.Duration) string {
	if !b.o.latency() {
		return ""
	}
	return fmt.Sprintf(", delay %s each way", fmtDelay(d))
}

// tables prints the wall time, the mixed-version window, RSS and restart
// time of the runs at delay d.
func (b *bench) tables(p func(string, ...any), d time.Duration) {
	o := b.o
	p("\n### Wall time (s)%s\n\n", b.delayTitle(d))
	p("| scenario | hosts | original script | pushdeploy | original / pushdeploy |\n|---|---:|---:|---:|---:|\n")
	for _, n := range o.hosts {
		for _, scn := range scenarios {
			orig := b.results[key{toolOriginal, n, scn, d}]
			pd := b.results[key{toolPushdeploy, n, scn, d}]
			p("| %s | %d | %s | %s | %s |\n", scn, n, cell(values(orig, wallOf)), cell(values(pd, wallOf)),
				ratio(median(values(orig, wallOf)), median(values(pd, wallOf))))
		}
	}

	p("\n### Mixed-version window (s): first host's switch of `current` to the last host's%s\n\n", b.delayTitle(d))
	p("Script: host clock just before each `ln -sfn`; pushdeploy: start of each `switch` step (its `--json` result). ")
	p("`current` mtime: spread of the modification times of the hosts' `current` symlinks (both tools create the link anew at the switch).\n\n")
	p("| scenario | hosts | original (script log) | original (`current` mtime) | pushdeploy (switch steps) | pushdeploy (`current` mtime) |\n|---|---:|---:|---:|---:|---:|\n")
	for _, n := range o.hosts {
		for _, scn := range scenarios {
			orig := b.results[key{toolOriginal, n, scn, d}]
			pd := b.results[key{toolPushdeploy, n, scn, d}]
			p("| %s | %d | %s | %s | %s | %s |\n", scn, n,
				cell(values(orig, func(s sample) float64 { return s.window })),
				cell(values(orig, func(s sample) float64 { return s.mtimeWindow })),
				cell(values(pd, func(s sample) float64 { return s.window })),
				cell(values(pd, func(s sample) float64 { return s.mtimeWindow })))
		}
	}

	p("\n### Peak RSS (MB = 10⁶ bytes) and restart command time (s)%s\n\n", b.delayTitle(d))
	if gnuTime != "" {
		p("RSS: ru_maxrss of the deployer process, from GNU time (for the script: its largest process, bash or an ssh client). ")
	} else {
		p("RSS: VmHWM of the deployer process, polled every 20 ms (no /usr/bin/time here; for the script: bash alone). ")
	}
	p("Restart: time inside the restart command, all hosts together.\n\n")
	p("| scenario | hosts | original RSS | pushdeploy RSS | original restart | pushdeploy restart |\n|---|---:|---:|---:|---:|---:|\n")
	for _, n := range o.hosts {
		for _, scn := range scenarios {
			orig := b.results[key{toolOriginal, n, scn, d}]
			pd := b.results[key{toolPushdeploy, n, scn, d}]
			p("| %s | %d | %s | %s | %s | %s |\n", scn, n, cell(values(orig, rssOf)), cell(values(pd, rssOf)),
				cell(values(orig, restartOf)), cell(values(pd, restartOf)))
		}
	}
}

func rssOf(s sample) float64     { return mb(s.rssKiB) }
func restartOf(s sample) float64 { return s.restart }

func (b *bench) scaleTable(p func(string, ...any), sc []scaleRow) {
	o := b.o
	if len(sc) == 0 && o.skipScale {
		return
	}
	p("\n### Scale: code-only redeploy by number of hosts (pushdeploy)\n\n")
	p("| hosts | DEPLOY_PARALLEL | wall s | s per host | mixed window s | RSS MB |\n|---:|---:|---:|---:|---:|---:|\n")
	for _, n := range o.hosts {
		if o.scaleOnly {
			break
		}
		pd := b.results[key{toolPushdeploy, n, scCode, 0}]
		m := median(values(pd, wallOf))
		p("| %d | default | %s | %s | %s | %s |\n", n, fmtSec(m), fmtSec(m/float64(n)),
			fmtSec(median(values(pd, func(s sample) float64 { return s.window }))), fmtSec(median(values(pd, rssOf))))
	}
	ignored := false
	for _, r := range sc {
		w := r.wall.Seconds()
		p("| %d | %d | %s | %s | %s | %.1f |\n", o.scale, r.parallel, fmtSec(w), fmtSec(w/float64(o.scale)), fmtSec(r.window), mb(r.rssKiB))
		ignored = ignored || r.parallelIgnored
	}
	if len(sc) == 0 {
		p("| %d | – | failed | | | |\n", o.scale)
	}
	if ignored {
		p("\nThis pushdeploy warned that it does not use DEPLOY_PARALLEL yet: the rows differ only by noise.\n")
	}
	p("\nThe %d-host rows are single runs on one set of hosts, after one first deploy (with -scale-runs, one row per run).\n", o.scale)
}

// goalHosts is the host count the goals are stated for: 8, or the
// largest measured.
func goalHosts(hosts []int) int {
	if slices.Contains(hosts, 8) {
		return 8
	}
	return slices.Max(hosts)
}

func (b *bench) stepTable(p func(string, ...any), n int, d time.Duration) {
	steps := map[string]bool{}
	for _, scn := range scenarios {
		for _, s := range b.results[key{toolPushdeploy, n, scn, d}] {
			for st := range s.steps {
				steps[st] = true
			}
		}
	}
	if len(steps) == 0 {
		return
	}
	// Steps in the order they first appear in a deploy's log would need
	// the log; a fixed order for the known ones, then the rest by name.
	known := []string{"resolve", "connect", "lock", "prepare", "fetch", "pip-copy", "clone", "checkout", "push", "venv", "pip", "shared", "before-switch", "switch", "restart", "health", "after-switch", "retention", "verify"}
	var order []string
	for _, s := range known {
		if steps[s] {
			order = append(order, s)
			delete(steps, s)
		}
	}
	var rest []string
	for s := range steps {
		rest = append(rest, s)
	}
	sort.Strings(rest)
	order = append(order, rest...)
	p("\n### pushdeploy: seconds per step, summed over the %d hosts (medians)%s\n\n", n, b.delayTitle(d))
	p("| step |")
	for _, scn := range scenarios {
		p(" %s |", scn)
	}
	p("\n|---|")
	for range scenarios {
		p("---:|")
	}
	p("\n")
	for _, st := range order {
		p("| %s |", st)
		for _, scn := range scenarios {
			ss := b.results[key{toolPushdeploy, n, scn, d}]
			v := values(ss, func(s sample) float64 {
				if x, ok := s.steps[st]; ok {
					return x
				}
				return math.NaN()
			})
			p(" %s |", fmtSec(median(v)))
		}
		p("\n")
	}
}

// verdict is a goal's last column: met, not met, or not measured.
func verdict(ok, known bool) string {
	switch {
	case !known:
		return "not measured"
	case ok:
		return "**met**"
	default:
		return "**not met**"
	}
}

func (b *bench) goals(p func(string, ...any), n int) {
	get := func(tool, scn string, f func(sample) float64) float64 {
		return median(values(b.results[key{tool, n, scn, 0}], f))
	}
	p("\n### Goals of the issue (%d hosts)\n\n| goal | measured | |\n|---|---|---|\n", n)

	oc, pc := get(toolOriginal, scCode, wallOf), get(toolPushdeploy, scCode, wallOf)
	r := oc / pc
	p("| code-only redeploy ≥ 8× faster than the script | %s s vs %s s: %s | %s |\n", fmtSec(oc), fmtSec(pc), ratio(oc, pc), verdict(r >= 8, !math.IsNaN(r)))

	of, pf := get(toolOriginal, scFirst, wallOf), get(toolPushdeploy, scFirst, wallOf)
	p("| first deploy no slower than the script | %s s vs %s s: %s | %s |\n", fmtSec(of), fmtSec(pf), ratio(of, pf), verdict(pf <= of, !math.IsNaN(of) && !math.IsNaN(pf)))

	worst, known := 0.0, false
	for _, scn := range []string{scFirst, scCode, scReqs} {
		w := get(toolPushdeploy, scn, func(s sample) float64 { return s.window })
		if !math.IsNaN(w) {
			worst, known = math.Max(worst, w), true
		}
	}
	if !known {
		worst = math.NaN()
	}
	p("| mixed-version window < 1 s (worst of the three deploys' medians) | %s s (script: %s s, code-only) | %s |\n",
		fmtSec(worst), fmtSec(get(toolOriginal, scCode, func(s sample) float64 { return s.window })), verdict(worst < 1, known))

	rb := b.results[key{toolPushdeploy, n, scRollback, 0}]
	over := median(values(rb, func(s sample) float64 { return s.wall.Seconds() - s.restart }))
	p("| rollback < 2 s + the restart command's time | %s s, of which restart %s s: %s s beyond it | %s |\n",
		fmtSec(median(values(rb, wallOf))), fmtSec(median(values(rb, func(s sample) float64 { return s.restart }))), fmtSec(over), verdict(over < 2, !math.IsNaN(over)))

	var peak int64
	for _, scn := range []string{scFirst, scCode, scReqs} {
		for _, s := range b.results[key{toolPushdeploy, n, scn, 0}] {
			peak = max(peak, s.rssKiB)
		}
	}
	peakMB := math.NaN()
	if peak > 0 {
		peakMB = mb(peak)
	}
	p("| deployer peak RSS < 60 MB while deploying (highest of all deploys) | %s MB | %s |\n", fmtSec(peakMB), verdict(peakMB < 60, peak > 0))
}

// ---- facts about the machine and the tree ----

func treeVersion(ctx context.Context) string {
	out, err := exec.CommandContext(ctx, "git", "describe", "--tags", "--always", "--dirty").Output()
	if err != nil {
		return "built from the working tree (git describe failed)"
	}
	return "built from the working tree at " + strings.TrimSpace(string(out))
}

// load1 is the 1-minute load average (NaN: unknown).
func load1() float64 {
	f := strings.Fields(loadAvg())
	if len(f) == 0 {
		return math.NaN()
	}
	x, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return math.NaN()
	}
	return x
}

// busyNote is ", CPUs 23% busy before" when -quiet measured it.
func busyNote(busy float64) string {
	if busy < 0 {
		return ""
	}
	return fmt.Sprintf(", CPUs %.0f%% busy before", 100*busy)
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func kernel() string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return "Linux"
	}
	return "Linux " + strings.TrimSpace(string(b))
}
