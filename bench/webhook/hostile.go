package main

// The hostile benchmark (-attack): serve's peak memory under three attacks
// that need no secret, or one captured delivery, while the forge's real
// signed webhooks keep coming:
//
//   - body: 40 connections, each from its own loopback address (so no
//     per-client limit helps), each sending an unsigned chunked webhook
//     body of 25 MiB − 1 byte (the old limit) as fast as serve reads it and
//     then nothing more, reconnecting whenever serve answers or closes;
//   - slow-body: the same with bodies of 1 MiB − 1 byte (the new limit),
//     each held unfinished until serve cuts it off;
//   - delivery: one signed push replayed 10,000 times, each time with
//     another delivery id of 60 KiB (headers are not signed);
//   - output: a before-switch hook printing 3,000,000 empty lines, and
//     three event-stream subscribers that read slowly and reconnect from
//     the start whenever their stream ends.
//
// Each attack gets a fresh serve; its peak RSS is the kernel's VmHWM. A
// signed push (202 expected, within 1 s) is sent every second during each.
// The rate limit is off (DEPLOY_RATE_LIMIT=0): the attacker of the worst
// case has many addresses.
//
//	go run ./bench/webhook -attack all
//	go run ./bench/webhook -attack all -bin /tmp/pushdeploy-old   # an older build

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/pushdeploy/pushdeploy/internal/testhosts"
)

var attacks = map[string]struct {
	what string
	run  func(ctx context.Context, h *hostile) error
}{
	"body":      {"40 connections from 40 addresses, each an unsigned chunked body of 25 MiB − 1 bytes sent as fast as serve reads it, then stalled; again at each answer", attackBodies(25<<20 - 1)},
	"slow-body": {"the same with bodies of 1 MiB − 1 bytes, each held unfinished until serve cuts it off", attackBodies(1<<20 - 1)},
	"delivery":  {"one signed push sent 10,000 times with another 60 KiB delivery id each time, 16 at once", attackDeliveries},
	"output":    {"a before-switch hook printing 3,000,000 empty lines; 3 event streams that read slowly and start over whenever theirs ends", attackOutput},
}

// hostile is one attack on one serve.
type hostile struct {
	r    *rig
	s    *server
	pid  int
	o    options
	tick func(what string) // counts one answer (or failure) the attacker got

	mu      sync.Mutex
	answers map[string]int
}

type realPush struct {
	code int
	took time.Duration
	err  error
}

type attackResult struct {
	name      string
	idle, end mem
	stopped   int // RSS in KiB at which the -max-rss guard stopped the attack, or 0
	real      []realPush
	answers   map[string]int
	duration  time.Duration
}

func runHostile(ctx context.Context, o options) error {
	names := strings.Split(o.attack, ",")
	if o.attack == "all" {
		names = []string{"body", "slow-body", "delivery", "output"} // output last: it commits the loud hook
	}
	for _, n := range names {
		if _, ok := attacks[n]; !ok {
			return fmt.Errorf("-attack %q: one of body, slow-body, delivery, output or all", n)
		}
	}
	r, closeRig, err := newRig(ctx, 1, o.bin)
	if err != nil {
		return err
	}
	defer closeRig()
	var results []attackResult
	for _, n := range names {
		res, err := r.runAttack(ctx, o, n)
		if err != nil {
			return fmt.Errorf("attack %s: %w", n, err)
		}
		results = append(results, res)
	}
	reportHostile(os.Stdout, o, results)
	return nil
}

