package httpapi

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/riskd/riskd/lists"
	"github.com/riskd/riskd/policyfile"
	"github.com/riskd/riskd/rules"
)

// NamedToken is an admin bearer token and the name changes made with it
// are logged under (a case tool, an analyst, a deploy job).
type NamedToken struct {
	Name  string
	Token string
	// Analyst restricts the token to review: the console and labels,
	// reading lists; not changing them, reloading or profiling.
	Analyst bool
}

// adminName checks the bearer token in constant time against every
// configured token and returns its name. Without a configured token
// admin endpoints are closed, not open.
func (h *Handler) adminName(w http.ResponseWriter, r *http.Request) (string, bool) {
	t, ok := h.adminToken(w, r)
	return t.Name, ok
}

// changer is adminName for endpoints that change what riskd serves (lists,
// the policy) or show its insides (profiles): an analyst's token is
// refused with 403.
func (h *Handler) changer(w http.ResponseWriter, r *http.Request) (string, bool) {
	t, ok := h.adminToken(w, r)
	if ok && t.Analyst {
		writeError(w, http.StatusForbidden, "the token of "+t.Name+" is an analyst's: it reviews cases and labels events, but changes no list, reloads nothing and reads no profile")
		return "", false
	}
	return t.Name, ok
}

func (h *Handler) adminToken(w http.ResponseWriter, r *http.Request) (NamedToken, bool) {
	tokens := h.opts.AdminTokens
	if h.opts.AdminToken != "" {
		tokens = append([]NamedToken{{Name: "admin", Token: h.opts.AdminToken}}, tokens...)
	}
	if len(tokens) == 0 {
		writeError(w, http.StatusForbidden, "admin endpoints are disabled: start riskd with -admin-token (or RISKD_ADMIN_TOKEN) or -admin-tokens-file")
		return NamedToken{}, false
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	var found NamedToken
	for _, t := range tokens {
		// Every token is compared, so the time taken says nothing of
		// which one matched.
		if subtle.ConstantTimeCompare([]byte(got), []byte(t.Token)) == 1 && found.Name == "" {
			found = t
		}
	}
	if !ok || found.Name == "" {
		reason := "wrong"
		if !ok || got == "" {
			reason = "missing"
		}
		h.authFailed(r, reason)
		w.Header().Set("WWW-Authenticate", `Bearer realm="riskd admin"`)
		writeError(w, http.StatusUnauthorized, "admin endpoint: missing or wrong bearer token")
		return NamedToken{}, false
	}
	return found, true
}

// authFailed counts and logs a request refused for its admin token: the
// client's address and the reason, never what it sent. The log line is a
// warning of constant text, so riskd's log limiter writes it once per
// interval however many arrive, with the repeats counted.
func (h *Handler) authFailed(r *http.Request, reason string) {
	if h.opts.Metrics != nil {
		h.opts.Metrics.authFailures.WithLabelValues(reason).Inc()
	}
	client := r.RemoteAddr
	if host, _, err := net.SplitHostPort(client); err == nil {
		client = host
	}
	h.opts.Logger.Warn("admin authentication failed", "client", client, "method", r.Method, "path", r.URL.Path, "reason", reason+" token")
}

// routeLists adds the list endpoints (admin) or, when where is not empty,
// the answer that they are served on that other listener, and returns
// their pattern for the 404 message.
func (h *Handler) routeLists(where string) string {
	serve := map[string]http.HandlerFunc{
		"POST /v1/lists/{name}":              h.listAdd,
		"GET /v1/lists/{name}":               h.listGet,
		"DELETE /v1/lists/{name}/{value...}": h.listRemove,
	}
	for pattern, handler := range serve {
		if where != "" {
			handler = func(w http.ResponseWriter, r *http.Request) {
				writeError(w, http.StatusNotFound, r.Method+" "+r.URL.Path+" is served on riskd's "+where+" listener, not this one")
			}
		}
		h.mux.HandleFunc(pattern, handler)
	}
	// Other methods: 405 with Allow, as on every endpoint.
	for path, allow := range map[string]string{"/v1/lists/{name}": "GET, HEAD, POST", "/v1/lists/{name}/{value...}": "DELETE"} {
		h.mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", allow)
			writeError(w, http.StatusMethodNotAllowed, r.Method+" "+r.URL.Path+": method not allowed, use "+allow)
		})
	}
	return "/v1/lists/NAME"
}

