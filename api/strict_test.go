package api

import (
	"net/http"
	"strings"
	"testing"

	"github.com/custodyflows/custodyflows/flow"
)

// jsonRoutes are the routes that take a JSON body, with a valid body each.
func jsonRoutes() map[string]string {
	r := map[string]string{"/v1/customers": `{"name":"Ada","refId":"user-1"}`}
	for _, k := range flow.Kinds {
		r["/v1/customers/"+customerA+"/"+k.Route()] = startBodyFor(k)
	}
	return r
}

// Go's decoder matches field names case-insensitively and lets the last of
// two equal keys win; API.md promises that an unknown field is 400. A
// case-variant or repeated key, at any level, is refused naming the field,
// and nothing is done.
func TestStrictJSON_EveryRoute(t *testing.T) {
	mutations := []struct {
		name  string
		apply func(body string) string
		field string // named in the message
	}{
		{"upper-case key", func(b string) string { return upperFirstKey(b) }, ""},
		{"duplicate key", func(b string) string { return "{" + firstPair(b) + "," + b[1:] }, ""},
		{"case-variant duplicate", func(b string) string {
			pair := upperFirstKey("{" + firstPair(b) + "}")
			return pair[:len(pair)-1] + "," + b[1:]
		}, ""},
		{"unknown key", func(b string) string { return `{"zzz":1,` + b[1:] }, "zzz"},
		{"kelvin sign variant", func(b string) string { return `{"idempotencyKey":"a","idempotency\u212aey":"b",` + b[1:] }, "idempotency"},
	}
	for route, body := range jsonRoutes() {
		for _, m := range mutations {
			t.Run(route+"/"+m.name, func(t *testing.T) {
				e := newEnv(t)
				bad := m.apply(body)
				rec := e.api(http.MethodPost, route, bad)
				er := wantError(t, rec, 400, flow.CodeInvalidRequest)
				want := m.field
				if want == "" {
					want = firstKey(body)
				}
				if !strings.Contains(strings.ToLower(er.Error.Message), strings.ToLower(want)) {
					t.Errorf("body %s: message %q does not name %q", bad, er.Error.Message, want)
				}
				if len(e.tc.updateCalls()) != 0 || len(e.pb.creates) != 0 || e.pb.getCount() != 0 {
					t.Errorf("body %s reached Temporal or Planbok", bad)
				}
			})
		}
		// The valid body itself passes the 400 stage.
		e := newEnv(t)
		if rec := e.api(http.MethodPost, route, body); rec.Code == 400 {
			t.Errorf("%s %s: got %d %s", route, body, rec.Code, rec.Body)
		}
	}
}

func TestStrictJSON_NestedAndFreeForm(t *testing.T) {
	type inner struct {
		A string `json:"a"`
	}
	type outer struct {
		In    inner            `json:"in"`
		List  []inner          `json:"list"`
		Map   map[string]int   `json:"map"`
		Raw   any              `json:"raw"`
		Ptr   *inner           `json:"ptr"`
		Multi map[string][]any `json:"multi"`
	}
	for _, tc := range []struct {
		body, field string
	}{
		{`{"in":{"a":"x","a":"y"}}`, "in.a"},
		{`{"in":{"A":"x"}}`, "in.A"},
		{`{"list":[{"a":"x"},{"a":"x","A":"y"}]}`, "list[1].A"},
		{`{"map":{"k":1,"k":2}}`, "map.k"},
		{`{"map":{"k":1,"K":2}}`, "map.K"},
		{`{"raw":{"x":{"y":1,"y":2}}}`, "raw.x.y"},
		{`{"raw":[[{"q":1,"Q":1}]]}`, "raw[0][0].Q"},
		{`{"ptr":{"a":"x","b":1}}`, "ptr.b"},
		{`{"multi":{"m":[{"z":1,"z":1}]}}`, "multi.m[0].z"},
		{`{"in":{},"in":{}}`, "in"},
		{`{"IN":{}}`, "IN"},
		{`{"raw":{"k":1,"\u006b":2}}`, "raw.k"},
		{`{"raw":{"k":1,"\u004b":2}}`, "raw.K"},
		{`{"raw":{"a\"}{":1,"a\"}{":2}}`, `raw.a\"}{`},
		{`{"raw":"}{\"in\":{","in":{"a":"x","a":"y"}}`, "in.a"},
		{`{"map":{"a":1,"b":2,"c":3,"d":4,"e":5,"f":6,"g":7,"h":8,"i":9,"j":10,"J":11}}`, "map.J"},
		{`{"map":{"a":1,"b":2,"c":3,"d":4,"e":5,"f":6,"g":7,"h":8,"i":9,"j":10,"b":11}}`, "map.b"},
		{`{"raw":{"\u212a":1,"k":2}}`, "raw.k"},
		{`{"raw":{"\u017f":1,"S":2}}`, "raw.S"},
		{`{"list":[{},{},{"a":"x"},{"zz":1}]}`, "list[3].zz"},
	} {
		var v outer
		aerr := decodeStrict([]byte(tc.body), &v)
		if aerr == nil {
			t.Errorf("%s: got nil, want invalid_request", tc.body)
			continue
		}
		if aerr.code != flow.CodeInvalidRequest || !strings.Contains(aerr.message, `"`+tc.field+`"`) {
			t.Errorf("%s: got %s %q, want invalid_request naming %q", tc.body, aerr.code, aerr.message, tc.field)
		}
	}
	for _, ok := range []string{
		`{"in":{"a":"x"},"list":[{"a":"y"},{"a":"y"}],"map":{"k":1,"l":2},"raw":{"x":[1,{"y":2}],"z":null},"ptr":null}`,
		`{}`,
		` {"raw":"\u0041"} `,
		`{"in":{"\u0061":"escaped but exact"}}`,
		`{"raw":{"a":"}{,\"a\":","b":["{\"a\":1}",{"c":[]}],"A1":1,"a1 ":2}}`,
		`{"map":{"a":1,"b":2,"c":3,"d":4,"e":5,"f":6,"g":7,"h":8,"i":9,"j":10,"k":11,"l":12}}`,
	} {
		var v outer
		if aerr := decodeStrict([]byte(ok), &v); aerr != nil {
			t.Errorf("%s: got %v, want nil", ok, aerr)
		}
	}
}

// Deep nesting is refused with a 400, not a stack that grows with the input.
func TestStrictJSON_DeepNesting(t *testing.T) {
	var v struct {
		Raw any `json:"raw"`
	}
	body := `{"raw":` + strings.Repeat("[", 10000) + strings.Repeat("]", 10000) + `}`
	if aerr := decodeStrict([]byte(body), &v); aerr == nil || aerr.code != flow.CodeInvalidRequest {
		t.Fatalf("got %v, want invalid_request", aerr)
	}
}

// firstKey returns the first key of a flat JSON object body.
func firstKey(body string) string {
	rest := body[strings.Index(body, `"`)+1:]
	return rest[:strings.Index(rest, `"`)]
}

// firstPair returns the first "key":value pair of a flat JSON object whose
// first value holds no comma.
func firstPair(body string) string {
	rest := body[1:]
	if i := strings.Index(rest, `,"`); i >= 0 {
		return rest[:i]
	}
	return strings.TrimSuffix(rest, "}")
}

// upperFirstKey upper-cases the first key of a JSON object body.
func upperFirstKey(body string) string {
	k := firstKey(body)
	return strings.Replace(body, `"`+k+`"`, `"`+strings.ToUpper(k)+`"`, 1)
}
