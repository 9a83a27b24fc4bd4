package e2e

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
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pushdeploy/pushdeploy/internal/testhosts"
)

// server is a running `pushdeploy serve` under test.
type server struct {
	t      *testing.T
	url    string
	secret string
	token  string
	cmd    *exec.Cmd
	stderr *syncWriter // serve's log; safe to read while serve writes it
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
	s := &server{t: e.t, url: "http://" + addr, secret: "s3cret-for-webhooks", token: "t0ken-for-the-api", stderr: &syncWriter{w: &bytes.Buffer{}}, exited: make(chan error, 1)}
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
	s.cmd.Env = e.environ()
	s.cmd.Stdout, s.cmd.Stderr = stdout, s.stderr
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
	await(e.t, "serve to answer /healthz", 20*time.Second, func() (bool, any) {
		resp, err := http.Get(s.url + "/healthz")
		if err != nil {
			return false, fmt.Sprintf("%v; log:\n%s", err, s.stderr)
		}
		resp.Body.Close()
		return true, nil
	})
}

// await polls check until it reports done, and fails the test with what
// check last saw when that takes longer than within (a bound against
// hanging: nothing is timed).
func await(t *testing.T, what string, within time.Duration, check func() (done bool, seen any)) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		done, seen := check()
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: gave up after %v; last seen: %v", what, within, seen)
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

// String is what was written so far.
func (w *syncWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.String()
}

// bitbucketPush is a Bitbucket Cloud repo:push payload, as documented, of
// the repository team/app.
func bitbucketPush(branch, commit string) []byte {
	return bitbucketPushFrom("team/app", branch, commit)
}

// bitbucketPushFrom is a Bitbucket Cloud repo:push payload of the
// repository whose full name is repo.
func bitbucketPushFrom(repo, branch, commit string) []byte {
	return testhosts.BitbucketPush(repo, branch, commit)
}

// webhook posts a Bitbucket Cloud push, signed unless sign is false.
func (s *server) webhook(delivery string, body []byte, sign bool) (int, map[string]any) {
	s.t.Helper()
	return s.do(s.webhookRequest(delivery, body, sign))
}

