package ledger

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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

// shortLock makes each try of a lock short for the test.
func shortLock(t *testing.T) {
	old := LockTimeout
	LockTimeout = 50 * time.Millisecond
	t.Cleanup(func() { LockTimeout = old })
}

// OpenWait waits for the holder to let go (--wait), and says so once.
func TestOpenWaitForHolder(t *testing.T) {
	shortLock(t)
	p := filepath.Join(t.TempDir(), "state.db")
	db, err := Open(p, schema(1))
	if err != nil {
		t.Fatal(err)
	}
	released := make(chan struct{})
	waiting := 0
	go func() {
		<-released
		db.Close()
	}()
	got, err := OpenWait(context.Background(), p, schema(1), WaitOptions{Wait: time.Hour, Waiting: func() {
		waiting++
		close(released) // the holder lets go only once the waiter says it waits
	}})
	if err != nil {
		t.Fatalf("OpenWait() = %v, want the ledger once the holder closed it", err)
	}
	got.Close()
	if waiting != 1 {
		t.Errorf("Waiting called %d times, want once", waiting)
	}
}

// held returns the path of a ledger that the test holds open until it ends.
func held(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "state.db")
	db, err := Open(p, schema(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return p
}

// A holder that keeps the file past the wait is ErrLocked, saying how long it waited.
func TestOpenWaitGivesUp(t *testing.T) {
	shortLock(t)
	p := held(t)
	_, err := OpenWait(context.Background(), p, schema(1), WaitOptions{Wait: 120 * time.Millisecond})
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "still locked after waiting 120ms") {
		t.Fatalf("OpenWait() = %v, want ErrLocked after waiting 120ms", err)
	}
}

// Without a wait, a held file is ErrLocked after the first try, and nobody is told of a
// wait.
func TestOpenWaitZeroFailsAtOnce(t *testing.T) {
	shortLock(t)
	p := held(t)
	waiting := 0
	_, err := OpenWait(context.Background(), p, schema(1), WaitOptions{Waiting: func() { waiting++ }})
	if !errors.Is(err, ErrLocked) || strings.Contains(err.Error(), "after waiting") || waiting != 0 {
		t.Fatalf("OpenWait(no wait) = %v, Waiting called %d times; want ErrLocked at once, no wait said", err, waiting)
	}
}

// An interrupted command stops waiting with the context's error.
func TestOpenWaitInterrupted(t *testing.T) {
	shortLock(t)
	p := held(t)
	ctx, cancel := context.WithCancel(context.Background())
	_, err := OpenWait(ctx, p, schema(1), WaitOptions{Wait: time.Hour, Waiting: cancel})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("OpenWait() = %v, want context.Canceled", err)
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
