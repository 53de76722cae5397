package console_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/riskd/riskd/cases"
	"github.com/riskd/riskd/console"
	"github.com/riskd/riskd/engine"
)

var caseID = string(engine.AppendCaseID(nil, "e-1"))

var accounts = []console.Account{
	{Name: "ann", Token: "ann-token-0123456789", Role: console.Analyst},
	{Name: "bob", Token: "bob-token-0123456789", Role: console.Admin},
}

func newConsole(t *testing.T) (*httptest.Server, cases.Store, chan *cases.Case) {
	t.Helper()
	store := cases.NewMemory(cases.Options{})
	resolved := make(chan *cases.Case, 4)
	// A decision within the idempotency window, of an event without a case.
	decision := func(_ context.Context, id string) ([]byte, error) {
		if id != "e-pass" {
			return nil, nil
		}
		return []byte(`{"event_id":"e-pass","type":"checkout","ruleset":"checkout","version":"v1","decision":"step_up","score":40,"reasons":[{"rule":"new_device","score":40,"reason":"device <i>new</i>"}],"degraded":false}`), nil
	}
	c, err := console.New(console.Options{Store: store, Accounts: accounts, Decision: decision, Resolved: func(_ context.Context, c *cases.Case) error {
		resolved <- c
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(c)
	t.Cleanup(srv.Close)
	open := &cases.Case{ID: caseID, EventID: "e-1", Type: "checkout", Event: json.RawMessage(`{"id":"e-1","type":"checkout","card_id":"card-<7>"}`),
		Decision: "review", Score: 70, Ruleset: "checkout", Version: "v1", OpenedAt: time.Now().Add(-3 * time.Minute),
		Reasons:  []cases.Reason{{Rule: "velocity", Score: 70, Reason: "card used <b>6</b> times"}},
		Features: []cases.Feature{{Name: "card_count_1h", Value: 6.0}}}
	open.Keys = []string{"card_id=card-<7>"}
	earlier := &cases.Case{ID: "c_earlier", EventID: "e-0", Type: "checkout", Event: json.RawMessage(`{"id":"e-0"}`),
		Decision: "review", Score: 60, Ruleset: "checkout", Version: "v1", OpenedAt: time.Now().Add(-time.Hour),
		Reasons: []cases.Reason{{Rule: "velocity", Score: 60}}, Keys: []string{"card_id=card-<7>"}}
	for _, c := range []*cases.Case{earlier, open} {
		if _, err := store.Open(context.Background(), c); err != nil {
			t.Fatal(err)
		}
	}
	// The earlier case is resolved: the queue holds one.
	if _, err := store.Claim(context.Background(), "c_earlier", "bob", time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Resolve(context.Background(), "c_earlier", "bob", cases.Fraud, ""); err != nil {
		t.Fatal(err)
	}
	return srv, store, resolved
}

// browser is a client with cookies that does not follow redirects, so
// each answer can be checked.
type browser struct {
	t      *testing.T
	base   string
	client *http.Client
}

func newBrowser(t *testing.T, base string) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, base: base, client: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (b *browser) do(method, path string, form url.Values) (int, string, http.Header) {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, _ := http.NewRequest(method, b.base+path, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := b.client.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(out), resp.Header
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func csrf(t *testing.T, page string) string {
	t.Helper()
	m := csrfRE.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no CSRF token in:\n%s", page)
	}
	return m[1]
}

func (b *browser) signIn(token string) string {
	b.t.Helper()
	_, page, _ := b.do("GET", "/console/login", nil)
	code, _, h := b.do("POST", "/console/login", url.Values{"csrf": {csrf(b.t, page)}, "token": {token}, "next": {"/console/"}})
	if code != http.StatusSeeOther || h.Get("Location") != "/console/" {
		b.t.Fatalf("sign-in: %d to %q", code, h.Get("Location"))
	}
	_, page, _ = b.do("GET", "/console/", nil)
	return page
}

func TestConsole(t *testing.T) {
	srv, store, resolved := newConsole(t)
	ann, bob := newBrowser(t, srv.URL), newBrowser(t, srv.URL)

	code, _, h := ann.do("GET", "/console/cases/"+caseID, nil)
	if code != http.StatusSeeOther || !strings.HasPrefix(h.Get("Location"), "/console/login?next=") {
		t.Fatalf("signed out: %d to %q", code, h.Get("Location"))
	}
	if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "form-action 'self'") {
		t.Errorf("CSP %q", csp)
	}
	_, page, _ := ann.do("GET", "/console/login", nil)
	if code, page, _ := ann.do("POST", "/console/login", url.Values{"csrf": {csrf(t, page)}, "token": {"wrong-token-000000000"}}); code != http.StatusUnauthorized || !strings.Contains(page, "not one of riskd") {
		t.Errorf("wrong token: %d", code)
	}
	if code, _, _ := ann.do("POST", "/console/login", url.Values{"csrf": {"forged"}, "token": {accounts[0].Token}}); code != http.StatusForbidden {
		t.Errorf("sign-in without the form's CSRF value: %d", code)
	}

	queue := ann.signIn(accounts[0].Token)
	for _, want := range []string{`href="/console/cases/` + caseID + `"`, "1 open case", "velocity", "nobody", "ann (analyst)"} {
		if !strings.Contains(queue, want) {
			t.Errorf("queue lacks %q:\n%s", want, queue)
		}
	}
	_, casePage, _ := ann.do("GET", "/console/cases/"+caseID, nil)
	if !strings.Contains(casePage, "card used &lt;b&gt;6&lt;/b&gt; times") || !strings.Contains(casePage, "card-\\u003c7\\u003e") && !strings.Contains(casePage, "card-&lt;7&gt;") {
		t.Errorf("case page does not escape what events and reasons hold:\n%s", casePage)
	}
	if !strings.Contains(casePage, `The latest cases of card_id=card-&lt;7&gt;`) || !strings.Contains(casePage, `<a href="/console/cases/c_earlier">c_earlier</a>`) || !strings.Contains(casePage, "fraud by bob") || strings.Contains(casePage, `<a href="/console/cases/`+caseID+`">`) {
		t.Errorf("case page does not list the entity's other cases (and only them):\n%s", casePage)
	}
	annCSRF := csrf(t, casePage)
	if code, _, _ := ann.do("POST", "/console/cases/"+caseID+"/claim", url.Values{"csrf": {"forged"}}); code != http.StatusForbidden {
		t.Errorf("claim with a forged CSRF token: %d", code)
	}
	if code, _, _ := ann.do("POST", "/console/cases/"+caseID+"/claim", url.Values{"csrf": {annCSRF}}); code != http.StatusSeeOther {
		t.Fatalf("ann claims: %d", code)
	}

	bob.signIn(accounts[1].Token)
	_, bobPage, _ := bob.do("GET", "/console/cases/"+caseID, nil)
	if !strings.Contains(bobPage, "held by <strong>ann</strong>") {
		t.Errorf("bob does not see ann's claim:\n%s", bobPage)
	}
	code, bobPage, _ = bob.do("POST", "/console/cases/"+caseID+"/claim", url.Values{"csrf": {csrf(t, bobPage)}})
	if code != http.StatusConflict || !strings.Contains(bobPage, "ann holds this case") {
		t.Errorf("bob claims ann's case: %d", code)
	}
	if code, _, _ := bob.do("POST", "/console/cases/"+caseID+"/resolve", url.Values{"csrf": {csrf(t, bobPage)}, "outcome": {"approve"}}); code != http.StatusConflict {
		t.Errorf("bob resolves ann's case: %d", code)
	}

	_, casePage, _ = ann.do("GET", "/console/cases/"+caseID, nil)
	if !strings.Contains(casePage, `id="resolve"`) {
		t.Fatalf("ann holds the case but has no resolve form:\n%s", casePage)
	}
	code, _, h = ann.do("POST", "/console/cases/"+caseID+"/resolve", url.Values{"csrf": {annCSRF}, "outcome": {"fraud"}, "note": {"card testing"}})
	if code != http.StatusSeeOther {
		t.Fatalf("resolve: %d", code)
	}
	c := <-resolved
	if c.ID != caseID || c.Resolution.Outcome != cases.Fraud || c.Resolution.Analyst != "ann" || c.Resolution.Note != "card testing" {
		t.Errorf("resolved %+v", c.Resolution)
	}
	_, casePage, _ = ann.do("GET", h.Get("Location"), nil)
	if !strings.Contains(casePage, "resolved as <strong id=\"outcome\">fraud</strong> by ann") || strings.Contains(casePage, `id="claim"`) {
		t.Errorf("resolved case page:\n%s", casePage)
	}
	if p, _ := store.Queue(context.Background(), cases.Query{}); len(p.Cases) != 0 {
		t.Errorf("queue after resolution: %+v", p.Cases)
	}
	if code, page, _ := ann.do("GET", "/console/search?event_id=e-1", nil); code != http.StatusSeeOther {
		t.Errorf("search by event id of a case: %d\n%s", code, page)
	}
	code, page, _ = ann.do("GET", "/console/search?event_id=e-pass", nil)
	if code != http.StatusOK || !strings.Contains(page, `<dd id="decision-outcome">step_up, score 40`) || !strings.Contains(page, "device &lt;i&gt;new&lt;/i&gt;") {
		t.Errorf("search by event id of a decision without a case: %d\n%s", code, page)
	}
	if code, _, _ := ann.do("GET", "/console/search?event_id=e-none", nil); code != http.StatusNotFound {
		t.Errorf("search for an unknown event: %d", code)
	}
	if code, _, _ := ann.do("GET", "/console/assets/console.css", nil); code != http.StatusOK {
		t.Errorf("stylesheet: %d", code)
	}
	if code, _, _ := ann.do("POST", "/console/logout", url.Values{"csrf": {annCSRF}}); code != http.StatusSeeOther {
		t.Errorf("sign out: %d", code)
	}
	if code, _, _ := ann.do("GET", "/console/", nil); code != http.StatusSeeOther {
		t.Errorf("after sign-out the queue answers %d", code)
	}
}
