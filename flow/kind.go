package flow

import "fmt"

// Kind names one of Planbok's Customer Custody security flows.
type Kind string

// The six flow kinds. The values appear in the HTTP API and in stored rows:
// never rename them.
const (
	KindInitialize        Kind = "initialize"
	KindRecovery          Kind = "recovery"
	KindUpdatePIN         Kind = "update_pin"
	KindResetPIN          Kind = "reset_pin"
	KindExportPrivateKeys Kind = "export_private_keys"
	KindCreateWallets     Kind = "create_wallets"
)

// Kinds lists every kind in the order the flows are usually met.
var Kinds = []Kind{KindInitialize, KindRecovery, KindUpdatePIN, KindResetPIN, KindExportPrivateKeys, KindCreateWallets}

// ParseKind returns the kind named s.
func ParseKind(s string) (Kind, error) {
	for _, k := range Kinds {
		if string(k) == s {
			return k, nil
		}
	}
	return "", fmt.Errorf("unknown flow kind %q", s)
}

// Valid reports whether k is one of the six kinds.
func (k Kind) Valid() bool {
	_, err := ParseKind(string(k))
	return err == nil
}

// Route is the path segment of the start route, both in custodyflows' API
// (POST /v1/customers/{id}/<route>) and, except for wallets, at Planbok.
func (k Kind) Route() string {
	switch k {
	case KindInitialize:
		return "initialize"
	case KindRecovery:
		return "recovery"
	case KindUpdatePIN:
		return "update-pin"
	case KindResetPIN:
		return "reset-pin"
	case KindExportPrivateKeys:
		return "export-private-keys"
	case KindCreateWallets:
		return "wallets"
	}
	return ""
}

// KindForRoute is the inverse of Kind.Route.
func KindForRoute(route string) (Kind, bool) {
	for _, k := range Kinds {
		if k.Route() == route {
			return k, true
		}
	}
	return "", false
}

// WorkflowType is the registered Temporal workflow type that runs flows of
// this kind. Registered name: do not change.
func (k Kind) WorkflowType() string {
	switch k {
	case KindInitialize:
		return WorkflowInitialize
	case KindRecovery:
		return WorkflowRecovery
	case KindUpdatePIN:
		return WorkflowUpdatePIN
	case KindResetPIN:
		return WorkflowResetPIN
	case KindExportPrivateKeys:
		return WorkflowExportPrivateKeys
	case KindCreateWallets:
		return WorkflowCreateWallets
	}
	return ""
}

// EventType is the event sent to the app when a flow of this kind completes
// (API.md §4).
func (k Kind) EventType() EventType {
	switch k {
	case KindInitialize:
		return EventPINSetup
	case KindRecovery:
		return EventRecoverySetup
	case KindUpdatePIN:
		return EventPINUpdated
	case KindResetPIN:
		return EventPINReset
	case KindExportPrivateKeys:
		return EventPrivateKeysExported
	case KindCreateWallets:
		return EventWalletsCreated
	}
	return ""
}
