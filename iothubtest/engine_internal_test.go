package iothubtest

import (
	"testing"

	"github.com/hubkit/iothub/internal/testkit/httpmock"
)

// The public constants repeat the engine's so that no httpmock name shows
// in the package's documentation; they must not drift apart.
func TestConstantsMatchTheEngine(t *testing.T) {
	t.Parallel()
	if DefaultHostName != httpmock.DefaultHostName {
		t.Errorf("DefaultHostName = %q, the engine's is %q", DefaultHostName, httpmock.DefaultHostName)
	}
	if NotImplementedStatus != httpmock.NotImplementedStatus {
		t.Errorf("NotImplementedStatus = %d, the engine's is %d", NotImplementedStatus, httpmock.NotImplementedStatus)
	}
	if DefaultAgentRestartWindow != httpmock.DefaultAgentRestartWindow {
		t.Errorf("DefaultAgentRestartWindow = %v, the engine's is %v", DefaultAgentRestartWindow, httpmock.DefaultAgentRestartWindow)
	}
	for _, op := range []Operation{OperationMethod, OperationRegistry, OperationTwin, OperationQuery, OperationJob} {
		switch httpmock.Operation(op) {
		case httpmock.OperationMethod, httpmock.OperationRegistry, httpmock.OperationTwin, httpmock.OperationQuery, httpmock.OperationJob:
		default:
			t.Errorf("Operation %q is not the engine's", op)
		}
	}
	if h := New(nil); len(h.engine.Policies()) != 5 {
		t.Errorf("the engine has %d default policies, the package documents 5", len(h.engine.Policies()))
	} else {
		for _, p := range []Policy{PolicyIoTHubOwner, PolicyService, PolicyDevice, PolicyRegistryRead, PolicyRegistryReadWrite} {
			if _, ok := h.engine.Policy(string(p)); !ok {
				t.Errorf("the engine has no policy %q", p)
			}
		}
	}
}
