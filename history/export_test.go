package history

import "database/sql"

// What the tests of package history_test reach inside.
var (
	DSN         = dsn
	Migrate     = migrate
	Migrations  = migrations
	FmtTime     = fmtTime
	StartMarker = startMarker
)

// DB is the store's database, for tests that look at its rows.
func (s *SQLite) DB() *sql.DB { return s.db }
