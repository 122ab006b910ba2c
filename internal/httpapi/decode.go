package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"mime"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/acmecrm/acmecrm"
)

// isJSON accepts application/json and any application/*+json type.
func isJSON(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return false
	}
	return mt == "application/json" || (strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json"))
}

// maxPreallocatedBody bounds the buffer sized from Content-Length before a
// byte has arrived: a client announcing a large body must send it before it
// costs more memory than a small one (the body-limit middleware bounds what
// is read).
const maxPreallocatedBody = 64 << 10

// readJSONBody checks the content type and reads the whole body (bounded by
// the body-limit middleware).
func readJSONBody(r *http.Request) ([]byte, error) {
	if !isJSON(r.Header.Get("Content-Type")) {
		return nil, acmecrm.Errorf(acmecrm.KindUnsupportedMediaType, "UNSUPPORTED_MEDIA_TYPE", "the body must be JSON (Content-Type: application/json)")
	}
	// A compressed body would otherwise be read as JSON and refused as
	// "not valid UTF-8" (or, with a coding that changes nothing, accepted
	// against what the sender said).
	for _, v := range r.Header.Values("Content-Encoding") {
		for _, coding := range strings.Split(v, ",") {
			if c := strings.TrimSpace(coding); c != "" && !strings.EqualFold(c, "identity") {
				return nil, acmecrm.Errorf(acmecrm.KindUnsupportedMediaType, "UNSUPPORTED_MEDIA_TYPE", "Content-Encoding %q is not supported: send the body uncompressed", c)
			}
		}
	}
	var buf bytes.Buffer
	if n := r.ContentLength; n > 0 && n <= maxPreallocatedBody {
		buf.Grow(int(n) + bytes.MinRead) // one allocation instead of io.ReadAll's doublings
	}
	_, err := buf.ReadFrom(r.Body)
	b := buf.Bytes()
	if err != nil {
		return nil, err // *http.MaxBytesError → 413
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, acmecrm.Errorf(acmecrm.KindInvalid, "MALFORMED_JSON", "the body is empty")
	}
	return b, nil
}

// decode reads a JSON body into v strictly: JSON content type (else 415),
// well-formed (else MALFORMED_JSON), one value, no unknown fields, right
// types (else INVALID_INPUT naming the field).
func decode(r *http.Request, v any) error {
	b, err := readJSONBody(r)
	if err != nil {
		return err
	}
	return unmarshalStrict(b, v)
}

// unmarshalStrict is decode's parsing half.
func unmarshalStrict(b []byte, v any) error {
	if err := acmecrm.CheckJSONText(b); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	err := dec.Decode(v)
	if err == nil && dec.More() {
		err = errors.New("unexpected data after the JSON value")
		return acmecrm.Errorf(acmecrm.KindInvalid, "MALFORMED_JSON", "malformed JSON: %v", err)
	}
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &syntax), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return acmecrm.Errorf(acmecrm.KindInvalid, "MALFORMED_JSON", "malformed JSON: %v", err)
	case errors.As(err, &typ):
		var p acmecrm.Problems
		field := jsonPath(typ.Field)
		p.Add(field, "must be %s", jsonType(typ.Type.Kind().String()))
		return p.Err("the body has a field of the wrong type")
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		var p acmecrm.Problems
		paths := unknownMembers(b, reflect.TypeOf(v))
		if len(paths) == 0 { // not expected: the decoder found one
			paths = []string{strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)}
		}
		for _, path := range paths {
			p.Add(path, "is not a known field")
		}
		return p.Err("the body has an unknown field")
	default:
		return acmecrm.Errorf(acmecrm.KindInvalid, "MALFORMED_JSON", "malformed JSON: %v", err)
	}
}

// unknownMembers lists, with their paths (`address.zip`, `tags[1].x`),
// every member of the JSON document b that no field of t takes, matching
// names the way encoding/json does (exactly, or else in any case). The
// decoder stops at the first unknown member and names it without its path,
// which leaves a client guessing which `zip` is meant.
func unknownMembers(b []byte, t reflect.Type) []string {
	var doc any
	if json.Unmarshal(b, &doc) != nil {
		return nil
	}
	var out []string
	walkUnknown(doc, t, "", &out)
	return out
}

var unmarshalerType = reflect.TypeFor[json.Unmarshaler]()

func walkUnknown(v any, t reflect.Type, path string, out *[]string) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if reflect.PointerTo(t).Implements(unmarshalerType) {
		return // it decides what it takes
	}
	member := func(k string) string {
		if path == "" {
			return k
		}
		return path + "." + k
	}
	switch t.Kind() {
	case reflect.Struct:
		m, _ := v.(map[string]any)
		fields := jsonFields(t)
		for _, k := range slices.Sorted(maps.Keys(m)) {
			ft, ok := fields[k]
			for name, f := range fields {
				if !ok && strings.EqualFold(name, k) {
					ft, ok = f, true
				}
			}
			if !ok {
				*out = append(*out, member(k))
				continue
			}
			walkUnknown(m[k], ft, member(k), out)
		}
	case reflect.Slice, reflect.Array:
		a, _ := v.([]any)
		for i, e := range a {
			walkUnknown(e, t.Elem(), fmt.Sprintf("%s[%d]", path, i), out)
		}
	case reflect.Map:
		m, _ := v.(map[string]any)
		for _, k := range slices.Sorted(maps.Keys(m)) {
			walkUnknown(m[k], t.Elem(), member(k), out)
		}
	}
}

// jsonFields maps the JSON names of t's fields to their types, with the
// fields of embedded structs promoted as encoding/json promotes them (an
// outer field wins over a promoted one of the same name).
func jsonFields(t reflect.Type) map[string]reflect.Type {
	fields := map[string]reflect.Type{}
	promoted := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if ft := f.Type; f.Anonymous && name == "" {
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				maps.Copy(promoted, jsonFields(ft))
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		fields[name] = f.Type
	}
	for name, ft := range promoted {
		if _, ok := fields[name]; !ok {
			fields[name] = ft
		}
	}
	return fields
}

// jsonPath is the path of a decoding error in the body's own names:
// encoding/json names the Go structs a field is promoted from
// ("ContactFields.firstName"), and no member of our bodies starts with an
// upper-case letter.
func jsonPath(field string) string {
	var parts []string
	for _, part := range strings.Split(field, ".") {
		if first, _ := utf8.DecodeRuneInString(part); part != "" && !unicode.IsUpper(first) {
			parts = append(parts, part)
		}
	}
	if len(parts) == 0 {
		return "(body)"
	}
	return strings.Join(parts, ".")
}

func jsonType(goKind string) string {
	switch goKind {
	case "string":
		return "a string"
	case "int", "int64", "int32", "float64":
		return "a number"
	case "bool":
		return "a boolean"
	case "slice":
		return "an array"
	case "map", "struct":
		return "an object"
	}
	return "of another type"
}
