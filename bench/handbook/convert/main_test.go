package main

import (
	"strings"
	"testing"
)

func TestConvert(t *testing.T) {
	csv := `TRANSACTION_ID,TX_DATETIME,CUSTOMER_ID,TERMINAL_ID,TX_AMOUNT,TX_TIME_SECONDS,TX_TIME_DAYS,TX_FRAUD,TX_FRAUD_SCENARIO
0,2018-04-01 00:00:31,596,3156,57.16,31,0,1,2
1,2018-04-05 10:00:00,4961,3412,81.51,0,0,0,0
2,2018-04-08 00:00:31,12,3156,5.00,0,0,0,0
3,2018-04-09 00:00:00,13,3157,300.00,0,0,1,1
`
	var out strings.Builder
	n, err := convert(strings.NewReader(csv), &out)
	if err != nil || n != 4 {
		t.Fatal(n, err)
	}
	want := `{"id":"tx-0","type":"checkout","ts":1522540831000,"customer_id":"c-596","terminal_id":"t-3156","amount":57.16,"fraud":1}
{"id":"tx-1","type":"checkout","ts":1522922400000,"customer_id":"c-4961","terminal_id":"t-3412","amount":81.51,"fraud":0}
{"id":"cb-0","type":"chargeback","ts":1523145631000,"transaction_id":"tx-0","customer_id":"c-596","terminal_id":"t-3156","amount":57.16}
{"id":"tx-2","type":"checkout","ts":1523145631000,"customer_id":"c-12","terminal_id":"t-3156","amount":5.00,"fraud":0}
{"id":"tx-3","type":"checkout","ts":1523232000000,"customer_id":"c-13","terminal_id":"t-3157","amount":300.00,"fraud":1}
{"id":"cb-3","type":"chargeback","ts":1523836800000,"transaction_id":"tx-3","customer_id":"c-13","terminal_id":"t-3157","amount":300.00}
`
	if out.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", out.String(), want)
	}
}

func TestConvertRefusesBadRows(t *testing.T) {
	head := "TRANSACTION_ID,TX_DATETIME,CUSTOMER_ID,TERMINAL_ID,TX_AMOUNT,TX_FRAUD\n"
	for _, c := range []struct{ in, want string }{
		{"TRANSACTION_ID,CUSTOMER_ID\n", "line 1: no TX_DATETIME column"},
		{head + "0,2018-04-01,1,2,3.0,0\n", `line 2: TX_DATETIME "2018-04-01": want 2018-04-01 00:00:31`},
		{head + "0,2018-04-01 00:00:00,1,2,x,0\n", `line 2: TX_AMOUNT "x" is not a number`},
		{head + "0,2018-04-01 00:00:00,1,2,3,2\n", `line 2: TX_FRAUD "2": want 0 or 1`},
		{head + "0,2018-04-02 00:00:00,1,2,3,0\n1,2018-04-01 00:00:00,1,2,3,0\n", "line 3: transactions out of time order"},
		{head + "0,2018-04-02 00:00:00,1,2\n", "wrong number of fields"},
	} {
		_, err := convert(strings.NewReader(c.in), &strings.Builder{})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want %q", c.in, err, c.want)
		}
	}
}
