package history

import (
	"context"
	"database/sql/driver"
	"errors"
	"io"
	"net"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// Unreachable reports whether err, from OpenPostgres or a call on a
// PostgreSQL database, is the database out of reach — no answer in time,
// the connection refused or cut, the server starting up, shutting down or
// out of connections — which trying again later may cure. A wrong
// password, a database that does not exist or a schema written by a
// newer pushdeploy is not: the database answered, and says no. serve
// waits for an unreachable database at start-up; the CLI does not.
func Unreachable(err error) bool {
	if err == nil || errors.Is(err, ErrNewerSchema) {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "57P01", "57P02", "57P03", // shut down by an admin, a crash; starting up
			"53300": // too many connections
			return true
		}
		return strings.HasPrefix(pgErr.Code, "08") // connection exception
	}
	var connErr *pgconn.ConnectError
	var netErr net.Error
	return errors.As(err, &connErr) || errors.As(err, &netErr) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, driver.ErrBadConn) || errors.Is(err, context.DeadlineExceeded)
}
