package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/hubkit/iothub"
)

// ErrFlagsReported stands for a flag error that the flag package has
// already printed, with the usage.
var ErrFlagsReported = errors.New("bad flags")

// Parse parses the flags of a program that takes no positional argument:
// ErrFlagsReported when the flag package has printed the error, or an
// error naming the first argument left over.
func Parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return ErrFlagsReported
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	return nil
}

// ParseCommand parses the arguments of a subcommand, command, whose flags
// (registered on sub, shared by every subcommand) may come before, between
// or after its positional arguments, and returns those arguments. A flag
// that command does not take (not in allowed) is an error naming it;
// ErrFlagsReported when the flag package has printed the error.
func ParseCommand(sub *flag.FlagSet, args []string, command string, allowed []string) ([]string, error) {
	var positional []string
	for {
		if err := sub.Parse(args); err != nil {
			return nil, ErrFlagsReported
		}
		if sub.NArg() == 0 {
			break
		}
		positional = append(positional, sub.Arg(0))
		args = sub.Args()[1:]
	}
	var bad []string
	sub.Visit(func(f *flag.Flag) {
		if !slices.Contains(allowed, f.Name) {
			bad = append(bad, "-"+f.Name)
		}
	})
	if len(bad) > 0 {
		return nil, fmt.Errorf("%s does not take %s", command, strings.Join(bad, ", "))
	}
	return positional, nil
}

// Stderr prints a program's messages, each prefixed with the program's
// name ("invoke: …").
type Stderr struct {
	// Prog is the program's name.
	Prog string
	// W is where the messages go, the program's standard error.
	W io.Writer
}

// Println prints its operands as fmt.Println does, after the prefix.
func (s Stderr) Println(a ...any) {
	fmt.Fprintln(s.W, append([]any{s.Prog + ":"}, a...)...)
}

// Printf prints as fmt.Printf does, after the prefix; format ends with its
// own newline.
func (s Stderr) Printf(format string, a ...any) {
	fmt.Fprintf(s.W, s.Prog+": "+format, a...)
}

// Usage prints a flag or input error, unless it is ErrFlagsReported, and
// returns ExitUsage.
func (s Stderr) Usage(err error) int {
	if !errors.Is(err, ErrFlagsReported) {
		s.Println(err)
	}
	return ExitUsage
}

// Fail prints a failed call, after what the program was doing when what
// is not empty ("fleet-reboot: schedule the job: …"): an IoT Hub error
// with its code, name, HTTP status and tracking ID, anything else as it
// is. It returns ExitUsage for an argument the SDK refused before sending,
// ExitFailed otherwise.
func (s Stderr) Fail(what string, err error) int {
	prefix := s.Prog
	if what != "" {
		prefix += ": " + what
	}
	if errors.Is(err, iothub.ErrInvalidArgument) {
		fmt.Fprintf(s.W, "%s: %v\n", prefix, err)
		return ExitUsage
	}
	if he, ok := errors.AsType[*iothub.Error](err); ok {
		fmt.Fprintf(s.W, "%s: IoT Hub error %d %s (HTTP %d): %s\n", prefix, he.Code, he.CodeName, he.StatusCode, he.Message)
		if he.TrackingID != "" {
			s.Printf("tracking ID %s\n", he.TrackingID)
		}
		return ExitFailed
	}
	fmt.Fprintf(s.W, "%s: %v\n", prefix, err)
	return ExitFailed
}
