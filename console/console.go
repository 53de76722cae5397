// Package console is the analysts' review console: server-rendered pages
// (a queue, a case, sign-in) over a case store, with its assets embedded,
// served under /console/ on riskd's admin listener.
package console

import (
	"bytes"
	"context"
	"crypto/rand"
	"embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/riskd/riskd/cases"
	"github.com/riskd/riskd/engine"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed assets
var assetFS embed.FS

// contentSecurityPolicy lets pages load only the console's own stylesheet
// and post forms only to the console: no script runs at all.
const contentSecurityPolicy = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// Options configure a Console. Store and Accounts are required.
type Options struct {
	Store cases.Store
	// Accounts may sign in.
	Accounts []Account
	// Resolved is called with every case once resolved, before the
	// analyst sees the result: it sends the outcome on (feature store,
	// decisions topic, webhook). Its error is shown, the resolution stays.
	Resolved func(ctx context.Context, c *cases.Case) error
	// Decision looks up the decision an event id was first given, within
	// the idempotency window (engine.Engine.Decision: the JSON of GET
	// /v1/decisions/{id}; nil when none is kept). The search shows it for
	// an event without a case. Nil: the search finds cases only.
	Decision func(ctx context.Context, eventID string) ([]byte, error)
	// ClaimTTL is how long a claim lasts. Default 15 min.
	ClaimTTL time.Duration
	// SessionTTL is how long a sign-in lasts. Default 12 h.
	SessionTTL time.Duration
	// Registerer receives the console's metrics; nil registers nothing.
	Registerer prometheus.Registerer
	Logger     *slog.Logger
	Now        func() time.Time
}

// Console serves the review console. Mount it at /console/.
type Console struct {
	opts        Options
	mux         *http.ServeMux
	pages       map[string]*template.Template
	resolutions *prometheus.CounterVec
	claims      *prometheus.CounterVec
	log         *slog.Logger
}

// New returns the console.
func New(opts Options) (*Console, error) {
	if opts.Store == nil {
		return nil, errors.New("console: no case store")
	}
	if opts.ClaimTTL <= 0 {
		opts.ClaimTTL = 15 * time.Minute
	}
	if opts.SessionTTL <= 0 {
		opts.SessionTTL = 12 * time.Hour
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	c := &Console{opts: opts, mux: http.NewServeMux(), pages: map[string]*template.Template{}, log: opts.Logger}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	funcs := template.FuncMap{"age": c.age, "json": prettyJSON, "value": featureValue, "join": strings.Join}
	for _, page := range []string{"login", "queue", "case", "message", "decision"} {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+page+".html")
		if err != nil {
			return nil, fmt.Errorf("console: template %s: %w", page, err)
		}
		c.pages[page] = t
	}
	c.resolutions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "riskd_case_resolutions_total", Help: "Review cases resolved, by outcome and analyst (the admin token's name).",
	}, []string{"outcome", "analyst"})
	c.claims = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "riskd_case_claims_total", Help: "Claims of review cases, by result: won, or lost to another analyst's claim.",
	}, []string{"result"})
	// Every series shows from the start, at 0: a rate over a series born
	// with its first resolution misses that one.
	for _, a := range opts.Accounts {
		for _, o := range cases.Outcomes {
			c.resolutions.WithLabelValues(string(o), a.Name)
		}
	}
	c.claims.WithLabelValues("won")
	c.claims.WithLabelValues("lost")
	if opts.Registerer != nil {
		opts.Registerer.MustRegister(c.resolutions, c.claims)
	}
	assets, _ := fs.Sub(assetFS, "assets")
	c.mux.Handle("GET /console/assets/", http.StripPrefix("/console/assets/", http.FileServerFS(assets)))
	c.mux.HandleFunc("GET /console/login", c.loginPage)
	c.mux.HandleFunc("POST /console/login", c.login)
	c.mux.HandleFunc("POST /console/logout", c.signedIn(c.logout))
	c.mux.HandleFunc("GET /console/{$}", c.signedIn(c.queue))
	c.mux.HandleFunc("GET /console/search", c.signedIn(c.search))
	c.mux.HandleFunc("GET /console/cases/{id}", c.signedIn(c.casePage))
	c.mux.HandleFunc("POST /console/cases/{id}/claim", c.signedIn(c.claim))
	c.mux.HandleFunc("POST /console/cases/{id}/release", c.signedIn(c.release))
	c.mux.HandleFunc("POST /console/cases/{id}/resolve", c.signedIn(c.resolve))
	return c, nil
}

