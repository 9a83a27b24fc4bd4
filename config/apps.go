package config

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"

	"github.com/pushdeploy/pushdeploy/deploy"
)

// Setup is everything serve and the commands are configured with: the
// server's values and the apps it deploys.
type Setup struct {
	// Server holds the server's values: the environment and the env file
	// over the defaults. Without DEPLOY_APPS_DIR it is the one app's
	// complete Config (Apps[0].Config); with it, only its server-only
	// variables are checked, and its per-app fields are the values the app
	// files start from (Hosts, SSHKeyPEM and GitKeyPEM are not filled).
	Server *Config
	// Dir is DEPLOY_APPS_DIR as given; "" when it is unset.
	Dir string
	// Apps are sorted by name; without DEPLOY_APPS_DIR exactly one, named
	// deploy.DefaultApp, configured from the environment and the env file.
	Apps []*App
	// Warnings are those of the app files of the last ReloadApps (a file
	// holding a secret that others can read): worth logging, but the apps
	// load. LoadSetup returns its warnings instead.
	Warnings []string

	base *base
	dir  string // Dir with ~ expanded
}

// App is one app the server deploys.
type App struct {
	// Name is the app's name: NAME of DEPLOY_APPS_DIR/NAME.env, or
	// deploy.DefaultApp.
	Name string
	// File is the app file's path; "" for the default app.
	File string
	// Config is complete and validated: the server-only fields are
	// Server's, every other one comes from the app file, else the
	// environment or the env file, else its default; Hosts, SSHKeyPEM and
	// GitKeyPEM are filled as Validate fills them.
	*Config

	lines map[string]int // the line of each key of the app file
}

// Names returns the apps' names, sorted.
func (s *Setup) Names() []string {
	names := make([]string, len(s.Apps))
	for i, a := range s.Apps {
		names[i] = a.Name
	}
	return names
}

// App returns the app named name.
func (s *Setup) App(name string) (*App, bool) {
	for _, a := range s.Apps {
		if a.Name == name {
			return a, true
		}
	}
	return nil, false
}

// appNameRE is the form of an app's name, NAME of NAME.env.
var appNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

const appNameForm = "lower-case letters, digits and '-', starting with a letter or digit, at most 63, e.g. staging"

// appFileExt ends the name of an app file; other files of the folder
// (README, an editor's backup) are not apps.
const appFileExt = ".env"

// LoadSetup reads the configuration: the DEPLOY_ variables of the
// environment and, for those it does not set, of the env file (as Load
// describes); then, when DEPLOY_APPS_DIR names a folder, every app file in
// it. Every value is checked: a bad configuration is an *Error listing
// every problem of every file at once, each naming the file and line (or
// the variable) at fault and what to do.
//
// Without DEPLOY_APPS_DIR there is one app, deploy.DefaultApp, configured
// exactly as Load always did. With it, each NAME.env of the folder is an
// app: its values go over those of the environment and the env file (an
// app file wins, so that the env file can hold what the apps share), then
// the defaults. A server-only variable (scope:"server" in Config) in an
// app file is a problem, and so are two apps deploying to the same host
// and root, and a DEPLOY_PROMOTE_FROM naming no other app, or going round
// in a cycle.
//
// Warnings are things worth telling the user that do not stop pushdeploy
// (a key file others can read, two apps with one webhook secret).
func LoadSetup(envFile string, explicit bool) (*Setup, []string, error) {
	b, c, warnings, err := loadBase(envFile, explicit)
	if err != nil {
		return nil, warnings, err
	}
	s := &Setup{Server: c, Dir: c.AppsDir, base: b}
	if c.AppsDir == "" {
		w, err := c.Validate()
		warnings = append(warnings, w...)
		if err != nil {
			return nil, warnings, err
		}
		s.Apps = []*App{{Name: deploy.DefaultApp, Config: c}}
		return s, warnings, nil
	}

	var probs problems
	w, err := c.validate(scopeServer)
	warnings = append(warnings, w...)
	if ce, ok := err.(*Error); ok {
		probs = append(probs, ce.Problems...)
	}
	if hasControl(c.AppsDir) {
		return nil, warnings, probs.err()
	}
	s.dir = c.AppsDir
	r := s.readApps()
	warnings = append(warnings, r.warnings...)
	probs = append(probs, r.problems...)
	for _, cp := range crossCheck(r.apps, r.broken, nil) {
		probs = append(probs, cp.msg)
	}
	warnings = append(warnings, sharedSecrets(r.apps)...)
	if err := probs.err(); err != nil {
		return nil, warnings, err
	}
	s.Apps = r.apps
	return s, warnings, nil
}

