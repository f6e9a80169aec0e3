package flow

// Status is where a flow stands. A flow moves forward only:
// starting → awaiting_user → one of the terminal statuses.
type Status string

// Flow statuses. The values appear in the HTTP API and in stored rows.
const (
	StatusStarting     Status = "starting"
	StatusAwaitingUser Status = "awaiting_user"
	StatusCompleted    Status = "completed"
	StatusFailed       Status = "failed"
	StatusExpired      Status = "expired"
	StatusCancelled    Status = "cancelled"
)

// Statuses lists every status.
var Statuses = []Status{StatusStarting, StatusAwaitingUser, StatusCompleted, StatusFailed, StatusExpired, StatusCancelled}

// Terminal reports whether a flow in status s has ended.
func (s Status) Terminal() bool {
	switch s {
	case StatusCompleted, StatusFailed, StatusExpired, StatusCancelled:
		return true
	}
	return false
}

// Active reports whether a flow in status s still holds the customer's
// single active-flow slot.
func (s Status) Active() bool { return s == StatusStarting || s == StatusAwaitingUser }

// rank orders statuses so that state only moves forward.
func (s Status) rank() int {
	switch s {
	case StatusStarting:
		return 0
	case StatusAwaitingUser:
		return 1
	case StatusCompleted, StatusFailed, StatusExpired, StatusCancelled:
		return 2
	}
	return -1
}

// CanMoveTo reports whether a flow in status s may move to next. Terminal
// statuses never change; a status never moves backwards.
func (s Status) CanMoveTo(next Status) bool {
	if s.Terminal() || next.rank() < 0 {
		return false
	}
	return next.rank() > s.rank()
}
