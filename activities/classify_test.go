package activities

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/custodyflows/custodyflows/flow"
	"github.com/custodyflows/custodyflows/planbok"
)

// The classifier names the call by the planbok.Error's Op: this pins that
// against the real client, so a renamed Op cannot silently change what a
// status means. A 403 is a lockout only on a challenge request; a 404 or an
// unparsable id on a customer read is customer_not_found, never an outage.
func TestClassify_ByCallOfTheRealClient(t *testing.T) {
	var status atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st := int(status.Load())
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(st)
		fmt.Fprintf(w, `{"success":false,"status":%d,"message":"Refused"}`, st)
	}))
	defer srv.Close()
	pb := planbok.New(srv.URL, "test-key")
	ctx := context.Background()
	calls := map[string]func() error{
		"get customer": func() error { _, err := pb.GetCustomer(ctx, "66aa0000000000000000000a"); return err },
		"create customer": func() error {
			_, err := pb.CreateCustomer(ctx, planbok.CreateCustomerParams{Name: "a", RefID: "b"})
			return err
		},
		"create challenge": func() error {
			_, err := pb.CreateChallenge(ctx, "66aa0000000000000000000a", planbok.TaskUpdatePIN,
				planbok.ChallengeParams{RedirectURL: "https://app.example/back", IdempotencyKey: "k"})
			return err
		},
		"create wallets challenge": func() error {
			_, err := pb.CreateChallenge(ctx, "66aa0000000000000000000a", planbok.TaskCreateWallets,
				planbok.ChallengeParams{RedirectURL: "https://app.example/back", IdempotencyKey: "k", Blockchains: []string{"ETH-SEPOLIA"}})
			return err
		},
		"get challenge": func() error { _, err := pb.GetChallenge(ctx, "66aa0000000000000000000a", "ch-1"); return err },
	}
	want := map[int]map[string]flow.Code{
		403: {"get customer": flow.CodePlanbokUnavailable, "create customer": flow.CodePlanbokUnavailable,
			"create challenge": flow.CodeCustomerLockedOut, "create wallets challenge": flow.CodeCustomerLockedOut,
			"get challenge": flow.CodePlanbokUnavailable},
		404: {"get customer": flow.CodeCustomerNotFound, "create customer": flow.CodePlanbokUnavailable,
			"create challenge": flow.CodeCustomerNotFound, "create wallets challenge": flow.CodeCustomerNotFound,
			"get challenge": flow.CodeChallengeExpired},
		400: {"get customer": flow.CodeCustomerNotFound, "create customer": flow.CodeInvalidRequest,
			"create challenge": flow.CodePlanbokRejected, "create wallets challenge": flow.CodePlanbokRejected,
			"get challenge": flow.CodePlanbokRejected},
		503: {"get customer": flow.CodePlanbokUnavailable, "create customer": flow.CodePlanbokUnavailable,
			"create challenge": flow.CodePlanbokUnavailable, "create wallets challenge": flow.CodePlanbokUnavailable,
			"get challenge": flow.CodePlanbokUnavailable},
	}
	a := newTestActivities(&fakePlanbok{}, newFakeStore(), nil)
	for st, codes := range want {
		for name, call := range calls {
			t.Run(fmt.Sprintf("%d/%s", st, name), func(t *testing.T) {
				status.Store(int64(st))
				err := call()
				if err == nil {
					t.Fatal("got no error")
				}
				wantAppError(t, a.classify(ctx, name, err), string(codes[name]), st == 503)
			})
		}
	}
}
