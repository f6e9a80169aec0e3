package sandbox

import (
	"crypto/hmac"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/jmoiron/sqlx"

	"github.com/custodyflows/custodyflows/sandbox/keys"
)

// Secrets at rest. Three things in the database would let someone holding
// only sandbox.db act for a customer: the vault's node share (with it, the
// PIN-sealed user share can be guessed offline: a million PINs), the
// escrowed secret of email recovery (with the node share, the seed without
// any PIN), and the emailed codes. They are kept wrapped under a storage
// key that lives in its own file (DBPath + ".key", 0600), as Planbok would
// keep it in an HSM: vaults and escrows with AES-256-GCM, the last emailed
// code (the simulated inbox) likewise, and each challenge's code as an
// HMAC, compared in constant time. Every value is bound to its customer or
// challenge id, so a wrapped value moved to another row does not open.

// storageFormat is meta 'format' once every secret is wrapped.
const storageFormat = "2"

// wrappedPrefix starts a wrapped value kept in a TEXT column.
const wrappedPrefix = "w1:"

// keyFileSuffix names the storage key's file after the database's.
const keyFileSuffix = ".key"

// privateFile creates path with mode 0600 if it does not exist, and
// narrows it to 0600 if it does: SQLite creates its files, and the WAL and
// shared-memory files beside them, with the database file's mode.
func privateFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("sandbox: create %s: %w", path, err)
	}
	f.Close()
	for _, p := range []string{path, path + "-wal", path + "-shm", path + "-journal"} {
		if err := os.Chmod(p, 0o600); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("sandbox: make %s private: %w", p, err)
		}
	}
	return nil
}

// storageKey returns the key that wraps secrets in the database at path:
// a fresh random one for an in-memory database; otherwise the one in
// path.key, made (0600) when neither it nor wrapped data exist yet. A
// database holding wrapped data whose key file is gone is an error: a new
// key could not open it.
func storageKey(d *db, path string, rnd io.Reader) ([]byte, error) {
	key := make([]byte, keys.StorageKeySize)
	if path == "" {
		if _, err := io.ReadFull(rnd, key); err != nil {
			return nil, err
		}
		return key, nil
	}
	keyPath := path + keyFileSuffix
	text, err := os.ReadFile(keyPath)
	switch {
	case err == nil:
		if err := os.Chmod(keyPath, 0o600); err != nil {
			return nil, fmt.Errorf("sandbox: make %s private: %w", keyPath, err)
		}
		key, err = hex.DecodeString(strings.TrimSpace(string(text)))
		if err != nil || len(key) != keys.StorageKeySize {
			return nil, fmt.Errorf("sandbox: %s must hold %d hex characters", keyPath, 2*keys.StorageKeySize)
		}
		return key, nil
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("sandbox: read %s: %w", keyPath, err)
	}
	if check, err := d.meta("key_check"); err != nil {
		return nil, err
	} else if check != nil {
		return nil, fmt.Errorf("sandbox: %s is missing: the secrets in %s are wrapped under the key it held "+
			"(restore it, or delete both files to start an empty sandbox)", keyPath, path)
	}
	if _, err := io.ReadFull(rnd, key); err != nil {
		return nil, err
	}
	// Written whole to a temporary file, then linked into place: another
	// process starting on the same fresh database either wins the link
	// and this one reads its key, or the other way round, and nobody reads
	// a half-written file.
	f, err := os.CreateTemp(filepath.Dir(keyPath), filepath.Base(keyPath)+".tmp*")
	if err != nil {
		return nil, fmt.Errorf("sandbox: create %s: %w", keyPath, err)
	}
	defer os.Remove(f.Name())
	_, err = f.WriteString(hex.EncodeToString(key) + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Link(f.Name(), keyPath)
	}
	if errors.Is(err, fs.ErrExist) {
		return storageKey(d, path, rnd)
	}
	if err != nil {
		return nil, fmt.Errorf("sandbox: write %s: %w", keyPath, err)
	}
	return key, nil
}

// meta returns a meta value, or nil when the key is absent.
func (d *db) meta(key string) ([]byte, error) {
	var v []byte
	err := d.x.Get(&v, `SELECT value FROM meta WHERE key = ?`, key)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("sandbox: read meta %s: %w", key, err)
	}
	return v, nil
}

