package webhook

import (
	"errors"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
)

// A webhook's body must be held whole before its signature can be
// checked, so until then anyone who can reach /webhook decides what it
// holds. bodyGate bounds that memory for every unverified body at once:
// how many are read at a time (in all, and per client), and how many
// bytes they hold beyond the first bodyFree bytes of each. A forge sends
// a few KiB in one go, so a real webhook needs one free place and no
// budget; a flood of big or slow bodies is refused with 503 (or 429 per
// client) and Retry-After instead of growing the process.

// Defaults of the body gate (Limits).
const (
	DefaultMaxBodies          = 64
	DefaultMaxBodiesPerClient = 4
	// DefaultBodyBudget is the bytes unverified bodies may hold beyond
	// their first bodyFree bytes each; at least twice the body limit.
	DefaultBodyBudget  = 16 << 20
	DefaultBodyTimeout = 10 * time.Second
)

// bodyFree is the part of each body that needs no budget: a real push
// payload fits in it, so a flood of big bodies does not delay it.
const bodyFree = 64 << 10

// bodyRetry is the Retry-After of a refused body, in seconds.
const bodyRetry = "5"

// The gate's refusals.
var (
	errBodiesBusy  = errors.New("too many webhook bodies are being read")
	errClientBusy  = errors.New("too many webhook bodies from this client are being read")
	errBudgetSpent = errors.New("webhook bodies being read hold all the memory allowed to them")
)

type bodyGate struct {
	maxBodies, maxPerClient int
	budget                  int64

	mu        sync.Mutex
	reading   int
	perClient map[string]int
	held      int64 // budget in use
}

func newBodyGate(l Limits, bodyLimit int64) *bodyGate {
	g := &bodyGate{maxBodies: l.MaxBodies, maxPerClient: l.MaxBodiesPerClient, budget: l.BodyBudget, perClient: map[string]int{}}
	if g.maxBodies <= 0 {
		g.maxBodies = DefaultMaxBodies
	}
	if g.maxPerClient <= 0 {
		g.maxPerClient = DefaultMaxBodiesPerClient
	}
	if g.budget <= 0 {
		g.budget = max(DefaultBodyBudget, 2*bodyLimit)
	}
	return g
}

// bodyPass is one body's place in the gate.
type bodyPass struct {
	g      *bodyGate
	client string
	held   int64
}

// enter takes a place for a body from client, or refuses.
func (g *bodyGate) enter(client string) (*bodyPass, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	switch {
	case g.reading >= g.maxBodies:
		return nil, errBodiesBusy
	case g.perClient[client] >= g.maxPerClient:
		return nil, errClientBusy
	}
	g.reading++
	g.perClient[client]++
	return &bodyPass{g: g, client: client}, nil
}

// hold makes the pass's budget cover a buffer of size bytes.
func (p *bodyPass) hold(size int) error {
	need := int64(max(size-bodyFree, 0)) - p.held
	if need <= 0 {
		return nil
	}
	p.g.mu.Lock()
	defer p.g.mu.Unlock()
	if p.g.held+need > p.g.budget {
		return errBudgetSpent
	}
	p.g.held += need
	p.held += need
	return nil
}

// leave gives the place and its budget back.
func (p *bodyPass) leave() {
	p.g.mu.Lock()
	defer p.g.mu.Unlock()
	p.g.reading--
	p.g.held -= p.held
	p.held = 0
	uncount(p.g.perClient, p.client)
}

// read reads r whole (r stops at the body limit), growing its buffer only
// as far as the budget allows.
func (p *bodyPass) read(r io.Reader, limit int64) ([]byte, error) {
	buf := make([]byte, 0, min(8<<10, limit+1))
	for {
		if len(buf) == cap(buf) {
			size := int(min(int64(2*cap(buf)), limit+1))
			if err := p.hold(size); err != nil {
				return nil, err
			}
			grown := make([]byte, len(buf), size)
			copy(grown, buf)
			buf = grown
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if errors.Is(err, io.EOF) {
			return buf, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// bodyError is why a webhook body was not read whole: an answer, and the
// outcome counted.
type bodyError struct {
	err     error
	outcome string
	reason  string
}

// readBody reads an unverified webhook body through the gate: at most
// BodyLimit bytes, within Limits.BodyTimeout. The returned release gives
// its memory back once the body is no longer needed.
func (s *Server) readBody(c echo.Context) ([]byte, func(), *bodyError) {
	r := c.Request()
	limit := s.cfg.BodyLimit
	src := r.Body
	if r.ContentLength > limit {
		// Declared over the limit: refused without reading a byte of it
		// (closed unread, the connection is closed after the answer).
		r.Body.Close()
		src = declaredTooBig{limit}
	}
	pass, err := s.bodies.enter(clientKey(c.RealIP()))
	if err != nil {
		return nil, nil, s.refuseBody(c, err)
	}
	// A forge sends its body right after the headers: a body that takes
	// longer than BodyTimeout holds its place for nothing. (Without a
	// connection to set it on, as under httptest, there is none.)
	_ = http.NewResponseController(c.Response()).SetReadDeadline(time.Now().Add(s.cfg.Limits.bodyTimeout()))
	body, err := pass.read(http.MaxBytesReader(c.Response(), src, limit), limit)
	var tooBig *http.MaxBytesError
	switch {
	case err == nil:
		return body, pass.leave, nil
	case errors.As(err, &tooBig):
		pass.leave()
		return nil, nil, &bodyError{outcome: outcomeTooLarge, reason: "body too large",
			err: fail(http.StatusRequestEntityTooLarge, "body over the limit of %d bytes (DEPLOY_WEBHOOK_MAX_BODY)", limit)}
	case errors.Is(err, errBudgetSpent):
		pass.leave()
		return nil, nil, s.refuseBody(c, err)
	default:
		pass.leave()
		return nil, nil, &bodyError{outcome: outcomeBadRequest, reason: "reading the body",
			err: fail(http.StatusBadRequest, "reading the body: %v", err)}
	}
}

// refuseBody answers a body the gate has no room for: 429 when this
// client has too many bodies in flight, else 503; both with Retry-After,
// and the connection closed (unread: net/http would otherwise read the
// rest of a small body before it answers).
func (s *Server) refuseBody(c echo.Context, err error) *bodyError {
	h := c.Response().Header()
	h.Set("Retry-After", bodyRetry)
	h.Set(echo.HeaderConnection, "close")
	if errors.Is(err, errClientBusy) {
		return &bodyError{outcome: outcomeRateLimited, reason: "too many bodies from this client",
			err: fail(http.StatusTooManyRequests, "%v (at most %d at once); retry after %s s", err, s.bodies.maxPerClient, bodyRetry)}
	}
	return &bodyError{outcome: outcomeUnavailable, reason: "server busy reading bodies",
		err: fail(http.StatusServiceUnavailable, "%v; retry after %s s", err, bodyRetry)}
}
