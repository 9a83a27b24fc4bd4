package webhook

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/pushdeploy/pushdeploy/deploy"
)

// Hostile HTTP clients against a real listener on 127.0.0.1: slow headers,
// slow bodies, oversized bodies and headers, idle connections by the
// hundred, replays and tampered headers.

// testLimits are short enough for tests to wait them out.
var testLimits = Limits{
	ReadHeaderTimeout: 300 * time.Millisecond,
	ReadTimeout:       800 * time.Millisecond,
	WriteTimeout:      2 * time.Second,
	IdleTimeout:       500 * time.Millisecond,
	MaxHeaderBytes:    8 << 10,
}

// openServer starts a server on 127.0.0.1 with a real deploy.Worker (not
// running: deployments stay queued, which is all these tests count).
func openServer(t *testing.T, mod func(*Config)) (*Server, *deploy.Worker) {
	t.Helper()
	w := &deploy.Worker{Deployer: &deploy.Deployer{}, Hosts: []deploy.Host{{Name: "web1", Addr: "web1", Port: 22, User: "deploy"}}}
	cfg := Config{APIToken: "tok", StateDir: t.TempDir(), BodyLimit: 64 << 10, Limits: testLimits}
	if mod != nil {
		mod(&cfg)
	}
	s, err := New(cfg, testApp(w))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Open("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Close(ctx)
	})
	return s, w
}

func dial(t *testing.T, s *Server) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", s.Addr().String(), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// closedWithin reads from c until the server closes it (or answers), and
// fails unless that happens within d. It returns what the server sent.
func closedWithin(t *testing.T, c net.Conn, d time.Duration) string {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(d))
	got, err := io.ReadAll(c)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("the server kept the connection open for %s (sent %q)", d, got)
	}
	return string(got)
}

// healthz checks that the server answers another client promptly.
func healthz(t *testing.T, s *Server) {
	t.Helper()
	client := &http.Client{Timeout: 2 * time.Second}
	resp, err := client.Get("http://" + s.Addr().String() + "/healthz")
	if err != nil {
		t.Fatalf("GET /healthz while under attack: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /healthz while under attack: %d", resp.StatusCode)
	}
}

func TestSlowlorisHeadersAreCutOff(t *testing.T) {
	s, w := openServer(t, nil)
	c := dial(t, s)
	start := time.Now()
	req := "POST /webhook HTTP/1.1\r\nHost: x\r\nX-GitHub-Event: push\r\nX-Padding: " + strings.Repeat("a", 200)
	cut := false
	for i := 0; i < len(req); i++ {
		if _, err := c.Write([]byte{req[i]}); err != nil {
			cut = true
			break
		}
		time.Sleep(20 * time.Millisecond)
		if time.Since(start) > testLimits.ReadHeaderTimeout+time.Second {
			break
		}
	}
	if !cut {
		// The server may have closed without our write failing yet.
		closedWithin(t, c, time.Second)
	}
	if took := time.Since(start); took > testLimits.ReadHeaderTimeout+time.Second {
		t.Errorf("a client sending its headers byte by byte was cut after %s, want about %s", took, testLimits.ReadHeaderTimeout)
	}
	healthz(t, s)
	if n := len(w.List()); n != 0 {
		t.Errorf("%d deployments from a cut request", n)
	}
}

