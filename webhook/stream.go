package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/pushdeploy/pushdeploy/deploy"
)

// Live is what the event stream needs from the live hub (live.Hub): the
// events of a running or recent deployment.
type Live interface {
	// Subscribe follows deployment id from the event after Seq after. ok
	// is false when the hub does not know the deployment. The channel
	// gives the remembered events, then live ones, and closes after the
	// deployment's last event, or earlier when the subscriber fell behind
	// (then the last event received is not the end). cancel must be
	// called when done. Safe for concurrent use.
	Subscribe(id string, after int) (events <-chan deploy.Event, cancel func(), ok bool)
}

// EventLog is what the event stream needs from the event log the
// deployers of one database share (eventlog.Log): the events of a
// deployment another deployer runs (or ran), for a deployment the hub
// does not hold.
type EventLog interface {
	// Follow follows deployment id from the event after Seq after, as
	// Live's Subscribe does; ok is false (err nil) when the log does not
	// have the deployment; err when the log cannot be read. ctx bounds
	// the first look only. cancel must be called when done. Safe for
	// concurrent use.
	Follow(ctx context.Context, id string, after int) (events <-chan deploy.Event, cancel func(), ok bool, err error)
	// Running returns app's deployment that runs elsewhere (another
	// deployer, a command-line deploy), with each host's status and its
	// step as its only one; false when none does or the log cannot be
	// read. The answer may be a second old. Safe for concurrent use.
	Running(ctx context.Context, app string) (*deploy.Deployment, bool)
}

// eventJSON is one deploy.Event on the wire (the data: line of an SSE
// event).
type eventJSON struct {
	Seq          int             `json:"seq"`
	Kind         string          `json:"kind"`
	Time         time.Time       `json:"time"`
	DeploymentID string          `json:"deployment_id"`
	Status       string          `json:"status,omitempty"`
	Host         string          `json:"host,omitempty"`
	Step         string          `json:"step,omitempty"`
	Duration     float64         `json:"duration_s,omitempty"`
	Line         *string         `json:"line,omitempty"`
	Error        string          `json:"error,omitempty"`
	Deployment   *deploymentJSON `json:"deployment,omitempty"`
}

func toEventJSON(ev deploy.Event) eventJSON {
	j := eventJSON{
		Seq: ev.Seq, Kind: string(ev.Kind), Time: ev.Time, DeploymentID: ev.DeploymentID, Status: string(ev.Status),
		Host: ev.Host, Step: string(ev.Step), Duration: ev.Duration.Seconds(), Error: ev.Error,
	}
	if ev.Kind == deploy.EventOutput {
		j.Line = &ev.Line // an empty line is still a line
	}
	if ev.Deployment != nil {
		d := toJSON(ev.Deployment, false)
		j.Deployment = &d
	}
	return j
}

// finished reports whether a deployment's status is one it never leaves.
func finished(status string) bool {
	return status != string(deploy.StatusQueued) && status != string(deploy.StatusRunning)
}

// Timing of event streams: a comment every heartbeat keeps proxies from
// closing a quiet stream; each write may take up to streamWrite.
const (
	defaultHeartbeat = 15 * time.Second
	streamWrite      = 30 * time.Second
	// waitPoll is how often a stream for a queued deployment looks
	// whether it has started.
	waitPoll = 250 * time.Millisecond
)

// sse writes Server-Sent Events, extending the server's write deadline
// before each write (http.Server's WriteTimeout would otherwise cut long
// streams).
type sse struct {
	c  echo.Context
	rc *http.ResponseController
}

