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
	kc := keyChecker{dec: json.NewDecoder(bytes.NewReader(body)), allowUnknown: allowUnknown}
	kc.dec.UseNumber()
	if aerr := kc.value(reflect.TypeOf(dst), "", 0); aerr != nil {
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

// maxJSONDepth bounds the nesting checkKeys follows; no body custodyflows
// reads goes past 4.
const maxJSONDepth = 32

// keyChecker walks one JSON value with the type it will be decoded into.
type keyChecker struct {
	dec          *json.Decoder
	allowUnknown bool
}

// value checks the next JSON value; t is the Go type it decodes into (nil
// when free-form: any keys, still no duplicates), path names it in
// messages.
func (k *keyChecker) value(t reflect.Type, path string, depth int) *apiError {
	if depth > maxJSONDepth {
		return newError(flow.CodeInvalidRequest, fmt.Sprintf("The request body nests deeper than %d levels.", maxJSONDepth))
	}
	tok, err := k.dec.Token()
	if err != nil {
		return jsonError(err)
	}
	t = decodeTarget(t)
	switch tok {
	case json.Delim('{'):
		return k.object(t, path, depth)
	case json.Delim('['):
		var elem reflect.Type
		if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
			elem = t.Elem()
		}
		for i := 0; k.dec.More(); i++ {
			if aerr := k.value(elem, fmt.Sprintf("%s[%d]", path, i), depth+1); aerr != nil {
				return aerr
			}
		}
		if _, err := k.dec.Token(); err != nil {
			return jsonError(err)
		}
	}
	return nil
}

func (k *keyChecker) object(t reflect.Type, path string, depth int) *apiError {
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
	seen := map[string]string{} // folded key → key as sent
	for k.dec.More() {
		tok, err := k.dec.Token()
		if err != nil {
			return jsonError(err)
		}
		key, _ := tok.(string)
		name := joinPath(path, key)
		folded := foldKey(key)
		if first, dup := seen[folded]; dup {
			if first == key {
				return newError(flow.CodeInvalidRequest, fmt.Sprintf("Field %q appears twice.", clip(name, 100)))
			}
			return newError(flow.CodeInvalidRequest, fmt.Sprintf("Field %q repeats %q in another case; field names are case-sensitive.",
				clip(name, 100), clip(joinPath(path, first), 100)))
		}
		seen[folded] = key
		child := elem
		if fields != nil {
			if ft, known := fields[key]; known {
				child = ft
			} else if variant := caseVariantOf(fields, folded); variant != "" {
				return newError(flow.CodeInvalidRequest, fmt.Sprintf("Unknown field %q; field names are case-sensitive (%q).",
					clip(name, 100), joinPath(path, variant)))
			} else if !k.allowUnknown {
				return newError(flow.CodeInvalidRequest, fmt.Sprintf("Unknown field %q.", clip(name, 100)))
			}
		}
		if aerr := k.value(child, name, depth+1); aerr != nil {
			return aerr
		}
	}
	if _, err := k.dec.Token(); err != nil {
		return jsonError(err)
	}
	return nil
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

// caseVariantOf returns the field name whose folded form is folded, or "".
func caseVariantOf(fields map[string]reflect.Type, folded string) string {
	for n := range fields {
		if foldKey(n) == folded {
			return n
		}
	}
	return ""
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// foldKey folds a key the way encoding/json matches names (its foldName:
// ASCII upper case, and each other rune to the smallest of its Unicode
// simple fold orbit, so "K" (U+212A KELVIN SIGN) folds like "k").
func foldKey(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		switch {
		case r < utf8.RuneSelf:
			if 'a' <= r && r <= 'z' {
				r -= 'a' - 'A'
			}
		default:
			for {
				r2 := unicode.SimpleFold(r)
				if r2 <= r {
					r = r2
					break
				}
				r = r2
			}
		}
		b.WriteRune(r)
	}
	return b.String()
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
