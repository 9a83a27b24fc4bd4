package deploy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strconv"
	"sync"
	"time"
)

// A rollback moves each host with one remote command, rollback.sh: the
// switch (switch.sh, which logs it in revisions.log) and the restart. The
// command is started as soon as the host's target is known, while the
// other hosts are still being checked, and waits for the word "go" on its
// input; the deployer says it when the host's batch comes. A host's move
// then costs one round trip and the restart, not the two round trips of
// starting a command (channel open, exec) for each of a switch and a
// restart.

// restartMarker is the line rollback.sh prints between the switch's
// output and the restart's.
const restartMarker = "\036pushdeploy step restart\n"

// armed is a host's rollback.sh, started and waiting for its go.
type armed struct {
	gate   *gate
	relay  *stepRelay
	cancel context.CancelFunc
	// finished is closed when the command has ended; err is then its
	// result.
	finished chan struct{}
	err      error
}

// arm starts rollback.sh on the host, for a move to rel (logged as a
// rollback) and a restart there. It returns at once; the command waits
// for go (moveSteps) or disarm.
func (r *hostRun) arm(ctx context.Context, rel ReleaseInfo) *armed {
	a := &armed{gate: &gate{c: make(chan struct{})}, relay: newStepRelay(restartMarker), finished: make(chan struct{})}
	ctx, a.cancel = context.WithCancel(ctx)
	dir := r.releaseDir(rel.Name)
	secs := strconv.FormatInt(int64((r.d.StepTimeout+time.Second-1)/time.Second), 10)
	cmd := Command{
		Dir: dir,
		Env: r.restartEnv(dir, rel.Commit),
		// No Timeout around the whole: it waits for its turn, however long
		// the batches before it take. The script bounds the switch and
		// the restart by the step timeout each, and ends when its input
		// does (the deployer is done, or its connection died).
		Hold:   r.root + "/" + activeFile,
		Args:   script(rollbackScript, secs, r.d.RestartCmd, switchScript, r.root, switchRollback, rel.Name, rel.Commit, r.dep.ID, ""),
		Stdin:  a.gate,
		Stdout: a.relay,
		Stderr: a.relay,
	}
	go func() {
		a.err = r.conn.Run(ctx, cmd)
		close(a.finished)
	}()
	return a
}

// disarm ends the command without a move, if it did not get its go, and
// waits (a while) for it to end.
func (a *armed) disarm() {
	a.gate.shut()
	select {
	case <-a.finished:
	case <-time.After(10 * time.Second):
	}
	a.cancel()
}

// moveSteps says go to a and records its two steps: sw until the restart
// begins (or, without a restart command, until the command ends), then
// restart. It returns when the command has ended. switched reports that
// the switch step succeeded.
func (r *hostRun) moveSteps(ctx context.Context, a *armed, sw, restart Step) (switched bool, err error) {
	defer a.disarm()
	err = r.step(ctx, sw, func(ctx context.Context, out io.Writer) error {
		a.relay.to(out)
		a.gate.open()
		select {
		case <-a.relay.C:
			return nil
		case <-a.finished:
			a.relay.flush()
			switch {
			case a.err != nil:
				return a.err
			case r.d.RestartCmd != "":
				return errors.New("rollback.sh ended before the restart")
			}
			return nil
		case <-ctx.Done():
			a.stop()
			return ctx.Err()
		}
	})
	if err != nil || r.d.RestartCmd == "" {
		return err == nil, err
	}
	return true, r.step(ctx, restart, func(ctx context.Context, out io.Writer) error {
		a.relay.to(out)
		select {
		case <-a.finished:
			a.relay.flush()
			return a.err
		case <-ctx.Done():
			a.stop()
			return ctx.Err()
		}
	})
}

// stop ends the command (SIGTERM on the host) and waits for it.
func (a *armed) stop() {
	a.cancel()
	<-a.finished
}

// moveNow switches the host to rel and restarts it there, with steps sw
// and restart, in one command started now.
func (r *hostRun) moveNow(ctx context.Context, rel ReleaseInfo, sw, restart Step) (switched bool, err error) {
	return r.moveSteps(ctx, r.arm(ctx, rel), sw, restart)
}

// gate is rollback.sh's input: nothing until open ("go"), or shut (the
// end of the input: the script ends having done nothing). One reader.
type gate struct {
	once sync.Once
	c    chan struct{}
	word string
}

func (g *gate) open() { g.once.Do(func() { g.word = "go\n"; close(g.c) }) }
func (g *gate) shut() { g.once.Do(func() { close(g.c) }) }

func (g *gate) Read(p []byte) (int, error) {
	<-g.c
	if g.word == "" {
		return 0, io.EOF
	}
	n := copy(p, g.word)
	g.word = g.word[n:]
	return n, nil
}

// stepRelay carries the output of a command that runs two steps: to the
// first step's output until the line marker, then to the second's. What
// arrives while no step has taken the output (before the first, between
// the two) is held for the next one, up to a bound. C is closed at the
// marker. Safe for concurrent writes.
type stepRelay struct {
	mu     sync.Mutex
	marker string // a whole line, its "\n" included
	w      io.Writer
	held   []byte
	line   []byte // before the marker: the line in progress
	seen   bool
	C      chan struct{}
}

func newStepRelay(marker string) *stepRelay {
	return &stepRelay{marker: marker, C: make(chan struct{})}
}

// maxHeld bounds the output held between steps.
const maxHeld = 64 << 10

func (s *stepRelay) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(p)
	// Before the marker, output goes on by whole lines, so that a marker
	// written in parts is still seen.
	for !s.seen && len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			s.line = append(s.line, p...)
			return n, nil
		}
		s.line, p = append(s.line, p[:i+1]...), p[i+1:]
		if string(s.line) == s.marker {
			s.seen, s.w = true, nil
			close(s.C)
		} else {
			s.emit(s.line)
		}
		s.line = s.line[:0]
	}
	s.emit(p)
	return n, nil
}

func (s *stepRelay) emit(p []byte) {
	if s.w != nil {
		_, _ = s.w.Write(p)
		return
	}
	s.held = append(s.held, p...)
	if over := len(s.held) - maxHeld; over > 0 {
		s.held = s.held[over:]
	}
}

// to makes w the output of the step that runs now, and gives it what was
// held.
func (s *stepRelay) to(w io.Writer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.held) > 0 {
		_, _ = w.Write(s.held)
		s.held = nil
	}
	s.w = w
}

// flush passes on a last line that had no "\n" (the command has ended).
func (s *stepRelay) flush() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.line) > 0 {
		s.emit(s.line)
		s.line = nil
	}
}
