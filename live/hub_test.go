package live

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/pushdeploy/pushdeploy/deploy"
)

// script is the events of one small deployment: it starts, one host runs
// one step with output lines, and the deployment ends with status end.
func script(id string, lines int, end deploy.Status) []deploy.Event {
	var evs []deploy.Event
	add := func(ev deploy.Event) {
		ev.Seq, ev.DeploymentID = len(evs)+1, id
		evs = append(evs, ev)
	}
	add(deploy.Event{Kind: deploy.EventDeployment, Status: deploy.StatusRunning})
	add(deploy.Event{Kind: deploy.EventStep, Status: deploy.StatusRunning, Host: "web1", Step: "clone"})
	for i := 0; i < lines; i++ {
		add(deploy.Event{Kind: deploy.EventOutput, Host: "web1", Step: "clone", Line: fmt.Sprintf("line %03d", i)})
	}
	add(deploy.Event{Kind: deploy.EventStep, Status: deploy.StatusSucceeded, Host: "web1", Step: "clone"})
	add(deploy.Event{Kind: deploy.EventHost, Status: deploy.StatusSucceeded, Host: "web1"})
	add(deploy.Event{Kind: deploy.EventDeployment, Status: end})
	return evs
}

// drain reads ch until it closes or a second passes.
func drain(t *testing.T, ch <-chan deploy.Event) []deploy.Event {
	t.Helper()
	var got []deploy.Event
	timeout := time.After(time.Second)
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				return got
			}
			got = append(got, ev)
		case <-timeout:
			t.Fatalf("channel not closed after %d events", len(got))
		}
	}
}

func seqs(evs []deploy.Event) string {
	var b strings.Builder
	for _, ev := range evs {
		fmt.Fprintf(&b, "%d ", ev.Seq)
	}
	return strings.TrimSpace(b.String())
}

// TestSubscribeReplaysThenFollows subscribes at several points of a
// deployment, with and without a resume point: each subscriber hears every
// event after its resume point exactly once, in order, and its channel
// closes right after the deployment's end.
func TestSubscribeReplaysThenFollows(t *testing.T) {
	evs := script("d1", 3, deploy.StatusSucceeded) // 8 events
	for _, tc := range []struct {
		name       string
		joinAfter  int // events observed before subscribing
		resumeFrom int // Last-Event-ID
		want       string
	}{
		{"before the first event", 0, 0, ""}, // not known yet: see below
		{"mid-deployment from the start", 3, 0, "1 2 3 4 5 6 7 8"},
		{"mid-deployment resuming", 5, 2, "3 4 5 6 7 8"},
		{"resuming ahead of the replay", 2, 4, "5 6 7 8"},
		{"after the end", 8, 0, "1 2 3 4 5 6 7 8"},
		{"after the end, resumed at the end", 8, 8, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := &Hub{}
			for _, ev := range evs[:tc.joinAfter] {
				h.Observe(ev)
			}
			ch, cancel, ok := h.Subscribe("d1", tc.resumeFrom)
			if tc.joinAfter == 0 {
				if ok {
					t.Fatal("Subscribe knows a deployment that sent no event")
				}
				return
			}
			if !ok {
				t.Fatal("Subscribe does not know the deployment")
			}
			defer cancel()
			for _, ev := range evs[tc.joinAfter:] {
				h.Observe(ev)
			}
			if got := seqs(drain(t, ch)); got != tc.want {
				t.Errorf("got events %q, want %q", got, tc.want)
			}
		})
	}
}

