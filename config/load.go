package config

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"reflect"
	"slices"
	"strings"

	"github.com/kelseyhightower/envconfig"
)

// Load reads the configuration of one app: LoadSetup's only app. With
// several apps in DEPLOY_APPS_DIR it is an *Error naming them: the callers
// that serve or pick one of several use LoadSetup.
func Load(envFile string, explicit bool) (*Config, []string, error) {
	s, warnings, err := LoadSetup(envFile, explicit)
	if err != nil {
		return nil, warnings, err
	}
	if len(s.Apps) != 1 {
		return nil, warnings, &Error{Problems: []string{fmt.Sprintf(
			"DEPLOY_APPS_DIR: %s holds %d apps (%s); name the one to work on", s.Dir, len(s.Apps), strings.Join(s.Names(), ", "))}}
	}
	return s.Apps[0].Config, warnings, nil
}

// base is the server's side of the configuration: the DEPLOY_ variables
// of the environment and of the env file, as they were when LoadSetup read
// them. An app file's values go over them.
type base struct {
	file  string            // the env file's name
	env   map[string]string // the environment's DEPLOY_ variables
	vals  map[string]string // the env file's
	lines map[string]int    // the line of each key of the env file
}

// lookup gives a variable's value: the real environment wins over the
// file.
func (b *base) lookup(key string) (string, bool) {
	if v, ok := b.env[key]; ok {
		return v, true
	}
	v, ok := b.vals[key]
	return v, ok
}

// where names the env file and line a bad value comes from: "" for the
// environment.
func (b *base) where(key string) string {
	if _, env := b.env[key]; env || b.lines[key] == 0 {
		return ""
	}
	return fmt.Sprintf("%s:%d: ", b.file, b.lines[key])
}

// loadBase reads the DEPLOY_ variables of the environment and the env
// file and decodes them, without Validate. envFile is the file named by
// --env-file, explicit reports whether the user named it: an explicit file
// must exist, while the default ("" means DefaultEnvFile) is read only
// when it exists.
func loadBase(envFile string, explicit bool) (*base, *Config, []string, error) {
	var probs problems
	if envFile == "" {
		envFile = DefaultEnvFile
	}
	vals, lines, warnings, err := readEnvFile(envFile, explicit, &probs)
	if err != nil {
		return nil, nil, nil, err
	}
	b := &base{file: envFile, env: make(map[string]string), vals: vals, lines: lines}
	for _, v := range variables {
		if s, ok := os.LookupEnv(v.key); ok {
			b.env[v.key] = s
		}
	}
	checkEnv(b.lookup, b.where, &probs)
	if err := probs.err(); err != nil {
		return nil, nil, warnings, err
	}
	var c Config
	if err := decode(&c, b.lookup); err != nil {
		return nil, nil, warnings, err
	}
	c.SharedPaths = cleanList(c.SharedPaths)
	c.WebhookAllowCIDRs = cleanList(c.WebhookAllowCIDRs)
	return b, &c, warnings, nil
}

// readEnvFile returns the variables the env file sets. Problems of the
// file go to probs; the returned error is for a file that cannot be read
// at all.
func readEnvFile(file string, explicit bool, probs *problems) (env map[string]string, lines map[string]int, warnings []string, err error) {
	data, err := os.ReadFile(file)
	if !explicit && errors.Is(err, fs.ErrNotExist) {
		return nil, nil, nil, nil
	}
	if err != nil {
		name := file
		if explicit {
			name = "--env-file " + file
		}
		return nil, nil, nil, &Error{Problems: []string{fmt.Sprintf("%s: cannot read it: %v", name, pathError(err))}}
	}
	return envValues(file, data, probs)
}

// envValues reads data, the content of an env file (or an app file):
// the variables it sets and the line of each. Every key must be a
// variable (problems go to probs); the returned error is for a line that
// cannot be read. It warns when the file holds a secret and others can
// read it.
func envValues(file string, data []byte, probs *problems) (env map[string]string, lines map[string]int, warnings []string, err error) {
	entries, bad := parseEnvFile(data)
	if bad != nil {
		return nil, nil, nil, &Error{Problems: []string{bad.problem(file)}}
	}
	env = make(map[string]string, len(entries))
	lines = make(map[string]int, len(entries))
	for _, e := range entries {
		env[e.key], lines[e.key] = e.value, e.line
	}
	var secrets []string
	for _, key := range slices.Sorted(maps.Keys(env)) {
		at := fmt.Sprintf("%s:%d", file, lines[key])
		v, ok := lookupVariable(key)
		switch {
		case !ok:
			probs.add("%s: %s", at, unknownVariable(key))
		case strings.ContainsRune(env[key], 0):
			// The environment cannot hold one either.
			probs.add("%s: %s: the value contains a NUL byte, which no variable can hold", at, key)
		case v.secret && env[key] != "":
			secrets = append(secrets, key)
		}
	}
	if len(secrets) > 0 {
		if fi, err := os.Stat(file); err == nil && fi.Mode().Perm()&0o077 != 0 {
			return env, lines, []string{fmt.Sprintf("%s holds %s but other users can read it (mode %04o); run chmod 600 %s",
				file, strings.Join(secrets, ", "), fi.Mode().Perm(), file)}, nil
		}
	}
	return env, lines, nil, nil
}

