package console

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Role is what a signed-in person may do.
type Role string

// The roles: an analyst works cases; an admin also changes lists and
// reloads the policy (the API checks that, not the console).
const (
	Analyst Role = "analyst"
	Admin   Role = "admin"
)

// Account is a named admin token: the name is recorded on every claim and
// resolution made with it.
type Account struct {
	Name  string
	Token string
	Role  Role
}

const sessionCookie = "riskd_console"

// session is a signed-in account, for the life of its cookie.
type session struct {
	Acct    Account
	expires int64 // Unix seconds
	CSRF    string
}

// The session cookie is "name.expires.mac" with mac = HMAC-SHA256 keyed by
// the account's token: any instance reading the same tokens file accepts
// it, and removing or changing a token ends its sessions. The CSRF token
// is another HMAC of the same, so forms need no server-side state.
func mac(token, purpose, name string, expires int64) string {
	m := hmac.New(sha256.New, []byte(token))
	m.Write([]byte(purpose + "\x00" + name + "\x00" + strconv.FormatInt(expires, 10)))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func (c *Console) find(name string) (Account, bool) {
	for _, a := range c.opts.Accounts {
		if a.Name == name {
			return a, true
		}
	}
	return Account{}, false
}

// signIn checks a token and returns its account.
func (c *Console) signIn(token string) (Account, bool) {
	for _, a := range c.opts.Accounts {
		if subtle.ConstantTimeCompare([]byte(a.Token), []byte(token)) == 1 {
			return a, true
		}
	}
	return Account{}, false
}

func (c *Console) setSession(w http.ResponseWriter, r *http.Request, a Account) {
	exp := c.opts.Now().Add(c.opts.SessionTTL).Unix()
	v := a.Name + "." + strconv.FormatInt(exp, 10) + "." + mac(a.Token, "session", a.Name, exp)
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: v, Path: "/console/", HttpOnly: true, Secure: r.TLS != nil,
		SameSite: http.SameSiteStrictMode, Expires: time.Unix(exp, 0)})
}

func clearSession(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/console/", HttpOnly: true, SameSite: http.SameSiteStrictMode, MaxAge: -1})
}

// session returns the request's signed-in account, if its cookie is
// valid and unexpired.
func (c *Console) session(r *http.Request) (*session, bool) {
	ck, err := r.Cookie(sessionCookie)
	if err != nil {
		return nil, false
	}
	parts := strings.Split(ck.Value, ".")
	if len(parts) != 3 {
		return nil, false
	}
	exp, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil || exp <= c.opts.Now().Unix() {
		return nil, false
	}
	a, ok := c.find(parts[0])
	if !ok || !hmac.Equal([]byte(parts[2]), []byte(mac(a.Token, "session", a.Name, exp))) {
		return nil, false
	}
	return &session{Acct: a, expires: exp, CSRF: mac(a.Token, "csrf", a.Name, exp)}, true
}

// checkCSRF holds a form to the session's CSRF token.
func (s *session) checkCSRF(r *http.Request) bool {
	return hmac.Equal([]byte(r.PostFormValue("csrf")), []byte(s.CSRF))
}
