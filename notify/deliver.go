package notify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"
)

// message is one POST waiting to be sent.
type message struct {
	url  string
	body []byte
	// what names it in logs: "deployment.started 20261125-…".
	what string
}

// sink is one destination: a bounded queue and the goroutine that
// delivers it, in order.
type sink struct {
	name   string // "notify" or "bitbucket", for logs
	where  string // scheme://host of the destination: all that is logged of it
	token  string // sent as a bearer token when set; never logged
	secret string // the full base URL, redacted from anything logged
	cfg    Config
	log    *slog.Logger
	queue  chan message
	// lost counts the messages given up because the sink was stopped.
	lost   atomic.Int64
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
}

func newSink(cfg Config, log *slog.Logger, name, base, token string) (*sink, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errors.New("not an http:// or https:// URL")
	}
	s := &sink{
		name: name, where: u.Scheme + "://" + u.Host, token: token, secret: base,
		cfg: cfg, log: log.With("destination", name), queue: make(chan message, cfg.QueueSize), done: make(chan struct{}),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	go s.run()
	return s, nil
}

// enqueue queues m without ever waiting: when the queue is full, m is
// dropped (and logged).
func (s *sink) enqueue(m message) {
	select {
	case s.queue <- m:
	default:
		s.log.Warn("notification dropped: too many waiting", "to", s.where, "what", m.what, "queued", cap(s.queue))
	}
}

func (s *sink) run() {
	defer close(s.done)
	for m := range s.queue {
		if s.ctx.Err() != nil || !s.deliver(m) && s.ctx.Err() != nil {
			s.lost.Add(1)
		}
	}
}

// stop ends the goroutine without delivering what is queued.
func (s *sink) stop() {
	s.cancel()
	close(s.queue)
	<-s.done
}

// drain closes the queue and waits until it has been delivered, or ctx
// ends: then it stops the delivery under way and reports what was lost.
func (s *sink) drain(ctx context.Context) error {
	close(s.queue)
	select {
	case <-s.done:
		return nil
	case <-ctx.Done():
	}
	s.cancel()
	<-s.done
	if n := s.lost.Load(); n > 0 {
		return fmt.Errorf("%s: %d notification(s) not sent before the deadline", s.name, n)
	}
	return nil
}

// deliver tries m up to Attempts times: again after a network error, a 5xx
// or a 429, waiting Backoff, then twice as long each time; not after any
// other answer. It reports whether m was delivered.
func (s *sink) deliver(m message) bool {
	wait := s.cfg.Backoff
	for attempt := 1; ; attempt++ {
		code, excerpt, err := s.post(m)
		if err == nil {
			s.log.Debug("notification sent", "to", s.where, "what", m.what, "status", code, "attempts", attempt)
			return true
		}
		retry := code == 0 || code >= 500 || code == http.StatusTooManyRequests
		if !retry || attempt >= s.cfg.Attempts || s.ctx.Err() != nil {
			s.log.Error("notification not sent", "to", s.where, "what", m.what, "status", code, "body", excerpt,
				"error", s.redact(err.Error()), "attempts", attempt)
			return false
		}
		s.log.Warn("notification failed, will retry", "to", s.where, "what", m.what, "status", code, "body", excerpt,
			"error", s.redact(err.Error()), "attempt", attempt, "retry_in", wait)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-s.ctx.Done():
			t.Stop()
		}
		wait *= 2
	}
}

// post sends m once. code is the answer's status (0 when there was none),
// excerpt the start of an unsuccessful answer's body.
func (s *sink) post(m message) (code int, excerpt string, err error) {
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, m.url, bytes.NewReader(m.body))
	if err != nil {
		return 0, "", errors.New("bad request URL")
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "pushdeploy")
	if s.token != "" {
		req.Header.Set("Authorization", "Bearer "+s.token)
	}
	resp, err := s.cfg.Client.Do(req)
	if err != nil {
		// A *url.Error names the whole URL, which may be the secret: keep
		// only what went wrong.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return 0, "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode/100 == 2 {
		return resp.StatusCode, "", nil
	}
	err = fmt.Errorf("answered %s", resp.Status)
	if loc := resp.Header.Get("Location"); resp.StatusCode/100 == 3 && loc != "" {
		if u, perr := url.Parse(loc); perr == nil {
			err = fmt.Errorf("answered %s: a redirect to %s://%s, not followed", resp.Status, u.Scheme, u.Host)
		}
	}
	return resp.StatusCode, s.redact(excerptOf(body)), err
}

// excerptOf is the start of a body, on one line.
func excerptOf(b []byte) string {
	s := strings.Join(strings.Fields(string(b)), " ")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// redact removes the token and the destination's full URL from s.
func (s *sink) redact(text string) string {
	for _, secret := range []string{s.token, s.secret} {
		if secret != "" {
			text = strings.ReplaceAll(text, secret, "[redacted]")
		}
	}
	return text
}

// NewClient returns the client notifications are sent with. It follows a
// redirect only to the same scheme and host, and only one that keeps the
// method and body (307, 308), at most 3 times: a POST that carries a token
// must not be sent on elsewhere. It uses the proxy of the environment
// (HTTPS_PROXY, NO_PROXY), as most outbound HTTP on a server must.
func NewClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = http.ProxyFromEnvironment
	return &http.Client{
		Transport: tr,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			first := via[0].URL
			switch {
			case len(via) > 3,
				req.URL.Scheme != first.Scheme || req.URL.Host != first.Host,
				req.Response == nil,
				req.Response.StatusCode != http.StatusTemporaryRedirect && req.Response.StatusCode != http.StatusPermanentRedirect:
				return http.ErrUseLastResponse
			}
			return nil
		},
	}
}
