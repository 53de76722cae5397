// Command checkout is the README's example of a service calling riskd: a
// shop's payment endpoint that asks riskd before charging a card.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net/http"
	"time"

	"github.com/riskd/riskd/client"
)

func main() {
	riskd := flag.String("riskd", "http://localhost:8080", "riskd's base URL")
	listen := flag.String("listen", "localhost:8081", "address the shop serves on")
	flag.Parse()
	// One client for the service: it keeps its connections to riskd
	// alive, gives each call 30 ms, and steps up (fails closed) when
	// riskd cannot answer in time.
	risk, err := client.New(*riskd, client.Options{Timeout: 30 * time.Millisecond, Fallback: client.StepUp})
	if err != nil {
		log.Fatal(err)
	}
	http.HandleFunc("POST /pay", pay(risk))
	log.Fatal(http.ListenAndServe(*listen, nil))
}

// order is what the shop's front end posts.
type order struct {
	PaymentID, AccountID, CardID, DeviceID string
	Amount                                 float64
	Currency, IPCountry, CardCountry       string
}

func pay(risk *client.Client) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var o order
		if err := json.NewDecoder(r.Body).Decode(&o); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		d, err := risk.Score(r.Context(), client.Event{ID: o.PaymentID, Type: "checkout", Fields: map[string]any{
			"account_id": o.AccountID, "card_id": o.CardID, "device_id": o.DeviceID, "amount": o.Amount,
			"currency": o.Currency, "ip_country": o.IPCountry, "card_country": o.CardCountry}})
		if err != nil { // a *client.RefusedError: the event is wrong, and so is retrying it
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		switch d.Outcome { // d.Fallback is "fail_closed" when riskd did not answer in 30 ms
		case client.Block:
			http.Error(w, "payment declined", http.StatusPaymentRequired)
		case client.StepUp:
			fmt.Fprintln(w, "3-D Secure challenge sent")
		case client.Review: // authorise, hold: capture when the case is approved
			fmt.Fprintln(w, "order held for review, case", d.CaseID)
		default:
			fmt.Fprintln(w, "charged")
		}
	}
}
