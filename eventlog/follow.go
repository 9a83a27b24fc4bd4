package eventlog

import (
	"context"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pushdeploy/pushdeploy/deploy"
	"github.com/pushdeploy/pushdeploy/live"
)

// defaultEndGrace is how long a follower keeps reading after the record says its
// deployment is over, for the events its deployer wrote last (the
// history and the log are written apart); a deployment whose deployer
// died never writes its end, and its follower stops then.
const defaultEndGrace = 5 * time.Second

// lookTimeout bounds the reads a request waits for (Follow's first look,
// Running): a database that does not answer must not hold up a page's
// stream, whose heartbeats keep it open.
const lookTimeout = 5 * time.Second

// Follow follows deployment id from the event after Seq after (0: from
// the start), as live.Hub's Subscribe does: ok is false (and err nil)
// when the log does not have the deployment (not started yet, or
// forgotten). The channel gives the events with Seq > after in order,
// then new ones as they are written, and is closed after the
// deployment's last event (see live.Ended), or without it when the record
// (Options.Records) says the deployment is over and nothing more comes,
// or when the log closes. cancel ends the following early (the channel
// closes); call it when done (more than once is fine). ctx bounds only
// the first look; the following lasts until cancel.
func (l *Log) Follow(ctx context.Context, id string, after int) (events <-chan deploy.Event, cancel func(), ok bool, err error) {
	if l.ctx.Err() != nil {
		return nil, nil, false, nil // closed
	}
	l.startListening()
	look, stop := context.WithTimeout(ctx, lookTimeout)
	defer stop()
	known, err := l.known(look, id)
	if err != nil || !known {
		return nil, nil, false, err
	}
	c := make(chan deploy.Event)
	done := make(chan struct{})
	wake := l.addWaker(id)
	l.wg.Add(1)
	go l.feed(id, after, c, done, wake) // ends with the deployment, on cancel, or when the log closes
	var once sync.Once
	return c, func() { once.Do(func() { close(done) }) }, true, nil
}

// feed hands the events of id after Seq after to c as the follower takes
// them, reading the log when woken and every Poll.
func (l *Log) feed(id string, after int, c chan<- deploy.Event, done <-chan struct{}, wake chan struct{}) {
	defer l.wg.Done()
	defer close(c)
	defer l.removeWaker(id, wake)
	poll := time.NewTicker(l.opts.Poll)
	defer poll.Stop()
	var over time.Time // when the record was first seen to say the deployment is over
	for {
		ctx, cancel := context.WithTimeout(l.ctx, 30*time.Second)
		evs, ended, err := l.read(ctx, id, after)
		if err == nil && len(evs) == 0 && over.IsZero() && l.isOver(ctx, id) {
			over = time.Now()
		}
		cancel()
		for _, ev := range evs {
			select {
			case c <- ev:
				after = ev.Seq
			case <-done:
				return
			case <-l.ctx.Done():
				return
			}
			if live.Ended(ev) {
				return
			}
		}
		if len(evs) == readLimit {
			continue // more to replay
		}
		if err == nil && ended {
			return // its end was read now, or before after: nothing more comes
		}
		if len(evs) == 0 && !over.IsZero() && time.Since(over) > l.endGrace {
			return // over without its end: its deployer died
		}
		// A failed read (the database away) is tried again at the next
		// poll: the follower waits, and resumes in order.
		select {
		case <-wake:
		case <-poll.C:
		case <-done:
			return
		case <-l.ctx.Done():
			return
		}
	}
}

// isOver tells whether the record says deployment id has ended; false
// without a record to ask, when it cannot be read, or when it has no
// record of the deployment (its deployer's recorder may not have written
// it yet).
func (l *Log) isOver(ctx context.Context, id string) bool {
	if l.opts.Records == nil {
		return false
	}
	d, found, err := l.opts.Records.Deployment(ctx, id)
	if err != nil || !found {
		return false
	}
	return d.Status != deploy.StatusQueued && d.Status != deploy.StatusRunning
}

func (l *Log) addWaker(id string) chan struct{} {
	c := make(chan struct{}, 1)
	l.wakeMu.Lock()
	defer l.wakeMu.Unlock()
	if l.wakers[id] == nil {
		l.wakers[id] = map[chan struct{}]struct{}{}
	}
	l.wakers[id][c] = struct{}{}
	return c
}

func (l *Log) removeWaker(id string, c chan struct{}) {
	l.wakeMu.Lock()
	defer l.wakeMu.Unlock()
	delete(l.wakers[id], c)
	if len(l.wakers[id]) == 0 {
		delete(l.wakers, id)
	}
}

// wake wakes the followers of id; "" wakes every follower.
func (l *Log) wake(id string) {
	l.wakeMu.Lock()
	defer l.wakeMu.Unlock()
	for dep, cs := range l.wakers {
		if id != "" && dep != id {
			continue
		}
		for c := range cs {
			select {
			case c <- struct{}{}:
			default: // already woken
			}
		}
	}
}

// listen wakes followers on the other deployers' writes (NOTIFY on
// notifyChannel), over a connection of its own, until the log closes; a
// lost connection is opened again (followers poll meanwhile).
func (l *Log) listen(cfg *pgx.ConnConfig) {
	defer l.wg.Done()
	backoff := time.Duration(0)
	for l.ctx.Err() == nil {
		err := l.listenOnce(cfg)
		l.wake("") // what was notified meanwhile is lost: look now
		if l.ctx.Err() != nil {
			return
		}
		l.opts.Logger.Debug("event log: listen", "error", err)
		backoff = min(max(2*backoff, 500*time.Millisecond), 10*time.Second)
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-l.ctx.Done():
			t.Stop()
			return
		}
	}
}

func (l *Log) listenOnce(cfg *pgx.ConnConfig) error {
	conn, err := pgx.ConnectConfig(l.ctx, cfg.Copy())
	if err != nil {
		return err
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		conn.Close(ctx) //nolint:errcheck // the connection is done with either way
	}()
	if _, err := conn.Exec(l.ctx, "LISTEN "+notifyChannel); err != nil {
		return err
	}
	l.wake("") // rows written before LISTEN took effect
	for {
		n, err := conn.WaitForNotification(l.ctx)
		if err != nil {
			return err
		}
		l.wake(n.Payload)
	}
}