// appsRead is what one reading of the apps folder found.
type appsRead struct {
	apps     []*App          // the apps whose files are valid, sorted by name
	broken   map[string]bool // the names of the app files that are not
	problems []string
	warnings []string
	// dirFailed is set when the folder itself cannot be used (missing,
	// unreadable, without app files).
	dirFailed bool
}

// readApps reads every app file of s.dir.
func (s *Setup) readApps() appsRead {
	r := appsRead{broken: make(map[string]bool)}
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		r.dirFailed = true
		r.problems = append(r.problems, fmt.Sprintf("DEPLOY_APPS_DIR: cannot read %s: %v; create the folder and put one NAME.env file per app in it (docs/apps.md)",
			s.Dir, pathError(err)))
		return r
	}
	found := 0
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), appFileExt)
		if !ok || strings.HasPrefix(e.Name(), ".") {
			// Hidden files are an editor's (Emacs locks a file being
			// edited with .#NAME.env), not apps.
			continue
		}
		file := filepath.Join(s.dir, e.Name())
		if fi, err := os.Stat(file); err == nil && fi.IsDir() {
			continue
		}
		found++
		if !appNameRE.MatchString(name) {
			r.broken[name] = true
			r.problems = append(r.problems, fmt.Sprintf("%s: %q is not an app name (%s); rename the file NAME.env", file, name, appNameForm))
			continue
		}
		a, warnings, probs := s.loadApp(name, file)
		r.warnings = append(r.warnings, warnings...)
		if len(probs) > 0 {
			r.broken[name] = true
			r.problems = append(r.problems, probs...)
			continue
		}
		r.apps = append(r.apps, a)
	}
	if found == 0 {
		r.dirFailed = true
		r.problems = append(r.problems, fmt.Sprintf("DEPLOY_APPS_DIR: %s holds no app file; put one NAME.env file per app in it, e.g. %s (docs/apps.md)",
			s.Dir, filepath.Join(s.Dir, "staging.env")))
	}
	slices.SortFunc(r.apps, func(a, b *App) int { return strings.Compare(a.Name, b.Name) })
	return r
}

// loadApp reads and checks the app file of app name.
func (s *Setup) loadApp(name, file string) (a *App, warnings []string, probs problems) {
	data, err := os.ReadFile(file)
	if err != nil {
		probs.add("%s: cannot read it: %v", file, pathError(err))
		return nil, nil, probs
	}
	vals, lines, warnings, err := envValues(file, data, &probs)
	if ce, ok := err.(*Error); ok {
		return nil, warnings, append(probs, ce.Problems...)
	}
	for _, key := range slices.Sorted(maps.Keys(vals)) {
		v, ok := lookupVariable(key)
		switch {
		case !ok:
			// envValues named it.
		case v.server:
			probs.add("%s:%d: %s is the server's, the same for every app: set it in the environment or %s, not in an app file",
				file, lines[key], key, s.base.file)
		default:
			if msg := valueProblem(v.typ, vals[key]); msg != "" {
				probs.add("%s:%d: %s: %s", file, lines[key], key, msg)
			}
		}
	}
	if len(probs) > 0 {
		return nil, warnings, probs
	}

	lookup := func(key string) (string, bool) {
		if v, ok := vals[key]; ok {
			return v, true
		}
		return s.base.lookup(key)
	}
	c := new(Config)
	if err := decode(c, lookup); err != nil {
		// The values were checked above and in loadBase.
		return nil, warnings, append(probs, file+": "+err.Error())
	}
	copyServer(c, s.Server)
	c.SharedPaths = cleanList(c.SharedPaths)
	a = &App{Name: name, File: file, Config: c, lines: lines}
	w, err := c.validate(scopeApp)
	for _, msg := range w {
		warnings = append(warnings, a.locate(msg, s.base))
	}
	if ce, ok := err.(*Error); ok {
		for _, p := range ce.Problems {
			probs = append(probs, a.locate(p, s.base))
		}
		return nil, warnings, probs
	}
	return a, warnings, nil
}

// copyServer sets the server-only fields of dst to src's.
func copyServer(dst, src *Config) {
	d, s := reflect.ValueOf(dst).Elem(), reflect.ValueOf(src).Elem()
	for _, v := range variables {
		if v.server {
			d.Field(v.field).Set(s.Field(v.field))
		}
	}
}

