package engine_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/riskd/riskd/engine"
	"github.com/riskd/riskd/internal/enginetest"
	"github.com/riskd/riskd/lists"
	"github.com/riskd/riskd/rules"
)

// TestListsInDecisions: file and mutable lists block, and the reason
// names the version of each list the rule read; a mutable list changed
// through the registry applies to the next event, in rules and in where.
func TestListsInDecisions(t *testing.T) {
	p, err := rules.Load(fstest.MapFS{
		"features.yaml":           {Data: []byte(enginetest.ListsFeatures)},
		"payment.yaml":            {Data: []byte(enginetest.ListsRuleset)},
		"lists/blocked_cards.txt": {Data: []byte("c-file\n")},
	}, "p")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(p.MutableLists, ",") != "blocked_cards_api,watched_cards" {
		t.Fatalf("mutable lists %v", p.MutableLists)
	}
	reg := lists.NewMemory(lists.Options{})
	e := engine.New(p, engine.Options{Lists: reg})
	pay := func(id, card string, sec int) engine.Decision {
		return score(t, e, `{"id":"`+id+`","type":"payment","ts":`+strconv.Itoa(1780000000000+sec*1000)+`,"card_id":"`+card+`","account_id":"a1"}`)
	}
	fileVersion := p.ListFiles[0].Version
	d := pay("e1", "c-file", 0)
	if got := string(d.AppendJSON(nil)); !strings.Contains(got, `"lists":{"blocked_cards":"`+fileVersion+`","blocked_cards_api":"0"}`) || d.Outcome != rules.Block {
		t.Errorf("file list block: %s", got)
	}
	if d := pay("e2", "c-api", 1); d.Outcome != rules.Pass {
		t.Errorf("c-api blocked before it was added: %+v", d.Reasons)
	}
	if _, err := reg.Add(context.Background(), "blocked_cards_api", []string{"c-api"}, 0, "test"); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Add(context.Background(), "watched_cards", []string{"c-w"}, 0, "test"); err != nil {
		t.Fatal(err)
	}
	d = pay("e3", "c-api", 2)
	if got := string(d.AppendJSON(nil)); !strings.Contains(got, `"blocked_cards_api":"1"`) || d.Outcome != rules.Block {
		t.Errorf("mutable list block: %s", got)
	}
	pay("e4", "c-w", 3) // recorded into watched_card_payments_1h
	pay("e5", "c-x", 4) // not
	d = pay("e6", "c-y", 5)
	if got := feature(d, "watched_card_payments_1h"); got.Num != 1 {
		t.Errorf("watched_card_payments_1h = %+v, want 1", got)
	}
}
