package main

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// server is a running `pushdeploy serve` under test.
type server struct {
	t      *testing.T
	url    string
	secret string
	token  string
	cmd    *exec.Cmd
	stderr *bytes.Buffer
	exited chan error
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func (e *e2e) serve() *server {
	e.t.Helper()
	addr := freePort(e.t)
	s := &server{t: e.t, url: "http://" + addr, secret: "s3cret-for-webhooks", token: "t0ken-for-the-api", stderr: &bytes.Buffer{}, exited: make(chan error, 1)}
	e.vars["DEPLOY_LISTEN"] = addr
	e.vars["DEPLOY_WEBHOOK_SECRET"] = s.secret
	e.vars["DEPLOY_API_TOKEN"] = s.token
	e.vars["DEPLOY_WEBHOOK_REPO"] = "team/app"
	s.start(e, io.Discard, "serve", "--json", "--grace", "20s")
	return s
}

// start runs pushdeploy with args and e.vars as its whole environment,
// stdout to stdout, stderr to s.stderr, and waits until /healthz answers;
// the process is killed at the test's end if it still runs.
func (s *server) start(e *e2e, stdout io.Writer, args ...string) {
	e.t.Helper()
	s.cmd = exec.Command(binary, args...)
	s.cmd.Dir = e.t.TempDir()
	s.cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for k, v := range e.vars {
		s.cmd.Env = append(s.cmd.Env, k+"="+v)
	}
	s.cmd.Stdout, s.cmd.Stderr = stdout, &syncWriter{w: s.stderr}
	if err := s.cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	go func() { s.exited <- s.cmd.Wait() }()
	e.t.Cleanup(func() {
		if s.cmd.ProcessState == nil {
			_ = s.cmd.Process.Kill()
			<-s.exited
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(s.url + "/healthz")
		if err == nil {
			resp.Body.Close()
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("serve did not come up: %v\n%s", err, s.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(p)
}

// bitbucketPush is a Bitbucket Cloud repo:push payload, as documented.
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

// webhook posts a Bitbucket Cloud push, signed unless sign is false.
func (s *server) webhook(delivery string, body []byte, sign bool) (int, map[string]any) {
	s.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, s.url+"/webhook", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Event-Key", "repo:push")
	req.Header.Set("X-Request-UUID", delivery)
	req.Header.Set("X-Hook-UUID", "{hook}")
	if sign {
		mac := hmac.New(sha256.New, []byte(s.secret))
		mac.Write(body)
		req.Header.Set("X-Hub-Signature", "sha256="+hex.EncodeToString(mac.Sum(nil)))
	}
	return s.do(req)
}

func (s *server) do(req *http.Request) (int, map[string]any) {
	s.t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	raw, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(raw, &out); err != nil {
		s.t.Fatalf("%s %s: %d %q is not JSON", req.Method, req.URL.Path, resp.StatusCode, raw)
	}
	return resp.StatusCode, out
}

func (s *server) api(method, path string) (int, map[string]any) {
	req, _ := http.NewRequest(method, s.url+path, nil)
	req.Header.Set("Authorization", "Bearer "+s.token)
	return s.do(req)
}

// waitDone polls a deployment until it has finished and returns it.
func (s *server) waitDone(id string) map[string]any {
	s.t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for time.Now().Before(deadline) {
		code, d := s.api(http.MethodGet, "/api/deployments/"+id)
		if code != http.StatusOK {
			s.t.Fatalf("GET deployment %s: %d %v", id, code, d)
		}
		if st := d["status"]; st != "queued" && st != "running" {
			return d
		}
		time.Sleep(200 * time.Millisecond)
	}
	s.t.Fatalf("deployment %s did not finish\n%s", id, s.stderr)
	return nil
}

func (s *server) deploymentCount() int {
	s.t.Helper()
	_, list := s.api(http.MethodGet, "/api/deployments")
	return len(list["deployments"].([]any))
}

func TestEndToEndServe(t *testing.T) {
	e := newE2E(t, 3)
	sha1 := e.commit("1.0", nil)
	s := e.serve()

	// Unsigned and wrongly signed pushes are refused, and deploy nothing.
	if code, out := s.webhook("u-1", bitbucketPush("release", sha1), false); code != http.StatusUnauthorized {
		t.Errorf("unsigned push: %d %v, want 401", code, out)
	}
	if code, out := s.webhook("o-1", bitbucketPush("other", sha1), true); code != http.StatusOK || out["status"] != "ignored" || out["reason"] != "other branch" {
		t.Errorf("push to another branch: %d %v, want 200 ignored", code, out)
	}

	// A signed push to the release branch deploys the branch tip everywhere.
	code, out := s.webhook("d-1", bitbucketPush("release", sha1), true)
	if code != http.StatusAccepted || out["status"] != "queued" || out["commit"] != sha1 {
		t.Fatalf("signed push: %d %v, want 202 queued", code, out)
	}
	first := s.waitDone(out["deployment"].(string))
	if first["status"] != "succeeded" || first["commit"] != sha1 || first["trigger"] != "webhook" || first["provider"] != "bitbucket-cloud" {
		t.Fatalf("deployment: %v\n%s", first, s.stderr)
	}
	for _, h := range e.env.Hosts {
		if rev := e.onHost(h, "cat", "app/current/REVISION"); rev != sha1 {
			t.Errorf("%s: REVISION %s, want %s", h.Name, rev, sha1)
		}
	}

	// 20 pushes in a burst while a deploy runs: exactly one more
	// deployment, of the newest commit.
	sha2 := e.commit("2.0", nil)
	code, out = s.webhook("d-2", bitbucketPush("release", sha2), true)
	if code != http.StatusAccepted {
		t.Fatalf("push 2: %d %v", code, out)
	}
	second := out["deployment"].(string)
	for {
		_, d := s.api(http.MethodGet, "/api/deployments/"+second)
		if d["status"] == "running" {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	sha3 := e.commit("2.0", map[string]string{"NEWS": "third\n"})
	var burst []string
	var latencies []time.Duration
	for i := 0; i < 20; i++ {
		start := time.Now()
		code, out := s.webhook(fmt.Sprintf("burst-%d", i), bitbucketPush("release", sha3), true)
		latencies = append(latencies, time.Since(start))
		if code != http.StatusAccepted {
			t.Fatalf("burst push %d: %d %v", i, code, out)
		}
		burst = append(burst, out["deployment"].(string))
	}
	t.Logf("burst of 20 webhooks answered in %v … %v each", latencies[0], latencies[len(latencies)-1])
	for _, id := range burst {
		if id != burst[0] || id == second {
			t.Fatalf("the burst was not coalesced into one new deployment: %v (running: %s)", burst, second)
		}
	}
	// A redelivery is answered 200 and deploys nothing.
	code, out = s.webhook("burst-7", bitbucketPush("release", sha3), true)
	if code != http.StatusOK || out["deployment"] != burst[0] {
		t.Errorf("redelivery: %d %v, want 200 naming %s", code, out, burst[0])
	}
	if d := s.waitDone(second); d["status"] != "succeeded" {
		t.Fatalf("second deployment: %v", d)
	}
	third := s.waitDone(burst[0])
	if third["status"] != "succeeded" || third["commit"] != sha3 {
		t.Fatalf("coalesced deployment: %v, want the newest commit %s", third, sha3)
	}
	if n := s.deploymentCount(); n != 3 {
		t.Errorf("%d deployments, want 3", n)
	}
	for _, h := range e.env.Hosts {
		if rev := e.onHost(h, "cat", "app/current/REVISION"); rev != sha3 {
			t.Errorf("%s: REVISION %s, want %s", h.Name, rev, sha3)
		}
	}

	// Health for monitoring.
	resp, err := http.Get(s.url + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	var health map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&health)
	resp.Body.Close()
	last, _ := health["last_deployment"].(map[string]any)
	if resp.StatusCode != 200 || health["status"] != "ok" || last["commit"] != sha3 || health["queue_length"] != float64(0) {
		t.Errorf("healthz: %d %v", resp.StatusCode, health)
	}

	// Manual redeploy of an older commit through the API.
	req, _ := http.NewRequest(http.MethodPost, s.url+"/api/deploy", strings.NewReader(`{"commit":"`+sha1[:8]+`","hosts":["`+e.env.Hosts[1].Name+`"]}`))
	req.Header.Set("Authorization", "Bearer "+s.token)
	code, out = s.do(req)
	if code != http.StatusAccepted || out["commit"] != sha1 {
		t.Fatalf("api deploy: %d %v", code, out)
	}
	if d := s.waitDone(out["deployment"].(string)); d["status"] != "succeeded" || len(d["hosts"].([]any)) != 1 {
		t.Fatalf("api deployment: %v", d)
	}
	if rev := e.onHost(e.env.Hosts[1], "cat", "app/current/REVISION"); rev != sha1 {
		t.Errorf("host 2 after the API deploy: %s, want %s", rev, sha1)
	}
	if rev := e.onHost(e.env.Hosts[0], "cat", "app/current/REVISION"); rev != sha3 {
		t.Errorf("host 1 was not in the subset but changed: %s", rev)
	}

	// SIGTERM: a clean exit.
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-s.exited:
		if err != nil {
			t.Errorf("serve exited with %v after SIGTERM\n%s", err, s.stderr)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not exit after SIGTERM")
	}
	for _, secret := range []string{s.secret, s.token} {
		if strings.Contains(s.stderr.String(), secret) {
			t.Errorf("a secret appears in the logs")
		}
	}
}

// TestEndToEndServeSIGTERMMidDeploy stops serve while a host builds its
// release: serve exits cleanly within the grace period, the host keeps its
// complete current release, and no half-built release is left.
func TestEndToEndServeSIGTERMMidDeploy(t *testing.T) {
	e := newE2E(t, 2)
	sha1 := e.commit("1.0", nil)
	first := e.mustDeploy()
	e.commit("2.0", nil)
	time.Sleep(1100 * time.Millisecond)
	s := e.serve()
	code, out := s.webhook("sigterm-1", bitbucketPush("release", sha1), true)
	if code != http.StatusAccepted {
		t.Fatalf("push: %d %v", code, out)
	}
	id := out["deployment"].(string)
	// Wait until the first host is building its venv.
	deadline := time.Now().Add(time.Minute)
	for {
		_, d := s.api(http.MethodGet, "/api/deployments/"+id)
		if hosts, _ := d["hosts"].([]any); len(hosts) > 0 {
			steps, _ := hosts[0].(map[string]any)["steps"].([]any)
			if n := len(steps); n > 0 && steps[n-1].(map[string]any)["step"] == "venv" {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the deploy never reached venv: %v", d)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-s.exited:
		if err != nil {
			t.Errorf("exit after SIGTERM: %v\n%s", err, s.stderr)
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("serve did not exit after SIGTERM\n%s", s.stderr)
	}
	if !strings.Contains(s.stderr.String(), "shutting down") {
		t.Errorf("no shutdown in the log:\n%s", s.stderr)
	}
	for _, h := range e.env.Hosts {
		if got, want := current(h), "releases/"+first.Release; got != want {
			t.Errorf("%s: current -> %q, want the complete %q", h.Name, got, want)
		}
		if rels := releases(t, h); len(rels) != 1 {
			t.Errorf("%s: releases %v: a stopped deploy must leave nothing behind", h.Name, rels)
		}
	}
}
