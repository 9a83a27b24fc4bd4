package history

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
)

// Owner is the process that runs a deployment: recorded with the
// deployment, so that a later start can tell a deployment whose process is
// gone (interrupted) from one another live process is still running (a
// CLI deploy beside serve, both writing the same history).
type Owner struct {
	PID  int
	Host string // the machine's host name
	// Start tells this process apart from a later one with the same pid:
	// the boot id and the process's start time in clock ticks since boot
	// (/proc/<pid>/stat, field 22), as "bootid:ticks".
	Start string
}

// Self returns this process as an Owner.
func Self() Owner {
	host, _ := os.Hostname()
	pid := os.Getpid()
	return Owner{PID: pid, Host: host, Start: startMarker(pid)}
}

// Alive reports whether o's process still runs, as seen from self. The
// rule, from the safe side: a deployment is only declared interrupted
// when its process is known to be gone.
//
//   - The same process as self: alive.
//   - No owner recorded (pid 0): gone.
//   - Another machine (host name differs): alive, since it cannot be
//     looked at from here. Its rows stay "running" until a deployer on
//     that machine starts.
//   - The same machine, another boot (the boot id differs): gone.
//   - No process with that pid: gone.
//   - A process with that pid that started at another time: gone (the
//     pid was reused).
//   - Otherwise: alive.
func (o Owner) Alive(self Owner) bool {
	if o == self {
		return true
	}
	if o.PID <= 0 {
		return false // no owner recorded: no live process writes such rows
	}
	if o.Host != self.Host {
		return true // another machine: cannot tell
	}
	oBoot, _, _ := strings.Cut(o.Start, ":")
	selfBoot, _, _ := strings.Cut(self.Start, ":")
	if oBoot != "" && selfBoot != "" && oBoot != selfBoot {
		return false
	}
	now := startMarker(o.PID)
	if now == "" {
		// No such process (or /proc cannot tell): with a /proc that
		// answers for ourselves, it is gone.
		_, err := os.Stat("/proc/" + strconv.Itoa(o.PID))
		return !errors.Is(err, fs.ErrNotExist)
	}
	return o.Start == "" || now == o.Start
}

// startMarker returns "bootid:starttime" for pid, or "" when the process
// does not exist (or /proc is not there).
func startMarker(pid int) string {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return ""
	}
	// The command name (field 2) is in parentheses and may hold spaces:
	// count the fields after its closing one. Field 22 is starttime.
	i := strings.LastIndexByte(string(stat), ')')
	if i < 0 {
		return ""
	}
	fields := strings.Fields(string(stat[i+1:]))
	if len(fields) < 20 {
		return ""
	}
	boot, _ := os.ReadFile("/proc/sys/kernel/random/boot_id")
	return strings.TrimSpace(string(boot)) + ":" + fields[19]
}

// interruptedError is the error of a deployment found interrupted.
func interruptedError(o Owner) string {
	return fmt.Sprintf("interrupted: the deployer (pid %d on %s) stopped before the deployment finished", o.PID, o.Host)
}

// markInterrupted turns every queued or running deployment whose owner is
// gone into an interrupted one, finished now; so are its running hosts and
// steps (queued hosts become skipped). It returns how many. A deployment
// that finished meanwhile (its owner was alive after all, or another
// deployer starting at the same moment marked it first) is left as it is.
func (r *records) markInterrupted(ctx context.Context) (int, error) {
	n := 0
	err := r.tx(ctx, func(tx *sql.Tx) error {
		n = 0
		unfinished, err := r.unfinishedOwners(ctx, tx)
		if err != nil {
			return err
		}
		now := fmtTime(r.opts.Now())
		for _, u := range unfinished {
			if r.opts.Alive(u.owner) {
				continue
			}
			changed, err := r.interruptTx(ctx, tx, u.id, now, interruptedError(u.owner))
			if err != nil {
				return err
			}
			if changed {
				n++
			}
		}
		return nil
	})
	return n, err
}

// interruptTx marks deployment id interrupted, finished at now with
// reason as its error, when it is queued or running; so are its running
// hosts and steps (queued hosts become skipped). changed is false when
// the deployment is not unfinished (finished, or not there). The row
// becomes this store's (its owner): the deployer that lost the
// deployment, should it come back, cannot write over the interruption
// (Save leaves a row another owner finished as it is).
func (r *records) interruptTx(ctx context.Context, tx *sql.Tx, id, now, reason string) (changed bool, err error) {
	self := r.opts.Self
	res, err := tx.ExecContext(ctx, r.q(`UPDATE deployments SET status = 'interrupted', finished = ?, error = ?,
			owner_pid = ?, owner_host = ?, owner_start = ?
		WHERE id = ? AND finished IS NULL AND status IN ('queued', 'running')`), now, reason, self.PID, self.Host, self.Start, id)
	if err != nil {
		return false, err
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return false, err
	}
	if _, err := tx.ExecContext(ctx, r.q(`UPDATE deployment_hosts SET status = CASE status
		WHEN 'running' THEN 'interrupted' WHEN 'queued' THEN 'skipped' ELSE status END
		WHERE deployment_id = ?`), id); err != nil {
		return false, err
	}
	if _, err := tx.ExecContext(ctx, r.q(`UPDATE steps SET status = 'interrupted'
		WHERE deployment_id = ? AND status = 'running'`), id); err != nil {
		return false, err
	}
	return true, nil
}

// Interrupt records deployment id as interrupted with reason as its error
// (a deployer expired the claim of another that died: several deployers
// on one database), when it is queued or running; a finished one is left
// as it is. found is false when the record has no deployment id.
func (r *records) Interrupt(ctx context.Context, id, reason string) (found bool, err error) {
	err = r.tx(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, r.q(`SELECT COUNT(*) FROM deployments WHERE id = ?`), id).Scan(&n); err != nil {
			return err
		}
		found = n > 0
		_, err := r.interruptTx(ctx, tx, id, fmtTime(r.opts.Now()), reason)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("interrupt deployment %s: %w", id, err)
	}
	return found, nil
}

type ownedRow struct {
	id    string
	owner Owner
}

func (r *records) unfinishedOwners(ctx context.Context, tx *sql.Tx) ([]ownedRow, error) {
	rows, err := tx.QueryContext(ctx, `SELECT id, owner_pid, owner_host, owner_start FROM deployments
		WHERE finished IS NULL AND status IN ('queued', 'running')`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []ownedRow
	for rows.Next() {
		var o ownedRow
		if err := rows.Scan(&o.id, &o.owner.PID, &o.owner.Host, &o.owner.Start); err != nil {
			return nil, err
		}
		out = append(out, o)
	}
	return out, rows.Err()
}
