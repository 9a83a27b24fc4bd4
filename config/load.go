package config

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"slices"
	"strings"

	"github.com/joho/godotenv"
	"github.com/kelseyhightower/envconfig"
)

// Load reads the configuration: the env file, then the DEPLOY_ variables of
// the environment, and checks it with Validate.
//
// envFile is the file named by --env-file, explicit reports whether the
// user named it: an explicit file must exist, while the default ("" means
// DefaultEnvFile) is read only when it exists. Every key of the file must be
// a DEPLOY_ variable. The file's variables that are not set in the
// environment are exported to it (os.Setenv): the real environment wins.
//
// Warnings are things worth telling the user that do not stop pushdeploy
// (a key file others can read, a variable this version does not use yet).
// A bad configuration is an *Error listing every problem found.
func Load(envFile string, explicit bool) (*Config, []string, error) {
	var probs problems
	var warnings []string
	if envFile == "" {
		envFile = DefaultEnvFile
	}
	w, err := loadEnvFile(envFile, explicit, &probs)
	if err != nil {
		return nil, nil, err
	}
	warnings = append(warnings, w...)
	pinAlternates()
	checkEnv(&probs)
	if err := probs.err(); err != nil {
		return nil, warnings, err
	}

	var c Config
	if err := envconfig.Process(Prefix, &c); err != nil {
		return nil, warnings, processError(err)
	}
	c.SharedPaths = cleanList(c.SharedPaths)
	c.WebhookAllowCIDRs = cleanList(c.WebhookAllowCIDRs)

	w, err = c.Validate()
	warnings = append(warnings, w...)
	if err != nil {
		return nil, warnings, err
	}
	return &c, warnings, nil
}

// loadEnvFile exports the variables of the env file that the environment
// does not set. Problems of the file go to probs; the returned error is for
// an env file named with --env-file that cannot be read.
func loadEnvFile(file string, explicit bool, probs *problems) ([]string, error) {
	data, err := os.ReadFile(file)
	if !explicit && errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		name := file
		if explicit {
			name = "--env-file " + file
		}
		return nil, &Error{Problems: []string{fmt.Sprintf("%s: cannot read it: %v", name, pathError(err))}}
	}
	env, err := godotenv.UnmarshalBytes(data)
	if _, empty := env[""]; err != nil || empty {
		msg := envFileProblem(file, data)
		if msg == "" { // the walk and godotenv disagree: say it without quoting the file
			msg = file + ":1: cannot be read as VARIABLE=value lines"
		}
		return nil, &Error{Problems: []string{msg}}
	}
	var secrets []string
	for _, key := range slices.Sorted(maps.Keys(env)) {
		v, ok := lookupVariable(key)
		if !ok {
			probs.add("%s: %s", fileLine(file, data, key), unknownVariable(key))
			continue
		}
		if v.secret && env[key] != "" {
			secrets = append(secrets, key)
		}
		if _, set := os.LookupEnv(key); !set {
			if strings.ContainsRune(env[key], 0) {
				probs.add("%s: %s: the value contains a NUL byte, which no variable can hold", fileLine(file, data, key), key)
			} else if err := os.Setenv(key, env[key]); err != nil {
				probs.add("%s: %s: %v", fileLine(file, data, key), key, err)
			}
		}
	}
	if len(secrets) > 0 {
		if fi, err := os.Stat(file); err == nil && fi.Mode().Perm()&0o077 != 0 {
			return []string{fmt.Sprintf("%s holds %s but other users can read it (mode %04o); run chmod 600 %s",
				file, strings.Join(secrets, ", "), fi.Mode().Perm(), file)}, nil
		}
	}
	return nil, nil
}

// fileLine returns "file:N" for the line of data that sets key, or file.
func fileLine(file string, data []byte, key string) string {
	if lines, _, _ := envStatements(data); lines[key] > 0 {
		return fmt.Sprintf("%s:%d", file, lines[key])
	}
	return file
}

// pinAlternates defeats envconfig's fallback to the unprefixed name: with
// the tag envconfig:"BRANCH", an unset DEPLOY_BRANCH would be read from
// BRANCH, and PYTHON, ROOT or LISTEN are common variables with other
// meanings. Setting the DEPLOY_ variable to its default where it is unset
// and the unprefixed one is set keeps the default.
func pinAlternates() {
	for _, v := range variables {
		if _, ok := os.LookupEnv(v.key); ok {
			continue
		}
		if _, ok := os.LookupEnv(v.alt); ok {
			os.Setenv(v.key, v.def)
		}
	}
}

// checkEnv reports unknown DEPLOY_ variables and values that do not parse
// as their variable's type: every one of them, where envconfig stops at
// the first.
func checkEnv(probs *problems) {
	var missing []string
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
		value, ok := os.LookupEnv(v.key)
		if !ok && v.def == "" {
			// A missing required variable is Validate's to report, with
			// the problems of the files it names; here only next to
			// values that stop the loading before Validate.
			if v.required {
				missing = append(missing, requiredProblem(v))
			}
			continue
		}
		if !ok {
			value = v.def
		}
		if msg := valueProblem(v.typ, value); msg != "" {
			probs.add("%s: %s", v.key, msg)
		}
	}
}

func requiredProblem(v variable) string {
	return fmt.Sprintf("%s is required: %s", v.key, v.desc)
}

// processError turns an error of envconfig.Process into an *Error.
func processError(err error) error {
	var pe *envconfig.ParseError
	if errors.As(err, &pe) {
		if v, ok := lookupVariable(pe.KeyName); ok {
			if msg := valueProblem(v.typ, pe.Value); msg != "" {
				return &Error{Problems: []string{pe.KeyName + ": " + msg}}
			}
		}
		return &Error{Problems: []string{fmt.Sprintf("%s: %q: %v", pe.KeyName, pe.Value, pe.Err)}}
	}
	return &Error{Problems: []string{err.Error()}}
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
