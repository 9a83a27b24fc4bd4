package pgtest

import (
	"context"
	"fmt"
	"regexp"
)

// ServerOptions tune StartServer.
type ServerOptions struct {
	// Durable keeps fsync and full_page_writes on, as a production server
	// has them, so that a benchmark of commits measures what a real
	// server does (each commit waits for its WAL on the disk). Tests leave
	// it off (see startProcess).
	Durable bool
}

// StartServer starts a server for a program that is not a test (a
// benchmark: bench/webhook): the same server as Start's, without a
// testing.TB. The caller stops it with Close. It fails when PostgreSQL is
// not installed.
func StartServer(ctx context.Context, opts ServerOptions) (*Server, error) {
	srv, err := start(ctx, opts.Durable)
	if err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	return srv, nil
}

// Close stops a server from StartServer (a fast shutdown, when it runs)
// and removes its folder.
func (s *Server) Close() error { return s.close() }

// databaseName is what CreateDatabase accepts: the name goes into SQL as
// it is.
var databaseName = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)

// CreateDatabase creates the empty database name (lower-case letters,
// digits and _) on s and returns its URL.
func (s *Server) CreateDatabase(ctx context.Context, name string) (string, error) {
	if !databaseName.MatchString(name) {
		return "", fmt.Errorf("pgtest: database name %q: want %s", name, databaseName)
	}
	if err := s.exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", fmt.Errorf("pgtest: %w", err)
	}
	return s.url(name), nil
}

// Pid is the running postmaster's process id (its backends are its
// children), 0 when s is stopped.
func (s *Server) Pid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return 0
	}
	return s.proc.pid
}
