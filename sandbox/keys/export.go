package keys

import (
	"encoding/csv"
	"fmt"
	"io"
)

// csvHeader is the export CSV's header (API.md §5).
var csvHeader = []string{"Address", "Private Key", "Blockchain", "Derivation Path", "Key Type"}

// WriteCSV writes the export CSV: the header
// "Address,Private Key,Blockchain,Derivation Path,Key Type" then one row per
// account, in order, with "\n" line endings. The output holds private keys:
// it goes to the Gateway page only, never to logs.
func WriteCSV(w io.Writer, accounts []Account) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(csvHeader); err != nil {
		return fmt.Errorf("keys: write csv: %w", err)
	}
	for _, a := range accounts {
		if err := cw.Write([]string{a.Address, a.PrivateKey, a.Blockchain, a.DerivationPath, a.KeyType}); err != nil {
			return fmt.Errorf("keys: write csv: %w", err)
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("keys: write csv: %w", err)
	}
	return nil
}