func newSSE(c echo.Context) *sse {
	// No read deadline to lift: net/http clears it once the request is
	// read. The write deadline is extended before each write.
	rc := http.NewResponseController(c.Response())
	h := c.Response().Header()
	h.Set(echo.HeaderContentType, "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	c.Response().WriteHeader(http.StatusOK)
	return &sse{c: c, rc: rc}
}

func (w *sse) write(s string) error {
	_ = w.rc.SetWriteDeadline(time.Now().Add(streamWrite)) // fails only without a deadline to extend
	if _, err := w.c.Response().Write([]byte(s)); err != nil {
		return err
	}
	return w.rc.Flush()
}

// event writes one event; id 0 writes no id: line.
func (w *sse) event(id int, kind string, data any) error {
	raw, err := json.Marshal(data)
	if err != nil {
		return err
	}
	var b strings.Builder
	if id > 0 {
		fmt.Fprintf(&b, "id: %d\n", id)
	}
	// JSON has no raw newlines, so one data: line carries it.
	fmt.Fprintf(&b, "event: %s\ndata: %s\n\n", kind, raw)
	return w.write(b.String())
}

// apiEvents streams a deployment's events (GET
// /api/deployments/{id}/events): one SSE event per deploy.Event, id = Seq
// so that a reconnecting client resumes with Last-Event-ID, then an end
// event when the deployment has ended. A client that falls behind gets a
// lagged event and the stream closes: reconnecting resumes it. A
// deployment the hub no longer holds gets a summary from the record.
func (s *Server) apiEvents(c echo.Context) error {
	ctx := c.Request().Context()
	id := c.Param("id")
	if len(id) > 64 {
		return fail(http.StatusNotFound, "no deployment with an id of %d bytes", len(id))
	}
	if strings.ContainsFunc(id, func(r rune) bool { return !(r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r == '-') }) {
		// Not a deployment id (and so never the overview's key in the
		// stream gate).
		return fail(http.StatusNotFound, "no deployment %q", id)
	}
	leave, err := s.streams.enter(clientKey(c.RealIP()), id)
	if err != nil {
		c.Response().Header().Set("Retry-After", streamRetry)
		return err
	}
	defer leave()
	after, _ := strconv.Atoi(c.Request().Header.Get("Last-Event-ID"))
	if after < 0 {
		after = 0
	}
	events, cancel, ok := s.subscribe(ctx, id, after)
	if !ok {
		rec, found, err := s.getDeployment(ctx, id)
		if err != nil {
			return err
		}
		if !found {
			return fail(http.StatusNotFound, "no deployment %q", id)
		}
		w := newSSE(c)
		if !finished(rec.Status) {
			// Queued: wait for it to start (or to be cancelled).
			events, cancel, ok, rec, err = s.waitStart(ctx, w, id, after)
			if err != nil {
				return nil // the client left, or the stream broke: nothing to answer
			}
		}
		if !ok {
			_ = s.summary(w, rec)
			return nil
		}
		defer cancel()
		_ = s.follow(ctx, w, id, events)
		return nil
	}
	defer cancel()
	_ = s.follow(ctx, newSSE(c), id, events)
	return nil
}

// Each event stream holds a connection and a goroutine for as long as its
// deployment runs, and (with DEPLOY_STATUS_PUBLIC) anyone may open one:
// they are bounded per client and per deployment. The event stream also
// counts against the API's rate limit (guard.go).
const (
	maxStreamsPerClient     = 8
	maxStreamsPerDeployment = 32
	streamRetry             = "5" // Retry-After of a refused stream, in seconds
)

// streamGate counts the open event streams.
type streamGate struct {
	mu            sync.Mutex
	perClient     map[string]int
	perDeployment map[string]int
}

// enter counts a stream of client for deployment id, or refuses it: 429
// beyond maxStreamsPerClient, 503 beyond maxStreamsPerDeployment.
func (g *streamGate) enter(client, id string) (leave func(), err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.perClient == nil {
		g.perClient, g.perDeployment = map[string]int{}, map[string]int{}
	}
	switch {
	case g.perClient[client] >= maxStreamsPerClient:
		return nil, fail(http.StatusTooManyRequests, "%s has %d event streams open, the most one client may; retry after %s s", client, maxStreamsPerClient, streamRetry)
	case g.perDeployment[id] >= maxStreamsPerDeployment:
		return nil, fail(http.StatusServiceUnavailable, "deployment %s has %d event streams open, the most it may; retry after %s s", id, maxStreamsPerDeployment, streamRetry)
	}
	g.perClient[client]++
	g.perDeployment[id]++
	return func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		uncount(g.perClient, client)
		uncount(g.perDeployment, id)
	}, nil
}

