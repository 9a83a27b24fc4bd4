// Command webhook is a benchmark (not a test) of `pushdeploy serve`'s
// webhook path under load while a deploy runs.
//
// It builds pushdeploy, brings up loopback test hosts and a git server
// (internal/testhosts, as the end-to-end tests do), commits the test app,
// starts `pushdeploy serve` as its own process, starts one deploy with a
// signed push and, while that deploy runs (its restart command sleeps, so it
// surely outlasts the load), sends signed Bitbucket Cloud repo:push webhooks
// at a fixed open-loop rate: ~90% signed pushes to the release branch
// (expect 202, all coalesced into one queued deployment), ~5% unsigned
// (expect 401), ~5% pushes to another branch (expect 200 ignored). It prints
// markdown tables: latencies, errors, deployments created, the serve
// process's memory and CPU, and a per-second timeline next to the step the
// deploy was in.
//
// As root, after .ci/install:
//
//	go run ./bench/webhook -rate 500 -duration 10s
//
// Latency is the round trip from the moment a request is handed to the HTTP
// client until its answer is read, and, as a stricter figure, from the
// moment it was due by the open-loop schedule (requests never wait for
// earlier answers: a request that waits for a free worker is late, and that
// counts; so do the generator's own timer and scheduling delays). The load
// generator and the server share the machine's cores.
//
// With -attack, it runs the hostile benchmark instead (hostile.go): serve's
// peak memory under attacks from strangers, while signed pushes keep
// coming:
//
//	go run ./bench/webhook -attack all
package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pushdeploy/pushdeploy/internal/testhosts"
)

type options struct {
	rate         int
	duration     time.Duration
	hosts        int
	workers      int
	restartSleep time.Duration
	startStep    string
	logPath      string
	bin          string
	attack       string
	maxRSS       int
	// The several-deployers mode (several.go).
	db        string
	deployers int
	redeliver float64
	pgFsync   bool
	sources   int
}

// requests is how many requests the load sends.
func (o options) requests() int { return int(float64(o.rate) * o.duration.Seconds()) }

