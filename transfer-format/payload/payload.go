// Package payload defines the payload of each bundle kind of the transfer format (SPEC.md §7)
// and their canonical JSON encoding (§4.6).
//
// A payload is one JSON object. Its canonical form is what [Marshal] emits: members in the
// order of the Go struct, no insignificant whitespace, no HTML escaping, byte strings in
// standard padded base64, and no trailing newline. [Unmarshal] accepts only that form: it
// refuses unknown or duplicate members, trailing data and any other spelling of the same
// value, by decoding strictly and comparing the re-encoding with the input. So a payload has
// exactly one encoding, and its digest in the bundle header is a content address.
//
// Every type has a Validate method that checks the rules that need no other bundle; the chain
// package checks the rest.
package payload

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
)

// Marshal returns the canonical encoding of v.
func Marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	e := json.NewEncoder(&buf)
	e.SetEscapeHTML(false)
	if err := e.Encode(v); err != nil {
		return nil, err
	}
	b := buf.Bytes()
	return b[:len(b)-1], nil // Encode appends a newline
}

// Unmarshal decodes the canonical encoding of a payload into v, a pointer to one of the
// payload types, and validates it. Malformed or non-canonical input yields an error wrapping
// *bundle.ParseError.
func Unmarshal(data []byte, v interface{ Validate() error }) error {
	if !decodeCanonical(data, v) {
		if err := decodeJSON(data, v); err != nil {
			return err
		}
	}
	validate := v.Validate
	if k, ok := v.(*KeyPackage); ok {
		validate = k.validateAndKeep
	}
	if err := validate(); err != nil {
		return &bundle.ParseError{What: "payload", Err: err}
	}
	if t := ToolsetOf(v); t != nil {
		if err := t.Validate(); err != nil {
			return &bundle.ParseError{What: "payload", Err: err}
		}
	}
	return nil
}

// decodeJSON decodes data into v strictly and checks that data is the canonical encoding
// of the result.
func decodeJSON(data []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(data))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return &bundle.ParseError{What: "payload", Err: err}
	}
	if _, err := d.Token(); !errors.Is(err, io.EOF) {
		return &bundle.ParseError{What: "payload", Err: errors.New("trailing data after the JSON object")}
	}
	again, err := Marshal(v)
	if err != nil {
		return &bundle.ParseError{What: "payload", Err: err}
	}
	if !bytes.Equal(again, data) {
		return &bundle.ParseError{What: "payload", Err: errors.New("not in canonical form")}
	}
	return nil
}

// DecodeVersion is Decode for the payload of a bundle of format version version: it also
// checks the members that depend on the version (CheckVersion). A reader of a bundle's
// payload uses it.
func DecodeVersion(version uint16, kind bundle.Kind, data []byte) (any, error) {
	v, err := Decode(kind, data)
	if err != nil {
		return nil, err
	}
	if err := CheckVersion(version, v); err != nil {
		return nil, &bundle.ParseError{What: "payload", Err: err}
	}
	return v, nil
}

// Decode returns the payload of a bundle of the given kind, decoded and validated, as a
// pointer to the kind's type (*Enrollment, *Policy, ...). It checks the rules every format
// version shares, and a toolset if one is present, but not whether the version of the
// bundle that carries it has one (DecodeVersion does).
func Decode(kind bundle.Kind, data []byte) (any, error) {
	var v interface{ Validate() error }
	switch kind {
	case bundle.KindEnrollment:
		v = new(Enrollment)
	case bundle.KindPolicy:
		v = new(Policy)
	case bundle.KindKEKOffer:
		v = new(KEKOffer)
	case bundle.KindKeyPackage:
		v = new(KeyPackage)
	case bundle.KindApproval:
		v = new(Approval)
	case bundle.KindReceipt:
		v = new(Receipt)
	default:
		return nil, &bundle.ParseError{What: "payload", Err: fmt.Errorf("unknown kind %d", kind)}
	}
	if err := Unmarshal(data, v); err != nil {
		return nil, err
	}
	return v, nil
}

// KindOf returns the bundle kind of a payload value.
func KindOf(v any) (bundle.Kind, error) {
	switch v.(type) {
	case *Enrollment:
		return bundle.KindEnrollment, nil
	case *Policy:
		return bundle.KindPolicy, nil
	case *KEKOffer:
		return bundle.KindKEKOffer, nil
	case *KeyPackage:
		return bundle.KindKeyPackage, nil
	case *Approval:
		return bundle.KindApproval, nil
	case *Receipt:
		return bundle.KindReceipt, nil
	}
	return 0, fmt.Errorf("not a payload type: %T", v)
}
