package queue

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// A turn is a small lease on a name (queue_turns): the deployers sharing
// the database take it in turn, one at a time, for work that needs doing
// once however many deployers run (polling an app's branch). It is not a
// claim: nothing is fenced, since the work it guards (asking for a
// deployment) goes through Enqueue, which the database orders anyway. A
// turn only spares the forge and the database the same work from every
// deployer.
//
// The holder keeps its turn by taking it again before ttl has passed; a
// turn that was not taken again for ttl, by the database's clock, is free
// for anyone. One statement decides (an upsert that changes the row only
// for its holder or once it has expired), so two deployers taking a free
// turn at the same moment cannot both get it.

// TakeTurn takes, or keeps, the turn called key for this Queue's Owner
// for ttl (by the database's clock, in whole milliseconds): it succeeds
// when nobody holds the turn, when the Owner holds it already, or when
// its holder has not taken it again within its ttl. It returns who holds
// the turn now: the Owner when it succeeded, else the other holder's
// name.
func (q *Queue) TakeTurn(ctx context.Context, key string, ttl time.Duration) (holder string, err error) {
	if key == "" || ttl < time.Millisecond {
		return "", fmt.Errorf("turn %q: a name and a ttl of at least 1ms are required", key)
	}
	// Strictly past its end: the end is the database's millisecond, rounded
	// down, plus ttl, so "at or past" could free a turn up to a millisecond
	// before ttl had passed.
	res, err := q.db.ExecContext(ctx, q.d.sql(`INSERT INTO queue_turns (turn, owner, until_ms) VALUES (?, ?, NOW_MS + ?)
		ON CONFLICT (turn) DO UPDATE SET owner = excluded.owner, until_ms = excluded.until_ms
		WHERE queue_turns.owner = excluded.owner OR queue_turns.until_ms < NOW_MS`), key, q.owner, ttl.Milliseconds())
	if err != nil {
		return "", fmt.Errorf("take turn %s: %w", key, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return "", fmt.Errorf("take turn %s: %w", key, err)
	}
	if n > 0 {
		return q.owner, nil
	}
	// Someone else's, for the logs: read apart, so it may have changed
	// hands (or expired) since; an expired one is still named.
	err = q.db.QueryRowContext(ctx, q.d.sql(`SELECT owner FROM queue_turns WHERE turn = ?`), key).Scan(&holder)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil // released meanwhile: nobody holds it
	}
	if err != nil {
		return "", fmt.Errorf("turn %s: holder: %w", key, err)
	}
	return holder, nil
}

// ReleaseTurn gives up the turn called key if this Queue's Owner holds
// it, so that another deployer can take it at once rather than after its
// ttl (a deployer stopping). It is not an error when the Owner does not
// hold it.
func (q *Queue) ReleaseTurn(ctx context.Context, key string) error {
	if _, err := q.db.ExecContext(ctx, q.d.sql(`DELETE FROM queue_turns WHERE turn = ? AND owner = ?`), key, q.owner); err != nil {
		return fmt.Errorf("release turn %s: %w", key, err)
	}
	return nil
}
