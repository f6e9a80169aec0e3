package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/custodyflows/custodyflows/flow"
)

// Body size limits.
const (
	maxRequestBody = 64 << 10 // app API request bodies
	maxWebhookBody = 1 << 20  // Planbok webhooks
)

// readBody reads the request body up to limit bytes: over it is 413
// payload_too_large.
func readBody(c *gin.Context, limit int64) ([]byte, *apiError) {
	if c.Request.ContentLength > limit {
		return nil, tooLarge(limit)
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, tooLarge(limit)
		}
		return nil, &apiError{code: flow.CodeInvalidRequest, message: "The request body could not be read.", cause: err}
	}
	return body, nil
}

func tooLarge(limit int64) *apiError {
	return newError(flow.CodePayloadTooLarge, fmt.Sprintf("The request body is larger than %d bytes.", limit))
}

// decodeStrict decodes body, which must be exactly one JSON object, into
// dst. Unknown fields and wrong types are 400 invalid_request naming the
// field. It is the one JSON decoder of request bodies and webhooks.
//
// Go's decoder matches a key to a field case-insensitively ("NAME" fills
// Name) and lets the last of two equal keys win, so two parsers (a proxy,
// a signature check, an audit log, this one) could read the same bytes
// differently. keyChecker refuses that first: at every object level a key
// may appear once, may not differ from another key only in case, and,
// where dst has a struct, must be exactly a field's JSON name.
func decodeStrict(body []byte, dst any) *apiError {
	return decodeJSON(body, dst, false)
}