// decode fills c the way envconfig.Process fills it from the environment
// (TestDecodeLikeEnvconfig compares the two), but from lookup: the value of
// each variable, or its default when it is unset; a variable unset and
// without a default keeps its zero value. Unprefixed names are never
// looked up (envconfig would fall back to BRANCH for DEPLOY_BRANCH, and
// PYTHON, ROOT or LISTEN are common variables with other meanings).
func decode(c *Config, lookup func(key string) (string, bool)) error {
	rv := reflect.ValueOf(c).Elem()
	for _, v := range variables {
		s, ok := lookup(v.key)
		if !ok {
			if v.def == "" {
				continue
			}
			s = v.def
		}
		field := rv.Field(v.field)
		var err error
		if v.typ.Kind() == reflect.Slice {
			err = decodeList(field, s)
		} else {
			err = decodeValue(field, s)
		}
		if err != nil {
			if msg := valueProblem(v.typ, s); msg != "" {
				return &Error{Problems: []string{v.key + ": " + msg}}
			}
			return &Error{Problems: []string{fmt.Sprintf("%s: %q: %v", v.key, s, err)}}
		}
	}
	return nil
}

// decodeList sets a slice field from a comma list, as envconfig does: an
// empty (or blank) value is an empty list, items are not trimmed.
func decodeList(field reflect.Value, s string) error {
	if strings.TrimSpace(s) == "" {
		field.Set(reflect.MakeSlice(field.Type(), 0, 0))
		return nil
	}
	items := strings.Split(s, ",")
	list := reflect.MakeSlice(field.Type(), len(items), len(items))
	for i, item := range items {
		if err := decodeValue(list.Index(i), item); err != nil {
			return err
		}
	}
	field.Set(list)
	return nil
}

func decodeValue(field reflect.Value, s string) error {
	x, err := parseValue(field.Type(), s)
	if err != nil {
		return err
	}
	field.Set(x)
	return nil
}

// checkEnv reports unknown DEPLOY_ variables and values that do not parse
// as their variable's type: every one of them, where envconfig stops at
// the first.
func checkEnv(lookup func(key string) (string, bool), where func(key string) string, probs *problems) {
	var missing []string
	// With DEPLOY_APPS_DIR, a required variable may be in each app file.
	dir, _ := lookup("DEPLOY_APPS_DIR")
	apps := dir != ""
	defer func() {
		if len(*probs) > 0 {
			for _, m := range missing {
				probs.add("%s", m)
			}
		}
	}()
	// envconfig.CheckDisallowed decides whether a mistyped variable is
	// there (by envconfig's own reading of Config's tags); it names only
	// the first, so every one is then named here, with the nearest real
	// one. TestVariables keeps variables equal to envconfig's list.
	if envconfig.CheckDisallowed(Prefix, &Config{}) != nil {
		for _, kv := range os.Environ() {
			key, _, _ := strings.Cut(kv, "=")
			if _, ok := lookupVariable(key); strings.HasPrefix(key, Prefix+"_") && !ok {
				probs.add("%s", unknownVariable(key))
			}
		}
	}
	for _, v := range variables {
		value, ok := lookup(v.key)
		if !ok && v.def == "" {
			// A missing required variable is Validate's to report, with
			// the problems of the files it names; here only next to
			// values that stop the loading before Validate.
			if v.required && !apps {
				missing = append(missing, requiredProblem(v))
			}
			continue
		}
		if !ok {
			value = v.def
		}
		if msg := valueProblem(v.typ, value); msg != "" {
			probs.add("%s%s: %s", where(v.key), v.key, msg)
		}
	}
}

func requiredProblem(v variable) string {
	return fmt.Sprintf("%s is required: %s", v.key, v.desc)
}

// cleanList trims the items of a comma list and drops empty ones, so that
// "a, b," means [a b].
func cleanList(items []string) []string {
	var out []string
	for _, s := range items {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}