// ServeHTTP implements http.Handler.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")
	c.mux.ServeHTTP(w, r)
}

type handler func(w http.ResponseWriter, r *http.Request, s *session)

// signedIn sends a visitor without a session to sign in, and holds every
// form to its session's CSRF token.
func (c *Console) signedIn(h handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s, ok := c.session(r)
		if !ok {
			if r.Method == http.MethodGet {
				http.Redirect(w, r, "/console/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			c.message(w, http.StatusUnauthorized, nil, "Signed out", "Your session ended. Sign in again.")
			return
		}
		if r.Method == http.MethodPost && !s.checkCSRF(r) {
			c.message(w, http.StatusForbidden, s, "Refused", "This form was not sent from the console page you signed in to (CSRF check failed). Reload the page and try again.")
			return
		}
		h(w, r, s)
	}
}

// view is what every page template gets.
type view struct {
	Title   string
	Session *session
	Data    any
}

func (c *Console) render(w http.ResponseWriter, code int, page string, v view) {
	var buf bytes.Buffer
	if err := c.pages[page].Execute(&buf, v); err != nil {
		c.log.Error("console page failed", "page", page, "err", err)
		http.Error(w, "the page could not be rendered", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	w.Write(buf.Bytes())
}

func (c *Console) message(w http.ResponseWriter, code int, s *session, title, msg string) {
	c.render(w, code, "message", view{Title: title, Session: s, Data: msg})
}

const loginCSRFCookie = "riskd_console_login"

func (c *Console) loginPage(w http.ResponseWriter, r *http.Request) {
	// The sign-in form is CSRF-protected by a double-submit value: a
	// random cookie the form repeats.
	b := make([]byte, 18)
	rand.Read(b)
	tok := base64.RawURLEncoding.EncodeToString(b)
	http.SetCookie(w, &http.Cookie{Name: loginCSRFCookie, Value: tok, Path: "/console/login", HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
	c.render(w, http.StatusOK, "login", view{Title: "Sign in", Data: map[string]string{"CSRF": tok, "Next": safeNext(r.URL.Query().Get("next")), "Error": ""}})
}

// safeNext keeps a redirect after sign-in inside the console.
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/console/") || strings.HasPrefix(next, "//") || strings.Contains(next, "\\") {
		return "/console/"
	}
	return next
}

func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	ck, err := r.Cookie(loginCSRFCookie)
	if err != nil || ck.Value == "" || r.PostFormValue("csrf") != ck.Value {
		c.message(w, http.StatusForbidden, nil, "Refused", "The sign-in form expired or was not sent from this console (CSRF check failed). Open the sign-in page again.")
		return
	}
	a, ok := c.signIn(r.PostFormValue("token"))
	if !ok {
		c.log.Warn("console sign-in refused", "remote", r.RemoteAddr)
		c.render(w, http.StatusUnauthorized, "login", view{Title: "Sign in", Data: map[string]string{"CSRF": ck.Value, "Next": safeNext(r.PostFormValue("next")), "Error": "That token is not one of riskd's admin tokens."}})
		return
	}
	c.setSession(w, r, a)
	http.Redirect(w, r, safeNext(r.PostFormValue("next")), http.StatusSeeOther)
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request, s *session) {
	clearSession(w)
	http.Redirect(w, r, "/console/login", http.StatusSeeOther)
}

type queueData struct {
	Query      cases.Query
	Page       cases.Page
	Stats      cases.Stats
	Prev, Next string
}

func (c *Console) queue(w http.ResponseWriter, r *http.Request, s *session) {
	v := r.URL.Query()
	q := cases.Query{Ruleset: v.Get("ruleset"), Rule: v.Get("rule"), Decision: v.Get("decision"), Order: cases.Order(v.Get("order")), Limit: 50}
	if q.Order != cases.ByScore {
		q.Order = cases.ByAge
	}
	q.Offset, _ = strconv.Atoi(v.Get("offset"))
	q.Offset = max(q.Offset, 0)
	page, err := c.opts.Store.Queue(r.Context(), q)
	if err != nil {
		c.log.Error("case queue failed", "err", err)
		c.message(w, http.StatusServiceUnavailable, s, "Queue unavailable", "The case store did not answer: "+err.Error())
		return
	}
	st, err := c.opts.Store.Stats(r.Context())
	if err != nil {
		c.log.Error("case stats failed", "err", err)
	}
	d := queueData{Query: q, Page: page, Stats: st}
	link := func(offset int) string {
		u := url.Values{}
		for k, val := range map[string]string{"ruleset": q.Ruleset, "rule": q.Rule, "decision": q.Decision, "order": string(q.Order)} {
			if val != "" {
				u.Set(k, val)
			}
		}
		u.Set("offset", strconv.Itoa(offset))
		return "/console/?" + u.Encode()
	}
	if q.Offset > 0 {
		d.Prev = link(max(0, q.Offset-q.Limit))
	}
	if page.More {
		d.Next = link(q.Offset + q.Limit)
	}
	c.render(w, http.StatusOK, "queue", view{Title: "Review queue", Session: s, Data: d})
}

type caseData struct {
	Case     *cases.Case
	Mine     bool // the signed-in analyst holds the claim
	Outcomes []cases.Outcome
	Notice   string
	// Related are the entity's other cases (same card, account, device),
	// newest first; RelatedErr says why they could not be listed.
	Related    []cases.Summary
	RelatedErr string
}

func (c *Console) casePage(w http.ResponseWriter, r *http.Request, s *session) {
	c.showCase(w, r, s, r.PathValue("id"), http.StatusOK, r.URL.Query().Get("notice"))
}

func (c *Console) showCase(w http.ResponseWriter, r *http.Request, s *session, id string, code int, notice string) {
	cs, err := c.opts.Store.Get(r.Context(), id)
	switch {
	case errors.Is(err, cases.ErrNotFound):
		c.message(w, http.StatusNotFound, s, "No such case", fmt.Sprintf("Case %s does not exist, or is past its retention.", id))
		return
	case err != nil:
		c.message(w, http.StatusServiceUnavailable, s, "Case unavailable", "The case store did not answer: "+err.Error())
		return
	}
	d := caseData{Case: cs, Mine: cs.Claim != nil && cs.Claim.Analyst == s.Acct.Name, Outcomes: cases.Outcomes, Notice: notice}
	if len(cs.Keys) > 0 {
		// A case page shows the rest even when this list fails.
		if d.Related, err = c.opts.Store.Related(r.Context(), cs.Keys, cs.ID, cases.MaxRelated); err != nil {
			c.log.Error("listing related cases failed", "case", id, "err", err)
			d.RelatedErr = err.Error()
		}
	}
	c.render(w, code, "case", view{Title: "Case " + cs.ID, Session: s, Data: d})
}

// after redirects back to the case page with a notice (POST, then GET:
// reloading the page does not send the form again).
func after(w http.ResponseWriter, r *http.Request, id, notice string) {
	http.Redirect(w, r, "/console/cases/"+url.PathEscape(id)+"?notice="+url.QueryEscape(notice), http.StatusSeeOther)
}

func (c *Console) claim(w http.ResponseWriter, r *http.Request, s *session) {
	id := r.PathValue("id")
	cl, err := c.opts.Store.Claim(r.Context(), id, s.Acct.Name, c.opts.ClaimTTL)
	var ce *cases.ClaimedError
	switch {
	case errors.As(err, &ce):
		c.claims.WithLabelValues("lost").Inc()
		c.showCase(w, r, s, id, http.StatusConflict, fmt.Sprintf("%s holds this case until %s.", ce.Claim.Analyst, ce.Claim.Until.UTC().Format("15:04:05 MST")))
	case err != nil:
		c.failed(w, r, s, id, err)
	default:
		c.claims.WithLabelValues("won").Inc()
		after(w, r, id, fmt.Sprintf("You hold this case until %s.", cl.Until.UTC().Format("15:04:05 MST")))
	}
}

func (c *Console) release(w http.ResponseWriter, r *http.Request, s *session) {
	id := r.PathValue("id")
	if err := c.opts.Store.Release(r.Context(), id, s.Acct.Name); err != nil {
		c.failed(w, r, s, id, err)
		return
	}
	after(w, r, id, "You released this case.")
}

func (c *Console) resolve(w http.ResponseWriter, r *http.Request, s *session) {
	id := r.PathValue("id")
	o := cases.Outcome(r.PostFormValue("outcome"))
	note := strings.TrimSpace(r.PostFormValue("note"))
	if !o.Valid() {
		c.showCase(w, r, s, id, http.StatusBadRequest, "Choose an outcome: approve, decline, fraud or not fraud.")
		return
	}
	cs, err := c.opts.Store.Resolve(r.Context(), id, s.Acct.Name, o, note)
	if err != nil {
		c.failed(w, r, s, id, err)
		return
	}
	c.resolutions.WithLabelValues(string(o), s.Acct.Name).Inc()
	c.log.Info("case resolved", "case", id, "event_id", cs.EventID, "outcome", o, "analyst", s.Acct.Name)
	notice := "Resolved as " + strings.ReplaceAll(string(o), "_", " ") + "."
	if c.opts.Resolved != nil {
		if err := c.opts.Resolved(r.Context(), cs); err != nil {
			c.log.Error("case outcome not sent on", "case", id, "err", err)
			notice += " Sending the outcome on failed: " + err.Error()
		}
	}
	after(w, r, id, notice)
}

// failed shows a store error on the case page.
func (c *Console) failed(w http.ResponseWriter, r *http.Request, s *session, id string, err error) {
	code := http.StatusConflict
	switch {
	case errors.Is(err, cases.ErrNotFound):
		code = http.StatusNotFound
	case errors.Is(err, cases.ErrResolved), errors.Is(err, cases.ErrNotClaimed), errors.Is(err, cases.ErrClaimed):
	default:
		if !strings.HasPrefix(err.Error(), "resolve:") && !strings.HasPrefix(err.Error(), "claim:") {
			code = http.StatusServiceUnavailable
			c.log.Error("case store failed", "case", id, "err", err)
		} else {
			code = http.StatusBadRequest
		}
	}
	if code == http.StatusNotFound {
		c.message(w, code, s, "No such case", err.Error())
		return
	}
	c.showCase(w, r, s, id, code, err.Error())
}

func (c *Console) search(w http.ResponseWriter, r *http.Request, s *session) {
	id := strings.TrimSpace(r.URL.Query().Get("event_id"))
	if id == "" {
		http.Redirect(w, r, "/console/", http.StatusSeeOther)
		return
	}
	caseID := string(engine.AppendCaseID(nil, id))
	if _, err := c.opts.Store.Get(r.Context(), caseID); err == nil {
		http.Redirect(w, r, "/console/cases/"+caseID, http.StatusSeeOther)
		return
	}
	if c.opts.Decision != nil {
		raw, err := c.opts.Decision(r.Context(), id)
		if err != nil {
			c.log.Error("looking up a decision failed", "event", id, "err", err)
			c.message(w, http.StatusServiceUnavailable, s, "Search failed", fmt.Sprintf("The decision of event %q could not be looked up: %v", id, err))
			return
		}
		var d keptDecision
		if raw != nil && json.Unmarshal(raw, &d) == nil {
			c.render(w, http.StatusOK, "decision", view{Title: "Decision " + id, Session: s, Data: d})
			return
		}
		c.message(w, http.StatusNotFound, s, "Not found", fmt.Sprintf("No review case for event %q, and no decision within the idempotency window: it was not scored, or longer ago than the window.", id))
		return
	}
	c.message(w, http.StatusNotFound, s, "Not found", fmt.Sprintf("No review case for event %q: it was not sent to review, or its case is past its retention.", id))
}

// keptDecision is a decision as GET /v1/decisions/{id} answers it.
type keptDecision struct {
	EventID  string `json:"event_id"`
	Type     string `json:"type"`
	Ruleset  string `json:"ruleset"`
	Version  string `json:"version"`
	Decision string `json:"decision"`
	Score    int64  `json:"score"`
	Reasons  []struct {
		Rule   string            `json:"rule"`
		Score  int64             `json:"score"`
		Reason string            `json:"reason"`
		Action string            `json:"action"`
		Lists  map[string]string `json:"lists"`
	} `json:"reasons"`
	CaseID    string `json:"case_id"`
	Degraded  bool   `json:"degraded"`
	Unscored  bool   `json:"unscored"`
	Truncated bool   `json:"truncated"`
}

func (c *Console) age(t time.Time) string {
	d := c.opts.Now().Sub(t)
	switch {
	case d < time.Minute:
		return strconv.Itoa(int(d.Seconds())) + "s"
	case d < time.Hour:
		return strconv.Itoa(int(d.Minutes())) + "m"
	case d < 48*time.Hour:
		return strconv.Itoa(int(d.Hours())) + "h"
	}
	return strconv.Itoa(int(d.Hours()/24)) + "d"
}

func prettyJSON(raw json.RawMessage) string {
	var buf bytes.Buffer
	if err := json.Indent(&buf, raw, "", "  "); err != nil {
		return string(raw)
	}
	return buf.String()
}

func featureValue(v any) string {
	switch x := v.(type) {
	case nil:
		return "—"
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case bool:
		return strconv.FormatBool(x)
	}
	return fmt.Sprint(v)
}
