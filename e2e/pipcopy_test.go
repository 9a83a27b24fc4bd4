package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pushdeploy/pushdeploy/internal/testhosts"
)

// pipCopies returns the host's compiled copies of pip (<root>/pip/<key>):
// not the stamp, the lock file or temporary folders, whose names begin
// with a dot.
func pipCopies(t *testing.T, h *testhosts.Host) []string {
	t.Helper()
	entries, err := os.ReadDir(h.Path("app/pip"))
	if err != nil {
		t.Fatal(err)
	}
	var copies []string
	for _, e := range entries {
		if e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
			copies = append(copies, h.Path("app/pip/"+e.Name()))
		}
	}
	return copies
}

// inodeOf is path's inode number and modification time.
func inodeOf(t *testing.T, path string) (uint64, int64) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino, fi.ModTime().UnixNano()
}

// venvAndPipSeconds is the time a host's venv and pip steps took.
func venvAndPipSeconds(h hostJSON) (venv, pip float64) {
	s := stepsOf(h)
	return s["venv"].Seconds, s["pip"].Seconds
}

// TestEndToEndPipCopy: the first new venv on a host builds a compiled copy
// of pip under <root>/pip; the second new venv reuses it (the copy is not
// rebuilt, and no .pyc of pip is written inside the new venv: they are the
// copy's, linked), its venv works on its own (python imports the
// requirements, venv/bin/pip runs), and another Python installation gets
// its own copy.
// Retention keeps the copies the kept venvs came from.
func TestEndToEndPipCopy(t *testing.T) {
	e := newE2E(t, 2)
	e.vars["DEPLOY_KEEP_RELEASES"] = "1"
	e.commit("1.0", nil)
	first := e.mustDeploy()
	type copyState struct {
		path       string
		ino        uint64
		mtime      int64
		pipInitPyc uint64
	}
	copies := map[string]copyState{}
	for i, h := range e.env.Hosts {
		venv, pip := venvAndPipSeconds(first.Hosts[i])
		t.Logf("%s: first new venv: venv %.2fs, pip %.2fs", h.Name, venv, pip)
		c := pipCopies(t, h)
		if len(c) != 1 {
			t.Fatalf("%s: pip copies %v after the first deploy, want 1", h.Name, c)
		}
		ino, mtime := inodeOf(t, c[0])
		pyc, _ := filepath.Glob(filepath.Join(c[0], "pip/__pycache__/__init__.*.pyc"))
		if len(pyc) != 1 {
			t.Fatalf("%s: the copy %s is not compiled (%v)", h.Name, c[0], pyc)
		}
		pycIno, _ := inodeOf(t, pyc[0])
		copies[h.Name] = copyState{c[0], ino, mtime, pycIno}
	}

	// New requirements: a second new venv, from the same copy.
	e.commit("2.0", nil)
	second := e.mustDeploy()
	for i, h := range e.env.Hosts {
		venv, pip := venvAndPipSeconds(second.Hosts[i])
		t.Logf("%s: second new venv: venv %.2fs, pip %.2fs", h.Name, venv, pip)
		was := copies[h.Name]
		if c := pipCopies(t, h); len(c) != 1 || c[0] != was.path {
			t.Errorf("%s: pip copies %v after the second deploy, want only %s", h.Name, c, was.path)
		}
		if ino, mtime := inodeOf(t, was.path); ino != was.ino || mtime != was.mtime {
			t.Errorf("%s: the pip copy was rebuilt (inode %d→%d, mtime %d→%d)", h.Name, was.ino, ino, was.mtime, mtime)
		}
		site, _ := filepath.Glob(h.Path("app/current/venv/lib/python3*/site-packages"))
		if len(site) != 1 {
			t.Fatalf("%s: site-packages of the new venv: %v", h.Name, site)
		}
		// Every .pyc of pip in the new venv is one of the copy's files:
		// none was written there by pip's first run.
		var pycs, own int
		err := filepath.WalkDir(filepath.Join(site[0], "pip"), func(p string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(p, ".pyc") {
				return err
			}
			pycs++
			rel, _ := filepath.Rel(site[0], p)
			inVenv, _ := inodeOf(t, p)
			if fi, err := os.Stat(filepath.Join(was.path, rel)); err != nil || fi.Sys().(*syscall.Stat_t).Ino != inVenv {
				own++
				if own <= 3 {
					t.Errorf("%s: %s was written in the venv, not linked from the copy (%v)", h.Name, rel, err)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if pycs < 100 || own > 0 {
			t.Errorf("%s: %d .pyc of pip in the new venv, %d of them its own; want hundreds, all the copy's", h.Name, pycs, own)
		}
		initPyc := filepath.Base(testhosts.Glob1(t, filepath.Join(was.path, "pip/__pycache__/__init__.*.pyc")))
		if ino, _ := inodeOf(t, filepath.Join(site[0], "pip/__pycache__", initPyc)); ino != was.pipInitPyc {
			t.Errorf("%s: pip/__init__'s .pyc in the venv is not the copy's", h.Name)
		}
		// The venv works on its own: its python imports the requirements,
		// its pip runs, from the venv.
		if v := e.onHost(h, "app/current/venv/bin/python", "-c", "import pdtestdep; print(pdtestdep.VERSION)"); v != "2.0" {
			t.Errorf("%s: the new venv imports pdtestdep %q", h.Name, v)
		}
		if v := e.onHost(h, "app/current/venv/bin/pip", "--version"); !strings.HasPrefix(v, "pip ") || !strings.Contains(v, "/app/venvs/") {
			t.Errorf("%s: venv/bin/pip --version says %q", h.Name, v)
		}
		// What pip installs for the app is compiled, as before.
		if pyc, _ := filepath.Glob(filepath.Join(site[0], "pdtestdep/__pycache__/*.pyc")); len(pyc) == 0 {
			t.Errorf("%s: pdtestdep was installed without its .pyc", h.Name)
		}
	}

	// Another Python: a copy of its own; retention keeps both while a
	// kept venv came from each, and the venvs of the other Python stay.
	other := otherPython(t, e)
	e.vars["DEPLOY_PYTHON"] = other
	e.commit("1.0", map[string]string{"requirements.txt": e.env.AppFiles("1.0")["requirements.txt"] + "# " + other + "\n"})
	e.mustDeploy()
	for _, h := range e.env.Hosts {
		c := pipCopies(t, h)
		if len(c) != 2 {
			t.Errorf("%s: pip copies %v with a second Python, want 2", h.Name, c)
		}
		if v := e.onHost(h, "app/current/venv/bin/python", "-c", "import pdtestdep, sys; print(pdtestdep.VERSION, sys.base_prefix)"); !strings.HasPrefix(v, "1.0 ") {
			t.Errorf("%s: the other Python's venv imports %q", h.Name, v)
		}
		if ino, _ := inodeOf(t, copies[h.Name].path); ino != copies[h.Name].ino {
			t.Errorf("%s: the first Python's copy was rebuilt", h.Name)
		}
	}
	// One more release of the other Python: the releases (and venvs) of
	// the first are now gone, and so is its copy; the one in use stays.
	e.commit("1.0", map[string]string{"requirements.txt": e.env.AppFiles("1.0")["requirements.txt"] + "# " + other + " again\n"})
	e.mustDeploy()
	for _, h := range e.env.Hosts {
		c := pipCopies(t, h)
		if len(c) != 1 || c[0] == copies[h.Name].path {
			t.Errorf("%s: pip copies %v once only the other Python's venvs are kept, want its 1 (not %s)", h.Name, c, copies[h.Name].path)
		}
		if v := e.onHost(h, "app/current/venv/bin/pip", "--version"); !strings.HasPrefix(v, "pip ") {
			t.Errorf("%s: venv/bin/pip --version says %q", h.Name, v)
		}
	}
}

// otherPython is another Python installation the hosts can run: the
// hosts' python3 binary copied into a prefix of its own, with its standard
// library linked there. Its sys.base_prefix differs, and with it the key of
// its pip copy, as a Python of another version would (the key is made of
// the version, the prefix, the platform and the wheels), and it runs
// wherever the hosts' python3 does.
func otherPython(t *testing.T, e *e2e) string {
	t.Helper()
	info := strings.Split(e.onHost(e.env.Hosts[0], "python3", "-c",
		"import os, sys, sysconfig; print(os.path.realpath(sys.executable)); print(sysconfig.get_path('stdlib'))"), "\n")
	if len(info) != 2 {
		t.Fatalf("the hosts' python3 says %q", info)
	}
	dir, err := os.MkdirTemp("", "pushdeploy-python-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	bin := filepath.Join(dir, "bin", "python3")
	exe, err := os.ReadFile(info[0])
	if err == nil {
		err = os.MkdirAll(filepath.Join(dir, "lib"), 0o755)
	}
	if err == nil {
		err = os.Symlink(info[1], filepath.Join(dir, "lib", filepath.Base(info[1])))
	}
	if err == nil {
		err = os.MkdirAll(filepath.Dir(bin), 0o755)
	}
	if err == nil {
		err = os.WriteFile(bin, exe, 0o755)
	}
	if err == nil {
		err = os.Chmod(dir, 0o755) // the hosts' users run it
	}
	if err != nil {
		t.Fatal(err)
	}
	if v := e.onHost(e.env.Hosts[0], bin, "-c", "import sys, venv, ensurepip; print(sys.base_prefix)"); v != dir {
		t.Fatalf("the other Python's base prefix is %q, want %s", v, dir)
	}
	return bin
}

// TestEndToEndPipCopyBeforeTheLock: the pip-copy step makes a host's copy
// of pip in the part of the prepare that runs on every host at once, and
// the deploys after it cope with whatever became of the copy. The first
// host's before-switch hook waits for the second host's copy (its stamp):
// with DEPLOY_PARALLEL=1 the second host's lock and build wait for the
// first host's build, so only a copy made before the lock can end that
// wait. Then, each time with a new requirements.txt (a new venv), the
// step's answer when the copy and its stamp are as they were (the shell
// alone says so), when the stamp is stale, when the copy is missing, and
// when it is damaged (the venv falls back to python -m venv and sets the
// copy aside; the next pip-copy builds it again); every venv has a pip
// that runs.
func TestEndToEndPipCopyBeforeTheLock(t *testing.T) {
	e := newE2E(t, 2)
	e.vars["DEPLOY_PARALLEL"] = "1"
	second := e.env.Hosts[1]
	stamp := func(h *testhosts.Host) string { return h.Path("app/pip/.pushdeploy-ready") }
	hook := "#!/bin/sh\n# the other host's copy of pip, made while this host holds its lock\n" +
		"i=0\nuntil [ -e '" + stamp(second) + "' ]; do\n" +
		"\ti=$((i + 1))\n\t[ \"$i\" -lt 600 ] || { echo 'no copy of pip on the second host after 60 s'; exit 1; }\n\tsleep 0.1\ndone\n"
	e.commit("1.0", map[string]string{".pushdeploy/before-switch": hook})
	first := e.mustDeploy()
	s1, s2 := stepsOf(first.Hosts[0]), stepsOf(first.Hosts[1])
	end := func(s stepJSON) time.Time { return s.Started.Add(time.Duration(s.Seconds * float64(time.Second))) }
	if !end(s2["pip-copy"]).Before(end(s1["before-switch"])) || !s2["lock"].Started.After(end(s1["before-switch"])) {
		t.Errorf("second host's pip-copy %v–%v, lock from %v; first host's before-switch ended %v: want the copy made while the first host built",
			s2["pip-copy"].Started, end(s2["pip-copy"]), s2["lock"].Started, end(s1["before-switch"]))
	}
	for i, h := range e.env.Hosts {
		s := stepsOf(first.Hosts[i])
		t.Logf("%s: first deploy: pip-copy %.2fs, venv %.2fs, pip %.2fs", h.Name, s["pip-copy"].Seconds, s["venv"].Seconds, s["pip"].Seconds)
		if !strings.Contains(s["pip-copy"].Output, "built the copy of pip for this Python") || len(pipCopies(t, h)) != 1 {
			t.Errorf("%s: pip-copy said %q, copies %v; want one built", h.Name, s["pip-copy"].Output, pipCopies(t, h))
		}
	}

	copyOf := func(h *testhosts.Host) string { return testhosts.Glob1(t, h.Path("app/pip/[0-9a-f]*")) }
	steps := []struct {
		name  string
		do    func(h *testhosts.Host)
		said  string // pip-copy's output
		venv  string // in the venv step's output, when not ""
		again bool   // the copy is a new one
	}{
		{"as it was", func(*testhosts.Host) {}, "the copy of pip for this Python is ready: ", "", false},
		{"stamp names another python", func(h *testhosts.Host) {
			b, err := os.ReadFile(stamp(h))
			if err == nil {
				lines := strings.SplitN(string(b), "\n", 3)
				err = os.WriteFile(stamp(h), []byte(lines[0]+"\n1 2 3 /usr/bin/python0\n"+lines[2]), 0o644)
			}
			if err != nil {
				t.Fatal(err)
			}
		}, "found the copy of pip for this Python: ", "", false},
		{"copy missing", func(h *testhosts.Host) {
			if err := os.RemoveAll(copyOf(h)); err != nil {
				t.Fatal(err)
			}
		}, "built the copy of pip for this Python", "", true},
		{"copy damaged: pip/__init__.py gone", func(h *testhosts.Host) {
			if err := os.Remove(filepath.Join(copyOf(h), "pip/__init__.py")); err != nil {
				t.Fatal(err)
			}
		}, "the copy of pip for this Python is ready: ", "gave no working pip: set aside, to be built again", false},
		{"after the first damaged copy", func(*testhosts.Host) {}, "built the copy of pip for this Python", "", true},
		{"copy damaged: pip/__init__.py does not compile", func(h *testhosts.Host) {
			// A new file, not written into the old one: the venvs have
			// hard links to it.
			p := filepath.Join(copyOf(h), "pip/__init__.py")
			err := os.Remove(p)
			if err == nil {
				err = os.WriteFile(p, []byte("this is not python\n"), 0o644)
			}
			if err != nil {
				t.Fatal(err)
			}
		}, "the copy of pip for this Python is ready: ", "gave no working pip: set aside, to be built again", false},
		{"after the second damaged copy", func(*testhosts.Host) {}, "built the copy of pip for this Python", "", true},
	}
	for i, st := range steps {
		before := map[string]uint64{}
		for _, h := range e.env.Hosts {
			st.do(h)
			if c := pipCopies(t, h); len(c) == 1 {
				before[h.Name], _ = inodeOf(t, c[0])
			}
		}
		e.commit("1.0", map[string]string{"requirements.txt": e.env.AppFiles("1.0")["requirements.txt"] + "# " + st.name + "\n"})
		dep := e.mustDeploy()
		for j, h := range e.env.Hosts {
			s := stepsOf(dep.Hosts[j])
			t.Logf("%s: %s: pip-copy %.3fs, venv %.2fs", h.Name, st.name, s["pip-copy"].Seconds, s["venv"].Seconds)
			if !strings.Contains(s["pip-copy"].Output, st.said) {
				t.Errorf("%d %s: %s: pip-copy said %q, want %q", i, st.name, h.Name, s["pip-copy"].Output, st.said)
			}
			if !strings.Contains(s["venv"].Output, st.venv) {
				t.Errorf("%d %s: %s: venv said %q, want %q", i, st.name, h.Name, s["venv"].Output, st.venv)
			}
			// A damaged copy is set aside (and removed by retention):
			// none is left until the next pip-copy step.
			if c := pipCopies(t, h); st.venv != "" && len(c) != 0 {
				t.Errorf("%d %s: %s: pip copies %v, want the damaged one set aside", i, st.name, h.Name, c)
			} else if st.venv == "" && len(c) != 1 {
				t.Errorf("%d %s: %s: pip copies %v, want 1", i, st.name, h.Name, c)
			} else if len(c) == 1 {
				if ino, _ := inodeOf(t, c[0]); (ino != before[h.Name]) != st.again {
					t.Errorf("%d %s: %s: copy rebuilt: %v, want %v", i, st.name, h.Name, ino != before[h.Name], st.again)
				}
			}
			if v := e.onHost(h, "app/current/venv/bin/pip", "--version"); !strings.HasPrefix(v, "pip ") {
				t.Errorf("%d %s: %s: venv/bin/pip --version says %q", i, st.name, h.Name, v)
			}
			if v := e.onHost(h, "app/current/venv/bin/python", "-c", "import pdtestdep; print(pdtestdep.VERSION)"); v != "1.0" {
				t.Errorf("%d %s: %s: the venv imports pdtestdep %q", i, st.name, h.Name, v)
			}
		}
	}
}