// TestSlowSubscriberIsNotWaitedFor: a subscriber that reads nothing
// must not hold up Observe; when it reads at last, it gets the events the
// hub still holds (the lines forgotten meanwhile as one truncation line)
// up to the end, while a reading subscriber got everything.
func TestSlowSubscriberIsNotWaitedFor(t *testing.T) {
	h := &Hub{OutputLines: 40}
	evs := script("d1", 100, deploy.StatusSucceeded)
	h.Observe(evs[0])
	slow, cancelSlow, _ := h.Subscribe("d1", 0)
	defer cancelSlow()
	fast, cancelFast, _ := h.Subscribe("d1", 0)
	defer cancelFast()
	taken := make(chan deploy.Event, len(evs)) // what the fast subscriber read, as it reads
	go func() {
		defer close(taken)
		for ev := range fast {
			taken <- ev
		}
	}()
	var got []deploy.Event
	for i, ev := range evs {
		if i > 0 {
			h.Observe(ev) // returns at once: the slow subscriber reads nothing
		}
		select {
		case got1 := <-taken: // the fast one keeps up: each event is read before the next
			got = append(got, got1)
		case <-time.After(5 * time.Second):
			t.Fatalf("the reading subscriber did not get event %d", ev.Seq)
		}
	}
	if seqs(got) != seqs(evs) {
		t.Errorf("the reading subscriber got %s, want all of %s", seqs(got), seqs(evs))
	}
	slowGot := drain(t, slow)
	if len(slowGot) == 0 || !Ended(slowGot[len(slowGot)-1]) || slowGot[0].Seq != 1 {
		t.Fatalf("the slow subscriber got %s, want from the start to the end", seqs(slowGot))
	}
	if !truncated(slowGot) {
		t.Errorf("the slow subscriber missed lines without a truncation line: %s", seqs(slowGot))
	}
}

// TestOutputIsBoundedButStepsStay: a deployment with more output than
// OutputBytes keeps its newest lines and all of its other events, in order.
func TestOutputIsBoundedButStepsStay(t *testing.T) {
	h := &Hub{OutputBytes: 80} // 10 lines of "line 000"
	evs := script("d1", 50, deploy.StatusFailed)
	for _, ev := range evs {
		h.Observe(ev)
	}
	ch, _, ok := h.Subscribe("d1", 0)
	if !ok {
		t.Fatal("deployment forgotten")
	}
	got := drain(t, ch)
	lines, other, bytes := 0, 0, 0
	prev := 0
	for _, ev := range got {
		if ev.Seq <= prev {
			t.Fatalf("out of order: %s", seqs(got))
		}
		prev = ev.Seq
		if ev.Kind == deploy.EventOutput && !truncated([]deploy.Event{ev}) {
			lines++
			bytes += len(ev.Line)
		} else if ev.Kind != deploy.EventOutput {
			other++
		}
	}
	if other != 5 {
		t.Errorf("%d non-output events kept, want all 5", other)
	}
	if !truncated(got) {
		t.Error("no line says that output was truncated")
	}
	if bytes > 80 || lines == 0 {
		t.Errorf("%d output lines (%d bytes) kept, want some and at most 80 bytes", lines, bytes)
	}
	var last string
	for _, ev := range got {
		if ev.Kind == deploy.EventOutput {
			last = ev.Line
		}
	}
	if last != "line 049" {
		t.Errorf("last line kept %q, want the newest (line 049)", last)
	}
}

// TestKeepForgetsOldestFinished: beyond Keep, the oldest finished
// deployment is forgotten, never a running one while a finished one is
// left; a forgotten deployment's subscribers are closed.
func TestKeepForgetsOldestFinished(t *testing.T) {
	h := &Hub{Keep: 2}
	running := script("running", 0, deploy.StatusSucceeded)
	h.Observe(running[0])
	for _, ev := range script("done1", 0, deploy.StatusSucceeded) {
		h.Observe(ev)
	}
	for _, ev := range script("done2", 0, deploy.StatusFailed) {
		h.Observe(ev)
	}
	if _, _, ok := h.Subscribe("done1", 0); ok {
		t.Error("done1 kept beyond Keep")
	}
	for _, id := range []string{"running", "done2"} {
		if _, _, ok := h.Subscribe(id, 0); !ok {
			t.Errorf("%s forgotten", id)
		}
	}
	for _, ev := range script("done3", 0, deploy.StatusSucceeded) {
		h.Observe(ev)
	}
	if _, _, ok := h.Subscribe("running", 0); !ok {
		t.Error("the running deployment was forgotten while done2 had finished")
	}
	for _, ev := range script("done4", 0, deploy.StatusSucceeded) {
		h.Observe(ev)
	}
	if _, _, ok := h.Subscribe("running", 0); !ok {
		t.Error("the running deployment was forgotten while a finished one was left")
	}

	// Only running deployments left: the oldest goes, and its
	// subscriber's channel closes before any end.
	h = &Hub{Keep: 1}
	h.Observe(running[0])
	sub, cancel, _ := h.Subscribe("running", 0)
	h.Observe(script("other", 0, deploy.StatusSucceeded)[0])
	if got := drain(t, sub); len(got) > 1 || len(got) == 1 && Ended(got[0]) {
		t.Errorf("subscriber of a forgotten deployment got %s, want at most the 1 event before it was forgotten, then a close", seqs(got))
	}
	cancel() // after the close: must not panic
}