func TestSlowBodyIsCutOff(t *testing.T) {
	s, w := openServer(t, nil)
	c := dial(t, s)
	body := githubPush("refs/heads/release", strings.Repeat("a", 40))
	r := signedGitHub(body, "")
	head := fmt.Sprintf("POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n", len(body))
	for k, v := range r.Header {
		head += k + ": " + v[0] + "\r\n"
	}
	if _, err := c.Write([]byte(head + "\r\n")); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for i := 0; i < len(body) && time.Since(start) < 3*time.Second; i++ {
		if _, err := c.Write(body[i : i+1]); err != nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	answer := closedWithin(t, c, time.Second)
	if took := time.Since(start); took > testLimits.ReadTimeout+time.Second {
		t.Errorf("a body sent byte by byte was read for %s, want it cut after about %s", took, testLimits.ReadTimeout)
	}
	if strings.HasPrefix(answer, "HTTP/1.1 2") {
		t.Errorf("a body cut off by the read timeout was accepted: %q", answer)
	}
	if n := len(w.List()); n != 0 {
		t.Errorf("%d deployments from a cut request", n)
	}
	healthz(t, s)
}

func TestOversizedBody(t *testing.T) {
	s, w := openServer(t, nil)
	limit := int64(64 << 10)

	// Declared too big: 413 at once, although the client sends only the
	// headers and a few bytes (the rest never comes).
	c := dial(t, s)
	fmt.Fprintf(c, "POST /webhook HTTP/1.1\r\nHost: x\r\nX-GitHub-Event: push\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n{\"ref\":", 100<<20)
	br := bufio.NewReader(c)
	_ = c.SetReadDeadline(time.Now().Add(testLimits.ReadTimeout / 2))
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("no answer to a declared 100 MiB body before the read timeout: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("declared 100 MiB: %d, want 413", resp.StatusCode)
	}

	// Chunked (no length): 413 once the limit is passed.
	pr, pw := io.Pipe()
	go func() {
		chunk := bytes.Repeat([]byte(" "), 4096)
		for i := int64(0); i < 4*limit/4096; i++ {
			if _, err := pw.Write(chunk); err != nil {
				return
			}
		}
		pw.Close()
	}()
	req, _ := http.NewRequest(http.MethodPost, "http://"+s.Addr().String()+"/webhook", pr)
	req.Header.Set("X-GitHub-Event", "push")
	resp, err = http.DefaultClient.Do(req)
	pr.Close()
	if err != nil {
		t.Fatalf("chunked body over the limit: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("chunked body over the limit: %d, want 413", resp.StatusCode)
	}
	if n := len(w.List()); n != 0 {
		t.Errorf("%d deployments from oversized bodies", n)
	}
	healthz(t, s)
}

func TestOversizedHeaders(t *testing.T) {
	s, _ := openServer(t, nil)
	c := dial(t, s)
	// Go's server allows 4 KiB on top of MaxHeaderBytes.
	fmt.Fprintf(c, "POST /webhook HTTP/1.1\r\nHost: x\r\nX-Big: %s\r\n\r\n", strings.Repeat("a", testLimits.MaxHeaderBytes+8<<10))
	answer := closedWithin(t, c, 2*time.Second)
	if !strings.HasPrefix(answer, "HTTP/1.1 431") {
		t.Errorf("headers over the limit: %.80q, want 431", answer)
	}
	healthz(t, s)
}

func TestManyIdleConnections(t *testing.T) {
	s, _ := openServer(t, nil)
	const n = 200
	conns := make([]net.Conn, 0, n)
	for i := 0; i < n; i++ {
		conns = append(conns, dial(t, s))
	}
	// A kept-alive connection that has had its answer, then goes idle.
	kept := dial(t, s)
	fmt.Fprintf(kept, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	br := bufio.NewReader(kept)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("keep-alive request: %v %v", resp, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()

	// Others are served meanwhile.
	for i := 0; i < 5; i++ {
		healthz(t, s)
	}
	// The idle ones are closed by the server: those that never sent a
	// request by ReadHeaderTimeout, the kept-alive one by IdleTimeout.
	deadline := time.Now().Add(testLimits.ReadHeaderTimeout + testLimits.IdleTimeout + 2*time.Second)
	for i, c := range conns {
		_ = c.SetReadDeadline(deadline)
		if _, err := c.Read(make([]byte, 1)); err == nil || isTimeout(err) {
			t.Fatalf("idle connection %d still open after %s (%v)", i, testLimits.ReadHeaderTimeout, err)
		}
	}
	_ = kept.SetReadDeadline(deadline)
	if _, err := br.ReadByte(); err == nil || isTimeout(err) {
		t.Fatalf("kept-alive idle connection still open after the idle timeout (%v)", err)
	}
	healthz(t, s)
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// post sends a webhook to the real server.
func post(t *testing.T, s *Server, h http.Header, body []byte) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, "http://"+s.Addr().String()+"/webhook", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(out)
}

// TestReplayedDelivery sends each provider's push twice with the same
// delivery id in the provider's delivery header: the second answers 200
// (duplicate delivery) and submits no second deployment. A third, with
// another id in the same header, is a new delivery: 202, joining the
// deployment still waiting. Bitbucket Server's delivery id travels in
// X-Request-Id, which is not taken as our request id.
func TestReplayedDelivery(t *testing.T) {
	tests := []struct {
		name, provider, kind, file string
		// header carries the delivery id; the provider's other delivery
		// headers are removed.
		header string
		others []string
	}{
		{"bitbucket cloud", BitbucketCloud, "repo:push", "bitbucket-cloud-push.json", "X-Request-UUID", nil},
		{"bitbucket server", BitbucketServer, "repo:refs_changed", "bitbucket-server-refs-changed.json", "X-Request-Id", nil},
		{"github", GitHub, "push", "github-push.json", "X-GitHub-Delivery", nil},
		{"gitlab idempotency key", GitLab, "Push Hook", "gitlab-push.json", "Idempotency-Key", []string{"X-Gitlab-Event-UUID"}},
		{"gitlab event uuid", GitLab, "Push Hook", "gitlab-push.json", "X-Gitlab-Event-UUID", []string{"Idempotency-Key"}},
		{"gitea", Gitea, "push", "gitea-push.json", "X-Gitea-Delivery", []string{"X-Gogs-Delivery", "X-GitHub-Delivery"}},
		{"forgejo", Gitea, "push", "gitea-push.json", "X-Forgejo-Delivery", []string{"X-Gitea-Delivery", "X-Gogs-Delivery", "X-GitHub-Delivery"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, w := openServer(t, nil)
			body := readFixture(t, tt.file)
			send := func(id string) (int, string, string) {
				t.Helper()
				h := signedHeaders(tt.provider, tt.kind, body, secret)
				for _, o := range tt.others {
					h.Del(o)
				}
				h.Set(tt.header, id)
				req, err := http.NewRequest(http.MethodPost, "http://"+s.Addr().String()+"/webhook", bytes.NewReader(body))
				if err != nil {
					t.Fatal(err)
				}
				req.Header = h
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				out, _ := io.ReadAll(resp.Body)
				if rid := resp.Header.Get("X-Request-Id"); rid == "" || rid == id {
					t.Errorf("X-Request-Id answered %q, want an id of our own (the delivery is %q)", rid, id)
				}
				return resp.StatusCode, string(out), resp.Header.Get("X-Request-Id")
			}
			id := "delivery-" + strings.ReplaceAll(tt.name, " ", "-")
			code, out, rid1 := send(id)
			if code != http.StatusAccepted {
				t.Fatalf("first delivery: %d %s", code, out)
			}
			deps := w.List()
			if len(deps) != 1 || deps[0].Request.DeliveryID != id || deps[0].Request.Provider != tt.provider {
				t.Fatalf("after the first delivery: %d deployments, want 1 of %s delivery %s", len(deps), tt.provider, id)
			}
			first := deps[0].ID
			code, out, rid2 := send(id)
			if code != http.StatusOK || !strings.Contains(out, `"reason":"duplicate delivery"`) || !strings.Contains(out, first) {
				t.Errorf("redelivery: %d %s, want 200 duplicate delivery of %s", code, out, first)
			}
			if rid1 == rid2 {
				t.Errorf("both deliveries answered X-Request-Id %q: want one id per request", rid1)
			}
			if n := len(w.List()); n != 1 {
				t.Errorf("%d deployments after a delivery and its redelivery, want 1", n)
			}
			// The id is read from this header: another id is another
			// delivery, which joins the waiting deployment.
			if code, out, _ := send(id + "-2"); code != http.StatusAccepted || !strings.Contains(out, first) {
				t.Errorf("a new delivery id in %s: %d %s, want 202 joining %s", tt.header, code, out, first)
			}
			if n := len(w.List()); n != 1 {
				t.Errorf("%d deployments, want 1", n)
			}
		})
	}
}

// TestTamperedHeaders replays a correctly signed push with its headers
// changed. Forges sign the body only (GitHub, Gitea: X-Hub-Signature-256;
// Bitbucket: X-Hub-Signature), so the event and delivery headers can be
// changed by whoever holds one signed delivery. That cannot deploy anything
// but the release branch: the branch comes from the signed body, which must
// name the release branch, and what is deployed is the branch tip resolved
// from the repository, never the payload's commit. A changed event header
// makes the body be read as another provider's or another event's payload:
// refused (400) or ignored (200). A changed delivery id makes a replay look
// new: it asks for the tip of the release branch again, which is what any
// push to it does, and joins a deployment that is still waiting.
func TestTamperedHeaders(t *testing.T) {
	sha := strings.Repeat("a", 40)
	bbBody := []byte(`{"actor":{"display_name":"Ada"},"repository":{"full_name":"team/app"},
		"push":{"changes":[{"new":{"type":"branch","name":"release","target":{"hash":"` + sha + `"}},"old":null}]}}`)
	bbHeaders := func() http.Header {
		return http.Header{
			"X-Event-Key":     {"repo:push"},
			"X-Request-Uuid":  {"d-1"},
			"X-Hub-Signature": {"sha256=" + hmacHex(secret, bbBody)},
			"Content-Type":    {"application/json"},
		}
	}
	ghBody := githubPush("refs/heads/release", sha)
	ghHeaders := func() http.Header { return signedGitHub(ghBody, "").Header }
	tests := []struct {
		name   string
		body   []byte
		tamper func() http.Header
		want   int
		queued bool
	}{
		{"bitbucket as it was signed", bbBody, bbHeaders, 202, true},
		{"bitbucket push read as a server refs_changed", bbBody, func() http.Header {
			h := bbHeaders()
			h.Set("X-Event-Key", "repo:refs_changed")
			return h
		}, 400, false},
		{"bitbucket push read as a pull request", bbBody, func() http.Header {
			h := bbHeaders()
			h.Set("X-Event-Key", "pullrequest:fulfilled")
			return h
		}, 200, false},
		{"bitbucket event key twice", bbBody, func() http.Header {
			h := bbHeaders()
			h.Add("X-Event-Key", "repo:refs_changed")
			return h
		}, 202, true},
		{"github push read as a ping", ghBody, func() http.Header {
			h := ghHeaders()
			h.Set("X-GitHub-Event", "ping")
			return h
		}, 200, false},
		{"github push read as a delete", ghBody, func() http.Header {
			h := ghHeaders()
			h.Set("X-GitHub-Event", "delete")
			return h
		}, 200, false},
		{"github push read as gitlab", ghBody, func() http.Header {
			h := ghHeaders()
			h.Set("X-Gitlab-Event", "Push Hook")
			return h
		}, 401, false},
		{"github signature sent as bitbucket's", ghBody, func() http.Header {
			h := ghHeaders()
			h.Del("X-GitHub-Event")
			h.Set("X-Event-Key", "repo:push")
			h.Set("X-Hub-Signature", h.Get("X-Hub-Signature-256"))
			return h
		}, 400, false},
		{"github signature over another body", githubPush("refs/heads/release", strings.Repeat("b", 40)), ghHeaders, 401, false},
		{"github push to another branch, signed", githubPush("refs/heads/main", sha), func() http.Header {
			return signedGitHub(githubPush("refs/heads/main", sha), "").Header
		}, 200, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, w := openServer(t, nil)
			code, out := post(t, s, tt.tamper(), tt.body)
			if code != tt.want {
				t.Errorf("%d %s, want %d", code, out, tt.want)
			}
			deps := w.List()
			if got := len(deps) > 0; got != tt.queued {
				t.Fatalf("queued %v (%d), want %v", got, len(deps), tt.queued)
			}
			for _, d := range deps {
				if d.Request.Push.Branch != "release" || d.Request.Push.Commit != "" {
					t.Errorf("queued %+v: anything but the release branch tip", d.Request.Push)
				}
			}
		})
	}

	// A replay with a new delivery id: the release branch's tip once more.
	s, w := openServer(t, nil)
	for i, id := range []string{"d-1", "d-2", "d-3"} {
		h := bbHeaders()
		h.Set("X-Request-Uuid", id)
		if code, out := post(t, s, h, bbBody); code != 202 {
			t.Fatalf("delivery %d: %d %s", i, code, out)
		}
	}
	if deps := w.List(); len(deps) != 1 || deps[0].Request.Push != (deploy.Push{Branch: "release"}) {
		t.Errorf("replays with new delivery ids: %d deployments, want the one waiting deployment of the tip", len(deps))
	}
}

// TestContentTypeGames: the body is read raw and verified before anything
// parses it, whatever Content-Type or encoding the request claims, so no
// form or multipart parsing can consume or reinterpret the signed bytes.
func TestContentTypeGames(t *testing.T) {
	sha := strings.Repeat("a", 40)
	body := githubPush("refs/heads/release", sha)
	form := []byte("payload=" + strings.ReplaceAll(string(body), `"`, "%22"))
	tests := []struct {
		name, contentType, encoding string
		body                        []byte
		want                        int
	}{
		{"json", "application/json", "", body, 202},
		{"no content type", "", "", body, 202},
		{"text/plain", "text/plain; charset=utf-16", "", body, 202},
		{"json claimed as form", "application/x-www-form-urlencoded", "", body, 202},
		{"json claimed as multipart", "multipart/form-data; boundary=x", "", body, 202},
		{"form-encoded payload (GitHub's other content type)", "application/x-www-form-urlencoded", "", form, 400},
		{"claims gzip", "application/json", "gzip", body, 202},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, w := openServer(t, nil)
			h := signedGitHub(tt.body, "").Header
			h.Del("Content-Type")
			if tt.contentType != "" {
				h.Set("Content-Type", tt.contentType)
			}
			if tt.encoding != "" {
				h.Set("Content-Encoding", tt.encoding)
			}
			code, out := post(t, s, h, tt.body)
			if code != tt.want {
				t.Errorf("%d %s, want %d", code, out, tt.want)
			}
			if n := len(w.List()); (n == 1) != (tt.want == 202) || n > 1 {
				t.Errorf("%d deployments", n)
			}
		})
	}
}

// TestHostileNames sends branch and release names with shell
// metacharacters, "..", newlines, NUL bytes and leading dashes: a signed
// push to such a branch is ignored (200, another branch), never deployed;
// POST /api/rollback refuses such a release (400) and /api/deploy such a
// commit, naming the field; nothing is submitted.
func TestHostileNames(t *testing.T) {
	names := []string{
		"$(touch /tmp/pwned)", "`touch /tmp/pwned`", "x;touch /tmp/pwned", "x|y", "x&&y", "x\ny", "x\ry", "../release",
		"release/../../x", "..", "-release", "--upload-pack=touch /tmp/pwned", "x y", "'", `"`, `x\y`, "*", "rel\x00ease",
		"release\n", " release", "release ", "refs/heads/release",
	}
	for _, name := range names {
		t.Run(fmt.Sprintf("%q", name), func(t *testing.T) {
			f := &fakeDeployments{}
			h := newTestServer(t, f, nil)
			code, out := serveJSON(h, signedGitHub(githubPush("refs/heads/"+name, strings.Repeat("a", 40)), ""))
			if code != http.StatusOK || out["status"] != "ignored" || out["reason"] != ReasonOtherBranch {
				t.Errorf("push to branch %q: %d %v, want 200 ignored (other branch)", name, code, out)
			}
			for _, call := range []struct{ path, field, body string }{
				{"/api/rollback", "release", mustJSON(map[string]string{"release": name})},
				{"/api/deploy", "commit", mustJSON(map[string]string{"commit": name})},
			} {
				r := httptest.NewRequest(http.MethodPost, call.path, strings.NewReader(call.body))
				r.Header.Set("Authorization", "Bearer tok")
				code, out := serveJSON(h, r)
				if msg, _ := out["error"].(string); code != http.StatusBadRequest || !strings.HasPrefix(msg, call.field+": ") {
					t.Errorf("POST %s %s: %d %v, want 400 naming %s", call.path, call.body, code, out, call.field)
				}
			}
			if len(f.reqs) != 0 {
				t.Errorf("submitted %+v", f.reqs)
			}
		})
	}
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}
