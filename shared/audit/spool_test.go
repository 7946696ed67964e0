package audit

import (
	"os"
	"reflect"
	"syscall"
	"testing"
)

// The spool must give back every key exactly as it was added: the reports are built from
// it.
func TestSpoolRoundTrip(t *testing.T) {
	yes, no := true, false
	keys := []Key{
		{},
		{Package: "p", PackageFingerprint: "F", PackageSeq: 1 << 40, Name: "key-1", KeyType: "RSA-3072", Vault: "https://v.vault.azure.net", Region: "westeurope",
			PublicKeySHA256: "ab", Approvals: []Approver{{Name: "alice", Fingerprint: "A", Key: "aa"}, {Name: "", Fingerprint: "B", Key: "bb"}}, Status: StatusImported, Rejected: 2,
			Receipt: &Receipt{ID: "r", Fingerprint: "R", Seq: 7, Outcome: "imported", Vault: "v", KID: "k", Version: "1", PublicKeySHA256: "cd", PublicKeyMatch: &yes, Versions: []string{"k", "k2"}}},
		{Package: "q", Approvals: []Approver{}, Status: StatusMismatch, Receipt: &Receipt{ID: "s", PublicKeyMatch: &no, Error: "été \x00 \"x\""}},
		{Package: "u", KCV: "0a0b0c", Status: StatusUnmatched, Rejected: -1, Receipt: &Receipt{ID: "t"}},
	}
	s, err := newSpool()
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	for _, k := range keys {
		if err := s.add(k); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.flush(); err != nil {
		t.Fatal(err)
	}
	for round := range 2 { // the reports read it more than once
		var got []Key
		for k, err := range s.all() {
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, k)
		}
		if !reflect.DeepEqual(got, keys) {
			t.Errorf("round %d: spool gave back\n%+v\nwant\n%+v", round, got, keys)
		}
	}
}

// readKey never panics on a damaged record, and whatever it reads survives another round
// trip unchanged.
func FuzzReadKey(f *testing.F) {
	yes := true
	f.Add(appendKey(nil, &Key{Package: "p", Approvals: []Approver{{Name: "a"}}, Receipt: &Receipt{ID: "r", PublicKeyMatch: &yes}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		k, err := readKey(b)
		if err != nil {
			return
		}
		again, err := readKey(appendKey(nil, &k))
		if err != nil || !reflect.DeepEqual(again, k) {
			t.Fatalf("round trip of %+v = %+v, %v", k, again, err)
		}
	})
}

// The spool's file has no name from the start, so an audit killed with SIGKILL leaves no key
// inventory (key names and fingerprints) in the temporary folder.
func TestSpoolHasNoName(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	s, err := newSpool()
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	if err := s.add(Key{Package: "p", Name: "secret-key-name"}); err != nil {
		t.Fatal(err)
	}
	if err := s.flush(); err != nil {
		t.Fatal(err)
	}
	if ents, err := os.ReadDir(tmp); err != nil || len(ents) != 0 {
		t.Errorf("the temporary folder holds %v (%v) while the spool is open, want nothing", ents, err)
	}
	fi, err := s.t.f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if n := fi.Sys().(*syscall.Stat_t).Nlink; n != 0 {
		t.Errorf("the spool's file has %d links, want 0", n)
	}
}