// TestCancelStopsDelivery: a cancelled subscription's channel closes and
// later events go nowhere (and do not panic).
func TestCancelStopsDelivery(t *testing.T) {
	h := &Hub{}
	evs := script("d1", 2, deploy.StatusSucceeded)
	h.Observe(evs[0])
	ch, cancel, _ := h.Subscribe("d1", 0)
	cancel()
	cancel()
	for _, ev := range evs[1:] {
		h.Observe(ev)
	}
	if got := drain(t, ch); len(got) > 1 {
		t.Errorf("got %d events after cancel, want at most the one that was there", len(got))
	}
}

// truncated says whether evs hold the line that stands for forgotten
// output.
func truncated(evs []deploy.Event) bool {
	for _, ev := range evs {
		if ev.Kind == deploy.EventOutput && strings.HasPrefix(ev.Line, "[output truncated: ") {
			return true
		}
	}
	return false
}

// TestEmptyLinesAreBounded: lines cost their number as well as their
// bytes. A hook printing 100,000 empty lines leaves at most OutputLines of
// them, one line saying how many went, and every other event.
func TestEmptyLinesAreBounded(t *testing.T) {
	h := &Hub{}
	evs := script("d1", 0, deploy.StatusSucceeded)
	h.Observe(evs[0])
	h.Observe(evs[1]) // the step starts
	const printed = 100000
	for i := range printed {
		h.Observe(deploy.Event{Seq: 3 + i, DeploymentID: "d1", Kind: deploy.EventOutput, Host: "web1", Step: "clone"})
	}
	for i, ev := range evs[2:] {
		ev.Seq = 3 + printed + i
		h.Observe(ev)
	}
	ch, _, _ := h.Subscribe("d1", 0)
	got := drain(t, ch)
	lines, other, marker := 0, 0, ""
	for _, ev := range got {
		switch {
		case ev.Kind != deploy.EventOutput:
			other++
		case ev.Line == "":
			lines++
		default:
			marker = ev.Line
		}
	}
	if lines > DefaultOutputLines || lines < DefaultOutputLines/2 {
		t.Errorf("%d empty lines kept, want at most %d (and not far fewer)", lines, DefaultOutputLines)
	}
	if want := fmt.Sprintf("[output truncated: %d earlier lines", printed-lines); !strings.HasPrefix(marker, want) {
		t.Errorf("truncation line %q, want it to start %q", marker, want)
	}
	if other != 5 || !Ended(got[len(got)-1]) {
		t.Errorf("%d other events kept (last %+v), want all 5, the end last", other, got[len(got)-1])
	}
}

// TestSubscribersShareTheEvents: a subscription costs the same whatever
// the deployment has printed: subscribers read the hub's events, they do
// not each get a copy (three slow ones took serve to 3.5 GB).
func TestSubscribersShareTheEvents(t *testing.T) {
	h := &Hub{}
	for _, ev := range script("d1", DefaultOutputLines, deploy.StatusRunning)[:DefaultOutputLines+2] {
		h.Observe(ev)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	var cancels []func()
	for range 20 {
		_, cancel, _ := h.Subscribe("d1", 0)
		cancels = append(cancels, cancel)
	}
	runtime.ReadMemStats(&after)
	for _, cancel := range cancels {
		cancel()
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 256<<10 {
		t.Errorf("20 subscriptions to a deployment of %d lines allocated %d KiB, want a few KiB", DefaultOutputLines, grew>>10)
	}
}
