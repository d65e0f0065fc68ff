// Package cli holds what the example programs share: their exit codes and
// the way they print a failed call.
package cli

import (
	"errors"
	"fmt"
	"io"

	"github.com/hubkit/iothub"
)

// Exit codes of the example programs.
const (
	ExitOK     = 0 // the command succeeded
	ExitFailed = 1 // a hub error, or a run that did not fully succeed
	ExitUsage  = 2 // bad flags or input; nothing was sent
)

// PrintError prints a failed call on stderr, prefixed with the program's
// name: an IoT Hub error with its code, name, HTTP status and tracking ID,
// anything else as it is. It returns ExitUsage for an argument the SDK
// refused before sending, ExitFailed otherwise.
func PrintError(stderr io.Writer, prog string, err error) int {
	if errors.Is(err, iothub.ErrInvalidArgument) {
		fmt.Fprintf(stderr, "%s: %v\n", prog, err)
		return ExitUsage
	}
	if he, ok := errors.AsType[*iothub.Error](err); ok {
		fmt.Fprintf(stderr, "%s: IoT Hub error %d %s (HTTP %d): %s\n", prog, he.Code, he.CodeName, he.StatusCode, he.Message)
		if he.TrackingID != "" {
			fmt.Fprintf(stderr, "%s: tracking ID %s\n", prog, he.TrackingID)
		}
	} else {
		fmt.Fprintf(stderr, "%s: %v\n", prog, err)
	}
	return ExitFailed
}