// decodeJSON is decodeStrict, or, with allowUnknown, the same checks but
// keys no struct field is named like are let through (webhooks: Planbok may
// add fields). A case variant of a known name is refused either way.
func decodeJSON(body []byte, dst any, allowUnknown bool) *apiError {
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return newError(flow.CodeInvalidRequest, "The request body must be a JSON object.")
	}
	kc := keyChecker{b: body, allowUnknown: allowUnknown}
	if aerr := kc.value(reflect.TypeOf(dst), 0); aerr != nil {
		return aerr
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if !allowUnknown {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(dst); err != nil {
		return jsonError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return newError(flow.CodeInvalidRequest, "The request body must hold a single JSON object.")
	}
	return nil
}

// maxJSONDepth bounds the nesting the key check follows; no body
// custodyflows reads goes past 4.
const maxJSONDepth = 32

// keyChecker scans the first JSON value of b with the Go type it will be
// decoded into, checking object keys. It is a scanner, not a parser: on
// malformed JSON it stops without an error and the decoder that runs next
// reports it. On valid JSON it sees exactly the keys the decoder sees
// (escapes in keys are decoded the same way). It allocates little, so a
// large body costs about what decoding it does.
type keyChecker struct {
	b            []byte
	i            int
	allowUnknown bool
	path         []pathStep // where the scan is, for messages
}

// pathStep is one step of the path to a value: a key, or an index.
type pathStep struct {
	key   []byte
	index int
	isKey bool
}

// pathWith formats the current path, ending in key when key is non-nil.
func (k *keyChecker) pathWith(key []byte) string {
	var b strings.Builder
	for _, st := range k.path {
		if !st.isKey {
			fmt.Fprintf(&b, "[%d]", st.index)
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.Write(st.key)
	}
	if key != nil {
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.Write(key)
	}
	return clip(b.String(), 100)
}

func (k *keyChecker) skipSpace() {
	for k.i < len(k.b) {
		switch k.b[k.i] {
		case ' ', '\t', '\r', '\n':
			k.i++
		default:
			return
		}
	}
}

// value checks the value at k.i; t is the Go type it decodes into (nil
// when free-form: any keys, still no repeats).
func (k *keyChecker) value(t reflect.Type, depth int) *apiError {
	if depth > maxJSONDepth {
		return newError(flow.CodeInvalidRequest, fmt.Sprintf("The request body nests deeper than %d levels.", maxJSONDepth))
	}
	k.skipSpace()
	if k.i >= len(k.b) {
		return nil
	}
	t = decodeTarget(t)
	switch k.b[k.i] {
	case '{':
		k.i++
		return k.object(t, depth)
	case '[':
		k.i++
		var elem reflect.Type
		if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
			elem = t.Elem()
		}
		k.skipSpace()
		if k.i < len(k.b) && k.b[k.i] == ']' {
			k.i++
			return nil
		}
		for n := 0; k.i < len(k.b); n++ {
			k.path = append(k.path, pathStep{index: n})
			aerr := k.value(elem, depth+1)
			k.path = k.path[:len(k.path)-1]
			if aerr != nil {
				return aerr
			}
			k.skipSpace()
			if k.i >= len(k.b) || k.b[k.i] != ',' {
				break
			}
			k.i++
		}
		if k.i < len(k.b) && k.b[k.i] == ']' {
			k.i++
		} else {
			k.i = len(k.b) // malformed: the decoder says where
		}
	case '"':
		k.skipString()
	default:
		// A number, true, false or null: up to the next delimiter.
		for ; k.i < len(k.b); k.i++ {
			switch k.b[k.i] {
			case ',', ']', '}', ' ', '\t', '\r', '\n':
				return nil
			}
		}
	}
	return nil
}

// skipString moves past the string starting at k.i and returns its raw
// bytes without the quotes, and whether it is well formed.
func (k *keyChecker) skipString() ([]byte, bool) {
	start := k.i + 1
	for j := start; j < len(k.b); j++ {
		switch k.b[j] {
		case '\\':
			j++
		case '"':
			k.i = j + 1
			return k.b[start:j], true
		}
	}
	k.i = len(k.b)
	return nil, false
}

// keyBytes decodes a key's raw bytes as encoding/json does (escapes
// resolved, invalid UTF-8 replaced); plain ASCII keys are returned as they
// are, without a copy.
func keyBytes(raw []byte) ([]byte, bool) {
	for _, c := range raw {
		if c == '\\' || c >= utf8.RuneSelf || c < 0x20 {
			quoted := make([]byte, 0, len(raw)+2)
			quoted = append(append(append(quoted, '"'), raw...), '"')
			var key string
			if err := json.Unmarshal(quoted, &key); err != nil {
				return nil, false
			}
			return []byte(key), true
		}
	}
	return raw, true
}

func (k *keyChecker) object(t reflect.Type, depth int) *apiError {
	var fields map[string]reflect.Type // exact JSON name → type; nil when free-form
	var elem reflect.Type
	if t != nil {
		switch t.Kind() {
		case reflect.Struct:
			fields = structFields(t)
		case reflect.Map:
			elem = t.Elem()
		}
	}
	var seen keySet
	k.skipSpace()
	if k.i < len(k.b) && k.b[k.i] == '}' {
		k.i++
		return nil
	}
	for k.i < len(k.b) {
		k.skipSpace()
		if k.i >= len(k.b) || k.b[k.i] != '"' {
			k.i = len(k.b)
			return nil
		}
		raw, ok := k.skipString()
		if !ok {
			return nil
		}
		key, ok := keyBytes(raw)
		if !ok {
			k.i = len(k.b)
			return nil
		}
		if first, dup := seen.add(key); dup {
			if bytes.Equal(first, key) {
				return newError(flow.CodeInvalidRequest, fmt.Sprintf("Field %q appears twice.", k.pathWith(key)))
			}
			return newError(flow.CodeInvalidRequest, fmt.Sprintf("Field %q repeats %q in another case; field names are case-sensitive.",
				k.pathWith(key), k.pathWith(first)))
		}
		child := elem
		if fields != nil {
			if ft, known := fields[string(key)]; known {
				child = ft
			} else if variant := caseVariantOf(fields, key); variant != "" {
				return newError(flow.CodeInvalidRequest, fmt.Sprintf("Unknown field %q; field names are case-sensitive (%q).",
					k.pathWith(key), k.pathWith([]byte(variant))))
			} else if !k.allowUnknown {
				return newError(flow.CodeInvalidRequest, fmt.Sprintf("Unknown field %q.", k.pathWith(key)))
			}
		}
		k.skipSpace()
		if k.i >= len(k.b) || k.b[k.i] != ':' {
			k.i = len(k.b)
			return nil
		}
		k.i++
		k.path = append(k.path, pathStep{key: key, isKey: true})
		aerr := k.value(child, depth+1)
		k.path = k.path[:len(k.path)-1]
		if aerr != nil {
			return aerr
		}
		k.skipSpace()
		if k.i >= len(k.b) || k.b[k.i] != ',' {
			break
		}
		k.i++
	}
	if k.i < len(k.b) && k.b[k.i] == '}' {
		k.i++
	} else {
		k.i = len(k.b)
	}
	return nil
}

// keySet holds the keys of one object, compared as encoding/json matches
// names: a few kept inline and compared one by one, a map of folded keys
// past that.
type keySet struct {
	n      int
	small  [8][]byte
	folded map[string][]byte
}

// add records key and returns the key already there that folds equal to
// it, if any.
func (s *keySet) add(key []byte) ([]byte, bool) {
	if s.folded == nil {
		for _, k := range s.small[:s.n] {
			if foldEqual(k, key) {
				return k, true
			}
		}
		if s.n < len(s.small) {
			s.small[s.n] = key
			s.n++
			return nil, false
		}
		s.folded = make(map[string][]byte, 4*len(s.small))
		for _, k := range s.small {
			s.folded[foldKey(k)] = k
		}
	}
	f := foldKey(key)
	if first, dup := s.folded[f]; dup {
		return first, true
	}
	s.folded[f] = key
	return nil, false
}

// decodeTarget strips pointers and returns nil for types whose JSON form is
// free (interfaces, json.RawMessage, anything with its own UnmarshalJSON).
func decodeTarget(t reflect.Type) reflect.Type {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil || t.Kind() == reflect.Interface || t == rawMessageType ||
		reflect.PointerTo(t).Implements(unmarshalerType) || t.Implements(unmarshalerType) {
		return nil
	}
	return t
}

var (
	rawMessageType  = reflect.TypeFor[json.RawMessage]()
	unmarshalerType = reflect.TypeFor[json.Unmarshaler]()
)

// structFields returns the JSON names encoding/json decodes into for the
// struct type t, with their types (embedded structs flattened).
func structFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				for n, typ := range structFields(ft) {
					if _, ok := out[n]; !ok {
						out[n] = typ
					}
				}
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = f.Type
	}
	return out
}

