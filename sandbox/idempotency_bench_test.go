package sandbox

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// BenchmarkIdempotencyPut measures storing one idempotency key (with the
// prune every idempotent POST does) once 20,000 keys are kept, as after
// 10,000 flows started in a day (a customer and a challenge each), with
// and without the created_at index, in the same run.
func BenchmarkIdempotencyPut(b *testing.B) {
	const kept = 20000
	body := []byte(strings.Repeat("x", 600)) // about a stored challenge answer
	now := time.Now()
	measure := func(withIndex bool) time.Duration {
		d, err := openDB(filepath.Join(b.TempDir(), fmt.Sprintf("idem-%v.db", withIndex)))
		if err != nil {
			b.Fatal(err)
		}
		defer d.close()
		if !withIndex {
			if _, err := d.x.Exec(`DROP INDEX idempotency_created`); err != nil {
				b.Fatal(err)
			}
		}
		tx := d.x.MustBegin()
		for i := range kept {
			tx.MustExec(`INSERT INTO idempotency(key, fingerprint, status, body, created_at) VALUES (?, 'f', 201, ?, ?)`,
				fmt.Sprintf("kept-%d", i), body, toNanos(now.Add(-time.Duration(i)*time.Second)))
		}
		if err := tx.Commit(); err != nil {
			b.Fatal(err)
		}
		began := time.Now()
		for i := range b.N {
			r := &idemRecord{Key: fmt.Sprintf("new-%d", i), Fingerprint: "f", Status: 201, Body: body, CreatedAt: toNanos(now)}
			if err := d.putIdem(r, now.Add(-idemRetention)); err != nil {
				b.Fatal(err)
			}
		}
		return time.Since(began) / time.Duration(b.N)
	}
	b.ResetTimer()
	without := measure(false)
	with := measure(true)
	b.ReportMetric(float64(without.Microseconds()), "us/put-unindexed")
	b.ReportMetric(float64(with.Microseconds()), "us/put")
	b.ReportMetric(float64(without)/float64(with), "speedup")
}
