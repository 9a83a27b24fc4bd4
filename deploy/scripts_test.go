package deploy

import (
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/pushdeploy/pushdeploy/internal/testhosts"
)

// releaseGlob is the sh pattern of release folder names the scripts that
// look at releases/ write out; it must mean what ValidReleaseName means.
const releaseGlob = "[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]"

// scriptFiles reads deploy/scripts/: every file there, by name.
func scriptFiles(t *testing.T) map[string]string {
	t.Helper()
	entries, err := os.ReadDir("scripts")
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join("scripts", e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		files[e.Name()] = string(b)
	}
	if len(files) < 10 {
		t.Fatalf("only %d files in scripts/", len(files))
	}
	return files
}

// TestScripts checks every remote script with sh -n and shellcheck (-s sh:
// the hosts' sh need not be bash), and the Python program with Python's
// parser. A finding shellcheck is told to ignore must say why, on the same
// line: "# shellcheck disable=SCxxxx # why".
func TestScripts(t *testing.T) {
	files := scriptFiles(t)
	embeds, err := os.ReadFile("scripts.go")
	if err != nil {
		t.Fatal(err)
	}
	var shells []string
	for name, text := range files {
		if !strings.Contains(string(embeds), "//go:embed scripts/"+name+"\n") {
			t.Errorf("scripts/%s is not embedded in scripts.go", name)
		}
		switch filepath.Ext(name) {
		case ".sh":
			shells = append(shells, filepath.Join("scripts", name))
			if out, err := exec.Command("sh", "-n", filepath.Join("scripts", name)).CombinedOutput(); err != nil {
				t.Errorf("sh -n scripts/%s: %v\n%s", name, err, out)
			}
			if strings.HasPrefix(text, "#!") {
				t.Errorf("scripts/%s starts with #!: the scripts run as sh -c SCRIPT, and a #! line would suggest otherwise", name)
			}
		case ".py":
			const parse = "import ast, sys; ast.parse(open(sys.argv[1]).read(), sys.argv[1])"
			if out, err := exec.Command("python3", "-c", parse, filepath.Join("scripts", name)).CombinedOutput(); err != nil {
				t.Errorf("python3 cannot parse scripts/%s: %v\n%s", name, err, out)
			}
		default:
			t.Errorf("scripts/%s: neither .sh nor .py", name)
		}
		for i, line := range strings.Split(text, "\n") {
			if strings.Contains(line, "shellcheck disable=") && !explainedDirective.MatchString(line) {
				t.Errorf("scripts/%s:%d: a shellcheck directive without its reason (# shellcheck disable=SCxxxx # why): %s", name, i+1, line)
			}
		}
	}
	if _, err := exec.LookPath("shellcheck"); err != nil {
		testhosts.SkipOrFail(t, "shellcheck is not installed (.ci/install installs it): the scripts were checked with sh -n only")
	}
	out, err := exec.Command("shellcheck", append([]string{"-s", "sh", "-f", "gcc"}, shells...)...).CombinedOutput()
	if err != nil || len(out) > 0 {
		t.Errorf("shellcheck -s sh: %v\n%s", err, out)
	}
}

var explainedDirective = regexp.MustCompile(`#\s*shellcheck\s+disable=SC\d+(,SC\d+)*\s+#\s*\S`)

// TestScriptsAgree keeps the scripts in step with the Go side, for the
// names both write out: the release folder pattern and the active file.
func TestScriptsAgree(t *testing.T) {
	for _, tt := range []struct {
		name string
		want bool
	}{
		{"20261125183400-1a2b3c4", true},
		{"20261125183400-1a2b3c", false},
		{"20261125183400-1A2B3C4", false},
		{"2026112518340-1a2b3c4a", false},
		{"20261125183400-1a2b3c4.old", false},
	} {
		matched, err := path.Match(releaseGlob, tt.name)
		if err != nil {
			t.Fatal(err)
		}
		if valid := ValidReleaseName(tt.name) == nil; matched != tt.want || valid != tt.want {
			t.Errorf("%s: the glob matches: %v, ValidReleaseName accepts: %v; want %v", tt.name, matched, valid, tt.want)
		}
	}
	// Every pattern the scripts match release folders with is releaseGlob.
	globs := regexp.MustCompile(`\[0-9\][][0-9a-f-]*`)
	uses := 0
	for name, text := range scriptFiles(t) {
		for _, g := range globs.FindAllString(text, -1) {
			uses++
			if g != releaseGlob {
				t.Errorf("scripts/%s matches releases with %s, not %s", name, g, releaseGlob)
			}
		}
	}
	if uses < 4 {
		t.Errorf("the release pattern is used %d times in scripts/; prepare, retention, plan and releases use it", uses)
	}
	if !strings.Contains(lockScript, `flock -w "$2" `+activeFile+" true") {
		t.Errorf("lock.sh does not wait for %s", activeFile)
	}
}
