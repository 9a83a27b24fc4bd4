package config

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// variable is one DEPLOY_ variable, as envconfig sees the Config field.
type variable struct {
	key      string // DEPLOY_BRANCH
	alt      string // BRANCH: the envconfig tag
	field    int    // index of the field in Config
	typ      reflect.Type
	def      string
	desc     string
	required bool
	secret   bool
	server   bool // server-only: never in an app file
}

// variables lists the fields of Config that are variables, in field order.
var variables = collectVariables()

func collectVariables() []variable {
	var vars []variable
	t := reflect.TypeFor[Config]()
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Tag.Get("ignored") == "true" || !f.IsExported() {
			continue
		}
		alt := strings.ToUpper(f.Tag.Get("envconfig"))
		if alt == "" {
			alt = strings.ToUpper(f.Name)
		}
		// Required variables say so in their description instead of
		// envconfig's required tag: envconfig stops at a missing one,
		// and Validate is to report it together with every other problem.
		desc, required := strings.CutPrefix(f.Tag.Get("desc"), "required: ")
		vars = append(vars, variable{
			key:      Prefix + "_" + alt,
			alt:      alt,
			field:    i,
			typ:      f.Type,
			def:      f.Tag.Get("default"),
			desc:     desc,
			required: required,
			secret:   f.Tag.Get("secret") == "true",
			server:   f.Tag.Get("scope") == "server",
		})
	}
	return vars
}

func lookupVariable(key string) (variable, bool) {
	for _, v := range variables {
		if v.key == key {
			return v, true
		}
	}
	return variable{}, false
}

// unknownVariable describes key, which is not a variable, suggesting the
// nearest one when there is one close enough to be a typo.
func unknownVariable(key string) string {
	msg := key + " is not a pushdeploy variable"
	best, bestDist := "", 3
	upper := strings.ToUpper(key)
	if !strings.HasPrefix(upper, Prefix+"_") {
		upper = Prefix + "_" + upper
	}
	for _, v := range variables {
		if d := levenshtein(upper, v.key); d < bestDist {
			best, bestDist = v.key, d
		}
	}
	if best != "" {
		return msg + "; did you mean " + best + "?"
	}
	return msg + " (see deploy.env.example for the list)"
}

var durationType = reflect.TypeFor[time.Duration]()

// parseValue parses s the way envconfig does for a field of type t.
func parseValue(t reflect.Type, s string) (reflect.Value, error) {
	v := reflect.New(t).Elem()
	switch {
	case t == durationType:
		d, err := time.ParseDuration(s)
		v.SetInt(int64(d))
		return v, err
	case t.Kind() == reflect.Int:
		n, err := strconv.ParseInt(s, 0, t.Bits())
		v.SetInt(n)
		return v, err
	case t.Kind() == reflect.Bool:
		b, err := strconv.ParseBool(s)
		v.SetBool(b)
		return v, err
	case t.Kind() == reflect.String:
		v.SetString(s)
		return v, nil
	}
	return v, fmt.Errorf("config: no parser for %s", t)
}

// valueProblem says what is wrong with s as a value of type t, or "".
func valueProblem(t reflect.Type, s string) string {
	if t.Kind() == reflect.Slice {
		return ""
	}
	if _, err := parseValue(t, s); err == nil {
		return ""
	}
	switch {
	case t == durationType:
		return fmt.Sprintf("%q is not a duration (examples: 90s, 10m, 1h30m)", s)
	case t.Kind() == reflect.Int:
		return fmt.Sprintf("%q is not a whole number (example: 4)", s)
	case t.Kind() == reflect.Bool:
		return fmt.Sprintf("%q is not true or false", s)
	}
	return fmt.Sprintf("%q is not a valid %s", s, t)
}

// levenshtein returns the edit distance between a and b.
func levenshtein(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
