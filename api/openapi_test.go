package api

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
)

var (
	specOnce sync.Once
	spec     *openapi3.T
	specErr  error
)

// loadSpec parses and validates the embedded document once.
func loadSpec(t testing.TB) *openapi3.T {
	t.Helper()
	specOnce.Do(func() {
		loader := openapi3.NewLoader()
		spec, specErr = loader.LoadFromData(openAPIDocument)
		if specErr == nil {
			specErr = spec.Validate(loader.Context)
		}
	})
	if specErr != nil {
		t.Fatalf("openapi.json: %v", specErr)
	}
	return spec
}

// matchPath finds the documented path template matching a request path.
func matchPath(doc *openapi3.T, path string) (string, *openapi3.PathItem, map[string]string) {
	got := strings.Split(path, "/")
next:
	for tmpl, item := range doc.Paths.Map() {
		want := strings.Split(tmpl, "/")
		if len(want) != len(got) {
			continue
		}
		params := map[string]string{}
		for i, seg := range want {
			if strings.HasPrefix(seg, "{") && strings.HasSuffix(seg, "}") && got[i] != "" {
				params[strings.Trim(seg, "{}")] = got[i]
			} else if seg != got[i] {
				continue next
			}
		}
		return tmpl, item, params
	}
	return "", nil, nil
}

// validateResponse checks a handler response against the document: the
// status must be documented for the operation and the body must match its
// schema. Responses of unknown routes and methods must be the Error schema.
func validateResponse(t testing.TB, req *http.Request, rec *httptest.ResponseRecorder) {
	t.Helper()
	if strings.HasPrefix(req.URL.Path, "/codec/") {
		return // mounted handler, not described by the document
	}
	doc := loadSpec(t)
	tmpl, item, params := matchPath(doc, req.URL.Path)
	var op *openapi3.Operation
	if item != nil {
		op = item.GetOperation(req.Method)
	}
	if op == nil {
		if rec.Code != http.StatusNotFound && rec.Code != http.StatusMethodNotAllowed {
			t.Errorf("%s %s: undocumented route answered %d", req.Method, req.URL.Path, rec.Code)
		}
		var v any
		if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
			t.Errorf("%s %s: body is not JSON: %v", req.Method, req.URL.Path, err)
			return
		}
		if err := doc.Components.Schemas["Error"].Value.VisitJSON(v); err != nil {
			t.Errorf("%s %s: %d body does not match Error: %v", req.Method, req.URL.Path, rec.Code, err)
		}
		return
	}
	if op.Responses.Status(rec.Code) == nil && rec.Code != http.StatusInternalServerError {
		t.Errorf("%s %s: status %d is not listed for %s %s (only 500 may fall to default)", req.Method, req.URL.Path, rec.Code, req.Method, tmpl)
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{
			Request:    req,
			PathParams: params,
			Route:      &routers.Route{Spec: doc, Path: tmpl, PathItem: item, Method: req.Method, Operation: op},
		},
		Status:  rec.Code,
		Header:  rec.Header(),
		Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	in.SetBodyBytes(rec.Body.Bytes())
	if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
		t.Errorf("%s %s → %d does not match the OpenAPI document: %v\nbody: %s", req.Method, req.URL.Path, rec.Code, err, rec.Body.String())
	}
}

func ginRoutes(t *testing.T) []string {
	e := newEnv(t, func(c *Config) { c.Codec = http.NotFoundHandler() })
	var out []string
	for _, r := range e.srv.engine.Routes() {
		if strings.HasPrefix(r.Path, "/codec/") {
			continue // the codec mount is an opaque handler, outside the document
		}
		out = append(out, r.Method+" "+regexp.MustCompile(`:([A-Za-z]+)`).ReplaceAllString(r.Path, "{$1}"))
	}
	slices.Sort(out)
	return out
}

func docRoutes(t *testing.T) []string {
	var out []string
	for path, item := range loadSpec(t).Paths.Map() {
		for method := range item.Operations() {
			out = append(out, method+" "+path)
		}
	}
	slices.Sort(out)
	return out
}

func TestOpenAPI_EveryRouteDocumented(t *testing.T) {
	gin, doc := ginRoutes(t), docRoutes(t)
	for _, r := range gin {
		if !slices.Contains(doc, r) {
			t.Errorf("route %s is served but not documented", r)
		}
	}
	for _, r := range doc {
		if !slices.Contains(gin, r) {
			t.Errorf("route %s is documented but not served", r)
		}
	}
	if len(gin) < 15 {
		t.Errorf("got %d routes, want at least 15: %v", len(gin), gin)
	}
}

func TestOpenAPI_SecurityMatchesAuth(t *testing.T) {
	doc := loadSpec(t)
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			open := op.Security != nil && len(*op.Security) == 0
			wantOpen := !strings.HasPrefix(path, "/v1/") || path == "/v1/webhooks/planbok"
			if open != wantOpen {
				t.Errorf("%s %s: documented without auth = %v, want %v", method, path, open, wantOpen)
			}
		}
	}
}

func TestOpenAPI_ServedDocumentIsEmbeddedOne(t *testing.T) {
	e := newEnv(t)
	rec := e.do(http.MethodGet, "/openapi.json", "")
	if rec.Code != http.StatusOK || rec.Body.String() != string(openAPIDocument) {
		t.Fatalf("got %d, want 200 with the embedded document", rec.Code)
	}
	if got := rec.Header().Get("Content-Type"); !strings.HasPrefix(got, "application/json") {
		t.Errorf("content type: got %q, want application/json", got)
	}
}

func TestOpenAPI_ErrorCodesListed(t *testing.T) {
	doc := loadSpec(t)
	codeSchema := doc.Components.Schemas["Error"].Value.Properties["error"].Value.Properties["code"].Value
	for c := range statusByCode {
		if !slices.Contains(codeSchema.Enum, any(string(c))) {
			t.Errorf("code %q missing from the Error schema's enum", c)
		}
	}
}