// locate prefixes a problem of the app with its file, and the line when
// the variable it names is set there: "apps/staging.env:3: DEPLOY_ROOT: …".
// A value the app takes from the environment or the env file b read is
// named with the app file, and where the value is from: the app gets it
// there, and that is where to fix it (or to set the app's own).
func (a *App) locate(p string, b *base) string {
	key := ""
	for _, v := range variables {
		if strings.HasPrefix(p, v.key) && len(v.key) > len(key) {
			key = v.key
		}
	}
	if key == "" {
		return a.File + ": " + p
	}
	if line, ok := a.lines[key]; ok {
		return fmt.Sprintf("%s:%d: %s", a.File, line, p)
	}
	if _, ok := b.env[key]; ok {
		return fmt.Sprintf("%s: %s (the value is the environment's)", a.File, p)
	}
	if line, ok := b.lines[key]; ok {
		return fmt.Sprintf("%s: %s (the value is from %s:%d)", a.File, p, b.file, line)
	}
	return a.File + ": " + p
}

// ReloadApps reads s.Dir again (the environment and the env file are not
// read again: they are the server's, and a reload reads the app files
// only), and returns the apps the server goes on with, and the problems
// found, each naming the file, line and variable at fault and what to do.
//
// Every app is built again, its hosts file and keys read again. An app
// whose configuration did not change (the same values, from the same
// lines) keeps its *App (the same pointer), so the caller can tell what
// changed. A new file that does not validate is
// left out; an app whose file no longer validates keeps its previous
// *App. So do the apps a problem between apps names (the same host and
// root, a DEPLOY_PROMOTE_FROM naming no app or going round), when they
// changed: a removed app that another promotes from is kept, and a new
// one left out. Without s.Dir there is nothing to re-read: s is returned.
func (s *Setup) ReloadApps() (*Setup, []string) {
	if s.dir == "" {
		return s, nil
	}
	next := &Setup{Server: s.Server, Dir: s.Dir, base: s.base, dir: s.dir}
	r := s.readApps()
	next.Warnings = r.warnings
	if r.dirFailed {
		// Stopping every app because the folder went away for a moment
		// (or was emptied by mistake) would be the worst reading of it.
		next.Apps = s.Apps
		return next, append(r.problems, fmt.Sprintf("DEPLOY_APPS_DIR: %s: the apps keep their previous configuration", s.Dir))
	}

	prev := make(map[string]*App, len(s.Apps))
	for _, a := range s.Apps {
		prev[a.Name] = a
	}
	cur := make(map[string]*App, len(r.apps))
	for _, a := range r.apps {
		if p := prev[a.Name]; p != nil && sameApp(p, a) {
			a = p
		}
		cur[a.Name] = a
	}
	probs := r.problems
	for name := range r.broken {
		if p := prev[name]; p != nil {
			cur[name] = p
		}
	}
	probs = append(probs, settle(cur, prev, r.broken)...)
	next.Apps = sortedApps(cur)
	next.Warnings = append(next.Warnings, sharedSecrets(next.Apps)...)
	return next, probs
}

// settle undoes the changes that problems between apps name, until there
// are none: an app named by one goes back to prev (a new one is left out,
// a removed one kept). It returns the problems, each saying what was
// kept.
func settle(cur, prev map[string]*App, broken map[string]bool) []string {
	var probs []string
	seen := make(map[string]bool)
	for {
		fresh := make(map[string]bool)
		for name, a := range cur {
			if a != prev[name] {
				fresh[name] = true
			}
		}
		cps := crossCheck(sortedApps(cur), broken, fresh)
		if len(cps) == 0 {
			return probs
		}
		undone := false
		for _, cp := range cps {
			var kept []string
			for _, name := range cp.apps {
				if cur[name] == prev[name] {
					continue
				}
				undone = true
				switch p := prev[name]; {
				case p == nil:
					delete(cur, name)
					kept = append(kept, name+" is not started")
				case cur[name] == nil:
					cur[name] = p
					kept = append(kept, name+", whose file was removed, keeps running")
				default:
					cur[name] = p
					kept = append(kept, name+" keeps its previous configuration")
				}
			}
			msg := cp.msg
			if len(kept) > 0 {
				msg += " (" + strings.Join(kept, "; ") + ")"
			}
			if !seen[msg] {
				seen[msg] = true
				probs = append(probs, msg)
			}
		}
		if !undone {
			// Nothing left to undo: the problems stand as they are (the
			// previous setup had them too).
			return probs
		}
	}
}

// sameApp reports whether b configures app a exactly as a does, from the
// same lines (which the problems name).
func sameApp(a, b *App) bool {
	return a.File == b.File && reflect.DeepEqual(a.Config, b.Config) && maps.Equal(a.lines, b.lines)
}

func sortedApps(m map[string]*App) []*App {
	apps := make([]*App, 0, len(m))
	for _, a := range m {
		apps = append(apps, a)
	}
	slices.SortFunc(apps, func(a, b *App) int { return strings.Compare(a.Name, b.Name) })
	return apps
}