// useStorageKey checks the key against the database (a database already
// tied to another key is refused) and, for a database written before
// secrets were wrapped, wraps them all in one transaction.
func (d *db) useStorageKey(w *keys.Wrapper) error {
	check, err := d.meta("key_check")
	if err != nil {
		return err
	}
	if check != nil && !hmac.Equal(check, w.KeyCheck()) {
		return errors.New("sandbox: the storage key file does not belong to this database")
	}
	// The format is read inside the write transaction, so two processes
	// starting on one old file cannot both wrap (and so wrap twice).
	return d.inTx(func(tx *sqlx.Tx) error {
		var format []byte
		err := tx.Get(&format, `SELECT value FROM meta WHERE key = 'format'`)
		switch {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return fmt.Errorf("sandbox: read format: %w", err)
		case string(format) == storageFormat:
			return nil
		default:
			return fmt.Errorf("sandbox: database format %q is newer than this sandbox knows", format)
		}
		var cs []customer
		if err := tx.Select(&cs, `SELECT `+customerCols+` FROM customers`); err != nil {
			return fmt.Errorf("upgrade: read customers: %w", err)
		}
		for i := range cs {
			c := &cs[i]
			if c.Vault.Valid {
				if c.Vault.String, err = wrapText(w, vaultLabel(c.ID), []byte(c.Vault.String)); err != nil {
					return err
				}
			}
			if len(c.Escrow) > 0 {
				if c.Escrow, err = w.Wrap(escrowLabel(c.ID), c.Escrow); err != nil {
					return err
				}
			}
			if c.Mailbox != "" {
				if c.Mailbox, err = wrapText(w, mailboxLabel(c.ID), []byte(c.Mailbox)); err != nil {
					return err
				}
			}
			if err := updateCustomer(tx, c); err != nil {
				return fmt.Errorf("upgrade: %w", err)
			}
		}
		var chs []challenge
		if err := tx.Select(&chs, `SELECT `+challengeCols+` FROM challenges WHERE email_code <> ''`); err != nil {
			return fmt.Errorf("upgrade: read challenges: %w", err)
		}
		for _, ch := range chs {
			if _, err := tx.Exec(`UPDATE challenges SET email_code = ? WHERE id = ?`, codeMAC(w, ch.ID, ch.EmailCodeMAC), ch.ID); err != nil {
				return fmt.Errorf("upgrade: challenge: %w", err)
			}
		}
		for k, v := range map[string][]byte{"format": []byte(storageFormat), "key_check": w.KeyCheck()} {
			if _, err := tx.Exec(`INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value`, k, v); err != nil {
				return fmt.Errorf("upgrade: meta: %w", err)
			}
		}
		return nil
	})
}

func vaultLabel(customerID string) string   { return "vault|" + customerID }
func escrowLabel(customerID string) string  { return "escrow|" + customerID }
func mailboxLabel(customerID string) string { return "mailbox|" + customerID }

func wrapText(w *keys.Wrapper, label string, plain []byte) (string, error) {
	b, err := w.Wrap(label, plain)
	if err != nil {
		return "", err
	}
	return wrappedPrefix + base64.StdEncoding.EncodeToString(b), nil
}

func unwrapText(w *keys.Wrapper, label, text string) ([]byte, error) {
	b64, ok := strings.CutPrefix(text, wrappedPrefix)
	if !ok {
		return nil, keys.ErrUnwrap
	}
	b, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, keys.ErrUnwrap
	}
	return w.Unwrap(label, b)
}

// codeMAC is what a challenge keeps of its emailed code.
func codeMAC(w *keys.Wrapper, challengeID, code string) string {
	return hex.EncodeToString(w.MAC("email-code|"+challengeID, []byte(code)))
}

// codeMatches compares an entered code with a challenge's in constant time.
func (s *Sandbox) codeMatches(ch *challenge, code string) bool {
	want, err := hex.DecodeString(ch.EmailCodeMAC)
	if err != nil || len(want) == 0 {
		return false
	}
	return hmac.Equal(want, s.wrap.MAC("email-code|"+ch.ID, []byte(code)))
}

// vaultOf opens the customer's wrapped vault.
func (s *Sandbox) vaultOf(c *customer) (*keys.Vault, error) {
	if !c.Vault.Valid {
		return nil, errf(400, "Customer has not set a PIN yet")
	}
	plain, err := unwrapText(s.wrap, vaultLabel(c.ID), c.Vault.String)
	if err != nil {
		return nil, fmt.Errorf("open vault: %w", err)
	}
	defer clear(plain)
	var v keys.Vault
	if err := json.Unmarshal(plain, &v); err != nil {
		return nil, fmt.Errorf("decode vault: %w", err)
	}
	return &v, nil
}

// setVault wraps v into the customer row.
func (s *Sandbox) setVault(c *customer, v *keys.Vault) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode vault: %w", err)
	}
	defer clear(b)
	text, err := wrapText(s.wrap, vaultLabel(c.ID), b)
	if err != nil {
		return err
	}
	c.Vault = sql.NullString{String: text, Valid: true}
	return nil
}

// setEscrow keeps an email-recovery secret, wrapped; nil clears it.
func (s *Sandbox) setEscrow(c *customer, secret []byte) error {
	if len(secret) == 0 {
		c.Escrow = nil
		return nil
	}
	var err error
	c.Escrow, err = s.wrap.Wrap(escrowLabel(c.ID), secret)
	return err
}

// escrow releases the customer's email-recovery secret; the caller clears
// it after use.
func (s *Sandbox) escrow(c *customer) ([]byte, error) {
	if len(c.Escrow) == 0 {
		return nil, nil
	}
	secret, err := s.wrap.Unwrap(escrowLabel(c.ID), c.Escrow)
	if err != nil {
		return nil, fmt.Errorf("open escrow: %w", err)
	}
	return secret, nil
}

// sendCode "emails" code for challenge ch: the challenge keeps its MAC,
// the customer's simulated inbox (read by the email-code helper) keeps it
// wrapped.
func (s *Sandbox) sendCode(c *customer, ch *challenge, code string) error {
	ch.EmailCodeMAC = codeMAC(s.wrap, ch.ID, code)
	var err error
	c.Mailbox, err = wrapText(s.wrap, mailboxLabel(c.ID), []byte(code))
	return err
}

// mailbox returns the last code emailed to the customer, or "".
func (s *Sandbox) mailbox(c *customer) (string, error) {
	if c.Mailbox == "" {
		return "", nil
	}
	code, err := unwrapText(s.wrap, mailboxLabel(c.ID), c.Mailbox)
	if err != nil {
		return "", fmt.Errorf("open mailbox: %w", err)
	}
	return string(code), nil
}
