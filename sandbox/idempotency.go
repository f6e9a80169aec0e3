package sandbox

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"time"
)

// idemRetention is how long an idempotency key is remembered (Planbok's
// retention is undocumented).
const idemRetention = 24 * time.Hour

// bodyHandler is a POST handler that gets the raw body already read.
type bodyHandler func(w http.ResponseWriter, r *http.Request, body []byte)

// idempotent implements the optional body field idempotencyKey of every
// Planbok POST: the first successful response under a key is stored and
// returned again for the same request; the key reused for another route
// or another body is 409. Failed requests are not stored, so a corrected
// retry under the same key still runs.
func (s *Sandbox) idempotent(h bodyHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				writeError(w, http.StatusRequestEntityTooLarge, "Request body is too large")
				return
			}
			writeError(w, http.StatusBadRequest, "Could not read the request body")
			return
		}
		key, fp, err := idemKey(r, body)
		if err != nil {
			s.writeErr(w, r, err)
			return
		}
		if key == "" {
			h(w, r, body)
			return
		}
		s.idemMu.Lock()
		defer s.idemMu.Unlock()
		prev, err := s.db.findIdem(key)
		if err != nil {
			s.writeErr(w, r, err)
			return
		}
		if prev != nil {
			if prev.Fingerprint != fp {
				writeError(w, http.StatusConflict, "idempotencyKey was already used for a different request")
				return
			}
			w.Header().Set("Content-Type", "application/json; charset=utf-8")
			w.Header().Set("Cache-Control", "no-store")
			w.Header().Set("Idempotent-Replayed", "true")
			w.WriteHeader(prev.Status)
			w.Write(prev.Body)
			return
		}
		rec := &recorder{header: http.Header{}, status: http.StatusOK}
		h(rec, r, body)
		if rec.status >= 200 && rec.status < 300 {
			now := s.now()
			rr := &idemRecord{Key: key, Fingerprint: fp, Status: rec.status, Body: rec.body.Bytes(), CreatedAt: toNanos(now)}
			if err := s.db.putIdem(rr, now.Add(-idemRetention)); err != nil {
				s.log.Error("sandbox: store idempotent response", "err", err)
			}
		}
		for k, v := range rec.header {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.status)
		w.Write(rec.body.Bytes())
	}
}

// idemKey returns the body's idempotencyKey ("" when absent) and the
// request's fingerprint: route plus the body without the key, canonical.
func idemKey(r *http.Request, body []byte) (key, fingerprint string, err error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var obj map[string]any
	if dec.Decode(&obj) != nil || obj == nil {
		return "", "", nil // not an object: the handler reports it
	}
	raw, ok := obj["idempotencyKey"]
	if !ok || raw == nil {
		return "", "", nil
	}
	key, isString := raw.(string)
	switch {
	case !isString:
		return "", "", errf(http.StatusBadRequest, "idempotencyKey must be a string")
	case key == "":
		return "", "", nil
	case len(key) > 255:
		return "", "", errf(http.StatusBadRequest, "idempotencyKey must be at most 255 characters")
	}
	delete(obj, "idempotencyKey")
	canon, _ := json.Marshal(obj) // map keys come out sorted
	sum := sha256.Sum256([]byte(r.Method + " " + r.URL.Path + "\n" + string(canon)))
	return key, hex.EncodeToString(sum[:]), nil
}

// recorder captures a handler's response.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
	wrote  bool
}

func (rec *recorder) Header() http.Header { return rec.header }
func (rec *recorder) Write(b []byte) (int, error) {
	rec.wrote = true
	return rec.body.Write(b)
}
func (rec *recorder) WriteHeader(status int) {
	if !rec.wrote {
		rec.status = status
		rec.wrote = true
	}
}
