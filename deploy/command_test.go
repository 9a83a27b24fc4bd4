package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestQuote(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", "''"},
		{"release", "release"},
		{"releases/20261125183400-1a2b3c4", "releases/20261125183400-1a2b3c4"},
		{"a b", "'a b'"},
		{"it's", `'it'\''s'`},
		{"$(touch /tmp/x)", "'$(touch /tmp/x)'"},
		{"`id`", "'`id`'"},
		{"a;b", "'a;b'"},
		{"a\nb", "'a\nb'"},
		{"~/x", "'~/x'"},
		{"*", "'*'"},
		{"'", `''\'''`},
	}
	for _, tt := range tests {
		if got := Quote(tt.in); got != tt.want {
			t.Errorf("Quote(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestCommandString(t *testing.T) {
	tests := []struct {
		name string
		cmd  Command
		want string
	}{
		{"args", Command{Args: []string{"git", "clone", "--branch", "rel;ease"}}, "exec git clone --branch 'rel;ease'"},
		{"dir", Command{Dir: "/srv/my app", Args: []string{"ls"}}, "cd '/srv/my app' && exec ls"},
		{"env", Command{Env: []string{"COMMIT=abc", "X=$(id)"}, Args: []string{"sh", "-c", "echo $X"}}, "exec env COMMIT=abc 'X=$(id)' sh -c 'echo $X'"},
		{"timeout", Command{Timeout: 90 * time.Second, Args: []string{"true"}}, "exec timeout -k 10 90 true"},
		{"timeout rounds up", Command{Timeout: 1500 * time.Millisecond, Args: []string{"true"}}, "exec timeout -k 10 2 true"},
		{"hold", Command{Timeout: 2 * time.Second, Hold: "/srv/my app/.pushdeploy.active", Env: []string{"A=b"}, Args: []string{"true"}},
			"exec timeout -k 10 2 flock -s -o '/srv/my app/.pushdeploy.active' env A=b true"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.cmd.String(); got != tt.want {
				t.Errorf("got  %q\nwant %q", got, tt.want)
			}
		})
	}
}

// hostile values an attacker could try to smuggle in through a branch, a
// commit or a path.
var hostile = []string{
	"$(touch {M})",
	"`touch {M}`",
	"x; touch {M}",
	"x && touch {M}",
	"x | touch {M}",
	"x\ntouch {M}",
	"'; touch {M}; '",
	"\"; touch {M}; \"",
	"${IFS}touch${IFS}{M}",
	"../../../{M}",
	"-rf",
	"*",
	"$HOME",
}

// TestCommandStringRunsNothing hands every hostile value, as an argument,
// as the folder and as an environment value, to a real /bin/sh and checks
// that each arrives as literal text and nothing runs.
func TestCommandStringRunsNothing(t *testing.T) {
	dir := t.TempDir()
	marker := filepath.Join(dir, "pwned")
	for _, h := range hostile {
		v := strings.ReplaceAll(h, "{M}", marker)
		if strings.HasPrefix(h, "../") {
			// a literal relative path: must stay a string, not a file
			v = h
		}
		sub := filepath.Join(dir, "d")
		if err := os.MkdirAll(sub, 0o755); err != nil {
			t.Fatal(err)
		}
		cmd := Command{
			Dir:  sub,
			Env:  []string{"V=" + v},
			Args: []string{"sh", "-c", `printf '%s\n' "$1" "$V"`, "sh", v},
		}
		out, err := exec.Command("/bin/sh", "-c", cmd.String()).CombinedOutput()
		if err != nil {
			t.Fatalf("value %q: %v: %s", v, err, out)
		}
		if want := v + "\n" + v + "\n"; string(out) != want {
			t.Errorf("value %q arrived as %q, want %q", v, out, want)
		}
		if _, err := os.Stat(marker); err == nil {
			t.Fatalf("value %q ran a command", v)
		}
	}
}

func TestValidators(t *testing.T) {
	for _, h := range hostile {
		v := strings.ReplaceAll(h, "{M}", "/tmp/x")
		if ValidCommit(v) == nil || ValidCommitPrefix(v) == nil || ValidReleaseName(v) == nil {
			t.Errorf("%q accepted as a commit or release name", v)
		}
	}
	branches := []struct {
		name string
		ok   bool
	}{
		{"release", true},
		{"release/2.x", true},
		{"feature-1.2", true},
		{"v1+build@x/é", true},
		// git allows these; Quote would keep them harmless, but the
		// release branch gets no shell metacharacters at all.
		{"a;b", false}, {"$(id)", false}, {"`id`", false}, {"a|b", false}, {"a&b", false}, {"a'b", false}, {`a"b`, false},
		{"a>b", false}, {"a<b", false}, {"a=b", false}, {"a#b", false}, {"a!b", false}, {"a%b", false}, {"a,b", false}, {"{a}", false},
		{"", false},
		{"-x", false},
		{"a..b", false},
		{"a b", false},
		{"$(touch /tmp/x)", false},
		{"a\nb", false},
		{"a~1", false},
		{"a^", false},
		{"a:b", false},
		{"a?", false},
		{"a*", false},
		{"a[", false},
		{`a\b`, false},
		{"a/", false},
		{"/a", false},
		{"a//b", false},
		{"a.", false},
		{".a", false},
		{"a/.b", false},
		{"a.lock", false},
		{"a@{1}", false},
		{"@", false},
		{"HEAD", false},
		{"a\x00b", false},
		{"a\x7fb", false},
	}
	for _, b := range branches {
		if err := ValidBranch(b.name); (err == nil) != b.ok {
			t.Errorf("ValidBranch(%q) = %v, want ok=%v", b.name, err, b.ok)
		}
	}
	paths := []struct {
		p  string
		ok bool
	}{
		{"/srv/app", true}, {"app", true}, {"my app", true},
		{"", false}, {"../etc", false}, {"/srv/../etc", false}, {"a\nb", false}, {"a\x00", false},
	}
	for _, p := range paths {
		if err := ValidPath(p.p); (err == nil) != p.ok {
			t.Errorf("ValidPath(%q) = %v, want ok=%v", p.p, err, p.ok)
		}
	}
	if err := ValidCommit(strings.Repeat("a", 40)); err != nil {
		t.Error(err)
	}
	if err := ValidReleaseName("20261125183400-1a2b3c4"); err != nil {
		t.Error(err)
	}
	if ValidReleaseName("20261125183400-1a2b3c4/..") == nil {
		t.Error("release name with /.. accepted")
	}
}
