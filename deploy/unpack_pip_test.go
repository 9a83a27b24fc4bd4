package deploy

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/pushdeploy/pushdeploy/internal/testhosts"
)

// TestPipCopyTakesThePythonsOwnCompiledPip runs unpack_pip.py with real
// Pythons (venvs of the machine's python3, so that their own pip is the
// one each test puts there). A Python without pip of its own compiles the
// whole copy. A Python whose own pip is the wheel's, compiled, gives the
// copy its .pyc files, but only for sources identical to the wheel's:
// a module changed there, even with a .pyc valid for the change, is
// compiled from the wheel's source, and a module compiled there into a
// hash-checked .pyc is taken too. The copy's pip then runs, and its code
// names the venv's files, not the Python's.
func TestPipCopyTakesThePythonsOwnCompiledPip(t *testing.T) {
	testhosts.NeedTools(t, "python3")
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	run := func(name string, arg ...string) string {
		t.Helper()
		cmd := exec.Command(name, arg...)
		cmd.Env = append(os.Environ(), "PYTHONDONTWRITEBYTECODE=")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(arg, " "), err, out)
		}
		return string(out)
	}
	venv := func(name string) string {
		t.Helper()
		v := filepath.Join(dir, name)
		run(python, "-m", "venv", "--without-pip", v)
		return filepath.Join(v, "bin", "python")
	}
	prepare := func(py, copies string) string {
		t.Helper()
		return run(py, "-I", "-c", unpackPipProgram, copies, py, filepath.Join(dir, filepath.Base(copies)+".stamp"))
	}
	reusedRe := regexp.MustCompile(`(\d+) of its modules came compiled from this Python's own pip`)
	reused := func(out string) int {
		m := reusedRe.FindStringSubmatch(out)
		if m == nil {
			return 0
		}
		n, _ := strconv.Atoi(m[1])
		return n
	}

	// A Python with no pip of its own: everything compiled here.
	a := venv("a")
	out := prepare(a, filepath.Join(dir, "copies1"))
	if !strings.Contains(out, "built the copy of pip") || reused(out) != 0 {
		t.Fatalf("first copy, from a Python without pip: %q, want it built, nothing taken", out)
	}
	copy1 := testhosts.Glob1(t, filepath.Join(dir, "copies1", "[0-9a-f]*"))
	var modules int
	if err := filepath.WalkDir(filepath.Join(copy1, "pip"), func(p string, d os.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(p, ".py") {
			modules++
		}
		return err
	}); err != nil || modules < 100 {
		t.Fatalf("%d modules in the copy of pip (%v)", modules, err)
	}

	// a gets its own pip, the wheel's (linked from the copy), and three of
	// its modules are changed there: one in its source (with a .pyc valid
	// for the change), one only in how its .pyc is checked (a hash), and
	// one left without a .pyc.
	run(a, "-I", "-c", unpackPipProgram, filepath.Join(dir, "copies1"))
	site := filepath.Dir(testhosts.Glob1(t, filepath.Join(dir, "a", "lib", "python3*", "site-packages", "pip")))
	changed := filepath.Join(site, "pip", "_internal", "__init__.py")
	src, err := os.ReadFile(changed)
	if err == nil {
		err = os.Remove(changed) // a link to the copy's file: replaced, not written into
	}
	if err == nil {
		err = os.WriteFile(changed, append(src, "\nCHANGED_HERE = True\n"...), 0o644)
	}
	if err != nil {
		t.Fatal(err)
	}
	hashed := filepath.Join(site, "pip", "__main__.py")
	for _, pyc := range []string{"pip/__pycache__/__init__.*.pyc", "pip/__pycache__/__main__.*.pyc", "pip/_internal/__pycache__/__init__.*.pyc"} {
		if err := os.Remove(testhosts.Glob1(t, filepath.Join(site, pyc))); err != nil {
			t.Fatal(err)
		}
	}
	run(a, "-c", `import py_compile, sys
py_compile.compile(sys.argv[1], doraise=True)
py_compile.compile(sys.argv[2], doraise=True, invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH)`, changed, hashed)

	// A copy made by a now has every module's .pyc but the changed one's
	// from a, and pip/__init__'s (removed above) compiled here.
	out = prepare(a, filepath.Join(dir, "copies2"))
	if got, want := reused(out), modules-2; got != want {
		t.Errorf("second copy: %d modules taken from the Python's own pip, want %d (all %d but the changed one and pip/__init__); output %q", got, want, modules, out)
	}
	copy2 := testhosts.Glob1(t, filepath.Join(dir, "copies2", "[0-9a-f]*"))

	// A venv from the second copy: its pip runs, the change made in a's
	// pip is not in it, and the code taken from a names the venv's file.
	b := venv("b")
	run(b, "-I", "-c", unpackPipProgram, filepath.Join(dir, "copies2"))
	if v := run(b, "-m", "pip", "--version"); !strings.HasPrefix(v, "pip ") || !strings.Contains(v, filepath.Join(dir, "b")) {
		t.Errorf("b's pip --version: %q", v)
	}
	got := run(b, "-c", `import pip._internal, pip._internal.cli.main as m
print(hasattr(pip._internal, "CHANGED_HERE"), m.main.__code__.co_filename)`)
	bSite := filepath.Dir(testhosts.Glob1(t, filepath.Join(dir, "b", "lib", "python3*", "site-packages", "pip")))
	if want := "False " + filepath.Join(bSite, "pip", "_internal", "cli", "main.py") + "\n"; got != want {
		t.Errorf("b's pip: %q, want %q (not the change made in a's pip; the code named for b's file)", got, want)
	}
	// The .pyc taken from a is a's code: everything after the 16-byte
	// header is the same bytes.
	mainMine := pycBody(t, testhosts.Glob1(t, filepath.Join(copy2, "pip", "_internal", "cli", "__pycache__", "main.*.pyc")))
	mainTheirs := pycBody(t, testhosts.Glob1(t, filepath.Join(site, "pip", "_internal", "cli", "__pycache__", "main.*.pyc")))
	if !bytes.Equal(mainMine, mainTheirs) {
		t.Errorf("pip/_internal/cli/main's .pyc in the copy is not the one taken from a")
	}
	changedMine := pycBody(t, testhosts.Glob1(t, filepath.Join(copy2, "pip", "_internal", "__pycache__", "__init__.*.pyc")))
	changedTheirs := pycBody(t, testhosts.Glob1(t, filepath.Join(site, "pip", "_internal", "__pycache__", "__init__.*.pyc")))
	if bytes.Equal(changedMine, changedTheirs) {
		t.Errorf("the changed module's .pyc was taken from a")
	}
}

// pycBody is a .pyc file's marshalled code: what follows its 16-byte header.
func pycBody(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil || len(b) < 16 {
		t.Fatalf("%s: %d bytes, %v", path, len(b), err)
	}
	return b[16:]
}
