package webhook

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// Unverified bodies from many clients at once: their number and the
// memory they hold are bounded, the ones beyond are refused at once with
// Retry-After, and a real (small, signed) webhook still gets through.

// dialFrom connects to s from the loopback address ip (127.0.0.0/8 is all
// the machine's own on Linux), so that one test plays several clients.
func dialFrom(t *testing.T, s *Server, ip string) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: 2 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	c, err := d.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// stallBody starts an unsigned GitHub webhook from ip whose chunked body
// sends n bytes and then nothing more.
func stallBody(t *testing.T, s *Server, ip string, n int) net.Conn {
	t.Helper()
	c := dialFrom(t, s, ip)
	fmt.Fprintf(c, "POST /webhook HTTP/1.1\r\nHost: x\r\nX-GitHub-Event: push\r\nX-GitHub-Delivery: stall\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
	for sent := 0; sent < n; {
		chunk := min(n-sent, 32<<10)
		fmt.Fprintf(c, "%x\r\n%s\r\n", chunk, bytes.Repeat([]byte(" "), chunk))
		sent += chunk
	}
	return c
}

// waitGate waits until the gate holds want bodies and at least held bytes
// of budget.
func waitGate(t *testing.T, s *Server, want int, held int64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		s.bodies.mu.Lock()
		reading, h := s.bodies.reading, s.bodies.held
		s.bodies.mu.Unlock()
		if reading == want && h >= held {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the gate holds %d bodies and %d bytes, want %d and at least %d", reading, h, want, held)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// answerOn sends raw on c and reads the answer, which must come within d.
func answerOn(t *testing.T, c net.Conn, raw string, d time.Duration) *http.Response {
	t.Helper()
	if raw != "" {
		if _, err := io.WriteString(c, raw); err != nil {
			t.Fatal(err)
		}
	}
	_ = c.SetReadDeadline(time.Now().Add(d))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no answer within %s: %v", d, err)
	}
	resp.Body.Close()
	return resp
}

// signedFrom sends a signed push to the release branch from ip and returns
// the status and how long the answer took.
func signedFrom(t *testing.T, s *Server, ip, delivery string) (int, time.Duration) {
	t.Helper()
	body := githubPush("refs/heads/release", strings.Repeat("a", 40))
	r := signedGitHub(body, "")
	var b strings.Builder
	fmt.Fprintf(&b, "POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n", len(body))
	r.Header.Set("X-GitHub-Delivery", delivery)
	for k, v := range r.Header {
		b.WriteString(k + ": " + v[0] + "\r\n")
	}
	b.WriteString("\r\n" + string(body))
	start := time.Now()
	resp := answerOn(t, dialFrom(t, s, ip), b.String(), 2*time.Second)
	return resp.StatusCode, time.Since(start)
}

func raw(headers string) string {
	return "POST /webhook HTTP/1.1\r\nHost: x\r\nX-GitHub-Event: push\r\nContent-Length: 10\r\n" + headers + "\r\n"
}

// TestBodiesPerClientAreBounded: one client may have MaxBodiesPerClient
// bodies in flight; its next is answered 429 with Retry-After before a
// byte of it is read, while another client's signed push is queued.
func TestBodiesPerClientAreBounded(t *testing.T) {
	s, w := openServer(t, func(c *Config) { c.Limits.BodyTimeout = 5 * time.Second; c.Limits.ReadTimeout = 5 * time.Second })
	for range DefaultMaxBodiesPerClient {
		stallBody(t, s, "127.0.0.1", 100)
	}
	waitGate(t, s, DefaultMaxBodiesPerClient, 0)
	resp := answerOn(t, dialFrom(t, s, "127.0.0.1"), raw(""), time.Second)
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Errorf("body %d from one client: %d (Retry-After %q), want 429 with Retry-After", DefaultMaxBodiesPerClient+1, resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if code, took := signedFrom(t, s, "127.0.0.2", "real-1"); code != http.StatusAccepted || took > time.Second {
		t.Errorf("a signed push from another client: %d after %s, want 202 within 1s", code, took)
	}
	if n := len(w.List()); n != 1 {
		t.Errorf("%d deployments, want the signed push's 1", n)
	}
}

// TestBodiesInAllAreBounded: beyond MaxBodies in flight, from any
// clients, the next body is answered 503 with Retry-After at once.
func TestBodiesInAllAreBounded(t *testing.T) {
	s, _ := openServer(t, func(c *Config) {
		c.Limits.MaxBodies, c.Limits.BodyTimeout, c.Limits.ReadTimeout = 3, 5*time.Second, 5*time.Second
	})
	for i := range 3 {
		stallBody(t, s, fmt.Sprintf("127.0.0.%d", 10+i), 100)
	}
	waitGate(t, s, 3, 0)
	resp := answerOn(t, dialFrom(t, s, "127.0.0.20"), raw(""), time.Second)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Errorf("a body beyond MaxBodies: %d (Retry-After %q), want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
}

// TestBodyBudget: big bodies from several clients share BodyBudget beyond
// their first 64 KiB each; the one that would pass it is answered 503,
// and a small signed push, within its free part, is still queued.
func TestBodyBudget(t *testing.T) {
	s, w := openServer(t, func(c *Config) {
		c.BodyLimit, c.Limits.BodyBudget = 1<<20, 300<<10
		c.Limits.BodyTimeout, c.Limits.ReadTimeout = 5*time.Second, 5*time.Second
	})
	stallBody(t, s, "127.0.0.10", 250<<10) // holds 256 KiB - 64 KiB of budget
	waitGate(t, s, 1, 192<<10)
	c := stallBody(t, s, "127.0.0.11", 250<<10) // needs as much again: over 300 KiB
	resp := answerOn(t, c, "", time.Second)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Errorf("a body past the budget: %d (Retry-After %q), want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if code, took := signedFrom(t, s, "127.0.0.12", "real-1"); code != http.StatusAccepted || took > time.Second {
		t.Errorf("a signed push while the budget is spent: %d after %s, want 202 within 1s", code, took)
	}
	if n := len(w.List()); n != 1 {
		t.Errorf("%d deployments, want the signed push's 1", n)
	}
	waitGate(t, s, 1, 0) // the refused body gave its budget back
}

// TestSlowBodyGivesItsPlaceBack: a body that stops arriving is cut after
// BodyTimeout, well before ReadTimeout, and its place is free again.
func TestSlowBodyGivesItsPlaceBack(t *testing.T) {
	s, _ := openServer(t, func(c *Config) { c.Limits.BodyTimeout, c.Limits.ReadTimeout = 300*time.Millisecond, 10*time.Second })
	start := time.Now()
	c := stallBody(t, s, "127.0.0.1", 100)
	resp := answerOn(t, c, "", 2*time.Second)
	if took := time.Since(start); took > time.Second || resp.StatusCode/100 == 2 {
		t.Errorf("a stalled body: %d after %s, want a refusal after about 300ms", resp.StatusCode, took)
	}
	waitGate(t, s, 0, 0)
}

// TestDefaultBodyLimit: without BodyLimit, a body over 1 MiB is refused
// (413, naming the variable that raises it) before its signature is
// checked.
func TestDefaultBodyLimit(t *testing.T) {
	s, _ := openServer(t, func(c *Config) { c.BodyLimit = 0 })
	c := stallBody(t, s, "127.0.0.1", 1<<20+1)
	resp := answerOn(t, c, "", 2*time.Second)
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("a 1 MiB + 1 body: %d, want 413", resp.StatusCode)
	}
	if s.cfg.BodyLimit != 1<<20 {
		t.Errorf("default body limit %d, want 1 MiB", s.cfg.BodyLimit)
	}
}
