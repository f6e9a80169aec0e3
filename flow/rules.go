package flow

// Standing is what the rules need to know about a customer, read from
// Planbok's current record.
type Standing struct {
	HasPIN      bool
	HasRecovery bool
	LockedOut   bool
}

// CanTransact is Planbok's rule: no wallets and no signing before recovery
// setup, and none while locked out.
func (s Standing) CanTransact() bool { return s.HasPIN && s.HasRecovery && !s.LockedOut }

// Check applies the precondition rules of API.md §2 for starting a flow of
// kind k. It returns nil when the flow may start, or an *Error with the
// refusing rule's code. pin_required is always checked before
// recovery_required, and both before customer_locked_out.
func Check(k Kind, s Standing) *Error {
	switch k {
	case KindInitialize:
		if s.HasPIN {
			return Errorf(CodePINAlreadySet, "The customer has already set a PIN.")
		}
	case KindRecovery:
		if !s.HasPIN {
			return pinRequired()
		}
	case KindUpdatePIN:
		if !s.HasPIN {
			return pinRequired()
		}
		if s.LockedOut {
			return lockedOut()
		}
	case KindResetPIN:
		if !s.HasRecovery {
			return Errorf(CodeRecoveryRequired, "The customer has not set up recovery, so the PIN cannot be reset.")
		}
	case KindExportPrivateKeys, KindCreateWallets:
		if !s.HasPIN {
			return pinRequired()
		}
		if !s.HasRecovery {
			return Errorf(CodeRecoveryRequired, "The customer must set up recovery first.")
		}
		if s.LockedOut {
			return lockedOut()
		}
	default:
		return Errorf(CodeInvalidRequest, "Unknown flow kind %q.", string(k))
	}
	return nil
}

func pinRequired() *Error {
	return Errorf(CodePINRequired, "The customer has not set a PIN yet.")
}

func lockedOut() *Error {
	return Errorf(CodeCustomerLockedOut, "The customer is locked out after too many wrong PINs; reset the PIN first.")
}
