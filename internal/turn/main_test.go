package turn

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if any test leaves a goroutine behind: every
// server, client, peer and relay a test opens must be closed by its cleanup.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// knownBug skips a test that shows a bug not fixed yet, unless
// QUARTET_KNOWN_BUGS=1. Remove the call with the fix.
func knownBug(t *testing.T, bug string) {
	t.Helper()
	if os.Getenv("QUARTET_KNOWN_BUGS") != "1" {
		t.Skipf("known bug (run with QUARTET_KNOWN_BUGS=1 to see it fail): %s", bug)
	}
}
