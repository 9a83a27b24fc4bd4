package webhook

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/pushdeploy/pushdeploy/deploy"
)

// FuzzSignatureOtherBody: a signature made for one body never admits
// another. GitLab is left out on purpose: its X-Gitlab-Token is the secret
// itself, not a MAC of the body, so it cannot bind a body (docs/webhooks.md).
func FuzzSignatureOtherBody(f *testing.F) {
	for i := range fuzzSigners {
		f.Add(uint8(i), []byte(`{"ref":"refs/heads/release"}`), []byte(`{"ref":"refs/heads/release" }`))
		f.Add(uint8(i), []byte(""), []byte(" "))
		f.Add(uint8(i), []byte("a"), []byte("A"))
	}
	f.Fuzz(func(t *testing.T, sel uint8, signed, sent []byte) {
		s := fuzzSigners[int(sel)%len(fuzzSigners)]
		if s.provider == GitLab || bytes.Equal(signed, sent) {
			return
		}
		h := signedHeaders(s.provider, s.kind, signed, testSecret)
		_, err := Parse(h, sent, testSecret, false)
		var se *SignatureError
		if !errors.As(err, &se) {
			t.Fatalf("%s: a signature over %q admitted %q: got %v, want a *SignatureError", s.provider, signed, sent, err)
		}
	})
}

// apiFields are the fields each API body may have.
var apiFields = map[string][]string{
	"/api/deploy":   {"commit", "hosts"},
	"/api/rollback": {"release"},
}

// FuzzAPIBodies posts arbitrary bodies to POST /api/deploy and
// /api/rollback: never a 5xx (a panic would be one, through the Recover
// middleware), never a request submitted from a body with unknown fields,
// trailing data or values no validator accepts.
func FuzzAPIBodies(f *testing.F) {
	for _, b := range []string{
		"", " ", "{}", "null", "[]", `"x"`, "1", `{"commit":"abcdef1"}`, `{"commit":"abcdef1","hosts":["web1","web2"]}`,
		`{"hosts":[]}`, `{"hosts":null}`, `{"hosts":[""]}`, `{"hosts":["web1\n"]}`, `{"commit":"$(touch /tmp/x)"}`,
		`{"commit":"abcdef1"}{"commit":"abcdef2"}`, `{"commit":"abcdef1"} x`, `{"COMMIT":"abcdef1"}`, `{"comit":"abcdef1"}`,
		`{"release":"20261125183400-1a2b3c4"}`, `{"release":"../x"}`, `{"release":"20261125183400-1a2b3c4\n"}`,
		`{"release":"20261125183400-1a2b3c4","release":"x"}`, `{"to":"x"}`, `{"commit":1}`, `{"hosts":"web1"}`,
		`{"commit":"` + strings.Repeat("a", 65) + `"}`, `{"hosts":["` + strings.Repeat("w", 5000) + `"]}`,
		`{"hosts":[` + strings.Repeat(`"w",`, 3000) + `"w"]}`, "{\"commit\":\"abc\u0000def\"}", `{"commit":"abcdef1",}`,
	} {
		f.Add(uint8(0), []byte(b))
		f.Add(uint8(1), []byte(b))
	}
	f.Fuzz(func(t *testing.T, sel uint8, body []byte) {
		path := "/api/deploy"
		if sel%2 == 1 {
			path = "/api/rollback"
		}
		fd := &fakeDeployments{}
		r := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
		r.Header.Set("Authorization", "Bearer tok")
		w := httptest.NewRecorder()
		newTestServer(t, fd, nil).ServeHTTP(w, r)
		if w.Code >= 500 {
			t.Fatalf("POST %s %.200q: %d %s", path, body, w.Code, w.Body)
		}
		if w.Code != http.StatusAccepted {
			if len(fd.reqs) != 0 {
				t.Fatalf("POST %s %.200q: answered %d but submitted %+v", path, body, w.Code, fd.reqs)
			}
			return
		}
		if len(fd.reqs) != 1 {
			t.Fatalf("POST %s %.200q: 202 with %d requests submitted", path, body, len(fd.reqs))
		}
		if trimmed := bytes.TrimSpace(body); len(trimmed) > 0 {
			checkOneObject(t, path, trimmed)
		}
		req := fd.reqs[0]
		if req.Push.Commit != "" && deploy.ValidCommitPrefix(req.Push.Commit) != nil {
			t.Fatalf("POST %s %.200q: submitted commit %q", path, body, req.Push.Commit)
		}
		if req.Release != "" && deploy.ValidReleaseName(req.Release) != nil {
			t.Fatalf("POST %s %.200q: submitted release %q", path, body, req.Release)
		}
		for _, h := range req.Hosts {
			if h == "" || len(h) > maxHostName || strings.ContainsFunc(h, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
				t.Fatalf("POST %s %.200q: submitted host %q", path, body, h)
			}
		}
		if len(req.Hosts) > maxHosts {
			t.Fatalf("POST %s %.200q: submitted %d hosts", path, body, len(req.Hosts))
		}
	})
}

// checkOneObject fails unless body is one JSON object (or null) whose
// fields are all known for path.
func checkOneObject(t *testing.T, path string, body []byte) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(body))
	var fields map[string]json.RawMessage
	if err := dec.Decode(&fields); err != nil {
		t.Fatalf("POST %s %.200q: accepted a body that is not a JSON object: %v", path, body, err)
	}
	if dec.More() || dec.InputOffset() != int64(len(body)) {
		t.Fatalf("POST %s %.200q: accepted a body with data after its JSON object", path, body)
	}
	for k := range fields {
		known := false
		for _, name := range apiFields[path] {
			known = known || strings.EqualFold(k, name)
		}
		if !known {
			t.Fatalf("POST %s %.200q: accepted unknown field %q", path, body, k)
		}
	}
}
