package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
)

// The status page's sign-in: the user enters the API token once; the
// server answers with a cookie holding a value derived from the token by
// HMAC (never the token itself), good for sessionTTL. The cookie lets the
// browser read pages and streams; anything that changes state (POST
// /api/*) still needs the Authorization header, which a cross-site form
// cannot send.

const (
	sessionCookie = "pushdeploy_session"
	sessionTTL    = 12 * time.Hour
	loginLimit    = 8 << 10
)

var urlQueryEscape = url.QueryEscape

// tokenOK compares got with the API token in constant time: both sides are
// hashed first, so neither length nor content leaks through timing.
func (s *Server) tokenOK(got string) bool {
	if s.cfg.APIToken == "" {
		return false
	}
	g, w := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(s.cfg.APIToken))
	return subtle.ConstantTimeCompare(g[:], w[:]) == 1
}

func (s *Server) validBearer(c echo.Context) bool {
	got, ok := strings.CutPrefix(c.Request().Header.Get(echo.HeaderAuthorization), "Bearer ")
	return ok && s.tokenOK(got)
}

// sessionMAC signs a session's expiry with a key derived from the token:
// changing DEPLOY_API_TOKEN ends every session.
func (s *Server) sessionMAC(expiry string) []byte {
	k := hmac.New(sha256.New, []byte(s.cfg.APIToken))
	k.Write([]byte("pushdeploy status page session key"))
	m := hmac.New(sha256.New, k.Sum(nil))
	m.Write([]byte("v1." + expiry))
	return m.Sum(nil)
}

func (s *Server) newSession(now time.Time) string {
	exp := strconv.FormatInt(now.Add(sessionTTL).Unix(), 10)
	return "v1." + exp + "." + hex.EncodeToString(s.sessionMAC(exp))
}

func (s *Server) validSession(c echo.Context) bool {
	if s.cfg.APIToken == "" {
		return false
	}
	ck, err := c.Cookie(sessionCookie)
	if err != nil {
		return false
	}
	parts := strings.Split(ck.Value, ".")
	if len(parts) != 3 || parts[0] != "v1" {
		return false
	}
	exp, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil || time.Now().Unix() >= exp {
		return false
	}
	mac, err := hex.DecodeString(parts[2])
	return err == nil && hmac.Equal(mac, s.sessionMAC(parts[1]))
}

func (s *Server) setSessionCookie(c echo.Context, value string, maxAge int) {
	c.SetCookie(&http.Cookie{
		Name: sessionCookie, Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: c.Scheme() == "https",
	})
}

// safeNext keeps a redirect after sign-in on this server: a clean path,
// never another origin. Browsers read "/\evil.example" as
// "//evil.example", and drop tabs and line breaks before they read a URL
// ("/\t/evil.example" too), so a path with a control character or a
// backslash anywhere is refused, as is one that starts with "//".
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") ||
		strings.ContainsFunc(next, func(r rune) bool { return r < 0x20 || r == 0x7f || r == '\\' }) {
		return "/"
	}
	return next
}

func (s *Server) pageLogin(c echo.Context) error {
	if s.cfg.APIToken == "" {
		return s.render(c, http.StatusNotFound, "message", pageData{Title: "Status page off", Off: !s.cfg.StatusPublic,
			Message: "There is no API token (DEPLOY_API_TOKEN), so there is nothing to sign in with."})
	}
	data := s.pageBase(c, "Sign in")
	data.Next = safeNext(c.QueryParam("next"))
	return s.render(c, http.StatusOK, "login", data)
}

func (s *Server) pageLoginPost(c echo.Context) error {
	if s.cfg.APIToken == "" {
		return fail(http.StatusNotFound, "not found (the API is off: set DEPLOY_API_TOKEN)")
	}
	raw, err := io.ReadAll(http.MaxBytesReader(c.Response(), c.Request().Body, loginLimit))
	if err != nil {
		return fail(http.StatusRequestEntityTooLarge, "body over %d bytes", loginLimit)
	}
	form, err := url.ParseQuery(string(raw))
	if err != nil {
		return fail(http.StatusBadRequest, "malformed form")
	}
	next := safeNext(form.Get("next"))
	if !s.tokenOK(form.Get("token")) {
		s.log.Info("status page sign-in refused", "request_id", requestID(c), "remote", c.RealIP())
		data := s.pageBase(c, "Sign in")
		data.Next, data.Message = next, "That is not the API token."
		return s.render(c, http.StatusUnauthorized, "login", data)
	}
	s.setSessionCookie(c, s.newSession(time.Now()), int(sessionTTL.Seconds()))
	return c.Redirect(http.StatusSeeOther, next)
}

func (s *Server) pageLogout(c echo.Context) error {
	s.setSessionCookie(c, "", -1)
	return c.Redirect(http.StatusSeeOther, "/")
}
