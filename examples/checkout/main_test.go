package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/riskd/riskd/client"
	"github.com/riskd/riskd/engine"
	"github.com/riskd/riskd/httpapi"
	"github.com/riskd/riskd/internal/apitest"
	"github.com/riskd/riskd/rules"
	"github.com/riskd/riskd/rules/example"
)

// TestPay: the README's checkout handler charges, declines, and steps up
// when riskd is away.
func TestPay(t *testing.T) {
	p, err := rules.Load(example.FS, "rules/example")
	if err != nil {
		t.Fatal(err)
	}
	riskd := apitest.NewServer(t, httpapi.NewHandler(engine.New(p, engine.Options{}), httpapi.HandlerOptions{}))
	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close()
	tests := []struct {
		name, riskd, order string
		code               int
		want               string
	}{
		{"usual", riskd.URL, `{"PaymentID":"p-1","AccountID":"acc-1","CardID":"card-1","DeviceID":"dev-1","Amount":80,"Currency":"EUR","IPCountry":"FR","CardCountry":"FR"}`, 200, "charged"},
		{"card from a sanctioned country", riskd.URL, `{"PaymentID":"p-2","AccountID":"acc-2","CardID":"card-2","Amount":20,"Currency":"EUR","IPCountry":"FR","CardCountry":"KP"}`, 402, "payment declined"},
		{"riskd away", gone.URL, `{"PaymentID":"p-3","AccountID":"acc-1","CardID":"card-1","Amount":80}`, 200, "3-D Secure challenge sent"},
		{"no payment id", riskd.URL, `{"AccountID":"acc-1"}`, 400, "an event needs an ID"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A long timeout: this is not about riskd's speed.
			risk, err := client.New(tt.riskd, client.Options{Timeout: time.Minute, Fallback: client.StepUp})
			if err != nil {
				t.Fatal(err)
			}
			defer risk.Close()
			rec := httptest.NewRecorder()
			pay(risk)(rec, httptest.NewRequest(http.MethodPost, "/pay", strings.NewReader(tt.order)))
			body, _ := io.ReadAll(rec.Body)
			if rec.Code != tt.code || !strings.Contains(string(body), tt.want) {
				t.Errorf("%d %s, want %d %s", rec.Code, body, tt.code, tt.want)
			}
		})
	}
}
