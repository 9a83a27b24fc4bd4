package queue

import (
	"context"
	"errors"
	"time"

	"github.com/pushdeploy/pushdeploy/deploy"
)

// Hold keeps c's lease alive while the job runs: it renews every third of
// the lease until stop is called or ctx ends. The context it returns ends,
// with a cause that is ErrLost, as soon as the claim may no longer be this
// holder's: Renew answered ErrLost, or (deploy.LapsedError, which says
// how long) no renewal has succeeded for most of a lease
// (nine tenths), counted on this machine's clock from when the last
// successful renewal was sent. That is before the database's lease can
// end, since the database started its lease no earlier than the request
// was sent: the holder learns first, and never works past its lease
// unknowingly (while cut from the database, say). Stop the deployment when
// held ends; call stop before Finish. While held, only Hold touches c
// (it updates c.Expires).
func (q *Queue) Hold(ctx context.Context, c *Claim) (held context.Context, stop func()) {
	held, lose := context.WithCancelCause(ctx)
	loop, end := context.WithCancel(held)
	done := make(chan struct{})
	deadline := func() time.Time { return c.renewed.Add(q.lease * 9 / 10) }
	timer := time.AfterFunc(time.Until(deadline()), func() { lose(&deploy.LapsedError{For: time.Since(c.renewed)}) })
	go func() {
		defer close(done)
		defer timer.Stop()
		tick := time.NewTicker(q.lease / 3)
		defer tick.Stop()
		for {
			select {
			case <-loop.Done():
				return
			case <-tick.C:
			}
			// A try must not outlast the deadline (a cut network would
			// hold it for as long as TCP tries).
			try, cancel := context.WithDeadline(loop, deadline())
			err := q.Renew(try, c)
			cancel()
			switch {
			case errors.Is(err, ErrLost):
				lose(ErrLost)
				return
			case err == nil:
				timer.Reset(time.Until(deadline()))
			}
			// Another error (the database unreachable): try again at the
			// next tick, while the deadline runs.
		}
	}()
	return held, func() {
		end()
		<-done
	}
}
