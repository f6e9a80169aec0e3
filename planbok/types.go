package planbok

import (
	"encoding/json"
	"time"
)

// Envelope is the body of every Planbok response:
// {"success": true, "status": 201, "message": "…", "data": {…}}.
type Envelope struct {
	Success bool            `json:"success"`
	Status  int             `json:"status"`
	Message string          `json:"message"`
	Data    json.RawMessage `json:"data,omitempty"`
}

// Customer status values.
const (
	CustomerActive = "active"
	CustomerLocked = "locked"
)

// Customer is Planbok's customer record.
type Customer struct {
	ID          string    `json:"id"`
	Name        string    `json:"name"`
	RefID       string    `json:"refId"`
	CustodyType string    `json:"custodyType"`
	Status      string    `json:"status"`
	HasPIN      bool      `json:"hasPin"`
	HasRecovery bool      `json:"hasRecovery"`
	CreatedAt   time.Time `json:"createdAt"`
	UpdatedAt   time.Time `json:"updatedAt"`
}

// Locked reports whether Planbok has locked the customer out.
func (c Customer) Locked() bool { return c.Status == CustomerLocked }

// CustomerList is the data of GET /v2/customers.
type CustomerList struct {
	Customers []Customer `json:"customers"`
	Page      int        `json:"page"`
	Limit     int        `json:"limit"`
	Total     int        `json:"total"`
}

// Task names a challenge's purpose.
type Task string

// Challenge tasks, one per challenge route.
const (
	TaskInitialize        Task = "initialize"
	TaskRecovery          Task = "recovery"
	TaskUpdatePIN         Task = "update-pin"
	TaskResetPIN          Task = "reset-pin"
	TaskExportPrivateKeys Task = "export-private-keys"
	TaskCreateWallets     Task = "wallet/create"
)

// Challenge statuses.
const (
	ChallengePending  = "pending"
	ChallengeVerified = "verified"
	ChallengeFailed   = "failed"
)

// Challenge is a user-authorised action waiting on the Gateway. RedirectURL
// is the Gateway URL to send the user to (Planbok's naming: the request's
// redirectUrl is the app's return URL, the response's is the Gateway's).
type Challenge struct {
	ChallengeID string          `json:"challengeId"`
	RedirectURL string          `json:"redirectUrl"`
	Status      string          `json:"status"`
	Task        Task            `json:"task"`
	ExpiresAt   time.Time       `json:"expiresAt"`
	Result      json.RawMessage `json:"result,omitempty"`
}

// Wallet is a customer wallet.
type Wallet struct {
	ID             string    `json:"id"`
	CustomerID     string    `json:"customerId"`
	Blockchain     string    `json:"blockchain"`
	Address        string    `json:"address"`
	DerivationPath string    `json:"derivationPath"`
	KeyType        string    `json:"keyType"`
	CreatedAt      time.Time `json:"createdAt"`
}

// Blockchains the sandbox (and so custodyflows' validation) supports, with
// their key type.
var Blockchains = map[string]string{
	"ETH":          "secp256k1",
	"ETH-SEPOLIA":  "secp256k1",
	"MATIC":        "secp256k1",
	"POL-AMOY":     "secp256k1",
	"BASE":         "secp256k1",
	"BASE-SEPOLIA": "secp256k1",
	"ARB":          "secp256k1",
	"ARB-SEPOLIA":  "secp256k1",
	"OP":           "secp256k1",
	"OP-SEPOLIA":   "secp256k1",
	"SOL":          "ed25519",
	"SOL-DEVNET":   "ed25519",
	"SOL-TESTNET":  "ed25519",
}

// Webhook event types Planbok (and the sandbox) send.
const (
	EventCustomerCreated           = "customer.created"
	EventCustomerPINSetup          = "customer.pin_setup"
	EventCustomerRecoverySetup     = "customer.recovery_setup"
	EventCustomerPINUpdated        = "customer.pin_updated"
	EventCustomerRecoveryInitiated = "customer.recovery_initiated"
	EventCustomerRecoveryCompleted = "customer.recovery_completed"
	EventCustomerLockedOut         = "customer.locked_out"
	EventWalletCreated             = "wallet.created"
	EventChallengeCompleted        = "challenge.completed"
	EventChallengeFailed           = "challenge.failed"
)

// WebhookEvent is the body of a Planbok webhook.
type WebhookEvent struct {
	Event          string      `json:"event"`
	Timestamp      time.Time   `json:"timestamp"`
	IdempotencyKey string      `json:"idempotencyKey"`
	Data           WebhookData `json:"data"`
}

// WebhookData holds the fields custodyflows reads from a webhook's data;
// other fields are ignored.
type WebhookData struct {
	CustomerID  string `json:"customerId,omitempty"`
	ChallengeID string `json:"challengeId,omitempty"`
	Task        Task   `json:"task,omitempty"`
	Status      string `json:"status,omitempty"`
	WalletID    string `json:"walletId,omitempty"`
	Blockchain  string `json:"blockchain,omitempty"`
	Address     string `json:"address,omitempty"`
}