func main() {
	var o options
	flag.IntVar(&o.rate, "rate", 500, "webhooks per second (open loop)")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "how long to send")
	flag.IntVar(&o.hosts, "hosts", 2, "number of test hosts")
	flag.IntVar(&o.workers, "workers", 128, "sending goroutines (the most requests in flight)")
	flag.DurationVar(&o.restartSleep, "restart-sleep", 0, "how long the deploy's restart command sleeps on each host (0: duration/2 + 3s, so the deploy outlasts the load; with -start-step restart, duration + 5s; with -db, duration + 45s)")
	flag.StringVar(&o.startStep, "start-step", "", "start the load when the deploy reaches this `step` on the first host (e.g. venv; restart: the deploy only sleeps, a quiet baseline); default: as soon as it runs")
	flag.StringVar(&o.logPath, "log", "", "keep serve's JSON log in `FILE` (default: a temporary file, removed)")
	flag.StringVar(&o.bin, "bin", "", "run this pushdeploy `binary` (default: build this checkout), e.g. one built from an older commit")
	flag.StringVar(&o.attack, "attack", "", "instead of the load, the hostile benchmark (hostile.go): `body`, `slow-body`, `delivery`, `output` or all (comma list)")
	flag.IntVar(&o.maxRSS, "max-rss", 6<<10, "hostile benchmark: stop an attack once serve's RSS passes this many `MiB` (the machine's safety)")
	flag.StringVar(&o.db, "db", "", "the several-deployers benchmark (several.go) on this `engine`: postgres (DEPLOY_DATABASE_URL, a PostgreSQL of the benchmark's own) or sqlite (one deployer's DEPLOY_DATA_DIR); then the load goes round-robin over -deployers, some requests are redeliveries, and the database is checked: every 202 recorded once")
	flag.IntVar(&o.deployers, "deployers", 1, "with -db postgres: how many `serve` processes share the database (sqlite: 1)")
	flag.Float64Var(&o.redeliver, "redeliver", 0.01, "with -db: the `share` of requests that repeat an earlier release push's delivery id, sent to another deployer")
	flag.BoolVar(&o.pgFsync, "pg-fsync", true, "with -db postgres: fsync each commit as a production server does (false: fsync=off, as the tests' servers)")
	flag.IntVar(&o.sources, "sources", 0, "send from this many client `addresses` (127.0.1.1 on), as a forge sends from several: serve reads at most 4 bodies at a time per client, answering 429 beyond (0: 1, and 32 with -db)")
	flag.Parse()
	if o.sources == 0 {
		o.sources = 1
		if o.db != "" {
			o.sources = 32
		}
	}
	if o.sources > 254 {
		fmt.Fprintln(os.Stderr, "bench/webhook: -sources: at most 254")
		os.Exit(2)
	}
	if o.rate <= 0 || o.duration <= 0 || o.hosts <= 0 || o.workers <= 0 || o.deployers <= 0 {
		fmt.Fprintln(os.Stderr, "bench/webhook: -rate, -duration, -hosts, -workers and -deployers must be positive")
		os.Exit(2)
	}
	if msg := o.severalProblem(); msg != "" {
		fmt.Fprintln(os.Stderr, "bench/webhook:", msg)
		os.Exit(2)
	}
	if o.restartSleep == 0 {
		o.restartSleep = o.duration/2 + 3*time.Second
		switch {
		case o.startStep == "restart":
			o.restartSleep = o.duration + 5*time.Second
		case o.db != "":
			// Saturated deployers (a database commit per webhook) take
			// longer than the load to answer it: up to the client's 30 s
			// timeout more.
			o.restartSleep = o.duration + 45*time.Second
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	var err error
	switch {
	case o.attack != "":
		err = runHostile(ctx, o)
	case o.db != "":
		err = runSeveral(ctx, o)
	default:
		err = run(ctx, o)
	}
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench/webhook:", err)
		os.Exit(1)
	}
}

func note(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s  %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
}

