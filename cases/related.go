package cases

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"

	"github.com/riskd/riskd/features"
)

// MaxRelated is how many of an entity key's latest cases a store keeps
// findable by that key (Store.Related): the case page lists at most as
// many of the entity's other cases.
const MaxRelated = 20

// EntityKeys are the entity keys of event, as "card_id=card-7" (a
// composite key's fields joined by + and its values by |): one for each
// distinct key of fs the event has every field of. They are what a case
// is found by from the cases of the same card, account or device.
func EntityKeys(fs []*features.Feature, event []byte) []string {
	var ev map[string]any
	if json.Unmarshal(event, &ev) != nil {
		return nil
	}
	var keys []string
next:
	for _, f := range fs {
		names := make([]string, 0, len(f.Key))
		vals := make([]string, 0, len(f.Key))
		for _, p := range f.Key {
			var v any = ev
			for _, part := range p.Parts {
				m, _ := v.(map[string]any)
				v = m[part]
			}
			var s string
			switch x := v.(type) {
			case string:
				s = x
			case float64, bool:
				b, _ := json.Marshal(x)
				s = string(b)
			default:
				continue next
			}
			names, vals = append(names, p.Name), append(vals, s)
		}
		if len(names) == 0 {
			continue
		}
		k := strings.Join(names, "+") + "=" + strings.Join(vals, "|")
		if !slices.Contains(keys, k) {
			keys = append(keys, k)
		}
	}
	return keys
}

// related gets the cases ids name, newest first, without self and those
// gone, at most limit.
func related(ctx context.Context, s Store, ids []string, self string, limit int) ([]Summary, error) {
	var out []Summary
	for _, id := range ids {
		if id == self || slices.ContainsFunc(out, func(x Summary) bool { return x.ID == id }) {
			continue
		}
		c, err := s.Get(ctx, id)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		sum := c.Summary()
		sum.Resolution = c.Resolution
		out = append(out, sum)
	}
	slices.SortStableFunc(out, func(a, b Summary) int { return b.OpenedAt.Compare(a.OpenedAt) })
	return out[:min(len(out), limit)], nil
}
