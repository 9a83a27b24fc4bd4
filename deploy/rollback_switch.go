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
// command is started as soon as the host is logged in to, beside its lock
// command, and waits for a word on its input that names the target:
// "go NAME COMMIT" (switch and restart) or "switch NAME COMMIT" (switch,
// then wait for "restart"); the deployer says it when the host's turn
// comes. A host's move then costs a round trip for each word and no more:
// the two round trips of starting a command (channel open, exec) are spent
// while the lock command runs, not after the target is known.

// restartMarker is the line rollback.sh prints between the switch's
// output and the restart's.
const restartMarker = "\036pushdeploy step restart\n"

// armed is a host's rollback.sh, started and waiting for its word.
type armed struct {
	gate   *gate
	relay  *stepRelay
	cancel context.CancelFunc
	// finished is closed when the command has ended; err is then its
	// result.
	finished chan struct{}
	err      error
}

// arm starts rollback.sh on the host, for a move (logged as a rollback)
// and a restart to the release its word will name. It returns at once;
// the command waits for its word (switchStep) or disarm.
func (r *hostRun) arm(ctx context.Context) *armed {
	a := &armed{gate: newGate(), relay: newStepRelay(restartMarker), finished: make(chan struct{})}
	ctx, a.cancel = context.WithCancel(ctx)
	secs := strconv.FormatInt(int64((r.d.StepTimeout+time.Second-1)/time.Second), 10)
	cmd := Command{
		// The script sets the part of restartEnv that depends on the
		// release.
		Env: r.deploymentEnv(),
		// No Timeout around the whole: it waits for its turn, however long
		// the batches before it take. The script bounds the switch and
		// the restart by the step timeout each, holds activeFile while
		// each runs (not while it waits: it starts before the lock command
		// has checked that no command of an earlier deployment holds it),
		// and ends when its input does (the deployer is done, or its
		// connection died).
		Args:   script(rollbackScript, secs, r.d.RestartCmd, switchScript, r.d.Root, switchRollback, r.dep.ID, activeFile),
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

// targetWord is word (wordGo or wordSwitch) with the release rollback.sh
// moves to: its name and, when it is a commit hash, its commit (otherwise
// the script reads it from the release's REVISION, as switch.sh does).
func targetWord(word string, rel ReleaseInfo) string {
	w := word + " " + rel.Name
	if ValidCommitPrefix(rel.Commit) == nil {
		w += " " + rel.Commit
	}
	return w
}

// disarm ends the command without a move, or without the restart it
// waits for after a "switch", and waits (a while) for it to end.
func (a *armed) disarm() {
	a.gate.shut()
	select {
	case <-a.finished:
	case <-time.After(10 * time.Second):
	}
	a.cancel()
}

// Words of rollback.sh.
const (
	wordGo      = "go"      // switch, then restart at once
	wordSwitch  = "switch"  // switch, then wait for wordRestart
	wordRestart = "restart" // after wordSwitch: restart
)

// switchStep says word (wordGo or wordSwitch), for a move to to, to a and
// records step sw: until the restart begins or, after wordSwitch, waits
// for its word (or, without a restart command, until the command ends). With wordGo the
// command's input ends after the word, as it does for the restart
// command's after wordRestart: neither ever waits for more input.
func (r *hostRun) switchStep(ctx context.Context, a *armed, sw Step, word string, to ReleaseInfo) error {
	return r.step(ctx, sw, func(ctx context.Context, out io.Writer) error {
		a.relay.to(out)
		a.gate.say(targetWord(word, to), word == wordGo)
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
}

// restartStep records step restart, after a's switch step: it says word
// first when set (wordRestart, after wordSwitch), and lasts until the
// command ends. Without a restart command there is no such step.
func (r *hostRun) restartStep(ctx context.Context, a *armed, restart Step, word string) error {
	if r.d.RestartCmd == "" {
		return nil
	}
	defer a.disarm()
	return r.step(ctx, restart, func(ctx context.Context, out io.Writer) error {
		a.relay.to(out)
		if word != "" {
			a.gate.say(word, true)
		}
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

// marked reports whether the script printed the marker: after wordGo,
// that its restart may have begun (it prints the marker just before).
// Once the command has ended all its output has arrived, so the answer is
// then sure.
func (a *armed) marked() bool {
	select {
	case <-a.relay.C:
		return true
	default:
		return false
	}
}

// stop ends the command (SIGTERM on the host) and waits for it.
func (a *armed) stop() {
	a.cancel()
	<-a.finished
}

// gate is rollback.sh's input: the words said (each on a line of its
// own), then, once shut, the end of the input; nothing until then. One
// reader.
type gate struct {
	mu   sync.Mutex
	buf  []byte
	shot bool // shut: no more words
	more chan struct{}
}

func newGate() *gate { return &gate{more: make(chan struct{}, 1)} }

// say gives the script word; last shuts the input after it.
func (g *gate) say(word string, last bool) {
	g.mu.Lock()
	if !g.shot {
		g.buf = append(g.buf, word+"\n"...)
		g.shot = last
	}
	g.mu.Unlock()
	g.poke()
}

// shut ends the input once what was said has been read: the script ends
// having done nothing (more).
func (g *gate) shut() {
	g.mu.Lock()
	g.shot = true
	g.mu.Unlock()
	g.poke()
}

func (g *gate) poke() {
	select {
	case g.more <- struct{}{}:
	default:
	}
}

func (g *gate) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		g.mu.Lock()
		n, shot := copy(p, g.buf), g.shot
		g.buf = g.buf[n:]
		g.mu.Unlock()
		switch {
		case n > 0:
			return n, nil
		case shot:
			return 0, io.EOF
		}
		<-g.more
	}
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