func run(ctx context.Context, o options) error {
	r, closeRig, err := newRig(ctx, o.hosts, o.bin)
	if err != nil {
		return err
	}
	defer closeRig()
	env, sha := r.env, r.sha

	addr, err := freeAddr()
	if err != nil {
		return err
	}
	s := &server{url: "http://" + addr, secret: testhosts.Secret(24), token: testhosts.Secret(24)}
	vars := r.vars(s, addr, filepath.Join(env.Dir, "data"))
	vars["DEPLOY_RESTART_CMD"] = fmt.Sprintf("sleep %g", o.restartSleep.Seconds())
	// 1,000 requests a second from one address is the point of the
	// benchmark, and 50 times serve's default per-client limit.
	vars["DEPLOY_RATE_LIMIT"] = "0"

	logPath := o.logPath
	if logPath == "" {
		logPath = filepath.Join(r.tmp, "serve.log")
	}
	proc, err := r.startServe(ctx, s, vars, "deploy.env", logPath)
	if err != nil {
		return err
	}
	var shutdown shutdownResult
	defer func() {
		if !shutdown.done {
			proc.kill()
		}
	}()
	pid := proc.pid
	memIdle := readMem(pid)

	// One signed push starts the deploy the load runs beside.
	releaseBody := bitbucketPush("release", sha)
	otherBody := bitbucketPush("other", sha)
	code, ans, err := s.webhook(http.DefaultClient, "start-"+newUUID(), releaseBody, true)
	if err != nil || code != http.StatusAccepted || ans.Deployment == "" {
		return fmt.Errorf("first push: %d %+v %v\n%s", code, ans, err, tailFile(logPath))
	}
	running := ans.Deployment
	note("deployment %s queued; waiting until it runs", running)
	if err := s.waitStatus(ctx, running, "running", 2*time.Minute); err != nil {
		return err
	}
	if o.startStep != "" {
		note("waiting until the deploy reaches h1 %s", o.startStep)
		if err := s.waitStep(ctx, running, "h1 "+o.startStep, env.HostsFile, 3*time.Minute); err != nil {
			return err
		}
	}

	client := loadClient(o)
	warmUp(client, []*server{s}, min(o.workers, 32), otherBody)

	sampler := startSampler(s, running, env.HostsFile, pid)
	memBefore, cpuBefore := readMem(pid), procCPU(pid, false)
	logBefore := fileSize(logPath)
	busyBefore, totalBefore := machineCPU()
	loadBefore := loadavg()
	var selfBefore syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &selfBefore)

	note("sending %d webhooks/s for %v with %d workers", o.rate, o.duration, o.workers)
	res := load(ctx, client, []*server{s}, o, plan(o.requests(), 1, o.rate, 0), releaseBody, otherBody)

	var selfAfter syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &selfAfter)
	memAfter, cpuAfter := readMem(pid), procCPU(pid, false)
	busyAfter, totalAfter := machineCPU()
	loadAfter := loadavg()
	logAfter := fileSize(logPath)
	steps := sampler.stop()

	first, _ := s.deployment(running)
	deps, err := s.deployments()
	if err != nil {
		return err
	}

	note("SIGTERM to serve")
	shutdown = proc.stop()

	report(os.Stdout, reportInput{
		o: o, res: res, steps: steps, running: running, firstStatus: first.Status, deps: deps,
		memIdle: memIdle, memBefore: memBefore, memAfter: memAfter, cpu: cpuAfter - cpuBefore,
		selfCPU: rusageCPU(selfAfter) - rusageCPU(selfBefore), logBytes: logAfter - logBefore, shutdown: shutdown,
		machineBusy: busyAfter - busyBefore, machineTotal: totalAfter - totalBefore, load: [2]string{loadBefore, loadAfter},
	})
	return nil
}

// loadClient is the load's HTTP client: keep-alive connections for every
// worker, to each deployer.
func loadClient(o options) *http.Client {
	dial := (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	if o.sources > 1 {
		// Each new connection from the next source address.
		var next atomic.Uint32
		dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
			n := next.Add(1) % uint32(o.sources)
			d := net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second, LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 1, byte(1+n))}}
			return d.DialContext(ctx, network, addr)
		}
	}
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			Proxy:               nil,
			DialContext:         dial,
			MaxIdleConns:        o.workers * 2 * o.deployers,
			MaxIdleConnsPerHost: o.workers * 2,
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true,
		},
	}
}

// warmUp opens n connections to each target before the clock starts, with
// signed pushes of body (another branch: ignored, they deploy nothing; the
// release branch: they also open the deployers' database connections). It
// returns their delivery ids.
func warmUp(client *http.Client, targets []*server, n int, body []byte) []string {
	var wg sync.WaitGroup
	var ids []string
	for _, s := range targets {
		for i := 0; i < n; i++ {
			id := "warm-" + newUUID()
			ids = append(ids, id)
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, _, _ = s.webhook(client, id, body, true)
			}()
		}
	}
	wg.Wait()
	return ids
}

// server is the running `pushdeploy serve`.
type server struct {
	url, secret, token string
}

type answer struct {
	Status     string `json:"status"`
	Deployment string `json:"deployment"`
	Reason     string `json:"reason"`
	Error      string `json:"error"`
}