// webhookRequest is the request webhook sends.
func (s *server) webhookRequest(delivery string, body []byte, sign bool) *http.Request {
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
	return req
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
	var d map[string]any
	await(s.t, "deployment "+id+" to finish", 3*time.Minute, func() (bool, any) {
		var code int
		code, d = s.api(http.MethodGet, "/api/deployments/"+id)
		if code != http.StatusOK {
			s.t.Fatalf("GET deployment %s: %d %v", id, code, d)
		}
		st := d["status"]
		return st != "queued" && st != "running", fmt.Sprintf("%v\nlog:\n%s", d, s.stderr)
	})
	return d
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

	// Unsigned and wrongly signed pushes are refused, pushes to another
	// branch or from another repository are ignored: none deploys.
	if code, out := s.webhook("u-1", bitbucketPush("release", sha1), false); code != http.StatusUnauthorized {
		t.Errorf("unsigned push: %d %v, want 401", code, out)
	}
	if code, out := s.webhook("o-1", bitbucketPush("other", sha1), true); code != http.StatusOK || out["status"] != "ignored" || out["reason"] != "other branch" {
		t.Errorf("push to another branch: %d %v, want 200 ignored", code, out)
	}
	// DEPLOY_WEBHOOK_REPO is team/app.
	code, out := s.webhook("r-1", bitbucketPushFrom("team/other", "release", sha1), true)
	if msg, _ := out["message"].(string); code != http.StatusOK || out["status"] != "ignored" || out["reason"] != "other repository" || !strings.Contains(msg, "team/other") {
		t.Errorf("push from team/other: %d %v, want 200 ignored (other repository) naming team/other", code, out)
	}
	if n := s.deploymentCount(); n != 0 {
		t.Errorf("%d deployments after refused and ignored pushes, want 0", n)
	}

	// A signed push to the release branch deploys the branch tip everywhere.
	code, out = s.webhook("d-1", bitbucketPush("release", sha1), true)
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

	newest := burst(t, e, s)

	// Health for monitoring.
	resp, err := http.Get(s.url + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	var health map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&health)
	resp.Body.Close()
	last, _ := health["last_deployment"].(map[string]any)
	if resp.StatusCode != 200 || health["status"] != "ok" || last["status"] != "succeeded" || health["queue_length"] != float64(0) {
		t.Errorf("healthz: %d %v", resp.StatusCode, health)
	}
	// It names the deployment, whose commit and details are the API's.
	if id, _ := last["id"].(string); id != "" {
		if _, d := s.api(http.MethodGet, "/api/deployments/"+id); d["commit"] != newest {
			t.Errorf("healthz's last deployment %s deployed %v, want %s", id, d["commit"], newest)
		}
	}
	if _, ok := last["commit"]; ok {
		t.Errorf("healthz, which needs no token, tells the commit: %v", last)
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
	if rev := e.onHost(e.env.Hosts[0], "cat", "app/current/REVISION"); rev != newest {
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

// burst sends 20 pushes while a deployment runs, each of a new commit, as a
// forge does (commit, push, commit, push): they make exactly one more
// deployment, which deploys the newest tip and records the newest push's
// commit. A redelivery deploys nothing. It returns the newest commit.
func burst(t *testing.T, e *e2e, s *server) string {
	// The second deployment waits in host 1's before-switch hook until the
	// burst is over, so that every push of it arrives while it runs.
	goOn := filepath.Join(e.env.Dir, "burst-over")
	t.Cleanup(func() { _ = os.WriteFile(goOn, nil, 0o644) }) // no hook is left waiting
	hook := "#!/bin/sh\ntouch \"$HOME/preparing\"\ni=0\nwhile [ ! -e " + goOn + " ] && [ $i -lt 3000 ]; do sleep 0.1; i=$((i+1)); done\n"
	sha2 := e.commit("2.0", map[string]string{".pushdeploy/before-switch": hook})
	code, out := s.webhook("d-2", bitbucketPush("release", sha2), true)
	if code != http.StatusAccepted {
		t.Fatalf("push 2: %d %v", code, out)
	}
	second := out["deployment"].(string)
	host1 := e.env.Hosts[0]
	await(t, "the second deployment to run host 1's before-switch hook", 3*time.Minute, func() (bool, any) {
		_, d := s.api(http.MethodGet, "/api/deployments/"+second)
		return d["status"] == "running" && exists(host1.Path("preparing")), d
	})

	var shas, ids []string
	var slowest time.Duration
	for i := range 20 {
		sha := e.commit("2.0", map[string]string{"NEWS": fmt.Sprintf("burst push %d\n", i)})
		start := time.Now()
		code, out := s.webhook(fmt.Sprintf("burst-%d", i), bitbucketPush("release", sha), true)
		slowest = max(slowest, time.Since(start))
		if code != http.StatusAccepted || out["status"] != "queued" || out["commit"] != sha {
			t.Fatalf("burst push %d of %s: %d %v, want 202 queued naming its commit", i, sha, code, out)
		}
		shas, ids = append(shas, sha), append(ids, out["deployment"].(string))
	}
	t.Logf("burst of 20 webhooks, a commit before each: the slowest answered in %v", slowest)
	if _, d := s.api(http.MethodGet, "/api/deployments/"+second); d["status"] != "running" {
		t.Fatalf("the second deployment is %v after the burst: the burst did not arrive while it ran", d["status"])
	}
	for _, id := range ids {
		if id != ids[0] || id == second {
			t.Fatalf("the burst was not coalesced into one new deployment: %v (running: %s)", ids, second)
		}
	}
	// A redelivery is answered 200 and deploys nothing.
	code, out = s.webhook("burst-7", bitbucketPush("release", shas[7]), true)
	if code != http.StatusOK || out["deployment"] != ids[0] {
		t.Errorf("redelivery: %d %v, want 200 naming %s", code, out, ids[0])
	}

	if err := os.WriteFile(goOn, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if d := s.waitDone(second); d["status"] != "succeeded" || d["commit"] != sha2 {
		t.Fatalf("second deployment: %v, want %s deployed", d, sha2)
	}
	newest := shas[len(shas)-1]
	third := s.waitDone(ids[0])
	if third["status"] != "succeeded" || third["commit"] != newest {
		t.Fatalf("coalesced deployment: %v, want the newest commit %s deployed (the burst's first was %s)", third, newest, shas[0])
	}
	if third["payload_commit"] != newest {
		t.Errorf("coalesced deployment records payload_commit %v, want the newest push's %s", third["payload_commit"], newest)
	}
	if n := s.deploymentCount(); n != 3 {
		t.Errorf("%d deployments, want 3", n)
	}
	for _, h := range e.env.Hosts {
		if rev := e.onHost(h, "cat", "app/current/REVISION"); rev != newest {
			t.Errorf("%s: REVISION %s, want the newest commit %s", h.Name, rev, newest)
		}
	}
	return newest
}

// heldPython is DEPLOY_PYTHON for the hosts: python3, except that building
// a venv waits while the file HOLD exists (at most 5 minutes).
const heldPython = `#!/bin/sh
if [ "$1" = -m ] && [ "$2" = venv ]; then
	i=0
	while [ -e HOLD ] && [ $i -lt 3000 ]; do sleep 0.1; i=$((i+1)); done
fi
exec python3 "$@"
`

// TestEndToEndServeSIGTERMMidDeploy stops serve while a host builds its
// release's venv: from the signal on, serve queues nothing (a push gets a
// connection error or 503, and is not in the history afterwards), it exits
// cleanly within the grace period, the host keeps its complete current
// release, and no half-built release is left.
func TestEndToEndServeSIGTERMMidDeploy(t *testing.T) {
	e := newE2E(t, 2)
	sha1 := e.commit("1.0", nil)
	first := e.mustDeploy()
	sha2 := e.commit("2.0", nil)
	// The venv step of the next deployment is held until the checks of
	// "stop accepting" are done: serve cannot have exited before them.
	hold := filepath.Join(e.env.Dir, "hold-venv")
	python := filepath.Join(e.env.Dir, "held-python")
	if err := os.WriteFile(python, []byte(strings.ReplaceAll(heldPython, "HOLD", hold)), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(hold, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Remove(hold) })
	e.vars["DEPLOY_PYTHON"] = python
	s := e.serve()
	code, out := s.webhook("sigterm-1", bitbucketPush("release", sha1), true)
	if code != http.StatusAccepted {
		t.Fatalf("push: %d %v", code, out)
	}
	id := out["deployment"].(string)
	await(t, "the first host to build its venv", time.Minute, func() (bool, any) {
		_, d := s.api(http.MethodGet, "/api/deployments/"+id)
		if hosts, _ := d["hosts"].([]any); len(hosts) > 0 {
			steps, _ := hosts[0].(map[string]any)["steps"].([]any)
			if n := len(steps); n > 0 {
				last := steps[n-1].(map[string]any)
				return last["step"] == "venv" && last["status"] == "running", d
			}
		}
		return false, d
	})
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	await(t, "serve to log that it shuts down", time.Minute, func() (bool, any) {
		return strings.Contains(s.stderr.String(), "shutting down"), s.stderr
	})

	// A push now must not be queued: serve stops accepting at the signal.
	// A fresh connection, as a forge's next delivery would make.
	late := s.webhookRequest("sigterm-late", bitbucketPush("release", sha2), true)
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 30 * time.Second}
	if resp, err := client.Do(late); err != nil {
		t.Logf("push after SIGTERM: %v (not accepted)", err)
	} else {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable {
			t.Errorf("push after SIGTERM: %d %s, want a connection error or 503", resp.StatusCode, body)
		}
	}
	select {
	case err := <-s.exited:
		t.Fatalf("serve exited (%v) while its venv step was held: the push after SIGTERM proves nothing\n%s", err, s.stderr)
	default:
	}
	if err := os.Remove(hold); err != nil {
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
	for _, h := range e.env.Hosts {
		if got, want := current(h), "releases/"+first.Release; got != want {
			t.Errorf("%s: current -> %q, want the complete %q", h.Name, got, want)
		}
		if rels := releases(t, h); len(rels) != 1 {
			t.Errorf("%s: releases %v: a stopped deploy must leave nothing behind", h.Name, rels)
		}
	}

	// The history, read by the next serve: the CLI deploy and the stopped
	// one, and nothing of the push that came after the signal.
	s = e.serve()
	_, list := s.api(http.MethodGet, "/api/deployments")
	deps, _ := list["deployments"].([]any)
	stopped := false
	for _, d := range deps {
		d := d.(map[string]any)
		if d["delivery"] == "sigterm-late" || d["payload_commit"] == sha2 {
			t.Errorf("the history has a deployment of the push sent after SIGTERM: %v", d)
		}
		stopped = stopped || (d["id"] == id && d["delivery"] == "sigterm-1" && d["payload_commit"] == sha1)
	}
	if !stopped || len(deps) != 2 {
		t.Errorf("history after the restart: %v, want the CLI deployment %s and the stopped %s (delivery sigterm-1) only", list, first.ID, id)
	}
	s.stop()
}