// uncount takes one from counts[key], forgetting the key at zero.
func uncount(counts map[string]int, key string) {
	if counts[key]--; counts[key] <= 0 {
		delete(counts, key)
	}
}

// subscribe follows deployment id from the hub, or when the hub does not
// hold it (another deployer runs it), from the event log. A log that
// cannot be read is as one without the deployment: the record answers.
func (s *Server) subscribe(ctx context.Context, id string, after int) (<-chan deploy.Event, func(), bool) {
	if s.cfg.Live != nil {
		if events, cancel, ok := s.cfg.Live.Subscribe(id, after); ok {
			return events, cancel, true
		}
	}
	if s.cfg.EventLog != nil {
		if events, cancel, ok, err := s.cfg.EventLog.Follow(ctx, id, after); err == nil && ok {
			return events, cancel, true
		}
	}
	return nil, nil, false
}

// waitStart waits, with heartbeats, until a queued deployment appears in
// the hub or the event log, or its record says it is over (it was
// cancelled).
func (s *Server) waitStart(ctx context.Context, w *sse, id string, after int) (<-chan deploy.Event, func(), bool, deploymentJSON, error) {
	poll := time.NewTicker(waitPoll)
	defer poll.Stop()
	beat := time.NewTicker(s.page.heartbeat)
	defer beat.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil, nil, false, deploymentJSON{}, ctx.Err()
		case <-beat.C:
			if err := w.write(": waiting for the deployment to start\n\n"); err != nil {
				return nil, nil, false, deploymentJSON{}, err
			}
		case <-poll.C:
			if events, cancel, ok := s.subscribe(ctx, id, after); ok {
				return events, cancel, true, deploymentJSON{}, nil
			}
			rec, found, err := s.getDeployment(ctx, id)
			if err != nil {
				return nil, nil, false, deploymentJSON{}, err
			}
			if !found || finished(rec.Status) || (s.cfg.Live == nil && s.cfg.EventLog == nil && rec.Status == string(deploy.StatusRunning)) {
				return nil, nil, false, rec, nil
			}
		}
	}
}

// follow writes events until the deployment ends (then an end event), the
// subscriber is dropped (a lagged event) or the client leaves.
func (s *Server) follow(ctx context.Context, w *sse, id string, events <-chan deploy.Event) error {
	beat := time.NewTicker(s.page.heartbeat)
	defer beat.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-beat.C:
			if err := w.write(": heartbeat\n\n"); err != nil {
				return err
			}
		case ev, ok := <-events:
			if !ok {
				// Closed without an end: the client resumed after the
				// end (nothing left to replay), or it was too slow, or
				// the deployment was forgotten.
				if rec, found, err := s.getDeployment(ctx, id); err == nil && found && finished(rec.Status) {
					return w.event(0, "end", map[string]string{"status": rec.Status})
				}
				return w.event(0, "lagged", map[string]string{
					"error": "this stream fell behind the deployment; reconnect with Last-Event-ID to resume"})
			}
			if err := w.event(ev.Seq, string(ev.Kind), toEventJSON(ev)); err != nil {
				return err
			}
			if ev.Kind == deploy.EventDeployment && finished(string(ev.Status)) {
				return w.event(0, "end", map[string]string{"status": string(ev.Status)})
			}
		}
	}
}

// summary tells a deployment the hub does not hold from its record: one
// summary event with its hosts and steps, then its end (or, for one that
// is still running somewhere the hub does not see, no end).
func (s *Server) summary(w *sse, rec deploymentJSON) error {
	if err := w.event(0, "summary", rec); err != nil {
		return err
	}
	if !finished(rec.Status) {
		return nil
	}
	return w.event(0, "end", map[string]string{"status": rec.Status})
}
