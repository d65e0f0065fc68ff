// Package wire holds the parts of IoT Hub's REST wire format that more than
// one client package needs: error bodies and their codes, the Retry-After
// header, and device and module ids (their rule and their path escaping).
//
// It is production code with no I/O of its own: the pipeline and the
// clients call it; it imports nothing of the module but the root package.
package wire
