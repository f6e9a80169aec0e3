package codec

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// LoadOrCreateKeyFile reads the key ring stored at path (in ParseKeys'
// form), creating the file with one new key when it does not exist. The dev
// command keeps it in its data directory so that a restart can still
// decrypt the histories it wrote before.
//
// The file is created 0600 (its directory 0700), and an existing file that
// group or others can read or write is refused rather than trusted: a key
// that leaked that way no longer protects anything.
func LoadOrCreateKeyFile(path string) ([]Key, error) {
	keys, err := readKeyFile(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return keys, err
	}
	k, err := GenerateKey(nil)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("codec: create key file directory: %w", err)
	}
	// O_EXCL: when two processes race to create the file, one wins and
	// the other reads the winner's key instead of overwriting it.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return readKeyFile(path)
	}
	if err != nil {
		return nil, fmt.Errorf("codec: create key file: %w", err)
	}
	content := "# custodyflows payload encryption keys: one <id>:<base64> per line; the first encrypts. Keep secret.\n" +
		FormatKeys([]Key{k}) + "\n"
	if _, err := f.WriteString(content); err != nil {
		f.Close()
		os.Remove(path)
		return nil, fmt.Errorf("codec: write key file: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(path)
		return nil, fmt.Errorf("codec: write key file: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("codec: write key file: %w", err)
	}
	return []Key{k}, nil
}

func readKeyFile(path string) ([]Key, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("codec: key file %s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("codec: key file %s has mode %04o; want 0600 (run chmod 600)", path, perm)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("codec: read key file: %w", err)
	}
	keys, err := ParseKeys(string(b))
	if err != nil {
		return nil, fmt.Errorf("key file %s: %w", path, err)
	}
	return keys, nil
}
