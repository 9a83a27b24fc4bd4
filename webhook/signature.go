package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"net/http"
	"strings"
)

// ErrUnauthorized is matched (errors.Is) by every *SignatureError.
var ErrUnauthorized = errors.New("webhook signature rejected")

// SignatureError says why a delivery's signature or token was refused.
// Reason never contains the secret, the expected MAC or the value received.
type SignatureError struct {
	Reason string
}

func (e *SignatureError) Error() string { return "webhook signature rejected: " + e.Reason }

// Unwrap makes errors.Is(err, ErrUnauthorized) true.
func (e *SignatureError) Unwrap() error { return ErrUnauthorized }

func refused(reason string) error { return &SignatureError{Reason: reason} }

// sha256Hex is the length of a hex HMAC-SHA256.
const sha256Hex = 2 * sha256.Size

// header returns the one value of header name, and whether it is present.
// Several values are refused: which one was signed would be ambiguous.
func header(h http.Header, name string) (string, bool, error) {
	vs := h.Values(name)
	switch len(vs) {
	case 0:
		return "", false, nil
	case 1:
		return strings.TrimSpace(vs[0]), true, nil
	}
	return "", true, refused("several " + name + " headers")
}

// verifyPrefixed checks a "sha256=<hex>" signature header, as Bitbucket
// (X-Hub-Signature) and GitHub (X-Hub-Signature-256) send it.
func verifyPrefixed(name, value string, body []byte, secret string) error {
	if value == "" {
		return refused(name + ": empty signature")
	}
	algo, mac, ok := strings.Cut(value, "=")
	if !ok {
		return refused(name + ": signature has no sha256= prefix")
	}
	if algo = strings.ToLower(algo); algo != "sha256" {
		return refused(name + ": unsupported algorithm " + algoName(algo) + " (configure SHA-256)")
	}
	return verifyHex(name, mac, body, secret)
}

// verifyHex checks a bare hex HMAC-SHA256 of body.
func verifyHex(name, mac string, body []byte, secret string) error {
	if mac == "" {
		return refused(name + ": empty signature")
	}
	if !isHex(mac) {
		return refused(name + ": signature is not hex")
	}
	if len(mac) != sha256Hex {
		return refused(name + ": signature has the wrong length (want 64 hex digits)")
	}
	got, err := hex.DecodeString(mac)
	if err != nil {
		return refused(name + ": signature is not hex")
	}
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	if !hmac.Equal(got, m.Sum(nil)) {
		return refused(name + ": signature does not match the body")
	}
	return nil
}

// algoName names the algorithm of a refused signature, when it is short
// and plain enough to repeat.
func algoName(algo string) string {
	if algo == "" || len(algo) > 10 {
		return "(unnamed)"
	}
	for _, r := range algo {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '-' {
			return "(unnamed)"
		}
	}
	return algo
}

// verifyBitbucket checks X-Hub-Signature: sha256=<hex> (Cloud and Server).
func verifyBitbucket(h http.Header, body []byte, secret string) error {
	v, ok, err := header(h, "X-Hub-Signature")
	if err != nil {
		return err
	}
	if !ok {
		return refused("missing X-Hub-Signature header")
	}
	return verifyPrefixed("X-Hub-Signature", v, body, secret)
}

// verifyGitHub checks X-Hub-Signature-256: sha256=<hex>. The legacy SHA-1
// X-Hub-Signature alone is refused.
func verifyGitHub(h http.Header, body []byte, secret string) error {
	v, ok, err := header(h, "X-Hub-Signature-256")
	if err != nil {
		return err
	}
	if !ok {
		if _, sha1, _ := header(h, "X-Hub-Signature"); sha1 {
			return refused("X-Hub-Signature (sha1) only; GitHub sends X-Hub-Signature-256 when a secret is set")
		}
		return refused("missing X-Hub-Signature-256 header")
	}
	return verifyPrefixed("X-Hub-Signature-256", v, body, secret)
}

// verifyGitea checks X-Gitea-Signature or X-Forgejo-Signature (bare hex),
// or else X-Hub-Signature-256 (sha256=<hex>), whichever comes first.
func verifyGitea(h http.Header, body []byte, secret string) error {
	for _, name := range []string{"X-Gitea-Signature", "X-Forgejo-Signature"} {
		v, ok, err := header(h, name)
		if err != nil {
			return err
		}
		if ok {
			return verifyHex(name, strings.TrimPrefix(v, "sha256="), body, secret)
		}
	}
	v, ok, err := header(h, "X-Hub-Signature-256")
	if err != nil {
		return err
	}
	if !ok {
		return refused("missing X-Gitea-Signature (or X-Hub-Signature-256) header")
	}
	return verifyPrefixed("X-Hub-Signature-256", v, body, secret)
}

// verifyGitLab checks that X-Gitlab-Token equals the secret. Both are hashed
// first so that the constant-time comparison does not leak the length.
func verifyGitLab(h http.Header, secret string) error {
	v, ok, err := header(h, "X-Gitlab-Token")
	if err != nil {
		return err
	}
	switch {
	case !ok:
		return refused("missing X-Gitlab-Token header")
	case v == "":
		return refused("empty X-Gitlab-Token header")
	}
	got, want := sha256.Sum256([]byte(v)), sha256.Sum256([]byte(secret))
	if subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
		return refused("X-Gitlab-Token does not match the secret")
	}
	return nil
}
