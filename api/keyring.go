package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"net/http"
	"strings"
)

// KeyRing holds the accepted Bearer API keys, each kept only as its SHA-256
// and a short non-secret id for the audit log. Several keys are valid at
// once, for rotation. The API authenticates with it, and `custodyflows api`
// protects the codec endpoint with the same one.
type KeyRing struct {
	keys []ringKey
}

type ringKey struct {
	hash [sha256.Size]byte
	id   string
}

// NewKeyRing returns a ring of keys; it refuses none or an empty one.
func NewKeyRing(keys []string) (*KeyRing, error) {
	if len(keys) == 0 {
		return nil, errors.New("api: at least one API key is required")
	}
	r := &KeyRing{}
	for _, k := range keys {
		if k == "" {
			return nil, errors.New("api: empty API key")
		}
		h := sha256.Sum256([]byte(k))
		r.keys = append(r.keys, ringKey{hash: h, id: "key:" + hex.EncodeToString(h[:])[:8]})
	}
	return r, nil
}

// Match checks an Authorization header value ("Bearer <key>") and returns
// the matching key's id. Keys are compared as SHA-256 digests in constant
// time, against every key, so neither the key's length nor which key
// matched shows in the timing.
func (r *KeyRing) Match(authorization string) (id string, ok bool) {
	scheme, token, found := strings.Cut(authorization, " ")
	token = strings.TrimSpace(token)
	if !found || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return "", false
	}
	sum := sha256.Sum256([]byte(token))
	match := -1
	for i := range r.keys {
		if subtle.ConstantTimeCompare(sum[:], r.keys[i].hash[:]) == 1 {
			match = i
		}
	}
	if match < 0 {
		return "", false
	}
	return r.keys[match].id, true
}

// Authorize reports whether req carries one of the keys; it fits
// codec.HandlerOptions.Authorize.
func (r *KeyRing) Authorize(req *http.Request) bool {
	_, ok := r.Match(req.Header.Get("Authorization"))
	return ok
}