func (r *rig) runAttack(ctx context.Context, o options, name string) (attackResult, error) {
	res := attackResult{name: name}
	if name == "output" {
		hook := "#!/bin/sh\nyes '' | head -n 3000000\n"
		sha, err := r.env.Commit(ctx, map[string]string{".pushdeploy/before-switch": hook}, "a hook printing 3,000,000 empty lines")
		if err != nil {
			return res, err
		}
		r.sha = sha
	}
	addr, err := freeAddr()
	if err != nil {
		return res, err
	}
	s := &server{url: "http://" + addr, secret: testhosts.Secret(24), token: testhosts.Secret(24)}
	vars := r.vars(s, addr, filepath.Join(r.tmp, name+"-data"))
	vars["DEPLOY_RATE_LIMIT"] = "0"
	logPath := filepath.Join(r.tmp, name+".log")
	proc, err := r.startServe(ctx, s, vars, "deploy.env", logPath)
	if err != nil {
		return res, err
	}
	defer func() {
		if sr := proc.stop(); sr.err != nil {
			note("serve after the %s attack: %v", name, sr.err)
		}
		os.Remove(logPath) // the delivery attack's, on a build that logs each id, is 600 MB
	}()
	h := &hostile{r: r, s: s, pid: proc.pid, o: o, answers: map[string]int{}}
	h.tick = func(what string) {
		h.mu.Lock()
		h.answers[what]++
		h.mu.Unlock()
	}
	res.idle = readMem(proc.pid)

	actx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // the machine's safety: an old build may take gigabytes
		defer wg.Done()
		for actx.Err() == nil {
			if m := readMem(proc.pid); m.rssKB > o.maxRSS<<10 {
				res.stopped = m.rssKB
				note("serve's RSS is %s: stopping the attack", mib(m.rssKB))
				cancel()
			}
			sleepCtx(actx, 50*time.Millisecond)
		}
	}()
	go func() { // the forge's real pushes, every second
		defer wg.Done()
		c := &http.Client{Timeout: 10 * time.Second}
		for sleepCtx(actx, time.Second) {
			start := time.Now()
			code, _, err := s.webhook(c, newUUID(), bitbucketPush("release", r.sha), true)
			res.real = append(res.real, realPush{code: code, took: time.Since(start), err: err})
		}
	}()
	note("attack %s: %s", name, attacks[name].what)
	start := time.Now()
	err = attacks[name].run(actx, h)
	res.duration = time.Since(start)
	cancel()
	wg.Wait()
	res.end = readMem(proc.pid)
	res.answers = h.answers
	return res, err
}

// sleepCtx sleeps for d; false when ctx ended first.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// attackBodies is the body attack with bodies of size bytes (see the top
// of this file). It runs for 20 s.
func attackBodies(size int) func(context.Context, *hostile) error {
	return func(ctx context.Context, h *hostile) error {
		ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		var wg sync.WaitGroup
		for i := range 40 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				from := &net.TCPAddr{IP: net.IPv4(127, 0, 1, byte(i+1))}
				for ctx.Err() == nil {
					h.tick(h.bigBody(ctx, from, size))
				}
			}()
		}
		wg.Wait()
		return nil
	}
}

// bigBody sends one unsigned Bitbucket push from address from whose body
// is size bytes, without its last chunk: it waits for serve's answer (or
// for serve to close) and returns what happened.
func (h *hostile) bigBody(ctx context.Context, from *net.TCPAddr, size int) string {
	d := net.Dialer{LocalAddr: from, Timeout: 5 * time.Second}
	c, err := d.DialContext(ctx, "tcp", strings.TrimPrefix(h.s.url, "http://"))
	if err != nil {
		sleepCtx(ctx, 100*time.Millisecond)
		return "dial failed"
	}
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	defer c.Close()
	answered := make(chan string, 1)
	go func() {
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			answered <- "closed without an answer"
			return
		}
		resp.Body.Close()
		answered <- resp.Status
	}()
	head := "POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-Event-Key: repo:push\r\n" +
		"X-Request-UUID: " + newUUID() + "\r\nTransfer-Encoding: chunked\r\n\r\n"
	if _, err := io.WriteString(c, head); err != nil {
		return "write failed"
	}
	for sent := 0; sent < size; {
		n := min(size-sent, 64<<10)
		if _, err := fmt.Fprintf(c, "%x\r\n%s\r\n", n, spaces[:n]); err != nil {
			break // serve answered and closed
		}
		sent += n
	}
	select {
	case a := <-answered:
		return a
	case <-ctx.Done():
		return "stalled to the end"
	}
}

var spaces = strings.Repeat(" ", 64<<10)

