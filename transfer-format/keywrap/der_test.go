package keywrap_test

import (
	"bytes"
	"crypto/x509"
	"errors"
	"testing"

	"github.com/airgap-byok/airgap-byok/transfer-format/keywrap"
)

func TestTrimDER(t *testing.T) {
	_, ec := ecPKCS8(t)
	long := append([]byte{0x04, 0x81, 0x80}, make([]byte, 0x80)...)
	tests := []struct {
		name    string
		in      []byte
		wantDER int // length of the element; ignored on error
		wantErr error
	}{
		{"PKCS#8 exact", ec, len(ec), nil},
		{"PKCS#8 and 1 zero byte", append(append([]byte(nil), ec...), 0), len(ec), nil},
		{"PKCS#8 and 7 zero bytes", append(append([]byte(nil), ec...), make([]byte, 7)...), len(ec), nil},
		{"PKCS#8 and another element", append(append([]byte(nil), ec...), ec...), len(ec), nil},
		{"NULL", []byte{0x05, 0x00}, 2, nil},
		{"short length", []byte{0x04, 0x02, 0xaa, 0xbb, 0xcc}, 4, nil},
		{"long-form length", long, len(long), nil},
		{"high tag number", []byte{0x9f, 0x1f, 0x01, 0xaa}, 4, nil},
		{"two-digit high tag", []byte{0xbf, 0x81, 0x00, 0x00}, 4, nil},

		{"empty", nil, 0, keywrap.ErrDER},
		{"tag only", []byte{0x30}, 0, keywrap.ErrDER},
		{"indefinite length", []byte{0x30, 0x80, 0x00, 0x00}, 0, keywrap.ErrDER},
		{"content past the end", []byte{0x04, 0x03, 0xaa, 0xbb}, 0, keywrap.ErrDER},
		{"long form for a short length", []byte{0x04, 0x81, 0x05, 1, 2, 3, 4, 5}, 0, keywrap.ErrDER},
		{"length with a leading zero", append([]byte{0x04, 0x82, 0x00, 0x80}, make([]byte, 0x80)...), 0, keywrap.ErrDER},
		{"length field truncated", []byte{0x04, 0x82, 0x01}, 0, keywrap.ErrDER},
		{"five length bytes", []byte{0x04, 0x85, 1, 0, 0, 0, 0}, 0, keywrap.ErrDER},
		{"reserved length 0xff", []byte{0x04, 0xff}, 0, keywrap.ErrDER},
		{"huge length", []byte{0x04, 0x84, 0xff, 0xff, 0xff, 0xff, 0}, 0, keywrap.ErrDER},
		{"high tag truncated", []byte{0x9f, 0x81}, 0, keywrap.ErrDER},
		{"high tag with leading 0x80", []byte{0x9f, 0x80, 0x20, 0x00}, 0, keywrap.ErrDER},
		{"high tag below 31", []byte{0x9f, 0x1e, 0x00}, 0, keywrap.ErrDER},
		{"high tag of five digits", []byte{0x9f, 0x87, 0xff, 0xff, 0xff, 0x7f, 0x00}, 7, nil},
		{"high tag above 2^31-1", []byte{0x9f, 0x88, 0x80, 0x80, 0x80, 0x00, 0x00}, 0, keywrap.ErrDER},
		{"high tag of six digits", []byte{0x9f, 0x81, 0x81, 0x81, 0x81, 0x81, 0x01, 0x00}, 0, keywrap.ErrDER},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			der, trailing, err := keywrap.TrimDER(tt.in)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("TrimDER error = %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				if der != nil || trailing != nil {
					t.Error("TrimDER returned bytes with an error")
				}
				return
			}
			if len(der) != tt.wantDER {
				t.Errorf("len(der) = %d, want %d", len(der), tt.wantDER)
			}
			if !bytes.Equal(append(append([]byte(nil), der...), trailing...), tt.in) {
				t.Error("der || trailing != input")
			}
		})
	}
}

// TestTrimDERSoftHSMPadding reproduces SoftHSM2 2.6.1's zero padding before RFC 5649 and
// checks that TrimDER recovers the exact PKCS#8 and reports the padding.
func TestTrimDERSoftHSMPadding(t *testing.T) {
	_, ec := ecPKCS8(t)
	_, rsaDER := rsaPKCS8(t)
	kek := pattern(32)
	for name, p8 := range map[string][]byte{"EC": ec, "RSA": rsaDER} {
		padded := append(append([]byte(nil), p8...), make([]byte, (8-len(p8)%8)%8)...)
		ct, err := keywrap.WrapPad(kek, padded)
		if err != nil {
			t.Fatal(err)
		}
		got, err := keywrap.UnwrapPad(kek, ct)
		if err != nil {
			t.Fatal(err)
		}
		der, trailing, err := keywrap.TrimDER(got)
		if err != nil {
			t.Fatalf("%s: TrimDER: %v", name, err)
		}
		if !bytes.Equal(der, p8) {
			t.Errorf("%s: TrimDER did not recover the PKCS#8 encoding", name)
		}
		if len(trailing) != len(padded)-len(p8) || !bytes.Equal(trailing, make([]byte, len(trailing))) {
			t.Errorf("%s: trailing = %d bytes %x, want %d zero bytes", name, len(trailing), trailing, len(padded)-len(p8))
		}
		if _, err := x509.ParsePKCS8PrivateKey(der); err != nil {
			t.Errorf("%s: trimmed PKCS#8 does not parse: %v", name, err)
		}
	}
}