// maxListBody bounds a POST /v1/lists body: MaxValuesPerChange values
// of a few dozen bytes, with room.
const maxListBody = 16 << 20

type changeReply struct {
	List      string  `json:"list"`
	Op        string  `json:"op"`
	Values    int     `json:"values"`
	Version   int64   `json:"version"`
	By        string  `json:"by"`
	At        string  `json:"at"`
	ExpiresAt *string `json:"expires_at,omitempty"`
}

func replyChange(w http.ResponseWriter, name string, c *lists.Change) {
	rep := changeReply{List: name, Op: string(c.Op), Values: len(c.Values), Version: c.Version, By: c.Who,
		At: time.UnixMilli(c.At).UTC().Format(time.RFC3339Nano)}
	if c.Expires > 0 {
		exp := time.UnixMilli(c.Expires).UTC().Format(time.RFC3339)
		rep.ExpiresAt = &exp
	}
	writeJSON(w, http.StatusOK, rep)
}

// listAdd changes a mutable list: {"values": [...], "ttl": "30d"} adds
// values, {"op": "remove", "values": [...]} removes them (those it holds),
// {"op": "clear"} removes every value.
func (h *Handler) listAdd(w http.ResponseWriter, r *http.Request) {
	who, ok := h.changer(w, r)
	if !ok {
		return
	}
	var req struct {
		Op     string   `json:"op"`
		Values []string `json:"values"`
		TTL    string   `json:"ttl"`
	}
	dec := json.NewDecoder(io.LimitReader(r.Body, maxListBody+1))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, `body: want {"values": ["..."], "ttl": "30d"} (ttl optional), {"op": "remove", "values": ["..."]} or {"op": "clear"}: `+err.Error())
		return
	}
	var c *lists.Change
	var err error
	switch req.Op {
	case "", "add":
	case "remove", "clear":
		if req.TTL != "" || req.Op == "clear" && len(req.Values) > 0 {
			writeError(w, http.StatusBadRequest, `body: {"op": "remove"} takes values and no ttl, {"op": "clear"} neither`)
			return
		}
		if req.Op == "remove" {
			c, err = h.engine.Lists().Remove(r.Context(), r.PathValue("name"), req.Values, who)
		} else {
			c, err = h.engine.Lists().Clear(r.Context(), r.PathValue("name"), who)
		}
		if err != nil {
			writeListError(w, err)
			return
		}
		replyChange(w, r.PathValue("name"), c)
		return
	default:
		writeError(w, http.StatusBadRequest, "op "+strconv.Quote(req.Op)+": add (the default), remove or clear")
		return
	}
	var ttl time.Duration
	if req.TTL != "" {
		d, err := policyfile.ParseDuration(req.TTL)
		if err != nil || d <= 0 {
			writeError(w, http.StatusBadRequest, "ttl "+strconv.Quote(req.TTL)+": a positive duration such as 30d, 12h or 90m")
			return
		}
		ttl = d
	}
	c, err = h.engine.Lists().Add(r.Context(), r.PathValue("name"), req.Values, ttl, who)
	if err != nil {
		writeListError(w, err)
		return
	}
	replyChange(w, r.PathValue("name"), c)
}

