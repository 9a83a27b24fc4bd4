package webhook

import (
	"net/http"
	"time"
)

// Limits bound what one client can make the server hold: how long it may
// take to send its headers and body, how big the headers may be, how long
// an idle connection stays open. The zero value of a field means its
// default; tests shorten them. docs/serve.md lists the defaults.
type Limits struct {
	// ReadHeaderTimeout cuts a client that sends its request line and
	// headers slowly (slowloris): forges send them in one packet.
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading a whole request, body included: a
	// webhook body of BodyLimit arrives in seconds on any real link.
	ReadTimeout time.Duration
	// WriteTimeout bounds writing an answer.
	WriteTimeout time.Duration
	// IdleTimeout closes a kept-alive connection that sends no new request.
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds the request line and headers (a bigger
	// request is answered 431): forges send a few KiB at most.
	MaxHeaderBytes int

	// The unverified webhook bodies held at once (bodies.go): how many
	// in all and per client, and the bytes they hold beyond the first
	// 64 KiB of each (default: 16 MiB, or twice the body limit if that
	// is more). BodyTimeout bounds reading one body.
	MaxBodies          int
	MaxBodiesPerClient int
	BodyBudget         int64
	BodyTimeout        time.Duration
}

// Default limits of Open.
const (
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultReadTimeout       = 60 * time.Second
	DefaultWriteTimeout      = 60 * time.Second
	DefaultIdleTimeout       = 2 * time.Minute
	DefaultMaxHeaderBytes    = 64 << 10
)

// bodyTimeout is how long one webhook body may take to arrive, counted
// from the end of its headers: BodyTimeout, never more than ReadTimeout.
func (l Limits) bodyTimeout() time.Duration {
	return min(orDefault(l.BodyTimeout, DefaultBodyTimeout), orDefault(l.ReadTimeout, DefaultReadTimeout))
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// server returns an http.Server for h with these limits.
func (l Limits) server(h http.Handler) *http.Server {
	or := orDefault
	maxHeader := l.MaxHeaderBytes
	if maxHeader <= 0 {
		maxHeader = DefaultMaxHeaderBytes
	}
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: or(l.ReadHeaderTimeout, DefaultReadHeaderTimeout),
		ReadTimeout:       or(l.ReadTimeout, DefaultReadTimeout),
		WriteTimeout:      or(l.WriteTimeout, DefaultWriteTimeout),
		IdleTimeout:       or(l.IdleTimeout, DefaultIdleTimeout),
		MaxHeaderBytes:    maxHeader,
	}
}

// declaredTooBig stands for a body whose Content-Length is over the limit:
// reading it fails at once, as http.MaxBytesReader would after the limit.
type declaredTooBig struct{ limit int64 }

func (b declaredTooBig) Read([]byte) (int, error) { return 0, &http.MaxBytesError{Limit: b.limit} }

func (declaredTooBig) Close() error { return nil }
