package workflows

import (
	"path/filepath"
	"testing"

	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
)

// Recorded histories, one per registered workflow type, made by
// record_test.go on a real in-memory Temporal server:
//
//	go test -tags record -run TestRecordHistories ./workflows -args -label v2
//
// Replaying them catches any change to the workflows that would break
// running executions (non-determinism); such a change needs
// workflow.GetVersion, then a new recording (a new label) next to the old
// ones, which keep replaying: v0 predates versionFreeSlotFirst, v1 has it,
// v2 is the lean shape (versionLean). Some recordings name a case after
// the label (<Type>.v2-operator-cancel.json, -failed-starting,
// -continue-as-new): paths no flow kind takes in the main recording.
func TestReplay_RecordedHistories(t *testing.T) {
	for _, reg := range All() {
		t.Run(reg.Name, func(t *testing.T) {
			paths, err := filepath.Glob(filepath.Join("testdata", reg.Name+".*.json"))
			if err != nil || len(paths) == 0 {
				t.Fatalf("recorded histories: got %v (%v), want testdata/%s.<label>.json", paths, err, reg.Name)
			}
			for _, path := range paths {
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
			}
		})
	}
}
