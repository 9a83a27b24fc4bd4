package deploy

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestMarkWriter: only marks with the run's nonce are marks, wherever in
// a line they start; everything else, forged marks included, is output.
func TestMarkWriter(t *testing.T) {
	const nonce = "0123456789abcdef0123456789abcdef"
	mark := "\x1epushdeploy " + nonce + " "
	long := strings.Repeat("x", maxLine+10)
	for _, c := range []struct {
		name   string
		writes []string
		want   []markEvent
	}{
		{"a step", []string{mark + "begin venv\nbuilding\n" + mark + "end venv 0\n"},
			[]markEvent{{"begin", "venv"}, {"", "building\n"}, {"end", "venv 0"}}},
		{"cut anywhere", []string{mark[:5], mark[5:] + "end pi", "p 1\nrest"},
			[]markEvent{{"end", "pip 1"}, {"", "rest"}}},
		{"output without a newline before a mark", []string{"no newline" + mark + "end pip 0\n"},
			[]markEvent{{"", "no newline\n"}, {"end", "pip 0"}}},
		{"another nonce is output", []string{"\x1epushdeploy ffffffffffffffffffffffffffffffff end before-switch 0\n"},
			[]markEvent{{"", "\x1epushdeploy ffffffffffffffffffffffffffffffff end before-switch 0\n"}}},
		{"no nonce is output", []string{"\x1epushdeploy  built\n"}, []markEvent{{"", "\x1epushdeploy  built\n"}}},
		{"a long line, then a mark", []string{long, mark + "built\n"},
			[]markEvent{{"", long}, {"built", ""}}},
		{"a long line ending in the start of a mark", []string{long + mark[:6], mark[6:] + "built\n"},
			[]markEvent{{"", long}, {"built", ""}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := &markedRun{prefix: []byte(mark), events: make(chan markEvent, 100), gone: make(chan struct{})}
			w := &markWriter{m: m}
			for _, s := range c.writes {
				if _, err := w.Write([]byte(s)); err != nil {
					t.Fatal(err)
				}
			}
			w.flush()
			close(m.events)
			var got []markEvent
			for ev := range m.events {
				got = append(got, ev)
			}
			if diff := cmp.Diff(c.want, got, cmp.AllowUnexported(markEvent{})); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
		})
	}
}