// bitbucketPush is a Bitbucket Cloud repo:push payload, as documented (the
// same shape as the end-to-end tests send).
func bitbucketPush(branch, commit string) []byte {
	body, _ := json.Marshal(map[string]any{
		"actor":      map[string]any{"display_name": "Ada"},
		"repository": map[string]any{"full_name": "team/app", "name": "app"},
		"push": map[string]any{"changes": []any{map[string]any{
			"new":     map[string]any{"type": "branch", "name": branch, "target": map[string]any{"type": "commit", "hash": commit}},
			"old":     map[string]any{"type": "branch", "name": branch, "target": map[string]any{"type": "commit", "hash": strings.Repeat("0", 39) + "1"}},
			"created": false, "closed": false, "forced": false,
		}}},
	})
	return body
}

func (s *server) sign(body []byte) string {
	mac := hmac.New(sha256.New, []byte(s.secret))
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// webhookRequest is a Bitbucket Cloud push delivery; sig empty: unsigned.
func (s *server) webhookRequest(delivery string, body []byte, sig string) *http.Request {
	req, _ := http.NewRequest(http.MethodPost, s.url+"/webhook", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Bitbucket-Webhooks/2.0")
	req.Header.Set("X-Event-Key", "repo:push")
	req.Header.Set("X-Request-UUID", delivery)
	req.Header.Set("X-Hook-UUID", "{7f0d6a2e-1c2b-4d5e-9f00-bench0000001}")
	req.Header.Set("X-Attempt-Number", "1")
	if sig != "" {
		req.Header.Set("X-Hub-Signature", sig)
	}
	return req
}

func (s *server) webhook(c *http.Client, delivery string, body []byte, sign bool) (int, answer, error) {
	sig := ""
	if sign {
		sig = s.sign(body)
	}
	return do(c, s.webhookRequest(delivery, body, sig))
}

func do(c *http.Client, req *http.Request) (int, answer, error) {
	resp, err := c.Do(req)
	if err != nil {
		return 0, answer{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, answer{}, err
	}
	var a answer
	if err := json.Unmarshal(raw, &a); err != nil {
		return resp.StatusCode, answer{}, fmt.Errorf("answer is not JSON: %q", raw)
	}
	return resp.StatusCode, a, nil
}

func (s *server) waitHealthy(ctx context.Context, limit time.Duration, exited <-chan error) error {
	deadline := time.Now().Add(limit)
	for {
		resp, err := http.Get(s.url + "/healthz")
		if err == nil {
			resp.Body.Close()
			return nil
		}
		select {
		case werr := <-exited:
			return fmt.Errorf("serve exited: %v", werr)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("serve did not come up in %v: %v", limit, err)
		}
	}
}

type deploymentJSON struct {
	ID     string `json:"id"`
	Status string `json:"status"`
	Error  string `json:"error"`
	Hosts  []struct {
		Host   string `json:"host"`
		Status string `json:"status"`
		Steps  []struct {
			Step   string `json:"step"`
			Status string `json:"status"`
		} `json:"steps"`
	} `json:"hosts"`
}

func (s *server) api(c *http.Client, path string, out any) error {
	req, _ := http.NewRequest(http.MethodGet, s.url+path, nil)
	req.Header.Set("Authorization", "Bearer "+s.token)
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		raw, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("GET %s: %d %s", path, resp.StatusCode, raw)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

func (s *server) deployment(id string) (deploymentJSON, error) {
	var d deploymentJSON
	err := s.api(http.DefaultClient, "/api/deployments/"+id, &d)
	return d, err
}

func (s *server) deployments() ([]deploymentJSON, error) {
	var list struct {
		Deployments []deploymentJSON `json:"deployments"`
	}
	err := s.api(http.DefaultClient, "/api/deployments", &list)
	return list.Deployments, err
}

func (s *server) waitStatus(ctx context.Context, id, status string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		d, err := s.deployment(id)
		if err != nil {
			return err
		}
		if d.Status == status {
			return nil
		}
		if d.Status != "queued" && d.Status != "running" {
			return fmt.Errorf("deployment %s is %s, not %s", id, d.Status, status)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("deployment %s still %s after %v", id, d.Status, limit)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// waitStep waits until the running deployment is in step (as the sampler
// names it: "h1 venv").
func (s *server) waitStep(ctx context.Context, id, step, hostsFile string, limit time.Duration) error {
	sp := &sampler{hosts: hostNames(hostsFile)}
	deadline := time.Now().Add(limit)
	for {
		d, err := s.deployment(id)
		if err != nil {
			return err
		}
		cur := sp.current(d)
		if cur == step {
			return nil
		}
		if d.Status != "running" {
			return fmt.Errorf("deployment %s is %s before reaching %s", id, d.Status, step)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("deployment %s did not reach %s in %v (at %s)", id, step, limit, cur)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// stepSample is what the running deployment was doing at one moment.
type stepSample struct {
	at    time.Time
	step  string // "h1 venv"; "" between steps
	rssKB int    // serve's VmRSS then
}

type sampler struct {
	done  chan struct{}
	out   chan []stepSample
	hosts map[string]string
}

// startSampler polls the running deployment every 100 ms (about 10 more
// requests a second, on a connection of their own).
func startSampler(s *server, id, hostsFile string, pid int) *sampler {
	sp := &sampler{done: make(chan struct{}), out: make(chan []stepSample, 1), hosts: hostNames(hostsFile)}
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}, Timeout: 10 * time.Second}
	go func() {
		var got []stepSample
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			var d deploymentJSON
			if err := s.api(c, "/api/deployments/"+id, &d); err == nil {
				got = append(got, stepSample{at: time.Now(), step: sp.current(d), rssKB: readMem(pid).rssKB})
			}
			select {
			case <-sp.done:
				sp.out <- got
				return
			case <-t.C:
			}
		}
	}()
	return sp
}

// hostNames maps each line of the hosts file to h1, h2, … in file order.
func hostNames(hostsFile string) map[string]string {
	names := map[string]string{}
	raw, err := os.ReadFile(hostsFile)
	if err != nil {
		return names
	}
	i := 0
	for _, line := range strings.Split(string(raw), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			i++
			names[line] = "h" + strconv.Itoa(i)
		}
	}
	return names
}

func (sp *sampler) current(d deploymentJSON) string {
	if d.Status != "running" {
		return d.Status
	}
	for _, h := range d.Hosts {
		if h.Status != "running" {
			continue
		}
		name := sp.hosts[h.Host]
		if name == "" {
			name = h.Host
		}
		for _, st := range h.Steps {
			if st.Status == "running" {
				return name + " " + st.Step
			}
		}
		return name
	}
	return "resolve/connect"
}

func (sp *sampler) stop() []stepSample {
	close(sp.done)
	return <-sp.out
}

// Memory and CPU of the serve process, from /proc.

type mem struct{ rssKB, hwmKB int }

func readMem(pid int) mem {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return mem{}
	}
	var m mem
	for _, line := range strings.Split(string(raw), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		v, _ := strconv.Atoi(f[1])
		switch f[0] {
		case "VmRSS:":
			m.rssKB = v
		case "VmHWM:":
			m.hwmKB = v
		}
	}
	return m
}

// machineCPU is the busy and total CPU time of all cores, from /proc/stat.
func machineCPU() (busy, total time.Duration) {
	raw, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(raw), "\n")
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return 0, 0
	}
	var sum, idle int
	for i, v := range f[1:] {
		n, _ := strconv.Atoi(v)
		if i >= 8 { // guest time is already counted in user time
			break
		}
		sum += n
		if i == 3 || i == 4 { // idle, iowait
			idle += n
		}
	}
	tick := 10 * time.Millisecond
	return time.Duration(sum-idle) * tick, time.Duration(sum) * tick
}

func loadavg() string {
	raw, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Join(strings.Fields(string(raw))[:3], " ")
}

func rusageCPU(r syscall.Rusage) time.Duration {
	return time.Duration(r.Utime.Nano() + r.Stime.Nano())
}

type shutdownResult struct {
	done bool
	took time.Duration
	err  error
}

// stopServe sends SIGTERM and waits for the exit (a minute at most, then
// SIGKILL).
func stopServe(cmd *exec.Cmd, exited <-chan error) shutdownResult {
	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return shutdownResult{err: err}
	}
	select {
	case err := <-exited:
		return shutdownResult{done: true, took: time.Since(start), err: err}
	case <-time.After(time.Minute):
		_ = cmd.Process.Kill()
		<-exited
		return shutdownResult{done: true, took: time.Since(start), err: errors.New("no exit within a minute of SIGTERM: killed")}
	}
}

// The report.

type reportInput struct {
	o                    options
	res                  loadResult
	steps                []stepSample
	running, firstStatus string
	deps                 []deploymentJSON
	memIdle, memBefore   mem
	memAfter             mem
	cpu, selfCPU         time.Duration
	machineBusy          time.Duration
	machineTotal         time.Duration
	load                 [2]string
	logBytes             int64
	shutdown             shutdownResult
}

type stats struct {
	n                   int
	p50, p90, p99, p999 time.Duration
	max                 time.Duration
}

func percentiles(ds []time.Duration) stats {
	if len(ds) == 0 {
		return stats{}
	}
	slices.Sort(ds)
	at := func(p float64) time.Duration {
		i := int(p*float64(len(ds))+0.999999) - 1
		return ds[max(0, min(i, len(ds)-1))]
	}
	return stats{n: len(ds), p50: at(0.50), p90: at(0.90), p99: at(0.99), p999: at(0.999), max: ds[len(ds)-1]}
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f", float64(d)/float64(time.Millisecond)) }

func mib(kb int) string { return fmt.Sprintf("%.1f MiB", float64(kb)/1024) }

func report(w io.Writer, in reportInput) {
	ss := in.res.samples
	var fromDue, fromSent, lag, dispatch []time.Duration
	byKind := map[string][]time.Duration{}
	errs := map[string]int{}
	errExample := map[string]string{}
	coalesced := map[string]int{}
	var last time.Time
	for _, s := range ss {
		if s.done.IsZero() {
			continue
		}
		fromDue = append(fromDue, s.done.Sub(s.due))
		fromSent = append(fromSent, s.done.Sub(s.sent))
		lag = append(lag, s.queued.Sub(s.due))
		dispatch = append(dispatch, s.sent.Sub(s.queued))
		byKind[s.kind] = append(byKind[s.kind], s.done.Sub(s.sent))
		if s.errKind != "" {
			k := s.kind + ": " + s.errKind
			errs[k]++
			errExample[k] = s.errDetail
		}
		if s.kind == kindRelease && s.code == http.StatusAccepted {
			coalesced[s.deploy]++
		}
		if s.done.After(last) {
			last = s.done
		}
	}
	wall := last.Sub(in.res.start)
	achieved := float64(len(fromDue)) / wall.Seconds()
	d, due := percentiles(slices.Clone(fromSent)), percentiles(slices.Clone(fromDue))
	nerr := 0
	for _, v := range errs {
		nerr += v
	}

	from := "as soon as the deploy ran"
	if in.o.startStep != "" {
		from = "from the deploy's " + in.o.startStep + " step on h1"
	}
	fmt.Fprintf(w, "\n## Webhook load: %d req/s for %v, %s, %d hosts (%s, %d CPUs, %s)\n\n",
		in.o.rate, in.o.duration, from, in.o.hosts, time.Now().UTC().Format("2006-01-02 15:04 UTC"), runtime.NumCPU(), runtime.Version())
	fmt.Fprintln(w, "Round trip (ms) from the moment the request was handed to the HTTP client until its answer was read; the last column from the moment it was due by the open-loop schedule (adds the load generator's own timer and scheduling delays):")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| target req/s | achieved req/s | requests | p50 | p90 | p99 | p99.9 | max | unexpected answers | deployments | p99 from due |")
	fmt.Fprintln(w, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	fmt.Fprintf(w, "| %d | %.0f | %d | %s | %s | %s | %s | %s | %d | %d | %s |\n\n",
		in.o.rate, achieved, len(fromSent), ms(d.p50), ms(d.p90), ms(d.p99), ms(d.p999), ms(d.max), nerr, len(in.deps), ms(due.p99))

	fmt.Fprintln(w, "Round trip by request kind (ms); the last row for all requests from the moment each was due:")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| kind | requests | p50 | p90 | p99 | max | unexpected |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|")
	for _, k := range kinds {
		st := percentiles(byKind[k])
		if st.n == 0 {
			continue
		}
		bad := 0
		for e, v := range errs {
			if strings.HasPrefix(e, k+": ") {
				bad += v
			}
		}
		fmt.Fprintf(w, "| %s | %d | %s | %s | %s | %s | %d |\n", k, st.n, ms(st.p50), ms(st.p90), ms(st.p99), ms(st.max), bad)
	}
	fmt.Fprintf(w, "| all, from the moment due | %d | %s | %s | %s | %s | |\n\n", due.n, ms(due.p50), ms(due.p90), ms(due.p99), ms(due.max))
	gl, dl := percentiles(lag), percentiles(dispatch)
	fmt.Fprintf(w, "Client side of the difference: the generator woke late by p50 %s / p99 %s / max %s ms; a worker picked the request up after p50 %s / p99 %s / max %s ms.\n\n",
		ms(gl.p50), ms(gl.p99), ms(gl.max), ms(dl.p50), ms(dl.p99), ms(dl.max))

	if nerr > 0 {
		fmt.Fprintln(w, "Unexpected answers:")
		fmt.Fprintln(w)
		listErrors(w, errs, errExample)
		fmt.Fprintln(w)
	}

	fmt.Fprintf(w, "Deployments (GET /api/deployments): %d — expected 2, the running one and one queued that every push joined.\n\n", len(in.deps))
	for _, dep := range in.deps {
		role := ""
		if dep.ID == in.running {
			role = fmt.Sprintf(" (started before the load; %s when the load ended)", in.firstStatus)
		} else if n := coalesced[dep.ID]; n > 0 {
			role = fmt.Sprintf(" (named by %d of the 202 answers)", n)
		}
		fmt.Fprintf(w, "- %s %s%s\n", dep.ID, dep.Status, role)
	}
	if len(coalesced) > 1 {
		fmt.Fprintf(w, "- the 202 answers named %d different deployments: %v\n", len(coalesced), coalesced)
	}
	fmt.Fprintln(w)

	fmt.Fprintln(w, "| serve process | VmRSS | VmHWM |")
	fmt.Fprintln(w, "|---|---:|---:|")
	fmt.Fprintf(w, "| idle, after start | %s | %s |\n", mib(in.memIdle.rssKB), mib(in.memIdle.hwmKB))
	fmt.Fprintf(w, "| before the load (deploy running) | %s | %s |\n", mib(in.memBefore.rssKB), mib(in.memBefore.hwmKB))
	fmt.Fprintf(w, "| after the load | %s | %s |\n\n", mib(in.memAfter.rssKB), mib(in.memAfter.hwmKB))
	fmt.Fprintf(w, "CPU during the load: serve %.2fs (%.0f%% of one core), load generator %.2fs (%.0f%%), over %.2fs. serve's log grew by %.1f MiB (one JSON line per webhook).\n",
		in.cpu.Seconds(), 100*in.cpu.Seconds()/wall.Seconds(), in.selfCPU.Seconds(), 100*in.selfCPU.Seconds()/wall.Seconds(), wall.Seconds(), float64(in.logBytes)/(1<<20))
	if in.machineTotal > 0 {
		other := in.machineBusy - in.cpu - in.selfCPU
		fmt.Fprintf(w, "The whole machine was %.0f%% busy during the load (all %d cores); %.2f core-seconds went to neither serve nor the load generator (the deploy's git/venv/pip/sshd, and anything else running). Load average %s before, %s after.\n",
			100*in.machineBusy.Seconds()/in.machineTotal.Seconds(), runtime.NumCPU(), other.Seconds(), in.load[0], in.load[1])
	}
	shut := "exit 0"
	if in.shutdown.err != nil {
		shut = in.shutdown.err.Error()
	}
	fmt.Fprintf(w, "SIGTERM to serve: %s after %.1fs.\n\n", shut, in.shutdown.took.Seconds())

	timeline(w, in.o, in.res, in.steps, "serve RSS MiB (max)", nil)
}

// timeline prints the load per second (by when requests were due) next to
// the steps the deploy was in, of the samples keep keeps (nil: all).
func timeline(w io.Writer, o options, res loadResult, steps []stepSample, rssLabel string, keep func(sample) bool) {
	fmt.Fprintln(w, "Per second (by when requests were due), next to the step the deploy was in:")
	fmt.Fprintln(w)
	fmt.Fprintf(w, "| second | requests | p50 ms | p99 ms | max ms | unexpected | %s | deploy step (sampled every 100 ms) |\n", rssLabel)
	fmt.Fprintln(w, "|---:|---:|---:|---:|---:|---:|---:|---|")
	secs := int(o.duration/time.Second) + 1
	buckets := make([][]time.Duration, secs)
	bad := make([]int, secs)
	for _, s := range res.samples {
		if s.done.IsZero() || keep != nil && !keep(s) {
			continue
		}
		b := min(int(s.due.Sub(res.start)/time.Second), secs-1)
		buckets[b] = append(buckets[b], s.done.Sub(s.sent))
		if s.errKind != "" {
			bad[b]++
		}
	}
	for b := range buckets {
		if len(buckets[b]) == 0 {
			continue
		}
		from, to := res.start.Add(time.Duration(b)*time.Second), res.start.Add(time.Duration(b+1)*time.Second)
		var seen []string
		rss := 0
		for _, st := range steps {
			if !st.at.Before(from) && st.at.Before(to) {
				rss = max(rss, st.rssKB)
				if !slices.Contains(seen, st.step) {
					seen = append(seen, st.step)
				}
			}
		}
		st := percentiles(buckets[b])
		fmt.Fprintf(w, "| %d | %d | %s | %s | %s | %d | %.1f | %s |\n", b, st.n, ms(st.p50), ms(st.p99), ms(st.max), bad[b], float64(rss)/1024, strings.Join(seen, ", "))
	}
	fmt.Fprintln(w)
}

// Small helpers.

// listErrors prints one line per kind of unexpected answer, sorted: how
// many, and an example's detail.
func listErrors(w io.Writer, errs map[string]int, example map[string]string) {
	keys := make([]string, 0, len(errs))
	for k := range errs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(w, "- %d × %s (e.g. %q)\n", errs[k], k, example[k])
	}
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// newUUID is a random (version 4) UUID in braces, as Bitbucket sends them.
func newUUID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("{%x-%x-%x-%x-%x}", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

func writeEnvFile(path string, vars map[string]string) error {
	keys := make([]string, 0, len(vars))
	for k := range vars {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		v := vars[k]
		if strings.ContainsAny(v, " $\"'#") {
			if strings.Contains(v, "'") {
				return fmt.Errorf("%s: value with a single quote", k)
			}
			v = "'" + v + "'"
		}
		b.WriteString(k + "=" + v + "\n")
	}
	return os.WriteFile(path, []byte(b.String()), 0o600)
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

func tailFile(path string) string {
	raw, _ := os.ReadFile(path)
	if len(raw) > 4000 {
		raw = raw[len(raw)-4000:]
	}
	return string(raw)
}