// listRemove removes one value (URL-escaped in the path) from a mutable
// list.
func (h *Handler) listRemove(w http.ResponseWriter, r *http.Request) {
	who, ok := h.changer(w, r)
	if !ok {
		return
	}
	c, err := h.engine.Lists().Remove(r.Context(), r.PathValue("name"), []string{r.PathValue("value")}, who)
	if err != nil {
		writeListError(w, err)
		return
	}
	replyChange(w, r.PathValue("name"), c)
}

func writeListError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, lists.ErrUnknownList), errors.Is(err, lists.ErrNotInList):
		writeError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, lists.ErrBadChange):
		writeError(w, http.StatusBadRequest, err.Error())
	default:
		writeError(w, http.StatusServiceUnavailable, err.Error())
	}
}

// Paging of GET /v1/lists/NAME.
const (
	defaultListPage = 1000
	maxListPage     = 10000
)

// listGet pages through a mutable list as this riskd sees it, in byte
// order: ?after=VALUE&limit=N; "next" is the after of the next page.
func (h *Handler) listGet(w http.ResponseWriter, r *http.Request) {
	if _, ok := h.adminName(w, r); !ok {
		return
	}
	m, err := h.engine.Lists().Declared(r.PathValue("name"))
	if err != nil {
		writeListError(w, err)
		return
	}
	limit := defaultListPage
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxListPage {
			writeError(w, http.StatusBadRequest, "limit "+strconv.Quote(s)+": a number from 1 to "+strconv.Itoa(maxListPage))
			return
		}
		limit = n
	}
	snap := m.Snapshot()
	page, more := snap.Page(r.URL.Query().Get("after"), limit)
	type value struct {
		Value     string  `json:"value"`
		ExpiresAt *string `json:"expires_at"`
	}
	out := struct {
		List    string  `json:"list"`
		Version int64   `json:"version"`
		Total   int     `json:"total"`
		Store   string  `json:"store"`
		Values  []value `json:"values"`
		Next    *string `json:"next,omitempty"`
	}{List: m.Name, Version: snap.Version, Total: snap.Len(), Store: h.engine.Lists().Describe(), Values: make([]value, 0, len(page))}
	for _, e := range page {
		v := value{Value: e.Value}
		if e.Expires > 0 {
			s := time.UnixMilli(e.Expires).UTC().Format(time.RFC3339)
			v.ExpiresAt = &s
		}
		out.Values = append(out.Values, v)
	}
	if more && len(page) > 0 {
		out.Next = &page[len(page)-1].Value
	}
	writeJSON(w, http.StatusOK, out)
}

// listInfo is a list as GET /v1/rulesets shows it.
type listInfo struct {
	Name     string `json:"name"`
	Kind     string `json:"kind"` // file | mutable | inline
	Declared string `json:"declared"`
	File     string `json:"file,omitempty"`
	Values   int    `json:"values"`
	Version  string `json:"version,omitempty"`
	Store    string `json:"store,omitempty"` // mutable lists: where they live
}

// listInfos describes the policy's lists: features.yaml's and each
// ruleset's, in name order (a mutable list declared twice is one list).
func (h *Handler) listInfos(p *rules.Policy) []listInfo {
	out := []listInfo{}
	seen := map[string]bool{}
	add := func(ls map[string]*rules.List) {
		for _, l := range ls {
			info := listInfo{Name: l.Name, Kind: "inline", Declared: l.Decl, Values: len(l.Values)}
			switch {
			case l.Mutable:
				if seen[l.Name] {
					continue
				}
				seen[l.Name] = true
				snap := h.engine.Lists().List(l.Name).Snapshot()
				info.Kind, info.Values, info.Version, info.Store = "mutable", snap.Len(), snap.VersionText, h.engine.Lists().Describe()
			case l.File != "":
				info.Kind, info.File, info.Values, info.Version = "file", l.File, l.Set.Len(), l.Version
			}
			out = append(out, info)
		}
	}
	add(p.Lists)
	for _, rs := range p.Rulesets {
		add(rs.Lists)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
