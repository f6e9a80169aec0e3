package workflows

import (
	"os"
	"path/filepath"
	"testing"

	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
)

// Recorded histories, one per registered workflow type, made by
// record_test.go on a real in-memory Temporal server:
//
//	go test -tags record -run TestRecordHistories ./workflows
//
// Replaying them catches any change to the workflows that would break
// running executions (non-determinism); such a change needs
// workflow.GetVersion, then new recordings next to the old ones.
//
//go:generate go test -tags record -run TestRecordHistories .

func TestReplay_RecordedHistories(t *testing.T) {
	for _, reg := range All() {
		t.Run(reg.Name, func(t *testing.T) {
			path := filepath.Join("testdata", reg.Name+".json")
			if _, err := os.Stat(path); err != nil {
				t.Fatalf("recorded history: got %v, want %s", err, path)
			}
			r, err := worker.NewWorkflowReplayerWithOptions(worker.WorkflowReplayerOptions{DisableRegistrationAliasing: true})
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range All() {
				r.RegisterWorkflowWithOptions(w.Fn, workflow.RegisterOptions{Name: w.Name, DisableAlreadyRegisteredCheck: true})
			}
			if err := r.ReplayWorkflowHistoryFromJSONFile(quietLogger(), path); err != nil {
				t.Errorf("replay %s: got %v, want nil", path, err)
			}
		})
	}
}
