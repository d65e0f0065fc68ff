// Package wire holds the parts of IoT Hub's REST wire format that more than
// one client package needs: error bodies and their codes, the Retry-After
// header, device and module ids (their rule and their path escaping),
// continuation-token paging with its page-size rule, and timestamps as the
// hub writes them.
//
// It is production code with no I/O of its own: the pipeline and the
// clients call it; it imports nothing of the module but the root package.
package wire
