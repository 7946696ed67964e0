package ledger

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"
)

func schema(n int) Schema {
	s := Schema{Name: "test"}
	for i := range n {
		name := []byte{byte('a' + i)}
		s.Migrations = append(s.Migrations, Migration{Name: string(name), Apply: func(tx *bolt.Tx) error {
			_, err := tx.CreateBucket(name)
			return err
		}})
	}
	return s
}

func TestMigrationsApplyInOrderOnce(t *testing.T) {
	p := filepath.Join(t.TempDir(), "state.db")
	db, err := Open(p, schema(1))
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	db, err = Open(p, schema(3)) // CreateBucket fails if a migration ran twice
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	v, err := Version(db)
	if err != nil || v != 3 {
		t.Fatalf("Version() = %d, %v; want 3", v, err)
	}
	db.View(func(tx *bolt.Tx) error {
		for _, b := range []string{"a", "b", "c"} {
			if tx.Bucket([]byte(b)) == nil {
				t.Errorf("bucket %s missing", b)
			}
		}
		return nil
	})
}

func TestRefusesNewerAndForeign(t *testing.T) {
	p := filepath.Join(t.TempDir(), "state.db")
	db, err := Open(p, schema(2))
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := Open(p, schema(1)); !errors.Is(err, ErrNewer) {
		t.Errorf("Open(older build) = %v, want ErrNewer", err)
	}
	other := schema(2)
	other.Name = "other"
	var se *SchemaError
	if _, err := Open(p, other); !errors.As(err, &se) || se.Found != "test" || se.Want != "other" {
		t.Errorf("Open(other schema) = %v, want a *SchemaError naming both stores", err)
	}
}

func TestSecondOpenIsLocked(t *testing.T) {
	p := filepath.Join(t.TempDir(), "state.db")
	db, err := Open(p, schema(1))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	old := LockTimeout
	LockTimeout = 50_000_000
	defer func() { LockTimeout = old }()
	if _, err := Open(p, schema(1)); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open() = %v, want ErrLocked", err)
	}
}

func TestOpenOfCurrentLedgerDoesNotWrite(t *testing.T) {
	p := filepath.Join(t.TempDir(), "state.db")
	db, err := Open(p, schema(2))
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	before, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	db, err = Open(p, schema(2))
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	after, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Fatal("opening a current ledger changed the file")
	}
}