// attackDeliveries: see the top of this file.
func attackDeliveries(ctx context.Context, h *hostile) error {
	body := bitbucketPush("release", h.r.sha)
	sig := h.s.sign(body)
	c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	ids := make(chan struct{}, 10000)
	for range cap(ids) {
		ids <- struct{}{}
	}
	close(ids)
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			raw := make([]byte, 30<<10)
			for range ids {
				if ctx.Err() != nil {
					return
				}
				_, _ = rand.Read(raw)
				code, _, err := do(c, h.s.webhookRequest(hex.EncodeToString(raw), body, sig))
				if err != nil {
					h.tick("error")
					continue
				}
				h.tick(fmt.Sprintf("%d %s", code, http.StatusText(code)))
			}
		}()
	}
	wg.Wait()
	return nil
}

// attackOutput: see the top of this file (runAttack committed the hook).
// It runs until the loud deployment ends (at most 3 minutes).
func attackOutput(ctx context.Context, h *hostile) error {
	code, ans, err := h.s.webhook(http.DefaultClient, newUUID(), bitbucketPush("release", h.r.sha), true)
	if err != nil || code != http.StatusAccepted {
		return fmt.Errorf("the loud push: %d %+v %v", code, ans, err)
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				h.tick(h.slowStream(ctx, ans.Deployment))
			}
		}()
	}
	var end deploymentJSON
	for sleepCtx(ctx, 500*time.Millisecond) {
		if d, err := h.s.deployment(ans.Deployment); err == nil && d.Status != "queued" && d.Status != "running" {
			end = d
			break
		}
	}
	cancel()
	wg.Wait()
	if end.Status != "succeeded" {
		return fmt.Errorf("the loud deployment %s %s: %s", ans.Deployment, end.Status, end.Error)
	}
	note("the loud deployment %s", end.Status)
	return nil
}

// slowStream follows a deployment's event stream from the start, reading
// 4 KiB every 100 ms, until the stream ends or ctx does.
func (h *hostile) slowStream(ctx context.Context, id string) string {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, h.s.url+"/api/deployments/"+id+"/events", nil)
	req.Header.Set("Authorization", "Bearer "+h.s.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		sleepCtx(ctx, 100*time.Millisecond)
		return "stream failed"
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		sleepCtx(ctx, 100*time.Millisecond)
		return resp.Status
	}
	buf := make([]byte, 4<<10)
	for sleepCtx(ctx, 100*time.Millisecond) {
		if _, err := resp.Body.Read(buf); err != nil {
			return "stream ended"
		}
	}
	return "stream read to the end of the attack"
}

func reportHostile(w io.Writer, o options, results []attackResult) {
	bin := o.bin
	if bin == "" {
		bin = "this checkout"
	}
	fmt.Fprintf(w, "\n## serve under attack (%s)\n\n", bin)
	fmt.Fprintln(w, "| attack | serve RSS before | peak RSS (VmHWM) | signed pushes during it | slowest | what the attacker got |")
	fmt.Fprintln(w, "|---|---:|---:|---|---:|---|")
	for _, r := range results {
		peak := mib(r.end.hwmKB)
		if r.stopped > 0 {
			peak = "> " + mib(r.stopped) + " (stopped)"
		}
		codes := map[string]int{}
		var slowest time.Duration
		for _, p := range r.real {
			k := fmt.Sprint(p.code)
			if p.err != nil {
				k = "error: " + p.err.Error()
			}
			codes[k]++
			slowest = max(slowest, p.took)
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s ms | %s |\n", r.name, mib(r.idle.rssKB), peak, counts(codes), ms(slowest), counts(r.answers))
	}
	fmt.Fprintln(w)
	for _, r := range results {
		fmt.Fprintf(w, "- %s (%.0f s): %s\n", r.name, r.duration.Seconds(), attacks[r.name].what)
	}
	fmt.Fprintln(w)
}

// counts is "3 × 202, 1 × 503", most frequent first.
func counts(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return m[keys[i]] > m[keys[j]] || m[keys[i]] == m[keys[j]] && keys[i] < keys[j] })
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%d × %s", m[k], k))
	}
	return strings.Join(parts, ", ")
}
