package audit

import (
	"bufio"
	"context"
	"io"
	"path/filepath"
	"testing"
	"time"

	"github.com/airgap-byok/airgap-byok/transfer-format/bundle"
	"github.com/airgap-byok/airgap-byok/transfer-format/chain"
	"github.com/airgap-byok/airgap-byok/transfer-format/chaintest"
	"github.com/airgap-byok/airgap-byok/transfer-format/media"
	"github.com/airgap-byok/airgap-byok/transfer-format/payload"
)

// benchRow is a verified bundle and what the auditor worked out about it, ready for
// htmlWriter.step.
type benchRow struct {
	v  *chain.Verified
	si stepInfo
}

// rowsOfEveryKind replays a ceremony with bundles of every kind (the stations' enrollments,
// one with its HSM token, a policy and its approval, a Managed HSM KEK offer with an
// attestation, key packages of three types, their approvals and receipts) and returns its
// verified bundles, and an auditor that knows the stations' and custodians' names.
func rowsOfEveryKind(tb testing.TB) ([]benchRow, *auditor) {
	tb.Helper()
	c, err := chaintest.New(chaintest.Config{Dir: filepath.Join(tb.TempDir(), "medium"), VaultKind: payload.VaultManagedHSM})
	if err != nil {
		tb.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Full(payload.RSA3072, payload.ECP256, payload.AES256); err != nil {
		tb.Fatal(err)
	}
	m, err := media.Open(c.M.Dir())
	if err != nil {
		tb.Fatal(err)
	}
	defer m.Close()
	a := &auditor{stations: map[bundle.Chain]string{}, custodians: map[bundle.ID]string{}, regions: map[string]string{}}
	match := true
	var rows []benchRow
	_, err = chain.Replay(context.Background(), m, chain.Options{Anchor: c.PolicyID, Workers: 1, OnBundle: func(v *chain.Verified) error {
		var si stepInfo
		switch p := v.Payload.(type) {
		case *payload.Enrollment:
			a.stations[v.Bundle.Header.Chain] = p.Name
		case *payload.Policy:
			a.learnPolicy(p)
		case *payload.KeyPackage:
			if len(p.PublicKey) > 0 {
				si.pubSHA = sha256Hex(p.PublicKey)
			}
		case *payload.Approval:
			si.counted = make([]bool, len(p.Signatures))
			for i := range si.counted {
				si.counted[i] = true
			}
		case *payload.Receipt:
			si.receipt = &Receipt{PublicKeyMatch: &match}
		}
		rows = append(rows, benchRow{v: v, si: si})
		return nil
	}})
	if err != nil {
		tb.Fatal(err)
	}
	kinds := map[bundle.Kind]bool{}
	for _, r := range rows {
		kinds[r.v.Bundle.Header.Kind] = true
	}
	if len(kinds) != 6 {
		tb.Fatalf("the ceremony has bundles of %d kinds, want 6: %v", len(kinds), kinds)
	}
	return rows, a
}

// BenchmarkHTMLRow is one timeline row of the HTML report (htmlWriter.step), cycling through
// verified bundles of every kind, written to io.Discard. Next to ns/op it reports the
// process's CPU time per row: on a shared machine wall time also measures the neighbours.
//
//	go test -run '^$' -bench HTMLRow -count 6 ./audit/
func BenchmarkHTMLRow(b *testing.B) {
	rows, a := rowsOfEveryKind(b)
	h := &htmlWriter{w: bufio.NewWriter(io.Discard)}
	b.ReportAllocs()
	cpu := chaintest.ProcessCPU()
	i := 0
	for b.Loop() {
		r := rows[i%len(rows)]
		a.order = uint64(i + 1)
		if err := h.step(a, r.v, r.si); err != nil {
			b.Fatal(err)
		}
		i++
	}
	b.ReportMetric(float64(chaintest.ProcessCPU()-cpu)/float64(b.N)/float64(time.Nanosecond), "cpu-ns/row")
}