// caseVariantOf returns the field name that folds equal to key, or "".
func caseVariantOf(fields map[string]reflect.Type, key []byte) string {
	for n := range fields {
		if foldEqual([]byte(n), key) {
			return n
		}
	}
	return ""
}

// foldRune folds r the way encoding/json matches names (its foldName): to
// the smallest rune of its Unicode simple-fold orbit, so "k", "K" and "K"
// (U+212A KELVIN SIGN) are one.
func foldRune(r rune) rune {
	if r < utf8.RuneSelf {
		if 'a' <= r && r <= 'z' {
			r -= 'a' - 'A'
		}
		return r
	}
	for {
		r2 := unicode.SimpleFold(r)
		if r2 <= r {
			return r2
		}
		r = r2
	}
}

// foldKey returns s folded rune by rune with foldRune.
func foldKey(s []byte) string {
	var b strings.Builder
	b.Grow(len(s))
	for len(s) > 0 {
		r, n := utf8.DecodeRune(s)
		b.WriteRune(foldRune(r))
		s = s[n:]
	}
	return b.String()
}

// foldEqual reports whether a and b fold equal, without allocating.
func foldEqual(a, b []byte) bool {
	for len(a) > 0 && len(b) > 0 {
		ra, na := utf8.DecodeRune(a)
		rb, nb := utf8.DecodeRune(b)
		if ra != rb && foldRune(ra) != foldRune(rb) {
			return false
		}
		a, b = a[na:], b[nb:]
	}
	return len(a) == 0 && len(b) == 0
}

func jsonError(err error) *apiError {
	var (
		syntax *json.SyntaxError
		typ    *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &syntax):
		return newError(flow.CodeInvalidRequest, fmt.Sprintf("The request body is not valid JSON (at byte %d).", syntax.Offset))
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return newError(flow.CodeInvalidRequest, "The request body is not valid JSON (it ends too early).")
	case errors.As(err, &typ):
		if typ.Field == "" {
			return newError(flow.CodeInvalidRequest, "The request body must be a JSON object.")
		}
		return newError(flow.CodeInvalidRequest, fmt.Sprintf("Field %q must be %s.", typ.Field, jsonTypeName(typ.Type.Kind().String())))
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.TrimPrefix(err.Error(), "json: unknown field ")
		return newError(flow.CodeInvalidRequest, fmt.Sprintf("Unknown field %s.", name))
	}
	return newError(flow.CodeInvalidRequest, "The request body is not valid JSON.")
}

func jsonTypeName(kind string) string {
	switch kind {
	case "string":
		return "a string"
	case "slice", "array":
		return "an array"
	case "struct", "map":
		return "an object"
	case "bool":
		return "a boolean"
	}
	return "a " + kind
}

// validCustomerID reports whether id can be a Planbok customer id. Planbok's
// ids are 24 hex digits; any [A-Za-z0-9_-]{1,64} is accepted so customers
// created elsewhere work too. Anything else is 404 customer_not_found
// without asking Planbok.
func validCustomerID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		ch := id[i]
		if !(ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || ch == '-' || ch == '_') {
			return false
		}
	}
	return true
}

// printable reports whether s holds only printable ASCII (no spaces at the
// ends is not required; control characters and non-ASCII are refused).
func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}
